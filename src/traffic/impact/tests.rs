use super::*;

fn row(id: &str, first_ms: i64) -> TrafficRow {
    TrafficRow {
        provider: "ses".into(),
        message_id: id.into(),
        recipient: format!("h:{id}"),
        source: "s".into(),
        smtp_id: None,
        first_ms,
        sent_ms: Some(first_ms),
        deferred_ms: None,
        deferrals: 0,
        settled: None,
        settled_ms: None,
        bounce_kind: None,
        delay_ms: None,
        last_kind: "sent".into(),
        last_ms: first_ms,
        last_detail: None,
    }
}

fn settled(mut r: TrafficRow, how: &str, after_ms: i64) -> TrafficRow {
    r.settled = Some(how.into());
    r.settled_ms = Some(r.first_ms + after_ms);
    r.delay_ms = (how == "delivered").then_some(after_ms);
    r.last_kind = how.into();
    r
}

fn window() -> Window {
    Window { from_ms: 0, to_ms: 3_600_000, providers: vec!["ses".into()], incident: None, ongoing: false }
}

fn sample() -> Impact {
    let slow = Duration::from_secs(90);
    let now = 3_600_000;
    let mut deferred = row("deferred", 3_000);
    deferred.deferred_ms = Some(4_000);
    deferred.deferrals = 3;
    let rows = vec![
        settled(row("fast", 1_000), "delivered", 2_000),
        settled(row("late", 2_000), "delivered", 600_000),
        settled(row("later", 2_500), "delivered", 1_800_000),
        deferred,
        settled(row("bounced", 5_000), "bounced", 1_000),
        settled(row("dropped", 5_500), "dropped", 0),
        row("silent", 6_000),
        row("just sent", now - 10_000),
    ];
    build(window(), rows, slow, now)
}

#[test]
fn each_message_is_judged_once_by_what_happened_to_it() {
    let i = sample();
    assert_eq!((i.messages, i.affected_count(), i.in_flight), (8, 6, 1));
    let c = |h| i.counts[&h];
    assert_eq!((c(Harm::Late), c(Harm::Deferred), c(Harm::NoFinalEvent)), (2, 1, 1));
    assert_eq!((c(Harm::Bounced), c(Harm::Dropped), c(Harm::Rejected)), (1, 1, 0));
    assert_eq!((i.delay_p50_seconds, i.delay_max_seconds), (Some(600.0), Some(1800.0)));
    let ids: Vec<&str> = i.affected.iter().map(|a| a.row.message_id.as_str()).collect();
    assert_eq!(ids, ["late", "later", "deferred", "bounced", "dropped", "silent"], "oldest first");
}

#[test]
fn the_summary_can_be_sent_to_customers() {
    let s = render::summary(&sample());
    assert_eq!(
        s,
        "Between 00:00 and 01:00 UTC on 1 January 1970, our email delivery was disrupted. Of the 8 emails we sent in \
         that time, 2 arrived late (typically by 10 min, at most by 30 min), 2 have not been delivered and 2 could not \
         be delivered. If you were expecting an email from us in that time (a password reset, a confirmation), please \
         request it again."
    );
    assert!(!s.contains("h:") && !s.contains("ses"), "no recipient, no provider");
    let calm = build(window(), vec![settled(row("a", 0), "delivered", 1_000)], Duration::from_secs(90), 3_600_000);
    assert!(render::summary(&calm).ends_with("all 1 emails we sent were delivered without delay."));
}

#[test]
fn csv_has_a_header_and_one_quoted_row_per_message() {
    let mut i = sample();
    i.affected[0].row.last_detail = Some("250 \"ok\", queued".into());
    let text = csv(&i);
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines.len(), 1 + 6 + 1);
    assert!(lines[0].starts_with("sent_at,provider,harm,delay_seconds,recipient"));
    assert!(lines[1].starts_with("1970-01-01T00:00:02Z,ses,late,600.000,h:late,late,,0,delivered,"), "{}", lines[1]);
    assert!(lines[1].ends_with(",\"250 \"\"ok\"\", queued\""), "{}", lines[1]);
}

#[test]
fn json_and_text_carry_the_same_counts() {
    let i = sample();
    let v: serde_json::Value = serde_json::from_str(&json(&i)).unwrap();
    assert_eq!((v["messages"].as_u64(), v["affected"].as_u64()), (Some(8), Some(6)));
    assert_eq!(v["counts"]["no_final_event"], 1);
    assert_eq!(v["messages_affected"].as_array().unwrap().len(), 6);
    assert_eq!(v["messages_affected"][0]["harm"], "late");
    let t = text(&i);
    assert!(t.contains("8 real messages in the window; 6 affected, 1 still in flight"), "{t}");
    assert!(t.contains("delay p50 10 min, p95 30 min, max 30 min"), "{t}");
    assert_eq!(render::duration(42.0), "42 s");
    assert_eq!(render::duration(3_900.0), "1 h 5 min");
}

#[test]
fn what_providers_said_is_quoted_on_a_terminal_and_no_csv_cell_is_a_formula() {
    let mut hostile = settled(row("=HYPERLINK(\"http://x\")", 1_000), "bounced", 1_000);
    hostile.last_detail = Some("550 \u{1b}]0;pwned\u{7}\r\nfake line".into());
    hostile.recipient = "@evil".into();
    let impact = build(window(), vec![hostile], Duration::from_secs(90), 3_600_000);
    let t = text(&impact);
    assert!(!t.contains('\u{1b}') && !t.contains('\u{7}') && !t.contains("\r\nfake"), "{t}");
    assert!(t.contains("\\u{1b}]0;pwned"), "escaped, still readable: {t}");
    let c = csv(&impact);
    let cells = c.lines().nth(1).unwrap();
    assert!(cells.contains("'@evil") && cells.contains("\"'=HYPERLINK(\"\"http://x\"\")\""), "{cells}");
    assert!(!c.lines().skip(1).any(|l| l.split(',').any(|f| f.starts_with(['=', '+', '-', '@']))), "{c}");
    let j = json(&impact);
    assert!(!j.contains('\u{1b}'), "{j}");
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["messages_affected"][0]["message_id"], "=HYPERLINK(\"http://x\")", "JSON keeps the value exactly");
}

#[test]
fn the_ledgers_sql_counts_are_impacts_counts() {
    use crate::ledger::{Ledger, TrafficWrite};
    use crate::traffic_event::{BounceKind, Event, Kind};
    let ledger = Ledger::in_memory().unwrap();
    let ev = |id: &str, n: usize, kind: Kind, at_ms: i64, sent_ms: i64| Event {
        event_id: format!("{id}-{n}"),
        message_id: id.into(),
        recipient: Some(format!("{id}@example.net")),
        kind,
        at_ms,
        sent_ms: Some(sent_ms),
        smtp_id: None,
        detail: None,
    };
    let mut events = Vec::new();
    for i in 0..200i64 {
        let id = format!("m{i}");
        let t = i * 10_000;
        match i % 9 {
            0 => events.push(ev(&id, 0, Kind::Delivered, t + 2_000, t)),
            1 => events.push(ev(&id, 0, Kind::Delivered, t + 600_000, t)),
            2 => events.push(ev(&id, 0, Kind::Deferred, t + 1_000, t)),
            3 => events.extend([ev(&id, 0, Kind::Deferred, t + 1_000, t), ev(&id, 1, Kind::Delivered, t + 200_000, t)]),
            4 => events.push(ev(&id, 0, Kind::Bounced(BounceKind::Permanent), t + 1_000, t)),
            5 => events.push(ev(&id, 0, Kind::Rejected, t, t)),
            6 => events.push(ev(&id, 0, Kind::Dropped, t, t)),
            7 => events.push(ev(&id, 0, Kind::Sent, t, t)),
            _ => events.extend([ev(&id, 0, Kind::Sent, t, t), ev(&id, 1, Kind::Complained, t + 5_000, t)]),
        }
    }
    let write = TrafficWrite { source: "s".into(), provider: "ses".into(), events, cursor: None, nonce: None };
    ledger.record_traffic(&[write], 0).unwrap();
    let providers = vec!["ses".to_string()];
    for (from, to, slow_s, now) in [(0, 2_000_000, 90, 2_000_000), (300_000, 900_000, 10, 1_000_000), (0, 1, 90, 5)] {
        let rows = ledger.traffic_window(&providers, from, to).unwrap();
        let w = Window { from_ms: from, to_ms: to, providers: providers.clone(), incident: None, ongoing: false };
        let impact = build(w, rows, Duration::from_secs(slow_s), now);
        let sql = ledger.traffic_counts(&providers, from, to, slow_s as i64 * 1000, now).unwrap();
        let c = |h: Harm| impact.counts[&h] as u64;
        assert_eq!(
            (sql.messages, sql.late, sql.deferred, sql.no_final_event),
            (impact.messages as u64, c(Harm::Late), c(Harm::Deferred), c(Harm::NoFinalEvent)),
            "window {from}..{to}"
        );
        assert_eq!((sql.bounced, sql.rejected, sql.dropped), (c(Harm::Bounced), c(Harm::Rejected), c(Harm::Dropped)));
        assert_eq!(sql.affected(), impact.affected_count() as u64);
    }
}
