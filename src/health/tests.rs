//! The provider state machine, fed by hand.

use super::*;

fn board(providers: &[&str], inboxes: &[&str]) -> Board {
    let mut b = Board::default();
    let ps: Vec<(String, Thresholds, Option<String>)> =
        providers.iter().map(|p| (p.to_string(), Thresholds::default(), Some(format!("[{p}.example]:587")))).collect();
    let routes: Vec<(String, String, String)> = providers
        .iter()
        .flat_map(|p| inboxes.iter().map(move |i| (format!("{p}-to-{i}"), p.to_string(), i.to_string())))
        .collect();
    b.configure(&ps, &routes, 0);
    b
}

fn state(b: &Board, provider: &str) -> State {
    b.providers().into_iter().find(|p| p.provider == provider).unwrap().state
}

#[test]
fn no_evidence_is_unknown_and_never_drains_traffic() {
    let mut b = board(&["a", "b"], &["x"]);
    assert!(b.decide(1).is_empty());
    assert_eq!((state(&b, "a"), state(&b, "b")), (State::Unknown, State::Unknown));
    assert_eq!(b.nexthop().as_deref(), Some("[a.example]:587"), "unknown is usable");
}

#[test]
fn a_provider_refusing_everything_goes_down_after_down_after_refusals() {
    let mut b = board(&["a", "b"], &["x", "y"]);
    for i in ["x", "y"] {
        b.record(&format!("b-to-{i}"), Evidence::Good, Some(1.0));
        b.record(&format!("a-to-{i}"), Evidence::Refused, None);
    }
    b.decide(1);
    assert_eq!(state(&b, "a"), State::Healthy, "one refusal is not yet down (down_after = 2)");
    for i in ["x", "y"] {
        b.record(&format!("a-to-{i}"), Evidence::Refused, None);
    }
    let changes = b.decide(2);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].from, changes[0].to), (State::Healthy, State::Down));
    assert!(changes[0].reason.contains("refused") && changes[0].reason.contains("fail over"), "{changes:?}");
    assert_eq!(state(&b, "b"), State::Healthy);
    assert_eq!(b.providers()[0].provider, "b", "best first");
    assert_eq!(b.nexthop().as_deref(), Some("[b.example]:587"));
}

#[test]
fn a_broken_inbox_never_blames_the_providers() {
    let mut b = board(&["a", "b"], &["x", "y"]);
    for p in ["a", "b"] {
        b.record(&format!("{p}-to-y"), Evidence::Good, Some(1.0));
        for _ in 0..3 {
            b.record(&format!("{p}-to-x"), Evidence::Lost, None);
        }
    }
    b.decide(1);
    assert_eq!((state(&b, "a"), state(&b, "b")), (State::Healthy, State::Healthy));
    assert!(b.providers()[0].routes.iter().any(|r| r.inbox == "x" && r.inbox_suspect));
}

#[test]
fn an_inbox_nobody_can_see_is_set_aside() {
    let mut b = board(&["a"], &["x"]);
    b.record("a-to-x", Evidence::Lost, None);
    b.record("a-to-x", Evidence::Lost, None);
    b.observe(&HashMap::new(), &[]);
    b.decide(1);
    assert_eq!(state(&b, "a"), State::Unknown, "its only inbox is unseen: no usable evidence");
    b.observe(&HashMap::new(), &["x".to_string()]);
    b.decide(2);
    assert_eq!(state(&b, "a"), State::Down);
}

#[test]
fn an_overdue_canary_counts_before_its_timeout() {
    let mut b = board(&["a", "b"], &["x"]);
    b.record("a-to-x", Evidence::Good, Some(1.0));
    b.record("b-to-x", Evidence::Good, Some(1.0));
    b.record("a-to-x", Evidence::Lost, None);
    let overdue = HashMap::from([("a-to-x".to_string(), Duration::from_secs(91))]);
    b.observe(&overdue, &["x".to_string()]);
    b.decide(1);
    assert_eq!(state(&b, "a"), State::Down, "one lost and one overdue: two bad in a row");
    assert!(b.providers().iter().any(|p| p.provider == "a" && p.reason.contains("overdue")));
}

#[test]
fn some_failing_routes_make_it_degraded() {
    let mut b = board(&["a", "b"], &["x", "y"]);
    for p in ["a", "b"] {
        b.record(&format!("{p}-to-x"), Evidence::Good, Some(1.0));
    }
    b.record("b-to-y", Evidence::Good, Some(1.0));
    b.record("a-to-y", Evidence::Bounced, None);
    b.record("a-to-y", Evidence::Bounced, None);
    b.decide(1);
    assert_eq!(state(&b, "a"), State::Degraded);
}

#[test]
fn it_leaves_down_only_after_up_after_deliveries_in_a_row() {
    let mut b = board(&["a"], &["x"]);
    b.record("a-to-x", Evidence::Lost, None);
    b.record("a-to-x", Evidence::Lost, None);
    b.decide(1);
    assert_eq!(state(&b, "a"), State::Down);
    b.record("a-to-x", Evidence::Good, Some(1.0));
    assert!(b.decide(2).is_empty(), "one delivery is not enough");
    assert!(b.providers()[0].reason.contains("recovering"), "{:?}", b.providers()[0].reason);
    b.record("a-to-x", Evidence::Good, Some(1.0));
    let changes = b.decide(3);
    assert_eq!((changes[0].from, changes[0].to), (State::Down, State::Healthy));
    assert_eq!(b.providers()[0].since_ms, 3);
}

#[test]
fn nothing_usable_means_no_nexthop() {
    let mut b = board(&["a"], &["x"]);
    b.record("a-to-x", Evidence::Refused, None);
    b.record("a-to-x", Evidence::Refused, None);
    b.decide(1);
    assert_eq!(b.nexthop(), None, "Postfix falls back to its own relayhost");
}
