//! The HTTP API providers end to end: mailcanary → the provider's API (a
//! stand-in that holds it to the documented contract) → the real Postfix →
//! Dovecot → IMAP, and every documented failure mapped to its reason.

mod common;

use common::*;
use std::time::Duration;

const AWS_ACCESS_KEY_ID: &str = "AKIAMAILCANARYTEST01";
const AWS_SECRET_ACCESS_KEY: &str = "mailcanary/test/secret+key/0123456789ab";
const SENDGRID_KEY: &str = "SG.mailcanary-test.sendgrid-key";
const MAILGUN_KEY: &str = "key-mailcanary-test-mailgun";
const POSTMARK_TOKEN: &str = "00000000-mailcanary-postmark-token";
const RESEND_KEY: &str = "re_mailcanary_test_resend_key";

const PROVIDERS: [&str; 5] = ["ses", "sendgrid", "mailgun", "postmark", "resend"];

/// The five providers with good credentials (`<kind>`) and bad ones (`<kind>-bad`).
fn providers(endpoint: &str) -> String {
    let entry = |name: &str, good: bool| {
        let (kind, secret) = name.split_once('-').map_or((name, good), |(k, _)| (k, good));
        let creds = match (kind, secret) {
            ("ses", true) => format!(
                "region: eu-west-1, access_key_id: {AWS_ACCESS_KEY_ID}, secret_access_key: \"{AWS_SECRET_ACCESS_KEY}\""
            ),
            ("ses", false) => {
                format!("region: eu-west-1, access_key_id: {AWS_ACCESS_KEY_ID}, secret_access_key: \"wrong/secret\"")
            }
            ("sendgrid", good) => format!("api_key: \"{}\"", if good { SENDGRID_KEY } else { "SG.wrong" }),
            ("mailgun", good) => format!(
                "api_key: \"{}\", domain: mg.mailcanary.test, region: eu",
                if good { MAILGUN_KEY } else { "key-wrong" }
            ),
            ("postmark", good) => format!("server_token: \"{}\"", if good { POSTMARK_TOKEN } else { "wrong" }),
            ("resend", good) => format!("api_key: \"{}\"", if good { RESEND_KEY } else { "re_wrong" }),
            _ => unreachable!(),
        };
        format!(
            "  - {{ name: {name}, type: {kind}, {creds}, from: canary@mailcanary.test, endpoint: \"{endpoint}\", timeout: 2s }}\n"
        )
    };
    let sts = format!(
        "  - {{ name: ses-sts, type: ses, region: eu-west-1, access_key_id: {AWS_ACCESS_KEY_ID}, secret_access_key: \"{AWS_SECRET_ACCESS_KEY}\", session_token: \"FwoGZXIvYXdzEMailcanaryTestToken\", from: canary@mailcanary.test, endpoint: \"{endpoint}\" }}\n"
    );
    PROVIDERS.iter().map(|p| entry(p, true) + &entry(&format!("{p}-bad"), false)).collect::<String>() + &sts
}

#[test]
fn every_api_provider_delivers_end_to_end_and_maps_its_failures() {
    let s = stack();
    let standin = Standin::start();
    let dir = temp_dir("providers");
    let port = free_port();
    let bad: Vec<String> = PROVIDERS.iter().map(|p| format!("{p}-bad")).collect();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}{}{}{}{}probes:\n\
         \x20 - matrix: {{ providers: [{}], inboxes: [ok, throttle, reject, error, stall] }}\n\
         \x20 - matrix: {{ providers: [{}], inboxes: [ok] }}\n\
         \x20 - {{ name: ses-sts-to-ok, provider: ses-sts, inbox: ok }}\n",
        global("t-api", port, &dir, "1h", "1m"),
        providers(&standin.endpoint()),
        inbox("ok", "t-api"),
        inbox("throttle", "throttle-t-api"),
        inbox("reject", "reject-t-api"),
        inbox("error", "error-t-api"),
        inbox("stall", "stall-t-api"),
        PROVIDERS.join(", "),
        bad.join(", "),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let failure = |provider: &str, inbox: &str, reason: &str| -> Vec<(String, String)> {
        let probe = format!("{provider}-to-{inbox}");
        vec![
            ("probe".into(), probe),
            ("provider".into(), provider.into()),
            ("inbox".into(), inbox.into()),
            ("reason".into(), reason.into()),
        ]
    };
    let value = |m: &Metrics, name: &str, labels: &[(String, String)]| {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        m.value(name, &labels)
    };
    let mut expected: Vec<(&str, Vec<(String, String)>)> = Vec::new();
    for p in PROVIDERS {
        let delivered = vec![
            ("probe".to_string(), format!("{p}-to-ok")),
            ("provider".into(), p.into()),
            ("inbox".into(), "ok".into()),
            ("placement".into(), "inbox".into()),
        ];
        expected.push(("mailcanary_canaries_delivered_total", delivered));
        expected.push(("mailcanary_send_failures_total", failure(p, "throttle", "throttled")));
        expected.push(("mailcanary_send_failures_total", failure(p, "reject", "rejected")));
        expected.push(("mailcanary_send_failures_total", failure(p, "error", "other")));
        expected.push(("mailcanary_send_failures_total", failure(p, "stall", "timeout")));
        expected.push(("mailcanary_send_failures_total", failure(&format!("{p}-bad"), "ok", "auth")));
    }
    // Temporary credentials: the session token is sent and signed.
    expected.push((
        "mailcanary_canaries_delivered_total",
        vec![
            ("probe".into(), "ses-sts-to-ok".into()),
            ("provider".into(), "ses-sts".into()),
            ("inbox".into(), "ok".into()),
            ("placement".into(), "inbox".into()),
        ],
    ));
    let m = mc.wait_until("every provider's outcomes", Duration::from_secs(45), |m| {
        expected.iter().all(|(name, labels)| value(m, name, labels) >= 1.0)
    });
    // Each failure is counted under its own reason only.
    for p in PROVIDERS {
        for (inbox, reason) in
            [("throttle", "throttled"), ("reject", "rejected"), ("error", "other"), ("stall", "timeout")]
        {
            for other in ["rejected", "auth", "tls", "connect", "timeout", "throttled", "other"] {
                if other != reason {
                    assert_eq!(
                        value(&m, "mailcanary_send_failures_total", &failure(p, inbox, other)),
                        0.0,
                        "{p} {inbox} {other}"
                    );
                }
            }
        }
    }
    // The failover view: one inbox, bad providers failing with auth while the good ones deliver.
    assert!(PROVIDERS.iter().all(|p| value(
        &m,
        "mailcanary_send_failures_total",
        &failure(&format!("{p}-bad"), "ok", "auth")
    ) == 1.0));

    // Each provider's message id is in the ledger with its delivered canary.
    let ledger = mailcanary::ledger::Ledger::open(&dir.join("state")).unwrap();
    let rows = ledger.since(0).unwrap();
    for p in PROVIDERS {
        let row = rows.iter().find(|r| r.probe == format!("{p}-to-ok")).unwrap();
        assert_eq!(
            row.state,
            mailcanary::ledger::State::Settled(mailcanary::outcome::OutcomeKind::Delivered),
            "{row:?}"
        );
        assert!(row.provider_id.as_ref().is_some_and(|id| id.len() >= 8), "{p}: message id kept: {row:?}");
        let failed = rows.iter().find(|r| r.probe == format!("{p}-to-reject")).unwrap();
        assert!(failed.failure_reason.as_deref() == Some("rejected"), "{failed:?}");
    }
    // The canaries arrived with their token and were cleaned up.
    assert!(s.wait_messages("t-api", "", 0).is_empty(), "delivered canaries are deleted");

    // No credential anywhere in what mailcanary says.
    let said = format!("{}{}{}", m.0, mc.status(), mc.log());
    for secret in
        [AWS_SECRET_ACCESS_KEY, SENDGRID_KEY, MAILGUN_KEY, POSTMARK_TOKEN, RESEND_KEY, "wrong/secret", "SG.wrong"]
    {
        assert!(!said.contains(secret), "{secret} leaked");
    }
}
