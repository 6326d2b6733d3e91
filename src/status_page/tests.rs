//! The view: public mode and escaping, over every rendering of a snapshot.

use super::history::{DAY_MS, Data};
use super::view::*;
use super::{Audience, Settings};
use crate::config::StatusPageConfig;
use crate::health::RouteHealth;
use crate::health::{ProviderHealth, State as HealthState};
use crate::incident::{Gap, Judge, Trackers, track};
use crate::ledger::{Row, State};
use crate::matcher::RouteStatus;
use crate::outcome::OutcomeKind;
use std::time::Duration;

const HOSTILE: &str = "<script>alert(1)</script>";
const KEY: [u8; 32] = [7; 32];

fn settings(page: StatusPageConfig) -> Settings {
    Settings {
        page: StatusPageConfig { title: format!("Acme {HOSTILE}"), ..page },
        days: 30,
        settle: Duration::from_secs(600),
        merge_gap: Duration::from_secs(120),
        min_canaries: 2,
        intervals: [("relay-to-secret-inbox".to_string(), Duration::from_secs(10))].into(),
        inboxes: vec!["secret-inbox".into()],
        routes: vec![("relay-to-secret-inbox".into(), "secret-inbox".into())],
    }
}

/// The public page, as served on `status_page.listen`.
fn snapshot(public: bool) -> Snapshot {
    let page = StatusPageConfig { public, ..Default::default() };
    served_to(&settings(page), Audience::OwnListener, &KEY)
}

fn served_to(settings: &Settings, audience: Audience, key: &[u8; 32]) -> Snapshot {
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
    let judge = Judge { slow: Duration::from_secs(90), now_ms: now };
    track(
        &mut trackers,
        &[
            row(now - 60_000, State::Settled(OutcomeKind::Lost)),
            row(now - 30_000, State::Settled(OutcomeKind::Bounced)),
        ],
        judge,
    );
    let transition = crate::health::Transition {
        provider: "relay".into(),
        from: HealthState::Healthy,
        to: HealthState::Down,
        at_ms: now - 50_000,
        reason: "every route fails: 2 canaries in a row to secret-inbox lost".into(),
    };
    let data = Data {
        trackers,
        days: [(("relay".to_string(), 99), (10, 9))].into_iter().collect(),
        transitions: vec![transition],
        gaps: vec![
            Gap { from_ms: now - 3_000_000, to_ms: Some(now - 2_900_000), inbox: None },
            Gap { from_ms: now - 2_000_000, to_ms: Some(now - 1_900_000), inbox: Some("secret-inbox".into()) },
        ],
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
            overdue_bound_seconds: 90.0,
            bound: crate::health::BoundSource::Default,
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
    // The same name through the provider it went through before a reload,
    // with a canary of its own still in flight.
    let retired = RouteStatus { provider: "old-relay".into(), retired: true, in_flight: 1, ..route.clone() };
    // Real mail through relay during each incident.
    let counts =
        crate::ledger::TrafficCounts { messages: 1_200, late: 30, deferred: 4, bounced: 2, ..Default::default() };
    let traffic = incidents(&data, settings).iter().map(|x| (x.from_ms, counts)).collect();
    let inputs = Inputs {
        instance: "host-7",
        feed_key: key,
        settings,
        visibility: settings.visibility(audience),
        data: &data,
        traffic: &traffic,
        providers: &[std::sync::Arc::new(health)],
        routes: &[route, retired],
        now_ms: now,
    };
    build(&inputs)
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
    let rows: Vec<&str> = html.lines().filter(|l| l.contains("data-route=\"relay-to-secret-inbox\"")).collect();
    assert_eq!(rows.len(), 2, "the current route and the one a reload retired: {html}");
    assert!(!rows[0].contains("retired") && rows[0].contains("<td>relay</td>"), "{}", rows[0]);
    assert!(rows[1].contains("data-retired=\"true\"") && rows[1].contains("(retired)</small>"), "{}", rows[1]);
    assert!(rows[1].contains("<td>old-relay</td>") && rows[1].contains("in flight"), "{}", rows[1]);
    assert!(html.contains("secret-inbox") && html.contains("every route fails"), "internal mode shows them: {html}");
    assert_eq!(internal.providers[0].days.len(), 30);
    assert_eq!(internal.providers[0].days[28].share, Some(0.9));
}

#[test]
fn hide_inboxes_hides_inbox_names_on_the_internal_page_too_even_inside_reasons() {
    let page = StatusPageConfig { hide_inboxes: Some(true), ..Default::default() };
    let snap = served_to(&settings(page), Audience::Internal, &KEY);
    assert!(snap.visibility.reasons && !snap.visibility.inboxes, "{:?}", snap.visibility);
    for text in served(&snap) {
        assert!(!text.contains("secret-inbox"), "an inbox name in\n{text}");
    }
    let html = snap.html();
    assert!(html.contains("2 canaries in a row to mailbox 1 lost"), "the reason, with a neutral word: {html}");
    assert!(html.contains("mailbox 1 was not watched"), "{html}");
    assert!(super::badge::for_name(&snap, "relay-to-secret-inbox").is_none(), "no route badge");
}

#[test]
fn incidents_carry_their_real_mail_counted_and_only_the_internal_page_says_how_to_list_it() {
    for (public, audience) in [(true, Audience::OwnListener), (false, Audience::Internal)] {
        let page = StatusPageConfig { public, ..Default::default() };
        let snap = served_to(&settings(page), audience, &KEY);
        let t = snap.incidents[0].real_traffic.as_ref().expect("the incident's real mail");
        assert_eq!((t.messages, t.affected, t.counts["late"], t.counts["bounced"]), (1_200, 36, 30, 2));
        let all = served(&snap).join("\n");
        assert!(
            all.contains(
                "1200 real messages sent in it: 30 delivered late, 4 not delivered yet, 2 could not be delivered"
            ),
            "{all}"
        );
        assert_eq!(all.contains("mailcanary impact --incident"), !public, "public: {public}");
        assert_eq!(
            t.command.as_deref(),
            (!public).then(|| format!("mailcanary impact --incident {}", snap.incidents[0].id)).as_deref()
        );
    }
}

#[test]
fn the_main_listener_serves_the_internal_page_whatever_public_says() {
    let page = StatusPageConfig { public: true, listen: Some("127.0.0.1:1".into()), ..Default::default() };
    let settings = settings(page);
    let internal = served_to(&settings, Audience::Internal, &KEY);
    assert!(internal.visibility.reasons && internal.visibility.inboxes && !internal.visibility.public);
    assert!(internal.html().contains("secret-inbox") && internal.html().contains("every route fails"));
    let public = served_to(&settings, Audience::OwnListener, &KEY);
    assert!(!public.visibility.reasons && !public.visibility.inboxes && public.visibility.public);
}

#[test]
fn feed_ids_are_keyed_stable_under_one_key_and_different_under_another() {
    let s = settings(StatusPageConfig::default());
    let ids = |key: &[u8; 32]| {
        let snap = served_to(&s, Audience::Internal, key);
        let mut ids = vec![snap.feed_id.clone()];
        ids.extend(snap.incidents.iter().map(|i| i.id.clone()));
        ids
    };
    let (a, again, b) = (ids(&KEY), ids(&KEY), ids(&[8; 32]));
    assert!(a.len() >= 2, "{a:?}");
    assert_eq!(a, again);
    for (x, y) in a.iter().zip(&b) {
        assert_ne!(x, y, "an id the key does not change");
    }
}

#[test]
fn the_slow_threshold_is_stated_in_every_rendering() {
    let page = StatusPageConfig { slow: Duration::from_secs(100), ..Default::default() };
    let snap = served_to(&settings(page), Audience::Internal, &KEY);
    let rule = "A delivery slower than 100 s counts as delayed";
    assert!(snap.html().contains(rule), "{}", snap.html());
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["delayed_after_seconds"], 100.0);
    assert!(json["delayed_rule"].as_str().unwrap().starts_with(rule), "{json}");
    assert!(super::feed::render(&snap).contains(rule), "{}", super::feed::render(&snap));
}

/// The page's own reading of a ledger (settled part and fresh part, with
/// their seam inside the outage): relay-b held every canary from 100 s to
/// 236 s of a route sending every 10 s, then mailcanary stopped for 51 s.
#[tokio::test]
async fn the_page_reads_a_black_hole_as_one_incident_and_a_stop_as_a_gap() {
    use super::history::History;
    let now = 100 * DAY_MS + 3_600_000;
    let base = now - 20 * 60_000;
    let ledger = crate::ledger::Ledger::in_memory().unwrap();
    let mut t = 0;
    while t < 1190 {
        if (291..341).contains(&t) {
            t = 341;
        }
        let latency = if (100..236).contains(&t) { 236 - t } else { 1 };
        let at = base + t * 1000;
        ledger
            .insert(&Row {
                id: format!("c{t}"),
                probe: "b-to-x".into(),
                provider: "relay-b".into(),
                inbox: "x".into(),
                state: State::Settled(OutcomeKind::Delivered),
                created_ms: at,
                accepted_ms: Some(at),
                deadline_ms: at + 600_000,
                provider_id: None,
                failure_reason: None,
                seen_ms: Some(at + latency * 1000),
                latency_ms: Some(latency * 1000),
                placement: Some("inbox".into()),
                bounce_status: None,
                bounce_detail: None,
                hops: Vec::new(),
                observed: Default::default(),
                expectation: None,
            })
            .unwrap();
        t += 10;
    }
    let ledger = crate::ledger::LedgerThread::spawn(ledger);
    let mut s = settings(StatusPageConfig::default());
    s.intervals = [("b-to-x".to_string(), Duration::from_secs(10))].into();
    s.min_canaries = 1;
    // Settled up to 150 s into the hold: the seam falls inside the outage.
    s.settle = Duration::from_millis((now - base - 150_000) as u64);
    let data = History::new(&s, now).read(&ledger, &s, now).await.unwrap();
    let inputs = Inputs {
        instance: "host-7",
        feed_key: &KEY,
        settings: &s,
        visibility: s.visibility(Audience::Internal),
        data: &data,
        traffic: &Default::default(),
        providers: &[],
        routes: &[],
        now_ms: now,
    };
    let snap = build(&inputs);
    assert_eq!(snap.incidents.len(), 1, "{:#?}", snap.incidents);
    let i = &snap.incidents[0];
    assert_eq!((i.from_ms, i.to_ms), (base + 100_000, Some(base + 236_000)), "{i:#?}");
    assert_eq!(i.canaries.get("delayed"), Some(&5), "held over 90 s: {:?}", i.canaries);
    assert_eq!(snap.gaps.len(), 1, "{:#?}", snap.gaps);
    assert_eq!(
        (snap.gaps[0].from_ms, snap.gaps[0].to_ms, snap.gaps[0].kind),
        (base + 290_000, Some(base + 341_000), "not_running")
    );
    assert!(i.headline().ends_with("affected for 2 min 16 s"), "{}", i.headline());
    let feed = super::feed::render(&snap);
    assert_eq!(feed.matches("<entry>").count(), 1, "{feed}");
    assert!(snap.html().contains("data-gap=\"not_running\""), "{}", snap.html());
}
