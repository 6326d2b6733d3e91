//! `mailcanary impact` over a ledger of 100,000 real messages: its counts
//! are the ledger's own (a SQL count over the table, written here apart
//! from the code under test), its three forms agree, and it answers in
//! under two seconds (with an optimised build, as shipped).

use mailcanary::ledger::{Ledger, TrafficWrite};
use mailcanary::traffic_event::{BounceKind, Event, Kind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MESSAGES: usize = 100_000;
const HOUR: i64 = 3_600_000;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mailcanary-impact-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn event(id: String, message: &str, kind: Kind, at_ms: i64, sent_ms: i64) -> Event {
    Event {
        event_id: id,
        message_id: message.into(),
        recipient: Some(format!("h:{message}")),
        kind,
        at_ms,
        sent_ms: Some(sent_ms),
        smtp_id: None,
        detail: Some("250, \"ok\"".into()),
    }
}

/// An outage hour of `MESSAGES` messages through `ses` in a pseudo-random
/// mix of fates, and some outside the window or through another provider.
fn fill(ledger: &Ledger, start: i64) {
    let mut x: u64 = 11;
    let mut writes = Vec::new();
    for n in 0..MESSAGES + 2_000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let (provider, sent) = match n {
            _ if n < MESSAGES => ("ses", start + (n as i64 * HOUR) / MESSAGES as i64),
            _ if n < MESSAGES + 1_000 => ("ses", start - 2 * HOUR),
            _ => ("sendgrid", start + 1_000),
        };
        let m = format!("m{n}");
        let mut events = vec![event(format!("{m}-s"), &m, Kind::Sent, sent, sent)];
        let later = |ms: i64| sent + ms;
        match (x >> 33) % 10 {
            0..=4 => events.push(event(format!("{m}-d"), &m, Kind::Delivered, later(2_000), sent)),
            5 => events.push(event(
                format!("{m}-d"),
                &m,
                Kind::Delivered,
                later(((x >> 8) % 3_000_000) as i64 + 91_000),
                sent,
            )),
            6 => events.push(event(format!("{m}-b"), &m, Kind::Bounced(BounceKind::Permanent), later(5_000), sent)),
            7 => events.push(event(format!("{m}-f"), &m, Kind::Deferred, later(60_000), sent)),
            8 => events.push(event(
                format!("{m}-r"),
                &m,
                if x & 1 == 0 { Kind::Rejected } else { Kind::Dropped },
                later(1),
                sent,
            )),
            _ => {} // no final event
        }
        let w = writes.iter_mut().find(|w: &&mut TrafficWrite| w.provider == provider);
        match w {
            Some(w) => w.events.extend(events),
            None => writes.push(TrafficWrite {
                source: provider.into(),
                provider: provider.into(),
                events,
                cursor: None,
                nonce: None,
            }),
        }
    }
    ledger.record_traffic(&writes, start).unwrap();
}

/// The counts, asked of SQLite directly.
fn sql_counts(state_dir: &Path, from: i64, to: i64, now: i64) -> Vec<(&'static str, i64)> {
    let db = rusqlite::Connection::open(state_dir.join("ledger.sqlite")).unwrap();
    let slow = 90_000;
    let count = |cond: String| -> i64 {
        let sql = format!(
            "SELECT count(*) FROM traffic_messages WHERE provider = 'ses' AND first_ms >= {from} AND first_ms < {to} AND {cond}"
        );
        db.query_row(&sql, [], |r| r.get(0)).unwrap()
    };
    vec![
        ("messages", count("1".into())),
        ("late", count(format!("settled = 'delivered' AND coalesce(delay_ms, settled_ms - first_ms) > {slow}"))),
        ("bounced", count("settled = 'bounced'".into())),
        ("rejected", count("settled = 'rejected'".into())),
        ("dropped", count("settled = 'dropped'".into())),
        ("deferred", count("settled IS NULL AND deferred_ms IS NOT NULL".into())),
        ("no_final_event", count(format!("settled IS NULL AND deferred_ms IS NULL AND {now} - first_ms > {slow}"))),
    ]
}

fn impact(config: &Path, args: &[&str]) -> (String, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .arg("impact")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), took)
}

#[test]
fn impact_over_100000_messages_counts_what_the_ledger_holds_quickly() {
    let dir = dir();
    let now = chrono::Utc::now().timestamp_millis();
    let start = now - 3 * HOUR;
    fill(&Ledger::open(&dir).unwrap(), start);
    let config = dir.join("probes.yaml");
    std::fs::write(&config, format!("global:\n  state_dir: {}\n", dir.display())).unwrap();
    let (from, to) = (start.to_string(), (start + HOUR).to_string());
    let window = ["--provider", "ses", "--since", &from, "--until", &to];

    let (json, took) = impact(&config, &[&window[..], &["--format", "json"]].concat());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let expected = sql_counts(&dir, start, start + HOUR, now);
    assert_eq!(expected[0].1, MESSAGES as i64);
    let mut got = vec![("messages", v["messages"].as_i64().unwrap())];
    got.extend(expected[1..].iter().map(|(k, _)| (*k, v["counts"][*k].as_i64().unwrap())));
    assert_eq!(got, expected, "impact's counts are the ledger's");
    let affected: i64 = expected[1..].iter().map(|(_, n)| n).sum();
    assert_eq!(v["messages_affected"].as_array().unwrap().len() as i64, affected);
    assert!(affected > 40_000, "the mix is an outage's: {affected}");
    if !cfg!(debug_assertions) {
        assert!(took < Duration::from_secs(2), "impact took {took:?}");
    }
    eprintln!("impact --format json over {MESSAGES} messages ({affected} affected): {took:?}");

    let (csv, took) = impact(&config, &[&window[..], &["--format", "csv"]].concat());
    assert_eq!(csv.split("\r\n").filter(|l| !l.is_empty()).count() as i64, affected + 1, "a header and a row each");
    eprintln!("impact --format csv: {took:?}");
    let (text, _) = impact(&config, &window);
    assert!(
        text.contains(&format!("100,000 real messages in the window; {} affected", fmt(affected))),
        "{}",
        &text[..400]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fmt(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
