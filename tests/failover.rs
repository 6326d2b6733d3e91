//! Provider health that machines act on: a provider refusing everything
//! goes down after `down_after` refusals and comes back after `up_after`
//! deliveries; the API, the health check, the metrics and Postfix (through
//! `postmap`, a real client of the socketmap and of the table file) all say
//! so; no evidence is unknown and never drains traffic; HAProxy (through
//! its agent check) and Postfix (through the table) route around a black
//! hole and a refusing relay, with the shipped defaults' `down_after`.
//! What happens to them when mailcanary itself fails is tests/failsafe.rs.

mod common;

use common::steering::*;
use common::*;
use std::process::Command;
use std::time::Duration;

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

/// What Postfix reads in the table mailcanary writes at `path` (`path.cdb`):
/// the `*` entry, or None when there is none.
fn table(path: &std::path::Path) -> Option<String> {
    let s = stack();
    let out = Command::new("postmap")
        .arg("-c")
        .arg(s.dir.join("postfix"))
        .arg("-q")
        .arg("*")
        .arg(format!("cdb:{}", path.display()))
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
            "  health: {{ overdue_after: 10s, down_after: 2, up_after: 2 }}\n  failover: {{ socketmap: \"127.0.0.1:{socketmap}\", postfix_map: \"{}\" }}\n",
            dir.join("relay").display()
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
    assert_eq!(table(&dir.join("relay")), Some(format!(":[127.0.0.1]:{}", s.smtp)), "the table says the same");

    // Repaired: after two deliveries in a row it is healthy again.
    mc.rewrite_config(&format!("{head}{}{rest}", providers(&s.password)));
    mc.signal("HUP");
    mc.wait_until("bad healthy again", WAIT, |m| state(m, "bad", "healthy") == 1.0);
    assert_eq!(health(port, "bad").0, 200);
    let log = mc.log();
    assert!(!log.contains(&s.password) && !log.contains("wrong-password"), "no password in the log");
    // Afterwards, the review says when it was down and why.
    let report = run_cli(&dir, &["report", "--since", "1h"]);
    let down =
        report.lines().find(|l| l.contains(" bad ") && l.contains("→ down")).unwrap_or_else(|| panic!("{report}"));
    assert!(down.contains("refused"), "{down}");
    // Back up, straight or through degraded (one route may recover first).
    let after_down = report.split_once(down).unwrap().1;
    assert!(after_down.lines().any(|l| l.contains(" bad ") && l.contains("→ healthy")), "{report}");
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

/// HAProxy in front of relays A and B while an application submits a
/// message every 200 ms; relay A breaks (`how`: `hold-relay` — it accepts
/// and never delivers — or `refuse-relay` — 554 to everything) and is then
/// repaired. Prints the figures; asserts the drain bound, that no message
/// reached A after the drain, and that A comes back.
fn haproxy_failover(how: &str) {
    let _relays = relays();
    let s = stack();
    let dir = temp_dir(&format!("haproxy-{how}"));
    let (port, front) = (free_port(), free_port());
    // interval 5 s, overdue_after 10 s, and the default down_after (2).
    let (interval, overdue_after, down_after, check) = (5, 10, 2, 1);
    let agent = free_port();
    let config = format!(
        "{}  health: {{ overdue_after: {overdue_after}s, up_after: 2 }}\n  failover: {{ agent: \"127.0.0.1:{agent}\" }}\nproviders:\n  - {{ name: relay-a, type: smtp, host: 127.0.0.1, port: {}, tls: none, from: canary@mailcanary.test }}\n  - {{ name: relay-b, type: smtp, host: 127.0.0.1, port: {}, tls: none, from: canary@mailcanary.test }}\ninboxes:\n{}{}probes:\n  - matrix: {{ providers: [relay-a, relay-b], inboxes: [x, y] }}\n",
        global(&format!("t-ha-{how}"), port, &dir, &format!("{interval}s"), "2m"),
        s.relay_a,
        s.relay_b,
        inbox("x", &format!("t-ha-{how}-x")),
        inbox("y", &format!("t-ha-{how}-y")),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    mc.wait_until("both relays healthy", WAIT, |m| {
        state(m, "relay-a", "healthy") == 1.0 && state(m, "relay-b", "healthy") == 1.0
    });
    let haproxy = Haproxy::start(&dir, &haproxy_agent_config(&dir, front, agent, s.relay_a, s.relay_b));
    haproxy.wait("both servers up at full weight", |h| serving(h, "relay-a") && serving(h, "relay-b"));
    let app = SmtpApp::start(front, format!("{}@mailcanary.test", user(&format!("t-ha-{how}-app"))));
    haproxy.wait("traffic on relay A", |h| h.stat("smtp", "relay-a").unwrap().1 >= 2);

    mailstack(&[how, "a"]);
    let broke = std::time::Instant::now();
    haproxy.wait("relay A drained", |h| drained(h, "relay-a"));
    let drained = broke.elapsed();
    let (_, a_at_drain) = haproxy.stat("smtp", "relay-a").unwrap();
    let (refused_at_drain, at_drain) = (app.failed(), app.sent());
    until("ten more messages sent", || app.sent() >= at_drain + 10);
    let (_, a_after) = haproxy.stat("smtp", "relay-a").unwrap();
    println!(
        "{how} on relay A: HAProxy drained it after {:.1} s (interval {interval} s, overdue_after {overdue_after} s, check {check} s); messages to A after the drain: {}; refused before the drain: {refused_at_drain}",
        drained.as_secs_f64(),
        a_after - a_at_drain
    );
    assert_eq!(a_after, a_at_drain, "no application message went to relay A after the drain");
    assert_eq!(app.failed(), refused_at_drain, "no message refused after the drain");
    let bound = Duration::from_secs(overdue_after + down_after * interval + 2 * check + 1);
    assert!(drained < bound, "drained after {drained:?}, bound {bound:?}");

    // Repaired: A delivers again; up_after deliveries in a row bring it back.
    mailstack(&["unhold-relay", "a"]);
    mailstack(&["release"]);
    let repaired = std::time::Instant::now();
    haproxy.wait("relay A back", |h| serving(h, "relay-a"));
    println!("{how} on relay A, repaired: back in HAProxy after {:.1} s", repaired.elapsed().as_secs_f64());
    let refused = app.stop();
    if how == "hold-relay" {
        assert_eq!(refused, 0, "a black hole accepts everything");
    }
    drop(mc);
}

#[test]
fn haproxy_drains_a_black_hole_relay_and_takes_it_back() {
    haproxy_failover("hold-relay");
}

#[test]
fn haproxy_drains_a_refusing_relay_and_takes_it_back() {
    haproxy_failover("refuse-relay");
}

#[test]
fn a_broken_inbox_never_drains_a_provider() {
    let _relays = relays();
    let s = stack();
    let dir = temp_dir("broken-inbox");
    let port = free_port();
    let config = format!(
        "{}  health: {{ overdue_after: 4s, up_after: 2 }}\nproviders:\n  - {{ name: relay-a, type: smtp, host: 127.0.0.1, port: {}, tls: none, from: canary@mailcanary.test }}\n  - {{ name: relay-b, type: smtp, host: 127.0.0.1, port: {}, tls: none, from: canary@mailcanary.test }}\ninboxes:\n{}{}probes:\n  - matrix: {{ providers: [relay-a, relay-b], inboxes: [x, y] }}\n",
        global("t-broken", port, &dir, "2s", "2m"),
        s.relay_a,
        s.relay_b,
        inbox("x", "t-broken-x"),
        inbox("y", "t-broken-y"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    mc.wait_until("both relays healthy", WAIT, |m| {
        state(m, "relay-a", "healthy") == 1.0 && state(m, "relay-b", "healthy") == 1.0
    });
    // All mail to inbox y is held: every provider's canaries into it go overdue.
    mailstack(&["hold", &format!("^{}@", user("t-broken-y"))]);
    let overdue = |m: &Metrics, p: &str| {
        m.value("mailcanary_oldest_in_flight_seconds", &route(&format!("{p}-to-y"), p, "y")) >= 6.0
    };
    let m = mc.wait_until("both routes into y overdue", WAIT, |m| overdue(m, "relay-a") && overdue(m, "relay-b"));
    assert_eq!((state(&m, "relay-a", "down"), state(&m, "relay-b", "down")), (0.0, 0.0), "{}", m.0);
    let (_, body) = http(port, "GET", "/api/v1/providers").unwrap();
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    for p in api["providers"].as_array().unwrap() {
        assert_eq!(p["state"], "healthy", "{body}");
        let y = p["routes"].as_array().unwrap().iter().find(|r| r["inbox"] == "y").unwrap();
        assert_eq!(y["inbox_suspect"], true, "{body}");
    }
    assert_eq!(health(port, "relay-a").0, 200);
    mailstack(&["unhold"]);
}

#[test]
fn postfix_relays_around_a_black_hole_and_back() {
    let _relays = relays();
    let s = stack();
    mailstack(&["app-mta", "table"]);
    let dir = temp_dir("postfix-failover");
    let port = free_port();
    // interval 5 s, overdue_after 10 s, and the default down_after (2).
    let (interval, overdue_after, down_after) = (5, 10, 2);
    let map = s.dir.join("app-mta/relay");
    let config = format!(
        "{}  health: {{ overdue_after: {overdue_after}s, up_after: 2 }}\n  failover: {{ postfix_map: \"{}\" }}\nproviders:\n  - {{ name: relay-a, type: smtp, host: 127.0.0.1, port: {a}, tls: none, from: canary@mailcanary.test, failover: {{ nexthop: \"[127.0.0.1]:{a}\" }} }}\n  - {{ name: relay-b, type: smtp, host: 127.0.0.1, port: {b}, tls: none, from: canary@mailcanary.test, failover: {{ nexthop: \"[127.0.0.1]:{b}\" }} }}\ninboxes:\n{}{}probes:\n  - matrix: {{ providers: [relay-a, relay-b], inboxes: [x, y] }}\n",
        global("t-postfix", port, &dir, &format!("{interval}s"), "2m"),
        map.display(),
        inbox("x", "t-postfix-x"),
        inbox("y", "t-postfix-y"),
        a = s.relay_a,
        b = s.relay_b,
    );
    let mc = Mailcanary::start(&dir, port, &config);
    mc.wait_until("both relays healthy", WAIT, |m| {
        state(m, "relay-a", "healthy") == 1.0 && state(m, "relay-b", "healthy") == 1.0
    });
    // Both relays are equally good: the table names whichever was healthy
    // first, and keeps it. The relay Postfix uses is the one to break.
    let relays = [("a", "relay-a", s.relay_a), ("b", "relay-b", s.relay_b)];
    let nexthop = |port: u16| Some(format!(":[127.0.0.1]:{port}"));
    until("the table names a relay", || relays.iter().any(|r| table(&map) == nexthop(r.2)));
    let named = table(&map);
    let used = relays.iter().position(|r| named == nexthop(r.2)).expect("kept while both relays are healthy");
    let (first, second) = (relays[used], relays[1 - used]);
    let app = SmtpApp::start(s.app_mta, format!("{}@mailcanary.test", user("t-postfix-app")));
    let delivered = || s.messages("t-postfix-app", "").len();
    // Each relay names itself in the Received header it adds.
    let through = |relay: &str| {
        let by = format!("by relay-{relay}.mailcanary.test");
        s.messages("t-postfix-app", "").iter().filter(|m| m.contains(&by)).count()
    };
    until("the application's mail delivered", || through(first.0) >= 3);

    // The relay in use becomes a black hole. The table is written at the
    // first failing canary, before `down`, and Postfix reads it within 10 s:
    // the switch is when the application's first message arrives through
    // the other relay, whenever mailcanary says `down`.
    mailstack(&["hold-relay", first.0]);
    let broke = std::time::Instant::now();
    let before = through(second.0);
    until("the application's first message through the other relay", || through(second.0) > before);
    let switched = broke.elapsed();
    let (held, at_switch) = (s.held("t-postfix-app"), through(second.0));
    until("ten more messages delivered through the other relay", || through(second.0) >= at_switch + 10);
    let moved = broke.elapsed();
    let held_after = s.held("t-postfix-app");
    mc.wait_until("the first relay down", WAIT, |m| state(m, first.1, "down") == 1.0);
    let down = broke.elapsed();
    // Postfix's table says the other relay.
    assert_eq!(table(&map), nexthop(second.2));
    println!(
        "black hole on {}: Postfix switched to {} {:.1} s after the break, ten messages later {:.1} s; {} down by {:.1} s; the application's messages held on the black hole: {held} at the switch, {held_after} after ten more",
        first.1,
        second.1,
        switched.as_secs_f64(),
        moved.as_secs_f64(),
        first.1,
        down.as_secs_f64()
    );
    assert!(held > 0, "the application's mail went to the black hole until the switch");
    assert!(held_after <= held + 2, "only messages already in Postfix's hands at the switch went to the black hole");
    // Postfix notices a replaced table within 10 s (trivial-rewrite's check).
    let bound = Duration::from_secs(overdue_after + down_after * interval + 10 + 5);
    assert!(moved < bound, "the mail moved after {moved:?}, bound {bound:?}");

    // The first repaired, then the second a black hole: the mail moves back.
    mailstack(&["unhold-relay", first.0]);
    mailstack(&["release"]);
    mc.wait_until("the first relay healthy", WAIT, |m| state(m, first.1, "healthy") == 1.0);
    mailstack(&["hold-relay", second.0]);
    let broke = std::time::Instant::now();
    mc.wait_until("the second relay down", WAIT, |m| state(m, second.1, "down") == 1.0);
    assert_eq!(table(&map), nexthop(first.2));
    let at_down = delivered();
    until("ten more messages delivered through the first relay", || delivered() >= at_down + 10);
    println!(
        "then {} a black hole: the mail was back on {} {:.1} s later",
        second.1,
        first.1,
        broke.elapsed().as_secs_f64()
    );
    mailstack(&["unhold-relay", second.0]);
    mailstack(&["release"]);
    assert_eq!(app.stop(), 0, "the application's MTA accepted every message");
    drop(mc);
}
