//! `traffic:` validation: one invalid fixture per group of rules, each
//! pinned to the exact problems it must report (path, message, line), and
//! a config of every kind of source that is valid.

use mailcanary::config;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/traffic/invalid-{name}.yaml"))
}

fn problems(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    match config::parse(&text, &HashMap::new()) {
        Ok(_) => vec![],
        Err(problems) => problems.iter().map(|p| p.to_string()).collect(),
    }
}

/// Every fixture and what it must say, in file order.
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "sources",
        &[
            "traffic.listen: webhook sources need a listener, such as 0.0.0.0:9928 (line 2)",
            "traffic.sources[0].topic_arns: required: SNS signs every AWS account's notifications with the same certificate, so without a list of topics any account could subscribe this endpoint to a topic of its own and post signed notifications; add topic_arns: [\"arn:aws:sns:REGION:ACCOUNT:NAME\"], the topics your SES events are published to (line 4)",
            r#"traffic.sources[1].name: duplicate source name "ses-events" (line 5)"#,
            r#"traffic.sources[1].path: "traffic/ses2" is not a URL path such as /traffic/ses (line 5)"#,
            r#"traffic.sources[1].topic_arns[0]: "arn:aws:sqs:us-east-1:123456789012:q" is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME) (line 5)"#,
            "traffic.sources[2].public_key: not base64 (paste the verification key SendGrid shows) (line 6)",
            "traffic.sources[3].tolerance: must be more than 0s and at most global.retention: an event id is remembered that long, so a replay inside the tolerance is always recognised (line 7)",
            "traffic.sources[3].signing_key: must not be empty: give the credential, or a ${VAR} that holds it (line 7)",
            r#"traffic.sources[4].provider: provider name "post mark" may use only letters, digits, '-', '_' and '.' (at most 64) (line 8)"#,
            "traffic.sources[4].path: /traffic/mailgun is already used by another source (line 8)",
            "traffic.sources[4].username: the user name of the webhook URL's credentials, without ':' (line 8)",
            "traffic.sources[4].password: must not be empty: give the credential, or a ${VAR} that holds it (line 8)",
            "traffic.sources[5].secret: must be the endpoint's signing secret, starting with whsec_ (line 9)",
            "traffic.sources[6].poll_interval: poll_interval must be more than 0s (line 10)",
            "traffic.sources[7].type: unknown variant `sparkpost`, expected one of ses_sns, sendgrid, mailgun, postmark, resend, postfix_log (line 11)",
        ],
    ),
    (
        "listener",
        &[
            "traffic.listen: 127.0.0.1:9925 is already used by global.listen (line 4)",
            "traffic.recipients: unknown variant `scramble`, expected one of hash, keep, drop (line 5)",
            "traffic.health.min_messages: at least 1: a spike needs some volume (line 6)",
            "traffic.health.deferred: must be more than 0% and at most 100% (line 6)",
            "traffic.sources[0].extra: unknown field `extra`, expected one of name, provider, path, secret, tolerance (line 8)",
        ],
    ),
    (
        "no-listener",
        &[
            "traffic.listen: webhook sources need a listener, such as 0.0.0.0:9928 (line 1)",
            "traffic.sources[0].password: environment variable PM_PASSWORD is not set (line 3)",
        ],
    ),
];

#[test]
fn each_invalid_fixture_reports_exactly_its_problems() {
    let mut failures = Vec::new();
    for (name, expected) in EXPECTED {
        let got = problems(&fixture(name));
        if got != *expected {
            failures.push(format!("{name}:\n  expected {expected:#?}\n  got {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fixture_is_pinned() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/traffic");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if let Some(name) = name.strip_prefix("invalid-").and_then(|n| n.strip_suffix(".yaml")) {
            assert!(EXPECTED.iter().any(|(n, _)| *n == name), "fixture {name} has no expected problems");
        }
    }
}

/// The DESIGN example, every kind of source, secrets from the environment:
/// valid, with the defaults filled in; and real traffic alone is something
/// to monitor.
#[test]
fn every_kind_of_source_is_taken_and_traffic_alone_is_enough() {
    let text = r#"
traffic:
  listen: "0.0.0.0:9928"
  recipients: hash
  sources:
    - { name: ses-events, provider: ses-use1, type: ses_sns, path: /traffic/ses, topic_arns: ["arn:aws:sns:us-east-1:123456789012:ses-events"] }
    - { name: sg-events, provider: sendgrid, type: sendgrid, path: /traffic/sendgrid, public_key: "${SENDGRID_WEBHOOK_KEY}" }
    - { name: mg-events, provider: mailgun, type: mailgun, path: /traffic/mailgun, signing_key: "${MAILGUN_SIGNING_KEY}" }
    - { name: pm-events, provider: postmark, type: postmark, path: /traffic/postmark, username: hook, password: "${POSTMARK_HOOK_PASSWORD}" }
    - { name: rs-events, provider: resend, type: resend, path: /traffic/resend, secret: "${RESEND_WEBHOOK_SECRET}" }
    - { name: relay-log, provider: relay-a, type: postfix_log, file: /var/log/mail.log }
"#;
    let env: HashMap<String, String> = [
        (
            "SENDGRID_WEBHOOK_KEY",
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==",
        ),
        ("MAILGUN_SIGNING_KEY", "key-1234"),
        ("POSTMARK_HOOK_PASSWORD", "pw"),
        ("RESEND_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let c = config::parse(text, &env).unwrap_or_else(|p| panic!("{p:#?}"));
    let t = c.traffic.expect("traffic");
    assert_eq!(t.sources.len(), 6);
    assert!(c.routes.is_empty());
    let names: Vec<(&str, &str, Option<&str>)> = t.sources.iter().map(|s| (s.name(), s.provider(), s.path())).collect();
    assert_eq!(names[5], ("relay-log", "relay-a", None));
    assert_eq!(t.sources[4].tolerance(), Some(std::time::Duration::from_secs(300)), "Svix's five minutes");
    assert_eq!(t.sources[1].tolerance(), Some(std::time::Duration::from_secs(86_400)));
    assert_eq!(t.health.min_messages, 20);
    let debug = format!("{t:?}");
    assert!(!debug.contains("key-1234") && !debug.contains("MfKQ9r8"), "secrets never printed");
}
