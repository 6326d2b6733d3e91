//! An IMAP outage: Dovecot stops and starts again under a running
//! mailcanary. Its own test binary, because it stops the shared server.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn the_watcher_recovers_after_the_imap_server_comes_back() {
    let dir = temp_dir("outage");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: survive, provider: relay, inbox: box }}\n",
        global("t-outage", port, &dir, "1s", "2m"),
        relay("relay"),
        // A server that stops answering is noticed within the command timeout.
        inbox("box", "t-outage").replace("tls: tls,", "tls: tls, timeout: 3s,"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let labels = route("survive", "relay", "box");
    let delivered = [labels.as_slice(), &[("placement", "inbox")]].concat();
    let wait = Duration::from_secs(30);
    mc.wait_until("a first delivery", wait, |m| m.value("mailcanary_canaries_delivered_total", &delivered) >= 1.0);

    mailstack(&["dovecot-stop"]);
    let down =
        mc.wait_until("the inbox seen down", wait, |m| m.get("mailcanary_inbox_up", &[("inbox", "box")]) == Some(0.0));
    let before = down.value("mailcanary_canaries_delivered_total", &delivered);
    let errors: f64 = ["connect", "protocol", "timeout"]
        .iter()
        .map(|r| down.value("mailcanary_inbox_errors_total", &[("inbox", "box"), ("reason", r)]))
        .sum();
    assert!(errors >= 1.0, "the outage is counted as an inbox error");
    std::thread::sleep(Duration::from_secs(2));
    mailstack(&["dovecot-start"]);

    // No restart of mailcanary: the session comes back by itself and the
    // canaries held back by the outage and new ones are delivered.
    let m = mc.wait_until("deliveries after the outage", wait, |m| {
        m.get("mailcanary_inbox_up", &[("inbox", "box")]) == Some(1.0)
            && m.value("mailcanary_canaries_delivered_total", &delivered) >= before + 2.0
    });
    assert_eq!(m.value("mailcanary_canaries_lost_total", &labels), 0.0, "nothing lost in a short outage");
}
