//! Known secrets through every failure path: none of them may appear in the
//! log, /metrics, /api/v1/status, `report`, `check` or `validate` output.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const SIGNING_KEY: &str = "SIGNING-KEY-d41d8cd98f00b204e980";
const SMTP_PASSWORD: &str = "SMTP-PASSWORD-not-the-right-one";
const IMAP_PASSWORD: &str = "IMAP-PASSWORD-also-wrong-xyz";
const API_KEY: &str = "SG.API-KEY-sendgrid-secret-value";
const AWS_SECRET: &str = "AWS-SECRET/key+0123456789abcdefghij";

#[test]
fn no_secret_reaches_any_output() {
    let s = stack();
    let dir = temp_dir("secrets");
    let port = free_port();
    let closed = free_port();
    let config = format!(
        "{}  signing_key: \"${{MC_SIGNING_KEY}}\"\nproviders:\n{}\
         \x20 - {{ name: sub, type: smtp, host: localhost, port: {}, tls: starttls, username: x@mailcanary.test, password: \"${{MC_SMTP_PASSWORD}}\", ca_file: \"{}\", from: x@mailcanary.test }}\n\
         \x20 - {{ name: sg, type: sendgrid, api_key: \"${{MC_API_KEY}}\", from: x@mailcanary.test, endpoint: \"http://127.0.0.1:{closed}\" }}\n\
         \x20 - {{ name: ses, type: ses, region: eu-west-1, access_key_id: AKIAEXAMPLE, secret_access_key: \"${{MC_AWS_SECRET}}\", from: x@mailcanary.test, endpoint: \"http://127.0.0.1:{closed}\" }}\n\
         inboxes:\n{}{}probes:\n  - matrix: {{ providers: [relay, sub, sg, ses], inboxes: [good, locked] }}\n",
        // A canary into the locked inbox is held one timeout past its own
        // (nobody can look), then counted lost: 20 s in all.
        global("t-secrets", port, &dir, "2s", "10s"),
        relay("relay"),
        s.submission,
        s.ca,
        inbox("good", "t-secrets"),
        inbox("locked", "t-secrets-locked").replace(&s.password, "${MC_IMAP_PASSWORD}"),
    );
    let path = dir.join("probes.yaml");
    let env = [
        ("MC_SIGNING_KEY", SIGNING_KEY),
        ("MC_SMTP_PASSWORD", SMTP_PASSWORD),
        ("MC_IMAP_PASSWORD", IMAP_PASSWORD),
        ("MC_API_KEY", API_KEY),
        ("MC_AWS_SECRET", AWS_SECRET),
    ];
    for (k, v) in env {
        // SAFETY: set before any thread of this test binary reads the environment.
        unsafe { std::env::set_var(k, v) };
    }
    let mc = Mailcanary::start(&dir, port, &config);
    let reason = |probe: &'static str, r: &'static str| [("probe", probe), ("reason", r)];
    let m = mc.wait_until("every failure path", Duration::from_secs(40), |m| {
        m.value("mailcanary_send_failures_total", &reason("sub-to-good", "auth")) >= 1.0
            && m.value("mailcanary_send_failures_total", &reason("sg-to-good", "connect")) >= 1.0
            && m.value("mailcanary_send_failures_total", &reason("ses-to-good", "connect")) >= 1.0
            && m.value("mailcanary_inbox_errors_total", &[("inbox", "locked"), ("reason", "auth")]) >= 1.0
            && m.value("mailcanary_canaries_delivered_total", &[("probe", "relay-to-good")]) >= 1.0
            && m.value("mailcanary_canaries_lost_total", &[("probe", "relay-to-locked")]) >= 1.0
    });
    let mut outputs = vec![("metrics", m.0), ("status", mc.status().to_string())];
    let run = |args: &[&str], config: &std::path::Path| {
        let out =
            Command::new(env!("CARGO_BIN_EXE_mailcanary")).args(args).arg("--config").arg(config).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    outputs.push(("report", run(&["report", "--canaries", "--json"], &path)));
    outputs.push(("report text", run(&["report", "--canaries"], &path)));
    outputs.push(("check", run(&["check", "--probe", "sub-to-good"], &path)));
    // An invalid config with secrets from the environment in the wrong keys:
    // the errors name the keys and never quote the values.
    let invalid = dir.join("invalid.yaml");
    std::fs::write(
        &invalid,
        "global:\n  signing_key: \"${MC_SIGNING_KEY}\"\n  listen: \"${MC_SMTP_PASSWORD}\"\n\
         providers:\n  - { name: sg, type: sendgrid, api_key: \"${MC_API_KEY}\", from: \"${MC_AWS_SECRET}\" }\n\
         \x20 - { name: \"${MC_IMAP_PASSWORD}\", type: sendgrid, api_key: x, from: a@b.c, port: 1 }\n",
    )
    .unwrap();
    outputs.push(("validate", run(&["validate"], &invalid)));
    let mut mc = mc;
    mc.stop();
    outputs.push(("log", mc.log()));
    for (what, text) in &outputs {
        for (_, secret) in env {
            assert!(!text.contains(secret), "{secret} appears in {what}:\n{text}");
        }
    }
    let validate = &outputs.iter().find(|(w, _)| *w == "validate").unwrap().1;
    for expected in [
        "global.listen: \"***\" is not an address",
        "providers[0].from: \"***\" is not an email",
        "unknown field `port`",
    ] {
        assert!(validate.contains(expected), "{expected}: {validate}");
    }
}
