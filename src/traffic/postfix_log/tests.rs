use super::*;

/// Lines as the test stack's Postfix wrote them (and, for a deferral, as
/// Postfix writes one when the next hop is down).
const LOG: &str = "\
Dec 05 00:13:24 mx postfix/smtpd[13052]: connect from unknown[127.0.0.1]
Dec 05 00:13:24 mx postfix/smtpd[13052]: NOQUEUE: hold: RCPT from unknown[127.0.0.1]: <hold-a@mailcanary.test>: Recipient address triggers HOLD action; from=<app@example.test> to=<hold-a@mailcanary.test> proto=ESMTP helo=<[127.0.0.1]>
Dec 05 00:13:24 mx postfix/smtpd[13052]: 75B6798E3D8: client=unknown[127.0.0.1]
Dec 05 00:13:24 mx postfix/cleanup[13049]: 75B6798E3D8: message-id=<probe-13412@example.test>
Dec 05 00:13:24 mx postfix/smtpd[13162]: D2AB998E3DC: client=unknown[127.0.0.1]
Dec 05 00:13:24 mx postfix/cleanup[13049]: D2AB998E3DC: message-id=<XT6xNlxHiF0x8PmD@t-bounce.mailcanary>
Dec 05 00:13:24 mx postfix/qmgr[13032]: D2AB998E3DC: from=<returns@mailcanary.test>, size=887, nrcpt=2 (queue active)
Dec 05 00:13:24 mx postfix/error[13454]: D2AB998E3DC: to=<undeliverable-b@mailcanary.test>, relay=none, delay=0.06, delays=0.05/0.01/0/0, dsn=5.1.1, status=bounced (Mailbox unavailable)
Dec 05 00:13:25 mx postfix/lmtp[13042]: D2AB998E3DC: to=<c@mailcanary.test>, relay=mx.mailcanary.test[/tmp/stack/dovecot/lmtp], delay=1.5, delays=0.14/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 <c@mailcanary.test> GAUMHSNXE2tLFQAAg+zDdQ Saved)
Dec 05 00:13:24 mx postfix/cleanup[13049]: E0F4098E40B: message-id=<20261205001324.E0F4098E40B@mx.mailcanary.test>
Dec 05 00:13:24 mx postfix/qmgr[13032]: E0F4098E40B: from=<>, size=2909, nrcpt=1 (queue active)
Dec 05 00:13:24 mx postfix/bounce[13455]: D2AB998E3DC: sender non-delivery notification: E0F4098E40B
Dec 05 00:13:25 mx postfix/lmtp[13042]: E0F4098E40B: to=<returns@mailcanary.test>, relay=mx.mailcanary.test[/tmp/stack/dovecot/lmtp], delay=0.1, delays=0.1/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 Saved)
Dec 05 00:13:26 mx postfix/qmgr[13032]: D2AB998E3DC: removed
Dec 05 00:14:00 mx postfix/smtp[2001]: 4F1A2B3C4D: to=<d@example.net>, relay=none, delay=30, delays=0.01/0/30/0, dsn=4.4.1, status=deferred (connect to mx.example.net[192.0.2.1]:25: Connection timed out)
Dec 04 23:41:41 mx postfix/smtpd[4128]: 6BD6198E3F1: reject: DATA from unknown[127.0.0.1]: 554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: relay refuses everything; from=<app-5@example.test> to=<e@mailcanary.test> proto=ESMTP helo=<app>
Dec 05 00:14:01 mx dovecot: imap-login: Login: user=<x>
";

fn now() -> i64 {
    chrono::Local.with_ymd_and_hms(2026, 12, 5, 1, 0, 0).unwrap().timestamp_millis()
}

fn at(h: u32, m: u32, s: u32) -> i64 {
    chrono::Local.with_ymd_and_hms(2026, 12, 5, h, m, s).unwrap().timestamp_millis()
}

fn events() -> Vec<Event> {
    let mut j = Joiner::default();
    LOG.lines().flat_map(|l| j.line(l, now())).collect()
}

#[test]
fn delivery_lines_are_joined_to_their_queue_id_and_message_id() {
    let all = events();
    let kinds: Vec<(&str, Kind)> = all.iter().map(|e| (e.recipient.as_deref().unwrap(), e.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("hold-a@mailcanary.test", Kind::Sent),
            ("undeliverable-b@mailcanary.test", Kind::Bounced(BounceKind::Permanent)),
            ("c@mailcanary.test", Kind::Delivered),
            ("d@example.net", Kind::Deferred),
            ("e@mailcanary.test", Kind::Rejected),
        ],
        "the null sender's notice is no traffic"
    );
    let held = &all[0];
    let key = Queued::new("75B6798E3D8", at(0, 13, 24)).key;
    assert_eq!((held.message_id.as_str(), held.at_ms), (key.as_str(), at(0, 13, 24)), "joined by the smtpd's pid");
    assert!(key.starts_with("75B6798E3D8@2026-12-0") && key.ends_with(":13:24Z"), "{key}");
    let delivered = &all[2];
    assert_eq!(delivered.smtp_id.as_deref(), Some("<XT6xNlxHiF0x8PmD@t-bounce.mailcanary>"));
    assert_eq!((delivered.at_ms, delivered.sent_ms), (at(0, 13, 25), Some(at(0, 13, 25) - 1_500)));
    assert!(delivered.detail.as_deref().unwrap().starts_with("2.0.0 (250 2.0.0"));
    assert_eq!(all[3].detail.as_deref(), Some("4.4.1 (connect to mx.example.net[192.0.2.1]:25: Connection timed out)"));
}

#[test]
fn the_same_line_read_again_is_the_same_event_and_each_line_its_own() {
    let (first, again) = (events(), events());
    assert_eq!(first, again);
    let mut ids: Vec<&str> = first.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), first.len());
}

#[test]
fn times_without_a_year_are_the_latest_before_now_and_rfc3339_is_read_too() {
    let january = chrono::Local.with_ymd_and_hms(2027, 1, 1, 0, 5, 0).unwrap().timestamp_millis();
    let december = chrono::Local.with_ymd_and_hms(2026, 12, 31, 23, 59, 0).unwrap().timestamp_millis();
    assert_eq!(classic_time("Dec 31 23:59:00", january), Some(december));
    assert_eq!(classic_time("Jan  1 00:04:00", january), Some(january - 60_000));
    let line = "2026-12-05T00:13:25.250000+00:00 mx postfix/lmtp[1]: ABCDEF123: to=<x@y>, relay=r, delay=0.25, dsn=2.0.0, status=sent (ok)";
    let e = Joiner::default().line(line, now());
    assert_eq!((e[0].at_ms, e[0].sent_ms), (1_796_429_605_250, Some(1_796_429_605_000)));
    assert!(Joiner::default().line("garbage", now()).is_empty());
    assert!(Joiner::default().line("Dec 05 00:14:01 mx sshd[1]: ABCDEF123: to=<x@y>, status=sent", now()).is_empty());
}

#[test]
fn a_queue_id_postfix_reuses_is_another_message_and_one_met_late_is_keyed_by_its_arrival() {
    let log = "\
Dec 05 00:20:00 mx postfix/smtpd[1]: ABCDEF123: client=unknown[127.0.0.1]
Dec 05 00:20:01 mx postfix/smtp[2]: ABCDEF123: to=<a@example.net>, relay=none, delay=1, dsn=4.4.1, status=deferred (down)
Dec 05 00:25:00 mx postfix/smtp[2]: ABCDEF123: to=<a@example.net>, relay=r, delay=300, dsn=2.0.0, status=sent (ok)
Dec 05 00:25:00 mx postfix/qmgr[3]: ABCDEF123: removed
Dec 05 00:30:00 mx postfix/smtpd[1]: ABCDEF123: client=unknown[127.0.0.1]
Dec 05 00:30:01 mx postfix/smtp[2]: ABCDEF123: to=<a@example.net>, relay=r, delay=1, dsn=2.0.0, status=sent (ok)
";
    let mut j = Joiner::default();
    let events: Vec<Event> = log.lines().flat_map(|l| j.line(l, now())).collect();
    let keys: Vec<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0], keys[1], "one message's deferral and delivery");
    assert_ne!(keys[1], keys[2], "the reused queue id is a new message");
    assert_eq!(keys[0], Queued::new("ABCDEF123", at(0, 20, 0)).key);

    // Met first by its delivery line (read from the middle of the log): it
    // entered the queue `delay=` before, and a later line of it agrees.
    let mut j = Joiner::default();
    let late = "Dec 05 00:25:00 mx postfix/smtp[2]: ABCDEF123: to=<a@example.net>, relay=r, delay=300, dsn=2.0.0, status=sent (ok)";
    assert_eq!(j.line(late, now())[0].message_id, Queued::new("ABCDEF123", at(0, 20, 0)).key);
}
