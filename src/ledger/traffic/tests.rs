use super::*;
use crate::traffic_event::Kind;

fn ev(id: &str, message: &str, kind: Kind, at_ms: i64) -> Event {
    Event {
        event_id: id.into(),
        message_id: message.into(),
        recipient: Some("h:abc".into()),
        kind,
        at_ms,
        sent_ms: None,
        smtp_id: None,
        detail: None,
    }
}

fn write(source: &str, events: Vec<Event>) -> TrafficWrite {
    TrafficWrite { source: source.into(), provider: "ses".into(), events, cursor: None, nonce: None }
}

fn count(ledger: &Ledger, sql: &str) -> i64 {
    ledger.with(|db| db.query_row(sql, [], |r| r.get(0))).unwrap()
}

#[test]
fn a_retried_or_replayed_event_changes_nothing() {
    let ledger = Ledger::in_memory().unwrap();
    let batch = vec![ev("e1", "m1", Kind::Sent, 1_000), ev("e2", "m1", Kind::Delivered, 4_000)];
    let first = ledger.record_traffic(&[write("s", batch.clone())], 10).unwrap();
    assert_eq!((first[0].recorded, first[0].duplicates), (2, 0));
    assert_eq!(first[0].effects[1].outcomes, [Outcome::Delivered]);
    let before = ledger.traffic_window(&[], 0, i64::MAX).unwrap();
    // The same events again, and twice within one write.
    let again = ledger.record_traffic(&[write("s", batch.clone()), write("s", batch)], 20).unwrap();
    assert_eq!((again[0].recorded, again[0].duplicates, again[1].duplicates), (0, 2, 2));
    assert!(again.iter().all(|r| r.effects.is_empty()), "nothing counted twice");
    assert_eq!(ledger.traffic_window(&[], 0, i64::MAX).unwrap(), before);
    assert_eq!(count(&ledger, "SELECT count(*) FROM traffic_events"), 2);
    // One event id twice in one write: the second is the duplicate.
    let twice =
        ledger.record_traffic(&[write("s", vec![ev("e3", "m2", Kind::Sent, 1), ev("e3", "m2", Kind::Sent, 1)])], 30);
    assert_eq!(twice.unwrap()[0].duplicates, 1);
}

#[test]
fn one_message_is_one_row_per_recipient_and_its_account_is_kept() {
    let ledger = Ledger::in_memory().unwrap();
    let mut to_b = ev("e2", "m1", Kind::Bounced(BounceKind::Permanent), 3_000);
    to_b.recipient = Some("h:b".into());
    to_b.detail = Some("5.1.1 user unknown".into());
    let mut sent = ev("e1", "m1", Kind::Delivered, 2_000);
    sent.sent_ms = Some(500);
    sent.smtp_id = Some("<x@y>".into());
    ledger.record_traffic(&[write("s", vec![sent, to_b])], 10).unwrap();
    let rows = ledger.traffic_window(&["ses".into()], 0, i64::MAX).unwrap();
    assert_eq!(rows.len(), 2);
    let a = rows.iter().find(|r| r.recipient == "h:abc").unwrap();
    assert_eq!(
        (a.first_ms, a.sent_ms, a.delay_ms, a.settled.as_deref()),
        (500, Some(500), Some(1_500), Some("delivered"))
    );
    assert_eq!(a.smtp_id.as_deref(), Some("<x@y>"));
    let b = rows.iter().find(|r| r.recipient == "h:b").unwrap();
    assert_eq!((b.settled.as_deref(), b.bounce_kind.as_deref()), (Some("bounced"), Some("permanent")));
    assert_eq!(b.last_detail.as_deref(), Some("5.1.1 user unknown"));
    assert_eq!(ledger.traffic_window(&["other".into()], 0, i64::MAX).unwrap(), []);
    assert_eq!(ledger.traffic_window(&[], 600, i64::MAX).unwrap().len(), 1, "by the earliest time known");
    assert_eq!(ledger.traffic_events("ses", "m1").unwrap().len(), 2);
}

#[test]
fn a_log_cursor_is_saved_with_what_was_read() {
    let ledger = Ledger::in_memory().unwrap();
    let mut w = write("log", vec![ev("l1", "Q1", Kind::Sent, 1)]);
    w.cursor = Some("{\"offset\":10}".into());
    ledger.record_traffic(&[w.clone()], 1).unwrap();
    w.cursor = Some("{\"offset\":20}".into());
    ledger.record_traffic(&[w], 2).unwrap();
    assert_eq!(ledger.traffic_cursor("log").unwrap().as_deref(), Some("{\"offset\":20}"));
    assert_eq!(ledger.traffic_cursor("other").unwrap(), None);
}

#[test]
fn prune_forgets_old_messages_and_old_event_ids() {
    let ledger = Ledger::in_memory().unwrap();
    ledger.record_traffic(&[write("s", vec![ev("old", "m1", Kind::Sent, 1_000)])], 1_000).unwrap();
    ledger.record_traffic(&[write("s", vec![ev("new", "m2", Kind::Sent, 9_000)])], 9_000).unwrap();
    assert_eq!(ledger.prune_traffic_batch(5_000, 100).unwrap(), 1);
    let rows = ledger.traffic_window(&[], 0, i64::MAX).unwrap();
    assert_eq!(rows.iter().map(|r| r.message_id.as_str()).collect::<Vec<_>>(), ["m2"]);
    assert_eq!(count(&ledger, "SELECT count(*) FROM traffic_events"), 1);
    assert_eq!(ledger.prune_traffic_batch(5_000, 100).unwrap(), 0);
}

#[test]
fn a_ledger_of_an_earlier_version_gains_the_traffic_tables() {
    let dir = std::env::temp_dir().join(format!("mailcanary-ledger-traffic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    {
        let db = Connection::open(dir.join("ledger.sqlite")).unwrap();
        db.execute_batch(
            "CREATE TABLE canaries (id TEXT PRIMARY KEY, probe TEXT NOT NULL, provider TEXT NOT NULL,
             inbox TEXT NOT NULL, state TEXT NOT NULL, created_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,
             accepted_ms INTEGER, send_ms INTEGER, provider_id TEXT, failure_reason TEXT, failure_detail TEXT,
             seen_ms INTEGER, latency_ms INTEGER, placement TEXT, lost_ms INTEGER);
             INSERT INTO canaries (id, probe, provider, inbox, state, created_ms, deadline_ms)
             VALUES ('old', 'r', 'p', 'i', 'sent', 1, 2);",
        )
        .unwrap();
        let tables: i64 =
            db.query_row("SELECT count(*) FROM sqlite_master WHERE name LIKE 'traffic%'", [], |r| r.get(0)).unwrap();
        assert_eq!(tables, 0);
    }
    let ledger = Ledger::open(&dir).unwrap();
    assert_eq!(ledger.pending().unwrap().len(), 1, "the canaries are still there");
    ledger.record_traffic(&[write("s", vec![ev("e", "m", Kind::Sent, 1)])], 1).unwrap();
    drop(ledger);
    let ledger = Ledger::open(&dir).expect("opening twice adds nothing twice");
    assert_eq!(ledger.traffic_window(&[], 0, i64::MAX).unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_nonce_used_again_with_other_events_records_nothing() {
    let ledger = Ledger::in_memory().unwrap();
    let mut w = write("mg", vec![ev("e1", "m1", Kind::Delivered, 1)]);
    w.nonce = Some("token-1".into());
    let first = ledger.record_traffic(&[w.clone()], 1).unwrap();
    assert_eq!((first[0].recorded, first[0].replayed), (1, false));
    let retry = ledger.record_traffic(&[w.clone()], 2).unwrap();
    assert_eq!((retry[0].duplicates, retry[0].replayed), (1, false), "the same delivery again is a duplicate");
    w.events = vec![ev("e2", "m9", Kind::Bounced(BounceKind::Permanent), 2)];
    let tampered = ledger.record_traffic(&[w], 3).unwrap();
    assert_eq!((tampered[0].recorded, tampered[0].replayed), (0, true));
    assert_eq!(ledger.traffic_window(&[], 0, i64::MAX).unwrap().len(), 1);
}
