//! Detection: routes suspect past their learned bound, suspicions ask for
//! confirmations, and only a confirmed suspicion fails a route.

use super::*;

const FAST: f64 = 0.05;

/// Providers a, b × inboxes x, y (routes `<p>-to-<i>`), each route with
/// `deliveries` fast deliveries behind it; returns the board and the
/// acceptance time of the last canary.
fn board(t: Thresholds, deliveries: u32) -> (Board, Instant) {
    let mut b = Board::default();
    let ps: Vec<Judged> = ["a", "b"]
        .iter()
        .map(|p| Judged { name: p.to_string(), thresholds: t, nexthop: None, application: false })
        .collect();
    let routes: Vec<(String, String, String)> = ["a", "b"]
        .iter()
        .flat_map(|p| ["x", "y"].iter().map(move |i| (format!("{p}-to-{i}"), p.to_string(), i.to_string())))
        .collect();
    b.configure(&ps, &routes, 0);
    let mut at = Instant::now();
    for _ in 0..deliveries {
        for (probe, _, _) in &routes {
            at += Duration::from_millis(10);
            b.record(probe, at, Evidence::Good, Some(FAST));
        }
    }
    b.decide(0);
    (b, at)
}

fn live() -> Vec<String> {
    vec!["x".to_string(), "y".to_string()]
}

/// `probe`'s canaries in flight: (acceptance time, age).
fn flying(probe: &str, canaries: &[(Instant, f64)]) -> HashMap<String, Vec<(Instant, Duration)>> {
    let v = canaries.iter().map(|(at, age)| (*at, Duration::from_secs_f64(*age))).collect();
    HashMap::from([(probe.to_string(), v)])
}

fn health(b: &Board, provider: &str) -> ProviderHealth {
    b.providers().iter().find(|p| p.provider == provider).map(|p| (**p).clone()).unwrap()
}

#[test]
fn a_route_learns_its_bound_and_suspects_past_it() {
    let (mut b, last) = board(Thresholds::default(), 19);
    let route = |b: &Board| health(b, "a").routes.into_iter().find(|r| r.probe == "a-to-x").unwrap();
    assert_eq!((route(&b).overdue_bound_seconds, route(&b).bound), (90.0, BoundSource::Default));
    let a = last + Duration::from_secs(1);
    assert!(b.observe(&flying("a-to-x", &[(a, 1.5)]), &live()).is_empty(), "90 s until it has learned");
    // The twentieth delivery: 2 × 0.05 s, on the 1 s floor.
    assert_eq!(b.record("a-to-x", last, Evidence::Good, Some(FAST)), Some(Duration::from_secs(1)));
    assert_eq!(b.observe(&flying("a-to-x", &[(a, 1.5)]), &live()), vec!["a-to-x".to_string()]);
    b.decide(1);
    assert_eq!((route(&b).overdue_bound_seconds, route(&b).bound), (1.0, BoundSource::Learned));
    // The same canary, older, raises no second suspicion.
    assert!(b.observe(&flying("a-to-x", &[(a, 2.5)]), &live()).is_empty());
}

#[test]
fn confirmations_go_to_the_route_and_across_the_matrix() {
    let (mut b, last) = board(Thresholds::default(), 20);
    let a = last + Duration::from_secs(1);
    b.observe(&flying("a-to-x", &[(a, 1.5)]), &live());
    let asked: Vec<(String, String)> = b.confirmations("a-to-x").into_iter().map(|c| (c.probe, c.provider)).collect();
    let want = [("a-to-x", "a"), ("b-to-x", "b"), ("a-to-y", "a")];
    assert_eq!(asked, want.map(|(p, q)| (p.to_string(), q.to_string())), "itself, the same inbox, the same provider");
    // A route whose own canary is on its way is not asked.
    let mut in_flight = flying("a-to-x", &[(a, 1.5)]);
    in_flight.insert("b-to-x".into(), vec![(a, Duration::from_millis(200))]);
    b.observe(&in_flight, &live());
    assert!(!b.confirmations("a-to-x").iter().any(|c| c.probe == "b-to-x"));
}

#[test]
fn a_suspicion_alone_moves_nothing_and_its_confirmation_clears_it() {
    let (mut b, last) = board(Thresholds::default(), 20);
    let a = last + Duration::from_secs(1);
    b.observe(&flying("a-to-x", &[(a, 1.5)]), &live());
    assert!(b.decide(1).is_empty());
    let h = health(&b, "a");
    assert_eq!((h.state, h.newest_failing_routes), (State::Healthy, 0), "{}", h.reason);
    // The confirmation, sent after it, arrives: the route works now.
    let c = a + Duration::from_millis(1500);
    b.record("a-to-x", c, Evidence::Good, Some(FAST));
    b.observe(&flying("a-to-x", &[(a, 3.0)]), &live());
    b.decide(2);
    let h = health(&b, "a");
    assert_eq!((h.state, h.newest_failing_routes), (State::Healthy, 0));
}

#[test]
fn a_confirmed_suspicion_fails_the_route_and_asks_no_more() {
    let (mut b, last) = board(Thresholds::default(), 20);
    let (a, c) = (last + Duration::from_secs(1), last + Duration::from_millis(2500));
    for probe in ["a-to-x", "a-to-y"] {
        assert_eq!(b.observe(&flying(probe, &[(a, 1.5)]), &live()).len(), 1);
    }
    // Each route's confirmation is overdue too: a black hole at a.
    let mut in_flight = flying("a-to-x", &[(a, 2.6), (c, 1.1)]);
    in_flight.extend(flying("a-to-y", &[(a, 2.6), (c, 1.1)]));
    assert!(b.observe(&in_flight, &live()).is_empty(), "failing: the schedule says enough");
    b.take_overdue_runs();
    b.decide(3);
    let mut runs: Vec<(String, u32)> = b.take_overdue_runs().into_iter().map(|r| (r.probe, r.run)).collect();
    runs.sort();
    assert_eq!(runs, vec![("a-to-x".to_string(), 2), ("a-to-y".to_string(), 2)], "the metrics hear of the change");
    b.decide(4);
    assert!(b.take_overdue_runs().is_empty(), "and only of a change");
    let h = health(&b, "a");
    assert_eq!(h.state, State::Down, "{}", h.reason);
    assert!(h.reason.contains("past its route's learned bound"), "{}", h.reason);
    assert_eq!(health(&b, "b").state, State::Healthy);
}

#[test]
fn a_pinned_bound_is_not_learned_and_a_learned_one_makes_no_delivery_late() {
    let pinned = Thresholds { overdue_after: Duration::from_secs(8), learning: None, ..Thresholds::default() };
    let (mut b, last) = board(pinned, 30);
    let a = last + Duration::from_secs(1);
    assert!(b.observe(&flying("a-to-x", &[(a, 7.0)]), &live()).is_empty());
    assert_eq!(b.observe(&flying("a-to-x", &[(a, 8.0)]), &live()), vec!["a-to-x".to_string()]);

    // Learned to 1 s, a 5 s delivery is in time: only the fixed 90 s makes it late.
    let (mut b, last) = board(Thresholds::default(), 20);
    b.record("a-to-x", last + Duration::from_secs(1), Evidence::Good, Some(5.0));
    b.decide(1);
    assert!(health(&b, "a").routes.iter().all(|r| r.bad_in_a_row == 0));
    b.record("a-to-x", last + Duration::from_secs(2), Evidence::Good, Some(91.0));
    b.decide(2);
    let bad: u32 = health(&b, "a").routes.iter().map(|r| r.bad_in_a_row).sum();
    assert_eq!(bad, 1, "late past overdue_after");
}

#[test]
fn one_suspicion_never_fails_a_route_whatever_down_after_says() {
    let t = Thresholds { down_after: 1, ..Thresholds::default() };
    let (mut b, last) = board(t, 20);
    let (a, c) = (last + Duration::from_secs(1), last + Duration::from_millis(2500));
    let mut in_flight = flying("a-to-x", &[(a, 1.5)]);
    in_flight.extend(flying("a-to-y", &[(a, 1.5)]));
    assert_eq!(b.observe(&in_flight, &live()).len(), 2, "each asks for its confirmation");
    b.decide(1);
    assert_eq!(health(&b, "a").state, State::Healthy, "a spike on every route is not an outage");
    let mut in_flight = flying("a-to-x", &[(a, 2.6), (c, 1.1)]);
    in_flight.extend(flying("a-to-y", &[(a, 2.6), (c, 1.1)]));
    b.observe(&in_flight, &live());
    b.decide(2);
    assert_eq!(health(&b, "a").state, State::Down, "confirmed");
}

#[test]
fn suspicions_into_every_route_of_an_inbox_set_nothing_aside_until_confirmed() {
    let (mut b, last) = board(Thresholds::default(), 20);
    let a = last + Duration::from_secs(1);
    let mut in_flight = flying("a-to-x", &[(a, 1.5)]);
    in_flight.extend(flying("b-to-x", &[(a, 1.5)]));
    b.observe(&in_flight, &live());
    b.decide(1);
    assert!(health(&b, "a").routes.iter().all(|r| !r.inbox_suspect), "an IMAP hiccup blames no inbox");
    let c = a + Duration::from_millis(1500);
    let mut in_flight = flying("a-to-x", &[(a, 2.6), (c, 1.1)]);
    in_flight.extend(flying("b-to-x", &[(a, 2.6), (c, 1.1)]));
    b.observe(&in_flight, &live());
    b.decide(2);
    let h = health(&b, "a");
    assert!(h.routes.iter().any(|r| r.inbox == "x" && r.inbox_suspect), "confirmed on both: the inbox's fault");
    assert_eq!(h.state, State::Healthy, "{}", h.reason);
}

#[test]
fn an_old_canary_asks_nothing_after_a_newer_one_arrived_nor_while_its_inbox_is_unseen() {
    let (mut b, last) = board(Thresholds::default(), 20);
    let a = last + Duration::from_secs(1);
    // A newer canary arrived: the older one still in flight is no news.
    b.record("a-to-x", a + Duration::from_secs(3), Evidence::Good, Some(FAST));
    assert!(b.observe(&flying("a-to-x", &[(a, 5.0)]), &live()).is_empty());
    // Unseen, a canary raises no suspicion; seen again, it does.
    let later = a + Duration::from_secs(10);
    assert!(b.observe(&flying("a-to-y", &[(later, 1.5)]), &["x".to_string()]).is_empty());
    assert_eq!(b.observe(&flying("a-to-y", &[(later, 1.6)]), &live()), vec!["a-to-y".to_string()]);
}

#[test]
fn the_board_says_when_the_next_canary_in_flight_passes_its_bound() {
    let (mut b, last) = board(Thresholds::default(), 20);
    let (a, c) = (last + Duration::from_secs(1), last + Duration::from_secs(2));
    // Bounds of 1 s: the youngest on a-to-x passes in 0.7 s, b-to-y's in 0.4 s.
    let mut in_flight = flying("a-to-x", &[(a, 0.3)]);
    in_flight.extend(flying("b-to-y", &[(c, 0.6)]));
    b.observe(&in_flight, &live());
    assert_eq!(b.due(&in_flight), (false, Some(Duration::from_millis(400))));
    // b-to-y's passed it since: a decision is due, a-to-x's comes next.
    let mut later = flying("a-to-x", &[(a, 0.8)]);
    later.extend(flying("b-to-y", &[(c, 1.1)]));
    assert_eq!(b.due(&later), (true, Some(Duration::from_millis(200))));
    // Decided: what the last look saw past its bound is no news.
    assert_eq!(b.observe(&later, &live()), vec!["b-to-y".to_string()]);
    assert_eq!(b.due(&later), (false, Some(Duration::from_millis(200))));
    // Nothing in flight, nothing to look at; a route unknown to the board neither.
    assert_eq!(b.due(&HashMap::new()), (false, None));
    assert_eq!(b.due(&flying("c-to-x", &[(a, 5.0)])), (false, None));
}
