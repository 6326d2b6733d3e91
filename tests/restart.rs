//! A crash or a stop with a canary in flight: after a restart it is resolved
//! from the ledger, once. Its own binary, because it releases the stack's
//! held mail.

mod common;

use common::*;
use mailcanary::ledger::{Ledger, State};
use mailcanary::outcome::Observed;
use mailcanary::outcome::OutcomeKind;
use std::time::Duration;

/// Stops mailcanary with `signal` while a canary is held in the queue, starts
/// it again on the same ledger, releases the queue: the canary is resolved
/// once, as delivered, with its latency from the ledger's clock.
fn survives(signal: &str) {
    let dir = temp_dir(&format!("restart-{signal}"));
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: crash, provider: relay, inbox: hold }}\n",
        global("t-restart", port, &dir, "1h", "2m"),
        relay("relay"),
        inbox("hold", &format!("hold-t-restart-{signal}")),
    );
    let labels = route("crash", "relay", "hold");
    let wait = Duration::from_secs(30);
    let mut mc = Mailcanary::start(&dir, port, &config);
    mc.wait_until("the canary sent", wait, |m| m.value("mailcanary_canaries_sent_total", &labels) >= 1.0);
    let stopped = std::time::Instant::now();
    mc.signal(signal);
    let status = mc.stop();
    if signal == "TERM" {
        assert!(status.success(), "a clean stop: {status:?}");
        assert!(stopped.elapsed() < Duration::from_secs(15), "the drain is bounded");
        assert!(mc.log().contains("draining"), "{}", mc.log());
    }
    let ledger = Ledger::open(&dir.join("state")).unwrap();
    let pending = ledger.pending().unwrap();
    assert_eq!(pending.len(), 1, "the canary in flight is in the ledger: {pending:?}");
    let id = pending[0].id.clone();
    std::thread::sleep(Duration::from_secs(1));

    let mc = Mailcanary::start(&dir, port, &config);
    let m =
        mc.wait_until("the canary picked up again", wait, |m| m.value("mailcanary_canaries_in_flight", &labels) >= 1.0);
    assert!(m.value("mailcanary_oldest_in_flight_seconds", &labels) >= 1.0, "its age runs from the first start");
    mailstack(&["release"]);
    let start = std::time::Instant::now();
    let row = loop {
        let row = ledger.get(&id).unwrap().unwrap();
        // `sending` too: the provider's acceptance is written behind (not
        // waited for), so a kill right after it may find it unwritten.
        if !matches!(row.state, State::Sending | State::Sent) || start.elapsed() > wait {
            break row;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(row.state, State::Settled(OutcomeKind::Delivered), "{row:?}\n{}", mc.log());
    assert!(row.latency_ms.unwrap() >= 1000, "latency from the ledger's wall clock: {row:?}");
    let delivered = [labels.as_slice(), &[("placement", "inbox")]].concat();
    let m = mc.wait_until("the delivery counted", wait, |m| {
        m.value("mailcanary_canaries_delivered_total", &delivered) >= 1.0
    });
    assert_eq!(m.value("mailcanary_canaries_lost_total", &labels), 0.0);
    assert_eq!(m.value("mailcanary_unmatched_messages_total", &[("inbox", "hold"), ("reason", "expired")]), 0.0);
}

/// The tests of this binary release the whole queue: one at a time.
static QUEUE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_canary_in_flight_survives_kill_9_and_sigterm() {
    let _queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    survives("KILL");
    survives("TERM");
}

#[test]
fn a_route_removed_by_a_reload_still_resolves_its_canary() {
    let _queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = temp_dir("removed-route");
    let port = free_port();
    let head = format!(
        "{}providers:\n{}inboxes:\n{}{}probes:\n  - {{ name: stays, provider: relay, inbox: other }}\n",
        global("t-removed", port, &dir, "1h", "2m"),
        relay("relay"),
        inbox("held", "hold-t-removed"),
        inbox("other", "t-removed-other"),
    );
    let mc = Mailcanary::start(&dir, port, &format!("{head}  - {{ name: goes, provider: relay, inbox: held }}\n"));
    let goes = route("goes", "relay", "held");
    mc.wait_until("the canary in flight", Duration::from_secs(30), |m| {
        m.value("mailcanary_canaries_in_flight", &goes) >= 1.0
    });
    mc.rewrite_config(&head);
    mc.signal("HUP");
    mc.wait_until("the reload", Duration::from_secs(30), |_| mc.log().contains("config reloaded"));
    mailstack(&["release"]);
    let delivered = [goes.as_slice(), &[("placement", "inbox")]].concat();
    let m = mc.wait_until("the removed route's canary delivered", Duration::from_secs(30), |m| {
        m.value("mailcanary_canaries_delivered_total", &delivered) >= 1.0
    });
    assert_eq!(m.value("mailcanary_canaries_lost_total", &goes), 0.0);
}

/// The issue of every deploy longer than a route's timeout: canaries that
/// reach the inbox on time while mailcanary is down, restarted after their
/// deadline, are judged by when the server received them — delivered, with
/// that latency, flagged as observed after the restart — never lost.
#[test]
fn canaries_that_arrive_while_it_is_down_are_judged_by_when_they_arrived() {
    let _queue = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
    let dir = temp_dir("downtime");
    let port = free_port();
    let base = "hold-t-downtime";
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: down, provider: relay, inbox: held }}\n",
        global("t-downtime", port, &dir, "1h", "5s"),
        relay("relay"),
        inbox("held", base),
    );
    let labels = route("down", "relay", "held");
    let wait = Duration::from_secs(30);
    let mut mc = Mailcanary::start(&dir, port, &config);
    mc.wait_until("the canary sent", wait, |m| m.value("mailcanary_canaries_sent_total", &labels) >= 1.0);
    mc.signal("KILL");
    mc.stop();
    let ledger = Ledger::open(&dir.join("state")).unwrap();
    let pending = ledger.pending().unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let canary = pending[0].clone();

    // Delivered while nobody watches, then down past its deadline.
    mailstack(&["release"]);
    assert_eq!(stack().wait_messages(base, "", 1).len(), 1, "the canary reached the mailbox");
    while chrono::Utc::now().timestamp_millis() <= canary.deadline_ms + 1000 {
        std::thread::sleep(Duration::from_millis(100));
    }

    let mc = Mailcanary::start(&dir, port, &config);
    let delivered = [labels.as_slice(), &[("placement", "inbox")]].concat();
    let m = mc.wait_until("the canary judged", wait, |m| {
        m.value("mailcanary_canaries_delivered_total", &delivered) + m.value("mailcanary_canaries_lost_total", &labels)
            >= 1.0
    });
    assert_eq!(m.value("mailcanary_canaries_delivered_total", &delivered), 1.0, "{}", mc.log());
    assert_eq!(m.value("mailcanary_canaries_late_total", &labels), 0.0);
    let row = ledger.get(&canary.id).unwrap().unwrap();
    assert_eq!((row.state, row.observed), (State::Settled(OutcomeKind::Delivered), Observed::AfterRestart), "{row:?}");
    let latency = row.latency_ms.unwrap();
    assert!(latency < 5_000, "timed by the server's arrival, not by when we looked: {row:?}");
    let status = mc.status();
    assert_eq!(status["routes"][0]["last_observed"], "after_restart", "{status}");
}
