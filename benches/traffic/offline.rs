//! The benchmark's two parts that need no listener: the replayed SES
//! outage (provider health over a simulated clock, fed exactly as the
//! service feeds it) and `impact` over an incident of 100,000 messages
//! (the release binary, its counts checked against SQL over the ledger).

use mailcanary::health::traffic::TrafficThresholds;
use mailcanary::health::{Board, Evidence, Judged, State, Thresholds};
use mailcanary::ledger::{Ledger, TrafficWrite};
use mailcanary::traffic_event::{Account, BounceKind, Event, Kind, Outcome};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

fn event(id: String, n: u32, kind: Kind, at_ms: i64, sent_ms: i64) -> Event {
    Event {
        event_id: format!("{id}/{n}"),
        message_id: id,
        recipient: Some("h:0".into()),
        kind,
        at_ms,
        sent_ms: Some(sent_ms),
        smtp_id: None,
        detail: None,
    }
}

/// SES's events for `per_second` messages a second from `start_s` for
/// `seconds`, a share `deferred` of them delayed 5 min: what each event
/// changed (outcome, its time), by the second it arrives.
fn ses_events(start_s: i64, seconds: i64, per_second: i64, deferred: f64) -> BTreeMap<i64, Vec<(Outcome, i64)>> {
    let mut out: BTreeMap<i64, Vec<(Outcome, i64)>> = BTreeMap::new();
    let mut n = 0u64;
    for s in start_s..start_s + seconds {
        for i in 0..per_second {
            n += 1;
            let id = format!("m{s}-{i}");
            let delayed = ((n % 100) as f64) < deferred * 100.0;
            let mut events = vec![event(id.clone(), 0, Kind::Sent, s * 1000, s * 1000)];
            if delayed {
                events.push(event(id.clone(), 1, Kind::Deferred, (s + 1) * 1000, s * 1000));
                events.push(event(id, 2, Kind::Delivered, (s + 300) * 1000, s * 1000));
            } else {
                events.push(event(id, 1, Kind::Delivered, (s + 2) * 1000, s * 1000));
            }
            let (mut account, _) = Account::new(&events[0]);
            for e in &events[1..] {
                let fx = account.apply(e);
                let at = fx.at_ms.unwrap_or(e.at_ms);
                out.entry(e.at_ms / 1000).or_default().extend(fx.outcomes.iter().map(|o| (*o, at)));
            }
        }
    }
    out
}

/// A provider its canaries call healthy, fed `events` second by second:
/// the seconds at which its state changed, and to what.
fn changes(events: &BTreeMap<i64, Vec<(Outcome, i64)>>, until_s: i64) -> Vec<(i64, State)> {
    let mut b = Board::default();
    let judged = Judged { name: "ses".into(), thresholds: Thresholds::default(), nexthop: None, application: false };
    b.configure(&[judged], &[("ses-to-box".into(), "ses".into(), "box".into())], 0);
    b.observe(&HashMap::new(), &["box".to_string()]);
    b.traffic.configure(TrafficThresholds::default());
    let start = Instant::now();
    for n in 0..3 {
        b.record("ses-to-box", start + Duration::from_secs(n), Evidence::Good, Some(1.0));
    }
    b.decide(0);
    let mut out = Vec::new();
    for s in 1..until_s {
        if let Some(e) = events.get(&s) {
            b.traffic.observe("ses", e.iter().copied(), s * 1000);
        }
        out.extend(b.decide(s * 1000).into_iter().map(|t| (s, t.to)));
    }
    out
}

/// The replayed outage: 10,000 messages' SES events, deferrals rising from
/// 1 % to 40 % at 600 s; and a healthy hour at 1 %.
pub fn replay() {
    let mut outage = ses_events(0, 600, 8, 0.01);
    for (s, e) in ses_events(600, 650, 8, 0.40) {
        outage.entry(s).or_default().extend(e);
    }
    let took = Instant::now();
    let got = changes(&outage, 1_300);
    let left = got.iter().find(|(_, to)| *to != State::Healthy).map(|(s, _)| s - 600);
    let healthy = changes(&ses_events(0, 3_600, 8, 0.01), 3_900);
    println!(
        "| replayed outage | 10,400 messages, deferrals 1 % → 40 % at 600 s | left healthy {} s after the spike began ({:?}) | {:.2} s to replay |",
        left.map_or("never".into(), |s| s.to_string()),
        got.first().map(|c| c.1),
        took.elapsed().as_secs_f64()
    );
    println!("| replayed healthy hour | 28,800 messages, 1 % deferred | {} state changes | |", healthy.len());
}

/// `impact --incident` over an incident with `messages` real messages.
pub fn impact(dir: &Path, messages: usize) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        dir.join("probes.yaml"),
        format!(
            "global:\n  state_dir: \"{}\"\n  instance: bench\n  defaults: {{ interval: 60s, timeout: 2m }}\n\
             providers:\n  - {{ name: relay, type: smtp, host: 127.0.0.1, port: 25, tls: none, from: c@example.com }}\n\
             inboxes:\n  - {{ name: box, address: box@example.com, imap: {{ host: 127.0.0.1, username: box, password: pw }} }}\n\
             probes:\n  - matrix: {{ providers: [relay], inboxes: [box] }}\n",
            state.display()
        ),
    )
    .unwrap();
    const MIN: i64 = 60_000;
    let minutes = 100;
    let t0 = chrono::Utc::now().timestamp_millis() / 1000 * 1000 - 6 * 3_600_000;
    let ledger = Ledger::open(&state).unwrap();
    let db = rusqlite::Connection::open(state.join("ledger.sqlite")).unwrap();
    // The canaries: delivered, lost for `minutes`, delivered again.
    for n in 0..minutes + 3 {
        let at = t0 + (n - 1) * MIN;
        let outcome = if (1..=minutes).contains(&n) { "lost" } else { "delivered" };
        db.execute(
            "INSERT INTO canaries (id, probe, provider, inbox, state, created_ms, deadline_ms, accepted_ms, latency_ms, placement)
             VALUES (?1, 'relay-to-box', 'relay', 'box', ?2, ?3, ?4, ?3, ?5, ?6)",
            rusqlite::params![format!("c{n}"), outcome, at, at + 2 * MIN,
                (outcome == "delivered").then_some(1_000), (outcome == "delivered").then_some("inbox")],
        )
        .unwrap();
    }
    // The real mail: spread over the incident, some hurt each way.
    let span = minutes * MIN;
    let mut events = Vec::new();
    for i in 0..messages as i64 {
        let sent = t0 + i * span / messages as i64;
        let id = format!("m{i}");
        events.push(match i % 20 {
            0..=11 => event(id, 0, Kind::Delivered, sent + 3_000, sent),
            12..=15 => event(id, 0, Kind::Delivered, sent + 1_200_000, sent),
            16 => event(id, 0, Kind::Deferred, sent + 60_000, sent),
            17 => event(id, 0, Kind::Bounced(BounceKind::Permanent), sent + 5_000, sent),
            18 => event(id, 0, Kind::Sent, sent, sent),
            _ => event(id, 0, Kind::Rejected, sent, sent),
        });
        if events.len() == 5_000 {
            let write = TrafficWrite {
                source: "relay-log".into(),
                provider: "relay".into(),
                events: std::mem::take(&mut events),
                cursor: None,
                nonce: None,
            };
            ledger.record_traffic(&[write], t0).unwrap();
        }
    }
    let write =
        TrafficWrite { source: "relay-log".into(), provider: "relay".into(), events, cursor: None, nonce: None };
    ledger.record_traffic(&[write], t0).unwrap();
    drop(ledger);

    let start = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["impact", "--incident", &t0.to_string(), "--format", "json", "--config"])
        .arg(dir.join("probes.yaml"))
        .output()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (from, to) = (v["window"]["from_ms"].as_i64().unwrap(), v["window"]["to_ms"].as_i64().unwrap());
    let now = chrono::Utc::now().timestamp_millis();
    let sql = Ledger::open(&state).unwrap().traffic_counts(&["relay".into()], from, to, 90_000, now).unwrap();
    let json = |k: &str| v["counts"][k].as_u64().unwrap();
    let ours = (
        v["messages"].as_u64().unwrap(),
        json("late"),
        json("deferred"),
        json("no_final_event"),
        json("bounced"),
        json("rejected"),
    );
    let counted = (sql.messages, sql.late, sql.deferred, sql.no_final_event, sql.bounced, sql.rejected);
    assert_eq!(ours, counted, "impact's counts are the SQL counts over the ledger");
    let plain: i64 = db
        .query_row(
            "SELECT count(*) FROM traffic_messages WHERE provider = 'relay' AND first_ms >= ?1 AND first_ms < ?2",
            [from, to],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(plain as u64, ours.0);
    println!(
        "| impact --incident | {} messages in the incident, {} affected | {secs:.2} s | counts = SQL counts: yes |",
        ours.0, v["affected"]
    );
}
