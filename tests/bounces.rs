//! Bounces against a real Postfix: a canary to an `undeliverable-*` address
//! is accepted, then Postfix's bounce daemon returns a DSN (RFC 3464) to the
//! envelope sender, the provider's bounce inbox. The canary is resolved as
//! `bounced` from that DSN, long before its timeout.

mod common;

use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A provider whose bounces go to the inbox `returns`.
fn bouncing_relay(name: &str) -> String {
    relay(name).replace(" }\n", ", bounce_inbox: returns }\n")
}

#[test]
fn a_bounce_resolves_the_canary_at_once_with_its_status() {
    let s = stack();
    let dir = temp_dir("bounce");
    let port = free_port();
    // The timeout is ten minutes: only the DSN can resolve the canary in time.
    let config = format!(
        "{}providers:\n{}inboxes:\n{}{}probes:\n  - {{ name: bounce, provider: relay, inbox: dead }}\n",
        global("t-bounce", port, &dir, "1h", "10m"),
        bouncing_relay("relay"),
        inbox("dead", "undeliverable-t-bounce"),
        inbox("returns", "returns-t-bounce"),
    );
    let mut mc = Mailcanary::start(&dir, port, &config);
    let labels = route("bounce", "relay", "dead");
    let m = mc.wait_until("the canary bounced", WAIT, |m| {
        m.value("mailcanary_canaries_bounced_total", &labels) >= 1.0
            && m.value("mailcanary_canaries_in_flight", &labels) == 0.0
    });
    assert_eq!(m.value("mailcanary_canaries_bounced_total", &labels), 1.0);
    assert_eq!(m.value("mailcanary_canaries_sent_total", &labels), 1.0);
    assert_eq!(m.value("mailcanary_canaries_lost_total", &labels), 0.0);
    assert_eq!(m.value("mailcanary_canaries_delivered_total", &labels), 0.0);
    assert_eq!(m.value("mailcanary_canaries_in_flight", &labels), 0.0);
    assert_eq!(m.value("mailcanary_unmatched_messages_total", &[("inbox", "returns")]), 0.0);
    assert_eq!(m.get("mailcanary_inbox_up", &[("inbox", "returns")]), Some(1.0), "the bounce inbox is watched");

    let status = mc.status();
    let r = &status["routes"][0];
    assert_eq!(r["last_outcome"], "bounced", "{status}");
    assert_eq!(r["bounced"], 1);
    assert_eq!(r["last_bounce"]["status"], "5.1.1");
    assert_eq!(r["last_bounce"]["action"], "failed");
    assert_eq!(r["last_bounce"]["diagnostic"], "Mailbox unavailable");
    assert_eq!(r["last_bounce"]["reporting_mta"], "mx.mailcanary.test");
    // The DSN was about our canary, so it was cleaned up like one.
    assert!(s.wait_messages("returns-t-bounce", "", 0).is_empty(), "the DSN was deleted");

    assert!(mc.stop().success());
    let ledger = mailcanary::ledger::Ledger::open(&dir.join("state")).unwrap();
    let rows = ledger.since(0).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].state, mailcanary::ledger::State::Settled(mailcanary::outcome::OutcomeKind::Bounced));
    assert_eq!(rows[0].bounce_status.as_deref(), Some("5.1.1"));
    assert!(rows[0].provider_id.is_some(), "the relay's queue id is kept");
    let text = run_cli(&dir, &["report", "--canaries", "--since", "1h"]);
    assert!(text.contains("bounced with status: 5.1.1 1"), "{text}");
    assert!(text.contains("bounced (5.1.1)") && text.contains("Mailbox unavailable"), "{text}");
}

/// A minimal DSN in Postfix's shape, returning `returned` (headers and body).
fn dsn(to: &str, action: &str, status: &str, returned: &str) -> String {
    format!(
        "From: MAILER-DAEMON@example.test\nTo: {to}\nSubject: Undelivered Mail\nMIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\n\n\
         --b1\nContent-Type: text/plain\n\nsorry\n\n\
         --b1\nContent-Type: message/delivery-status\n\n\
         Reporting-MTA: dns; mx.example.test\n\n\
         Final-Recipient: rfc822; someone@example.test\nAction: {action}\nStatus: {status}\n\n\
         --b1\nContent-Type: message/rfc822\n\n{returned}\n\n--b1--\n"
    )
}

#[test]
fn only_a_failure_report_of_our_own_canary_resolves_it() {
    let s = stack();
    let dir = temp_dir("bounce-hostile");
    let port = free_port();
    let key = "bounce-test-signing-key-0123456789";
    // The canary is held in the queue: only a DSN can resolve it.
    let config = format!(
        "{}  signing_key: \"{key}\"\nproviders:\n{}inboxes:\n{}{}    cleanup: keep\nprobes:\n  - {{ name: held, provider: relay, inbox: held }}\n",
        global("t-bhostile", port, &dir, "1h", "10m"),
        bouncing_relay("relay"),
        inbox("held", "hold-t-bhostile"),
        inbox("returns", "returns-t-bhostile"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let labels = route("held", "relay", "held");
    mc.wait_until("the canary accepted", WAIT, |m| m.value("mailcanary_canaries_sent_total", &labels) >= 1.0);
    let pending = mailcanary::ledger::Ledger::open(&dir.join("state")).unwrap().pending().unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let signed = |id: &str, key: &str| {
        format!("Subject: mailcanary held\nX-Mailcanary-Token: {}\n\nx", signed_token("t-bhostile", "held", id, key))
    };
    let ours = signed(&pending[0].id, key);
    let to = format!("{}@mailcanary.test", user("returns-t-bhostile"));
    // A forged token; another sender's bounce; a delay warning and an
    // unreadable report for our canary; a failure of a canary this instance
    // never sent.
    s.inject(&to, &dsn(&to, "failed", "5.1.1", &signed(&pending[0].id, "somebody else's key entirely")));
    s.inject(&to, &dsn(&to, "failed", "5.1.1", "Subject: somebody's newsletter\n\nx"));
    s.inject(&to, &dsn(&to, "delayed", "4.4.1", &ours));
    s.inject(&to, &dsn(&to, "failed", "5.1.1", &ours).replace("message/delivery-status", "text/plain"));
    s.inject(&to, &dsn(&to, "failed", "5.1.1", &signed("neverSentAtAll01", key)));
    let reason = |r| [("inbox", "returns"), ("reason", r)];
    let m = mc.wait_until("the bounces counted", WAIT, |m| {
        m.value("mailcanary_unmatched_messages_total", &reason("forged")) >= 1.0
            && m.value("mailcanary_unmatched_messages_total", &reason("malformed")) >= 1.0
            && m.value("mailcanary_unmatched_messages_total", &reason("expired")) >= 1.0
    });
    for (r, n) in [("forged", 1.0), ("malformed", 1.0), ("expired", 1.0), ("foreign", 0.0), ("duplicate", 0.0)] {
        assert_eq!(m.value("mailcanary_unmatched_messages_total", &reason(r)), n, "{r}");
    }
    assert_eq!(m.value("mailcanary_canaries_bounced_total", &labels), 0.0, "nothing resolved it");
    assert_eq!(mc.status()["routes"][0]["in_flight"], 1, "the held canary still waits");

    // Its failure report resolves it, with the status the report gave.
    s.inject(&to, &dsn(&to, "failed", "5.2.2", &ours));
    // The in-flight gauge follows within a tick (a second).
    mc.wait_until("the canary bounced", WAIT, |m| {
        m.value("mailcanary_canaries_bounced_total", &labels) >= 1.0
            && m.value("mailcanary_canaries_in_flight", &labels) == 0.0
    });
    assert_eq!(mc.status()["routes"][0]["last_bounce"]["status"], "5.2.2");
    assert_eq!(s.wait_messages("returns-t-bhostile", "", 6).len(), 6, "every report kept (cleanup: keep)");
}

/// SES keeps its own envelope sender and forwards bounces to
/// `FeedbackForwardingEmailAddress`, which mailcanary sets to the bounce
/// inbox; the stand-in relays with that address as the envelope sender, so
/// the DSN is again a real one from Postfix.
#[test]
fn ses_bounces_come_back_through_feedback_forwarding() {
    let standin = Standin::start();
    let dir = temp_dir("bounce-ses");
    let port = free_port();
    let config = format!(
        "{}providers:\n  - {{ name: ses, type: ses, region: eu-west-1, access_key_id: AKIAMAILCANARYTEST01, secret_access_key: \"mailcanary/test/secret+key/0123456789ab\", from: canary@mailcanary.test, endpoint: \"{}\", bounce_inbox: returns }}\ninboxes:\n{}{}probes:\n  - {{ name: ses-bounce, provider: ses, inbox: dead }}\n",
        global("t-bounce-ses", port, &dir, "1h", "10m"),
        standin.endpoint(),
        inbox("dead", "undeliverable-t-bounce-ses"),
        inbox("returns", "returns-t-bounce-ses"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let labels = route("ses-bounce", "ses", "dead");
    let m = mc.wait_until("the canary bounced", WAIT, |m| m.value("mailcanary_canaries_bounced_total", &labels) >= 1.0);
    assert_eq!(m.value("mailcanary_canaries_lost_total", &labels), 0.0);
    let status = mc.status();
    assert_eq!(status["routes"][0]["last_bounce"]["status"], "5.1.1", "{status}");
}

/// A bounce that comes back after the canary was counted lost explains the
/// loss: the ledger and `report` keep its status, and nothing is counted
/// twice.
#[test]
fn a_bounce_after_the_timeout_explains_the_loss() {
    let s = stack();
    let dir = temp_dir("bounce-late");
    let port = free_port();
    let key = "bounce-late-signing-key-0123456789";
    let config = format!(
        "{}  signing_key: \"{key}\"\nproviders:\n{}inboxes:\n{}{}probes:\n  - {{ name: held, provider: relay, inbox: held }}\n",
        global("t-blate", port, &dir, "1h", "2s"),
        bouncing_relay("relay"),
        inbox("held", "hold-t-blate"),
        inbox("returns", "returns-t-blate"),
    );
    let mut mc = Mailcanary::start(&dir, port, &config);
    let labels = route("held", "relay", "held");
    mc.wait_until("the held canary lost", WAIT, |m| m.value("mailcanary_canaries_lost_total", &labels) >= 1.0);
    let lost = mailcanary::ledger::Ledger::open(&dir.join("state")).unwrap().since(0).unwrap().remove(0);
    let token = signed_token("t-blate", "held", &lost.id, key);
    let to = format!("{}@mailcanary.test", user("returns-t-blate"));
    s.inject(&to, &dsn(&to, "failed", "4.4.7", &format!("Subject: mailcanary held\nX-Mailcanary-Token: {token}\n\nx")));
    let start = std::time::Instant::now();
    while mc.status()["routes"][0]["last_bounce"].is_null() {
        assert!(start.elapsed() < WAIT, "the late bounce was not read:\n{}", mc.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Resolved: the DSN is cleaned up like a canary, and counted nowhere.
    assert!(s.wait_messages("returns-t-blate", "", 0).is_empty(), "the DSN was deleted");
    let m = mc.metrics().unwrap();
    assert_eq!(m.value("mailcanary_canaries_bounced_total", &labels), 0.0);
    assert_eq!(m.value("mailcanary_canaries_lost_total", &labels), 1.0);
    assert_eq!(m.value("mailcanary_unmatched_messages_total", &[("inbox", "returns")]), 0.0);
    assert_eq!(mc.status()["routes"][0]["last_bounce"]["status"], "4.4.7");
    assert!(mc.stop().success());
    let text = run_cli(&dir, &["report", "--canaries", "--since", "1h"]);
    assert!(text.contains("lost (bounced 4.4.7)"), "{text}");
}
