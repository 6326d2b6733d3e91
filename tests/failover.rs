//! Provider health that machines act on: a provider refusing everything
//! goes down after `down_after` refusals and comes back after `up_after`
//! deliveries; the API, the health check, the metrics and Postfix (through
//! `postmap`, a real socketmap client) all say so; no evidence is unknown
//! and never drains traffic.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

/// What Postfix's own client gets from the socketmap server: the value, or
/// None for NOTFOUND.
fn postmap(port: u16) -> Option<String> {
    let s = stack();
    let out = Command::new("postmap")
        .arg("-c")
        .arg(s.dir.join("postfix"))
        .arg("-q")
        .arg("app@example.test")
        .arg(format!("socketmap:inet:127.0.0.1:{port}:relay"))
        .output()
        .expect("run postmap");
    assert!(out.status.code() == Some(0) || out.status.code() == Some(1), "postmap: {out:?}");
    (out.status.code() == Some(0)).then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn health(port: u16, provider: &str) -> (u16, String) {
    http(port, "GET", &format!("/api/v1/providers/{provider}/health")).expect("health answers")
}

fn state(m: &Metrics, provider: &str, state: &str) -> f64 {
    m.value("mailcanary_provider_state", &[("provider", provider), ("state", state)])
}

#[test]
fn a_refusing_provider_goes_down_and_comes_back_and_postfix_is_told() {
    let s = stack();
    let dir = temp_dir("failover");
    let (port, socketmap) = (free_port(), free_port());
    let providers = |password: &str| {
        format!(
            "providers:\n  - {{ name: good, type: smtp, host: 127.0.0.1, port: {}, tls: none, from: canary@mailcanary.test, failover: {{ nexthop: \"[127.0.0.1]:{}\" }} }}\n  - {{ name: bad, type: smtp, host: localhost, port: {}, tls: starttls, username: sender@mailcanary.test, password: \"{password}\", ca_file: \"{}\", from: sender@mailcanary.test, failover: {{ nexthop: \"[localhost]:{}\" }} }}\n",
            s.smtp, s.smtp, s.submission, s.ca, s.submission
        )
    };
    let rest = format!(
        "inboxes:\n{}{}probes:\n  - matrix: {{ providers: [good, bad], inboxes: [x, y] }}\n",
        inbox("x", "t-failover-x"),
        inbox("y", "t-failover-y"),
    );
    let head = global("t-failover", port, &dir, "1s", "30s")
        + &format!(
            "  health: {{ overdue_after: 10s, down_after: 2, up_after: 2 }}\n  failover: {{ socketmap: \"127.0.0.1:{socketmap}\" }}\n"
        );
    let mc = Mailcanary::start(&dir, port, &format!("{head}{}{rest}", providers("wrong-password")));

    let m = mc.wait_until("bad down, good healthy", WAIT, |m| {
        state(m, "bad", "down") == 1.0 && state(m, "good", "healthy") == 1.0
    });
    assert_eq!(state(&m, "bad", "healthy") + state(&m, "bad", "unknown") + state(&m, "bad", "degraded"), 0.0);
    assert!(m.value("mailcanary_provider_state_changes_total", &[("provider", "bad")]) >= 1.0);
    let (code, text) = health(port, "bad");
    assert_eq!(code, 503, "{text}");
    assert!(text.starts_with("down: every route fails") && text.contains("refused"), "{text}");
    assert_eq!(health(port, "good").0, 200);
    assert_eq!(health(port, "nope").0, 404);
    let (_, body) = http(port, "GET", "/api/v1/providers").unwrap();
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api["providers"][0]["provider"], "good", "best first: {body}");
    assert_eq!(api["providers"][1]["state"], "down", "{body}");
    assert!(body.ends_with("}\n") && body.contains("\n  \""), "pretty, newline-terminated: {body:?}");
    assert_eq!(postmap(socketmap).as_deref(), Some(format!("[127.0.0.1]:{}", s.smtp).as_str()));

    // Repaired: after two deliveries in a row it is healthy again.
    mc.rewrite_config(&format!("{head}{}{rest}", providers(&s.password)));
    mc.signal("HUP");
    mc.wait_until("bad healthy again", WAIT, |m| state(m, "bad", "healthy") == 1.0);
    assert_eq!(health(port, "bad").0, 200);
    let log = mc.log();
    assert!(!log.contains(&s.password) && !log.contains("wrong-password"), "no password in the log");
}

#[test]
fn no_evidence_is_unknown_and_keeps_traffic_flowing() {
    let s = stack();
    let dir = temp_dir("failover-unknown");
    let (port, socketmap, closed) = (free_port(), free_port(), free_port());
    let config = format!(
        "{}  failover: {{ socketmap: \"127.0.0.1:{socketmap}\" }}\nproviders:\n  - {{ name: only, type: smtp, host: 127.0.0.1, port: {}, tls: none, from: canary@mailcanary.test, failover: {{ nexthop: \"[127.0.0.1]:{}\" }} }}\ninboxes:\n  - name: gone\n    address: gone@mailcanary.test\n    imap: {{ host: 127.0.0.1, port: {closed}, tls: none, username: gone, password: x }}\nprobes:\n  - {{ name: blind, provider: only, inbox: gone }}\n",
        global("t-unknown", port, &dir, "1s", "3s"),
        s.smtp,
        s.smtp,
    );
    let mc = Mailcanary::start(&dir, port, &config);
    // Its canaries go unseen (the inbox cannot be reached) and are lost:
    // evidence against the inbox, not against the provider.
    let m = mc.wait_until("a canary lost", WAIT, |m| {
        m.value("mailcanary_canaries_lost_total", &route("blind", "only", "gone")) >= 2.0
    });
    assert_eq!(state(&m, "only", "unknown"), 1.0, "{}", m.0);
    let (code, text) = health(port, "only");
    assert_eq!(code, 200, "{text}");
    assert!(text.starts_with("unknown: every inbox it sends to is suspect"), "{text}");
    assert_eq!(postmap(socketmap).as_deref(), Some(format!("[127.0.0.1]:{}", s.smtp).as_str()));
}
