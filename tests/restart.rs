//! A crash with a canary in flight: after a restart it is resolved from the
//! ledger, once. Its own binary, because it releases the stack's held mail.

mod common;

use common::*;
use mailcanary::ledger::{Ledger, State};
use std::time::Duration;

#[test]
fn a_canary_in_flight_survives_kill_9() {
    let dir = temp_dir("restart");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: crash, provider: relay, inbox: hold }}\n",
        global("t-restart", port, &dir, "1h", "2m"),
        relay("relay"),
        inbox("hold", "hold-t-restart"),
    );
    let labels = route("crash", "relay", "hold");
    let wait = Duration::from_secs(30);
    let mut mc = Mailcanary::start(&dir, port, &config);
    mc.wait_until("the canary sent", wait, |m| m.value("mailcanary_canaries_sent_total", &labels) >= 1.0);
    mc.signal("KILL");
    let _ = mc.stop();
    std::thread::sleep(Duration::from_secs(1));

    let mc = Mailcanary::start(&dir, port, &config);
    let m =
        mc.wait_until("the canary picked up again", wait, |m| m.value("mailcanary_canaries_in_flight", &labels) >= 1.0);
    assert!(m.value("mailcanary_oldest_in_flight_seconds", &labels) >= 1.0, "its age runs from the first start");
    mailstack(&["release"]);
    let delivered = [labels.as_slice(), &[("placement", "inbox")]].concat();
    let m = mc.wait_until("the resumed canary delivered", wait, |m| {
        m.value("mailcanary_canaries_delivered_total", &delivered) >= 1.0
    });
    assert_eq!(m.value("mailcanary_canaries_delivered_total", &delivered), 1.0);
    assert!(m.value("mailcanary_delivery_latency_seconds_sum", &labels) >= 1.0, "latency from the ledger's wall clock");
    assert_eq!(m.value("mailcanary_canaries_lost_total", &labels), 0.0);
    assert_eq!(m.value("mailcanary_unmatched_messages_total", &[("inbox", "hold"), ("reason", "expired")]), 0.0);
}
