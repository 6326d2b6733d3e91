//! The view: public mode and escaping, over every rendering of a snapshot.

use super::Settings;
use super::history::{DAY_MS, Data};
use super::view::*;
use crate::config::StatusPageConfig;
use crate::health::RouteHealth;
use crate::health::{ProviderHealth, State as HealthState};
use crate::incident::{Trackers, track};
use crate::ledger::{Row, State};
use crate::matcher::RouteStatus;
use std::time::Duration;

const HOSTILE: &str = "<script>alert(1)</script>";

fn settings(public: bool) -> Settings {
    Settings {
        page: StatusPageConfig { title: format!("Acme {HOSTILE}"), public, ..Default::default() },
        days: 30,
        settle: Duration::from_secs(600),
        merge_gap: Duration::from_secs(120),
        min_canaries: 2,
    }
}

fn snapshot(public: bool) -> Snapshot {
    let now = 100 * DAY_MS;
    let row = |t: i64, state: State| Row {
        id: format!("c{t}"),
        probe: "relay-to-secret-inbox".into(),
        provider: "relay".into(),
        inbox: "secret-inbox".into(),
        state,
        created_ms: t,
        accepted_ms: Some(t),
        deadline_ms: t,
        provider_id: Some("queue-id-7".into()),
        failure_reason: None,
        seen_ms: None,
        latency_ms: None,
        placement: None,
        bounce_status: Some("5.1.1".into()),
        bounce_detail: Some(format!("user@secret.example {HOSTILE}")),
        hops: Vec::new(),
        observed: Default::default(),
        expectation: None,
    };
    let mut trackers = Trackers::new();
    track(&mut trackers, &[row(now - 60_000, State::Lost), row(now - 30_000, State::Bounced)], Duration::from_secs(90));
    let data = Data {
        trackers,
        days: [(("relay".to_string(), 99), (10, 9))].into_iter().collect(),
        transitions: Vec::new(),
        first_day: 71,
    };
    let health = ProviderHealth {
        provider: "relay".into(),
        state: HealthState::Down,
        since_ms: now - 60_000,
        reason: format!("every route fails: 2 canaries in a row to secret-inbox lost {HOSTILE}"),
        p95_latency_seconds: None,
        routes: vec![RouteHealth {
            probe: "relay-to-secret-inbox".into(),
            inbox: "secret-inbox".into(),
            inbox_suspect: false,
            failing: true,
            bad_in_a_row: 2,
            overdue_seconds: None,
        }],
        nexthop: Some("[smtp.secret.example]:587".into()),
        newest_failing_routes: 1,
        application: false,
    };
    let route = RouteStatus {
        probe: "relay-to-secret-inbox".into(),
        provider: "relay".into(),
        inbox: "secret-inbox".into(),
        ..Default::default()
    };
    build("host-7", &settings(public), data, vec![health], vec![route], now)
}

/// Everything a snapshot is served as.
fn served(snap: &Snapshot) -> Vec<String> {
    vec![
        snap.html(),
        serde_json::to_string(snap).unwrap(),
        super::feed::render(snap),
        super::badge::for_name(snap, "relay").unwrap(),
    ]
}

#[test]
fn hostile_text_is_escaped_in_every_rendering() {
    for public in [false, true] {
        let snap = snapshot(public);
        for (i, text) in served(&snap).iter().enumerate().filter(|(i, _)| *i != 1) {
            assert!(!text.contains("<script"), "rendering {i} (public {public}) has markup from data:\n{text}");
        }
    }
}

#[test]
fn public_mode_leaves_out_inboxes_reasons_hosts_diagnostics_and_the_instance() {
    let snap = snapshot(true);
    assert_eq!(snap.incidents.len(), 1);
    assert!(snap.routes.is_empty());
    for text in served(&snap) {
        for hidden in ["secret", "queue-id-7", "5.1.1", "host-7", "every route fails"] {
            assert!(!text.contains(hidden), "{hidden} in\n{text}");
        }
    }
    let internal = snapshot(false);
    let html = internal.html();
    assert!(html.contains("secret-inbox") && html.contains("every route fails"), "internal mode shows them: {html}");
    assert_eq!(internal.providers[0].days.len(), 30);
    assert_eq!(internal.providers[0].days[28].share, Some(0.9));
}
