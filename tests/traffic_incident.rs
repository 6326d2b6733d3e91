//! `mailcanary impact --incident`: an incident the canaries made (a route's
//! canaries lost for three minutes), named by the id the status page gives
//! it or by its start, and the real messages sent in it that it hurt.

use mailcanary::ledger::{Ledger, TrafficWrite};
use mailcanary::traffic_event::{BounceKind, Event, Kind};
use std::path::Path;
use std::process::Command;

const MIN: i64 = 60_000;

fn config(state: &Path) -> String {
    format!(
        "global:\n  state_dir: \"{}\"\n  instance: eu-1\n  defaults: {{ interval: 60s, timeout: 2m }}\n\
         providers:\n  - {{ name: relay, type: smtp, host: 127.0.0.1, port: 25, tls: none, from: canary@example.com }}\n\
         inboxes:\n  - {{ name: box, address: box@example.com, imap: {{ host: 127.0.0.1, username: box, password: pw }} }}\n\
         probes:\n  - matrix: {{ providers: [relay], inboxes: [box] }}\n",
        state.display()
    )
}

fn event(id: &str, kind: Kind, at_ms: i64, sent_ms: i64) -> Event {
    Event {
        event_id: format!("{id}-{}", kind.as_str()),
        message_id: id.into(),
        recipient: Some(format!("{id}@example.net")),
        kind,
        at_ms,
        sent_ms: Some(sent_ms),
        smtp_id: None,
        detail: None,
    }
}

/// Canaries of relay-to-box, one a minute: delivered, three lost from t0,
/// then delivered again; and real mail through relay around them.
fn fill(state: &Path, t0: i64) {
    let ledger = Ledger::open(state).unwrap();
    let db = rusqlite::Connection::open(state.join("ledger.sqlite")).unwrap();
    for (n, outcome) in ["delivered", "lost", "lost", "lost", "delivered", "delivered"].iter().enumerate() {
        let at = t0 + (n as i64 - 1) * MIN;
        db.execute(
            "INSERT INTO canaries (id, probe, provider, inbox, state, created_ms, deadline_ms, accepted_ms, latency_ms, placement)
             VALUES (?1, 'relay-to-box', 'relay', 'box', ?2, ?3, ?4, ?3, ?5, ?6)",
            rusqlite::params![
                format!("c{n}"),
                outcome,
                at,
                at + 2 * MIN,
                (*outcome == "delivered").then_some(1_000),
                (*outcome == "delivered").then_some("inbox")
            ],
        )
        .unwrap();
    }
    let events = vec![
        event("late", Kind::Delivered, t0 + 20 * MIN, t0 + MIN / 2),
        event("fast", Kind::Delivered, t0 + MIN + 2_000, t0 + MIN),
        event("bounced", Kind::Bounced(BounceKind::Permanent), t0 + 2 * MIN, t0 + 90_000),
        event("after", Kind::Delivered, t0 + 30 * MIN, t0 + 10 * MIN),
        event("before", Kind::Delivered, t0 + 20 * MIN, t0 - 5 * MIN),
    ];
    let write =
        TrafficWrite { source: "relay-log".into(), provider: "relay".into(), events, cursor: None, nonce: None };
    ledger.record_traffic(&[write], t0).unwrap();
}

fn impact(dir: &Path, incident: &str) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["impact", "--format", "json", "--incident", incident, "--config"])
        .arg(dir.join("probes.yaml"))
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_by_the_status_pages_id_or_its_start_lists_the_mail_it_hurt() {
    let dir = std::env::temp_dir().join(format!("mailcanary-impact-incident-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(dir.join("probes.yaml"), config(&state)).unwrap();
    let t0 = chrono::Utc::now().timestamp_millis() / 1000 * 1000 - 3 * 3_600_000;
    fill(&state, t0);

    // The id the status page shows for it.
    let config = mailcanary::config::load(&dir.join("probes.yaml")).unwrap();
    let rt = mailcanary::runtime::Runtime::with_ledger(&config, Ledger::open(&state).unwrap()).unwrap();
    let page = mailcanary::status_page::StatusPage::new("eu-1".into(), &rt.key, (rt.matcher, rt.health), &config);
    let snapshot = page.snapshot().await.unwrap();
    assert_eq!(snapshot.incidents.len(), 1, "{:?}", snapshot.incidents.iter().map(|i| &i.id).collect::<Vec<_>>());
    let id = snapshot.incidents[0].id.clone();
    let started = snapshot.incidents[0].started.clone();

    for name in [id.as_str(), started.as_str()] {
        let (code, json, err) = impact(&dir, name);
        assert_eq!(code, Some(0), "{err}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["window"]["incident"], id.as_str());
        // From the first lost canary's sending to when the next one, delivered in 1 s, was seen.
        let window = (v["window"]["from_ms"].as_i64(), v["window"]["to_ms"].as_i64());
        assert_eq!(window, (Some(t0), Some(t0 + 3 * MIN + 1_000)));
        assert_eq!(v["window"]["providers"], serde_json::json!(["relay"]));
        assert_eq!(v["messages"], 3, "late, fast and bounced were sent in it; before and after were not");
        assert_eq!((v["counts"]["late"].as_u64(), v["counts"]["bounced"].as_u64()), (Some(1), Some(1)));
        let late = &v["messages_affected"][0];
        assert_eq!((late["message_id"].as_str(), late["delay_seconds"].as_f64()), (Some("late"), Some(1170.0)));
    }

    let (code, _, err) = impact(&dir, "urn:uuid:00000000-0000-0000-0000-000000000000");
    assert_eq!(code, Some(2));
    assert!(err.contains(&id) && err.contains("relay"), "the known incidents are named: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
