//! Application canaries end to end: mailcanary asks a real (small) web
//! application to send its own password-reset email (tests/standins/app.py),
//! the application sends it through the real Postfix to a sub-addressed
//! canary address, Dovecot delivers it to the inbox's mailbox, and the
//! watcher matches it by its tag and checks it against the route's
//! expectations, following the reset link. Every way the application breaks
//! has its own outcome.

mod common;

use common::*;
use std::time::Duration;

const KEY: &str = "test-app-key";
const EXPECT: &str = ", expect: { from: '^no-reply@shop\\.mailcanary\\.test$', subject: '^Reset your password$', \
                      link: 'http://127\\.0\\.0\\.1:[0-9]+/[a-z]+/[A-Za-z0-9_-]+', follow_link: true, \
                      allow_addresses: ['127.0.0.0/8'] }";

fn probe(app: &App, name: &str, mode: &str, key: &str, extra: &str) -> String {
    format!("  - {{ name: {name}, inbox: {name}, trigger: {} }}\n", app.trigger("shop", mode, key, extra))
}

fn labels<'a>(probe: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut l = vec![("probe", probe), ("provider", "shop"), ("inbox", probe)];
    l.extend_from_slice(extra);
    l
}

#[test]
fn every_way_an_application_breaks_has_its_outcome() {
    let s = stack();
    let app = App::start();
    let dir = temp_dir("app-canary");
    let port = free_port();
    let routes = ["reset-ok", "reset-500", "reset-key", "reset-silent", "reset-subject", "reset-dead"];
    let mut config = global("t-app", port, &dir, "1h", "20s");
    config.push_str("inboxes:\n");
    for r in routes {
        config.push_str(&inbox(r, &format!("t-{r}")));
    }
    config.push_str("probes:\n");
    config.push_str(&probe(&app, "reset-ok", "ok", KEY, EXPECT));
    config.push_str(&probe(&app, "reset-500", "error", KEY, ""));
    config.push_str(&probe(&app, "reset-key", "ok", "rotated-key", ""));
    config.push_str(&probe(&app, "reset-silent", "silent", KEY, "").replace(" }\n", ", timeout: 4s }\n"));
    config.push_str(&probe(&app, "reset-subject", "wrong-subject", KEY, EXPECT));
    config.push_str(&probe(&app, "reset-dead", "dead-link", KEY, EXPECT));
    let mc = Mailcanary::start(&dir, port, &config);

    // Only the expectations a trigger route has exist, at 0, from the start.
    let m = mc.metrics().unwrap();
    for e in ["from", "subject", "link", "link_dead"] {
        assert_eq!(
            m.get("mailcanary_canaries_mismatched_total", &labels("reset-ok", &[("expectation", e)])),
            Some(0.0)
        );
    }
    assert_eq!(m.get("mailcanary_canaries_mismatched_total", &labels("reset-500", &[])), None);

    let m = mc.wait_until("every application canary settled", Duration::from_secs(60), |m| {
        m.value("mailcanary_canaries_delivered_total", &labels("reset-ok", &[("placement", "inbox")])) == 1.0
            && m.value("mailcanary_send_failures_total", &labels("reset-500", &[("reason", "other")])) == 1.0
            && m.value("mailcanary_send_failures_total", &labels("reset-key", &[("reason", "auth")])) == 1.0
            && m.value("mailcanary_canaries_lost_total", &labels("reset-silent", &[])) == 1.0
            && m.value("mailcanary_canaries_mismatched_total", &labels("reset-subject", &[("expectation", "subject")]))
                == 1.0
            && m.value("mailcanary_canaries_mismatched_total", &labels("reset-dead", &[("expectation", "link_dead")]))
                == 1.0
    });
    // Delivered with a latency, from the application's answer to first sight.
    assert_eq!(m.value("mailcanary_delivery_latency_seconds_count", &labels("reset-ok", &[])), 1.0);
    assert!(m.value("mailcanary_delivery_latency_seconds_sum", &labels("reset-ok", &[])) > 0.0);
    // Nothing else was counted for the broken ones.
    for r in ["reset-subject", "reset-dead"] {
        assert_eq!(m.value("mailcanary_canaries_delivered_total", &labels(r, &[])), 0.0, "{r}");
        assert_eq!(m.value("mailcanary_canaries_mismatched_total", &labels(r, &[])), 1.0, "{r}");
    }

    // The application was asked once per route, for a fresh tagged address
    // of the route's inbox, and the working reset link was followed.
    let stats = app.stats();
    let asked: Vec<String> = stats["requests"].as_array().unwrap().iter().map(|r| r["email"].to_string()).collect();
    assert_eq!(asked.len(), 5, "{asked:?}");
    let ok_address = stats["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["email"].as_str().unwrap().starts_with(&format!("{}+mc", user("t-reset-ok"))))
        .map(|r| r["email"].as_str().unwrap().to_string())
        .expect("reset-ok asked for a sub-address of its inbox");
    assert_eq!(stats["followed"].as_array().unwrap().len(), 1, "{stats}");

    // The status API says what went wrong, in the same words.
    let status = mc.status();
    let route = |name: &str| status["routes"].as_array().unwrap().iter().find(|r| r["probe"] == name).unwrap().clone();
    assert_eq!(route("reset-subject")["last_outcome"], "mismatched");
    assert_eq!(route("reset-subject")["last_mismatch"], "subject");
    assert_eq!(route("reset-dead")["last_mismatch"], "link_dead");
    assert_eq!(route("reset-ok")["provider"], "shop");
    // A refused firing: the application's HTTP status, and nothing of a delivery.
    let failed = route("reset-500");
    assert_eq!((&failed["last_outcome"], &failed["last_failure_reason"]), (&"refused".into(), &"other".into()));
    assert_eq!(failed["last_failure_detail"], "HTTP 500", "{failed:#}");
    assert!(failed["last_placement"].is_null() && failed["last_latency_seconds"].is_null(), "{failed:#}");

    // Matched emails were cleaned up, as canaries are.
    for r in ["reset-ok", "reset-subject", "reset-dead"] {
        assert!(s.wait_messages(&format!("t-{r}"), "", 0).is_empty(), "{r}'s email stays in its mailbox");
    }

    // An email to a settled (stale) tag and one to a tag never made here
    // are counted unmatched and left alone.
    let unknown = format!("{}+mc{}@mailcanary.test", user("t-reset-ok"), "0123456789abcdef".repeat(2));
    for to in [&ok_address, &unknown] {
        s.inject(
            to,
            &format!("From: Shop <no-reply@shop.mailcanary.test>\nTo: {to}\nSubject: Reset your password\n\nhi\n"),
        );
    }
    let inbox = |reason| vec![("inbox", "reset-ok"), ("reason", reason)];
    mc.wait_until("stale and unknown tags counted", Duration::from_secs(30), |m| {
        m.value("mailcanary_unmatched_messages_total", &inbox("duplicate")) == 1.0
            && m.value("mailcanary_unmatched_messages_total", &inbox("unknown_tag")) == 1.0
    });
    assert_eq!(s.wait_messages("t-reset-ok", "", 2).len(), 2, "both stay in the mailbox");
    // The application's key (in a header) is never shown.
    let shown = format!("{}{}{}", mc.log(), mc.metrics().unwrap().0, mc.status());
    assert!(!shown.contains(KEY) && !shown.contains("rotated-key"), "a trigger's secret is shown");
    drop(mc);

    // The ledger's account says the same.
    let report = run_cli(&dir, &["report", "--since", "1h"]);
    assert!(report.contains("arrived but failed expectations: subject 1"), "{report}");
    assert!(report.contains("arrived but failed expectations: link_dead 1"), "{report}");
}

#[test]
fn check_runs_a_trigger_once_with_progress() {
    let app = App::start();
    let dir = temp_dir("app-check");
    let port = free_port();
    let config = format!(
        "{}inboxes:\n{}probes:\n{}",
        global("t-app-check", port, &dir, "1h", "20s"),
        inbox("reset-check", "t-reset-check"),
        probe(&app, "reset-check", "ok", KEY, EXPECT),
    );
    std::fs::write(dir.join("probes.yaml"), &config).unwrap();
    let out = run_cli(&dir, &["check", "--probe", "reset-check"]);
    assert!(out.contains("triggering shop (POST reset-check)"), "{out}");
    assert!(out.contains("delivered to inbox"), "{out}");
    let stats = app.stats();
    assert_eq!(stats["requests"].as_array().unwrap().len(), 1, "{stats}");
    assert_eq!(stats["followed"].as_array().unwrap().len(), 1, "{stats}");
}

/// The test application's `trigger:` with a longer timeout: a slow link
/// may take it all.
fn slow_trigger(app: &App) -> String {
    app.trigger("shop", "slow-link", KEY, EXPECT).replace("timeout: 5s", "timeout: 60s")
}

#[test]
fn a_slow_link_holds_neither_the_latency_nor_the_inbox() {
    let _s = stack();
    let app = App::start();
    let dir = temp_dir("app-slow-link");
    let port = free_port();
    // A trigger route and a provider route into one inbox, one watcher.
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: reset-slow, inbox: shared, interval: 1h, trigger: {} }}\n  \
         - {{ name: relay-to-shared, provider: relay, inbox: shared }}\n",
        global("t-app-slow", port, &dir, "1s", "6s"),
        relay("relay"),
        inbox("shared", "t-app-slow"),
        slow_trigger(&app),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let slow = [("probe", "reset-slow"), ("provider", "shop"), ("inbox", "shared")];
    let relayed = [("probe", "relay-to-shared"), ("provider", "relay"), ("inbox", "shared")];

    // The application's email is seen, and its link is being followed: the
    // application holds the answer until released.
    app.wait_stats("the reset link followed", Duration::from_secs(30), |s| {
        s["following"].as_array().is_some_and(|f| f.len() == 1)
    });
    let held_since = std::time::Instant::now();
    // Meanwhile the watcher goes on: a provider canary into the same inbox
    // is seen and settled before the link answers.
    let before = mc.metrics().unwrap().value("mailcanary_canaries_delivered_total", &relayed);
    mc.wait_until("a provider canary delivered while the link is followed", Duration::from_secs(20), |m| {
        m.value("mailcanary_canaries_delivered_total", &relayed) > before
    });
    assert!(app.stats()["followed"].as_array().unwrap().is_empty(), "the link answered already");
    let other_seen_after = held_since.elapsed();

    // Its deadline (6 s after the application's answer) passes while the
    // link is followed: still not lost, for it was seen in time.
    mc.wait_until("the application canary in flight past its deadline", Duration::from_secs(30), |m| {
        m.value("mailcanary_oldest_in_flight_seconds", &slow) > 6.5
    });
    let m = mc.metrics().unwrap();
    assert_eq!(m.value("mailcanary_canaries_lost_total", &slow), 0.0);
    assert_eq!(m.value("mailcanary_canaries_delivered_total", &slow), 0.0, "settled before the link answered");

    // The link answers: delivered, with the latency to first sight, which
    // is below the route's timeout however long the link took.
    app.release();
    let m = mc.wait_until("the application canary delivered", Duration::from_secs(30), |m| {
        m.value("mailcanary_canaries_delivered_total", &[("probe", "reset-slow"), ("placement", "inbox")]) == 1.0
    });
    assert_eq!(app.stats()["followed"].as_array().unwrap().len(), 1);
    assert_eq!(m.value("mailcanary_canaries_lost_total", &slow), 0.0);
    assert_eq!(m.value("mailcanary_canaries_late_total", &slow), 0.0);
    assert_eq!(m.value("mailcanary_delivery_latency_seconds_count", &slow), 1.0);
    let latency = m.value("mailcanary_delivery_latency_seconds_sum", &slow);
    assert!(latency > 0.0 && latency < 6.0, "latency {latency} s counts the link's wait");
    // Seen as it happened, though its deadline had passed when it was settled.
    let status = mc.status();
    let route = status["routes"].as_array().unwrap().iter().find(|r| r["probe"] == "reset-slow").unwrap().clone();
    assert!(route["last_observed"].is_null(), "{route}");
    println!(
        "the link held for {:.1} s; latency to first sight {latency:.3} s; a provider canary into the same inbox \
         delivered {:.1} s into the hold",
        held_since.elapsed().as_secs_f64(),
        other_seen_after.as_secs_f64()
    );
}

#[test]
fn an_application_email_that_came_before_the_first_look_is_found() {
    let s = stack();
    let app = App::start();
    let dir = temp_dir("app-first-look");
    let port = free_port();
    let head = global("t-app-first", port, &dir, "1h", "30s");
    let reachable = inbox("first-look", "t-app-first");
    // Nobody can look at first: the inbox's IMAP port is closed.
    let unreachable = reachable.replace(&format!("port: {}", s.imaps), &format!("port: {}", free_port()));
    let probes = format!("probes:\n{}", probe(&app, "first-look", "ok", KEY, ""));
    let mc = Mailcanary::start(&dir, port, &format!("{head}inboxes:\n{unreachable}{probes}"));

    // The application's email arrives before the watcher's first session.
    assert_eq!(s.wait_messages("t-app-first", "", 1).len(), 1, "the application's email never arrived");
    let route = labels("first-look", &[]);
    assert_eq!(mc.metrics().unwrap().value("mailcanary_canaries_delivered_total", &route), 0.0);

    // The inbox can be reached: its first look finds the email.
    mc.rewrite_config(&format!("{head}inboxes:\n{reachable}{probes}"));
    mc.signal("HUP");
    let m = mc.wait_until("the early email delivered", Duration::from_secs(30), |m| {
        m.value("mailcanary_canaries_delivered_total", &route) == 1.0
    });
    assert_eq!(m.value("mailcanary_canaries_lost_total", &route), 0.0);
    // Nobody was looking when it came: judged by when the server received it.
    let status = mc.status();
    let first = status["routes"].as_array().unwrap().iter().find(|r| r["probe"] == "first-look").unwrap().clone();
    assert_eq!(first["last_observed"], "after_gap", "{first}");
    assert!(s.wait_messages("t-app-first", "", 0).is_empty(), "the matched email stays in its mailbox");
}
