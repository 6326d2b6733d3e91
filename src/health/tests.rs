//! The provider state machine, fed by hand: canaries accepted one after
//! another (each a tick of a made-up clock), settled or left in flight.

use super::*;

/// A board over `providers` × `inboxes` (routes `<p>-to-<i>`), and a clock
/// of acceptance times.
struct Fixture {
    b: Board,
    start: Instant,
    /// Seconds since `start` of the last canary accepted.
    now: u64,
}

impl Fixture {
    fn new(providers: &[&str], inboxes: &[&str]) -> Fixture {
        Self::with(providers, inboxes, Thresholds::default())
    }

    fn with(providers: &[&str], inboxes: &[&str], t: Thresholds) -> Fixture {
        let mut b = Board::default();
        let ps: Vec<Judged> = providers
            .iter()
            .map(|p| Judged {
                name: p.to_string(),
                thresholds: t,
                nexthop: Some(format!("[{p}.example]:587")),
                application: false,
            })
            .collect();
        let routes: Vec<(String, String, String)> = providers
            .iter()
            .flat_map(|p| inboxes.iter().map(move |i| (format!("{p}-to-{i}"), p.to_string(), i.to_string())))
            .collect();
        b.configure(&ps, &routes, 0);
        let live: Vec<String> = inboxes.iter().map(|i| i.to_string()).collect();
        b.observe(&HashMap::new(), &live);
        Fixture { b, start: Instant::now(), now: 0 }
    }

    /// The acceptance time of the next canary.
    fn next(&mut self) -> Instant {
        self.now += 1;
        self.start + Duration::from_secs(self.now)
    }

    fn settle(&mut self, probe: &str, e: Evidence) {
        let at = self.next();
        let latency = (e == Evidence::Good).then_some(1.0);
        self.b.record(probe, at, e, latency);
    }

    fn state(&self, provider: &str) -> State {
        self.health(provider).state
    }

    fn health(&self, provider: &str) -> ProviderHealth {
        self.b.providers().iter().find(|p| p.provider == provider).map(|p| (**p).clone()).unwrap()
    }
}

fn live(inboxes: &[&str]) -> Vec<String> {
    inboxes.iter().map(|i| i.to_string()).collect()
}

#[test]
fn no_evidence_is_unknown() {
    let mut f = Fixture::new(&["a", "b"], &["x"]);
    assert!(f.b.decide(1).is_empty());
    assert_eq!((f.state("a"), f.state("b")), (State::Unknown, State::Unknown));
}

#[test]
fn a_provider_refusing_everything_goes_down_after_down_after_refusals() {
    let mut f = Fixture::new(&["a", "b"], &["x", "y"]);
    for i in ["x", "y"] {
        f.settle(&format!("b-to-{i}"), Evidence::Good);
        f.settle(&format!("a-to-{i}"), Evidence::Refused);
    }
    f.b.decide(1);
    assert_eq!(f.state("a"), State::Unknown, "refused once, never arrived: no evidence it works");
    for i in ["x", "y"] {
        f.settle(&format!("a-to-{i}"), Evidence::Refused);
    }
    let changes = f.b.decide(2);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].from, changes[0].to), (State::Unknown, State::Down));
    assert!(changes[0].reason.contains("refused") && changes[0].reason.contains("fail over"), "{changes:?}");
    assert_eq!(f.state("b"), State::Healthy);
    assert_eq!(f.b.providers()[0].provider, "b", "best first");
}

#[test]
fn a_broken_inbox_never_blames_the_providers() {
    let mut f = Fixture::new(&["a", "b"], &["x", "y"]);
    for p in ["a", "b"] {
        f.settle(&format!("{p}-to-y"), Evidence::Good);
        for _ in 0..3 {
            f.settle(&format!("{p}-to-x"), Evidence::Lost);
        }
    }
    f.b.decide(1);
    assert_eq!((f.state("a"), f.state("b")), (State::Healthy, State::Healthy));
    assert!(f.health("a").routes.iter().any(|r| r.inbox == "x" && r.inbox_suspect));
}

#[test]
fn an_inbox_nobody_can_see_is_set_aside() {
    let mut f = Fixture::new(&["a"], &["x"]);
    f.settle("a-to-x", Evidence::Lost);
    f.settle("a-to-x", Evidence::Lost);
    f.b.observe(&HashMap::new(), &[]);
    f.b.decide(1);
    assert_eq!(f.state("a"), State::Unknown, "its only inbox is unseen: no usable evidence");
    f.b.observe(&HashMap::new(), &live(&["x"]));
    f.b.decide(2);
    assert_eq!(f.state("a"), State::Down);
}

#[test]
fn overdue_canaries_count_toward_down_as_failures_do_for_every_down_after() {
    for down_after in 1..=4u32 {
        let t = Thresholds { down_after, ..Thresholds::default() };
        let mut f = Fixture::with(&["a", "b"], &["x"], t);
        f.settle("a-to-x", Evidence::Good);
        f.settle("b-to-x", Evidence::Good);
        let mut in_flight = Vec::new();
        for n in 1..=down_after {
            in_flight.push((f.next(), Duration::from_secs(91)));
            f.b.observe(&HashMap::from([("a-to-x".to_string(), in_flight.clone())]), &live(&["x"]));
            f.b.decide(n as i64);
            let want = if n == down_after { State::Down } else { State::Healthy };
            assert_eq!(f.state("a"), want, "{n} overdue canaries in a row with down_after {down_after}");
            assert!(f.health("a").reason.contains("overdue"), "{}", f.health("a").reason);
        }
    }
}

#[test]
fn a_canary_not_yet_overdue_is_no_evidence_either_way() {
    let mut f = Fixture::new(&["a"], &["x"]);
    f.settle("a-to-x", Evidence::Good);
    let young = vec![(f.next(), Duration::from_secs(5))];
    f.b.observe(&HashMap::from([("a-to-x".to_string(), young)]), &live(&["x"]));
    f.b.decide(1);
    let a = f.health("a");
    assert_eq!((a.state, a.newest_failing_routes), (State::Healthy, 0));
    assert_eq!(a.reason, "its newest canaries into 1 inbox arrived in time");
}

#[test]
fn healthy_needs_a_canary_that_arrived_in_time() {
    let mut f = Fixture::new(&["app"], &["x"]);
    f.settle("app-to-x", Evidence::Lost);
    assert!(f.b.decide(1).is_empty(), "unknown stays unknown");
    let app = f.health("app");
    assert_eq!(app.state, State::Unknown);
    assert!(
        app.reason.starts_with("no canary has arrived in time yet: its newest canary to x was lost"),
        "{}",
        app.reason
    );
    f.settle("app-to-x", Evidence::Lost);
    assert_eq!(f.b.decide(2)[0].to, State::Down);
}

#[test]
fn a_delivery_later_than_overdue_after_is_not_in_time() {
    let mut f = Fixture::new(&["a"], &["x"]);
    f.settle("a-to-x", Evidence::Good);
    for _ in 0..2 {
        let at = f.next();
        f.b.record("a-to-x", at, Evidence::Good, Some(120.0));
    }
    f.b.decide(1);
    assert_eq!(f.state("a"), State::Down, "{}", f.health("a").reason);
    assert!(f.health("a").reason.contains("arrived late"), "{}", f.health("a").reason);
}

#[test]
fn some_failing_routes_make_it_degraded() {
    let mut f = Fixture::new(&["a", "b"], &["x", "y"]);
    for p in ["a", "b"] {
        f.settle(&format!("{p}-to-x"), Evidence::Good);
    }
    f.settle("b-to-y", Evidence::Good);
    f.settle("a-to-y", Evidence::Bounced);
    f.settle("a-to-y", Evidence::Bounced);
    f.b.decide(1);
    assert_eq!(f.state("a"), State::Degraded);
    assert!(
        f.health("a").reason.starts_with("1 of 2 routes fail: 2 canaries in a row to y failed"),
        "{}",
        f.health("a").reason
    );
}

#[test]
fn it_leaves_down_only_after_up_after_deliveries_in_a_row() {
    let mut f = Fixture::new(&["a"], &["x"]);
    f.settle("a-to-x", Evidence::Lost);
    f.settle("a-to-x", Evidence::Lost);
    f.b.decide(1);
    assert_eq!(f.state("a"), State::Down);
    f.settle("a-to-x", Evidence::Good);
    assert!(f.b.decide(2).is_empty(), "one delivery is not enough");
    let reason = f.health("a").reason;
    assert!(reason.starts_with("recovering: 1 of 2 canaries in a row delivered in time; meanwhile"), "{reason}");
    f.settle("a-to-x", Evidence::Good);
    let changes = f.b.decide(3);
    assert_eq!((changes[0].from, changes[0].to), (State::Down, State::Healthy));
    assert_eq!(f.health("a").since_ms, 3);
}

#[test]
fn recovery_follows_the_newest_evidence_whatever_is_still_in_flight() {
    // A black hole swallowed three canaries, which stay in flight (overdue)
    // until their timeout; the repaired provider's newer canaries arrive.
    let mut f = Fixture::new(&["a", "b"], &["x"]);
    f.settle("a-to-x", Evidence::Good);
    f.settle("b-to-x", Evidence::Good);
    let swallowed: Vec<(Instant, Duration)> = (0..3).map(|_| (f.next(), Duration::from_secs(200))).collect();
    let in_flight = HashMap::from([("a-to-x".to_string(), swallowed)]);
    f.b.observe(&in_flight, &live(&["x"]));
    f.b.decide(1);
    assert_eq!(f.state("a"), State::Down);
    f.settle("a-to-x", Evidence::Good);
    f.b.observe(&in_flight, &live(&["x"]));
    f.b.decide(2);
    assert_eq!(f.state("a"), State::Down, "one in time is not up_after");
    f.settle("a-to-x", Evidence::Good);
    f.b.observe(&in_flight, &live(&["x"]));
    let changes = f.b.decide(3);
    assert_eq!(changes.len(), 1, "back after up_after deliveries, the old ones still in flight: {changes:?}");
    assert_eq!(changes[0].to, State::Healthy);
    assert_eq!(f.health("a").newest_failing_routes, 0);
    // When the swallowed ones are finally counted lost, they are older than
    // the deliveries: the provider stays up.
    for (at, _) in in_flight["a-to-x"].clone() {
        f.b.record("a-to-x", at, Evidence::Lost, None);
    }
    f.b.observe(&HashMap::new(), &live(&["x"]));
    assert!(f.b.decide(4).is_empty());
    assert_eq!(f.state("a"), State::Healthy);
}

#[test]
fn a_provider_whose_newest_canary_is_overdue_ranks_after_one_whose_newest_arrived() {
    let mut f = Fixture::new(&["a", "b"], &["x"]);
    // a is faster, so it ranks first while both deliver…
    let at = f.next();
    f.b.record("a-to-x", at, Evidence::Good, Some(0.1));
    let at = f.next();
    f.b.record("b-to-x", at, Evidence::Good, Some(5.0));
    f.b.decide(1);
    assert_eq!(f.b.providers()[0].provider, "a");
    // …until its newest canary is overdue: still healthy (down_after 2),
    // but never preferred over b.
    let overdue = vec![(f.next(), Duration::from_secs(95))];
    f.b.observe(&HashMap::from([("a-to-x".to_string(), overdue)]), &live(&["x"]));
    f.b.decide(2);
    let ranked = f.b.providers();
    assert_eq!((ranked[0].provider.as_str(), ranked[1].provider.as_str()), ("b", "a"));
    assert_eq!(ranked[1].state, State::Healthy);
    assert_eq!(ranked[1].newest_failing_routes, 1);
    assert!(
        ranked[1].reason.starts_with("delivering, but its newest canary to x is 95 s overdue; down after 2"),
        "{}",
        ranked[1].reason
    );
}

#[test]
fn a_provider_down_before_a_restart_stays_down_until_it_earns_its_way_back() {
    let mut f = Fixture::new(&["a"], &["x"]);
    f.b.restore_down("a", 5, "every route fails".into());
    f.settle("a-to-x", Evidence::Good);
    assert!(f.b.decide(6).is_empty());
    assert_eq!(f.state("a"), State::Down);
    f.settle("a-to-x", Evidence::Good);
    assert_eq!(f.b.decide(7)[0].to, State::Healthy);
}

#[test]
fn refusals_by_every_provider_blame_the_providers_not_the_inbox() {
    let mut f = Fixture::new(&["a", "b"], &["x"]);
    for _ in 0..2 {
        f.settle("a-to-x", Evidence::Refused);
        f.settle("b-to-x", Evidence::Refused);
    }
    f.b.decide(1);
    assert_eq!((f.state("a"), f.state("b")), (State::Down, State::Down));
    assert!(!f.health("a").routes[0].inbox_suspect);
}

/// Of two canaries accepted at the same instant (canaries resumed after a
/// restart get their instants from millisecond ages), the one decided
/// later is the newer.
#[test]
fn of_two_canaries_accepted_at_once_the_one_decided_later_is_newer() {
    let at = Instant::now();
    let mut r = route::RouteEvidence::new("p", "i", learn::Learned::new(Duration::from_secs(90), None));
    r.record(at, Evidence::Lost, None);
    r.record(at, Evidence::Good, Some(0.1));
    assert_eq!(r.bad_run(), (0, Some(route::Verdict::Settled(Evidence::Good))));
    r.record(at, Evidence::Lost, None);
    assert_eq!(r.bad_run(), (1, Some(route::Verdict::Settled(Evidence::Lost))));
}

#[test]
fn a_route_is_judged_by_the_provider_and_inbox_its_name_goes_through_now() {
    let mut f = Fixture::new(&["a", "b"], &["x"]);
    let labels = |provider: &str| crate::settled::RouteLabels::new("a-to-x", provider, "x");
    assert!(f.b.judges(&labels("a")));
    // A reload gives the name to provider b: a's canaries still in flight
    // under it are evidence of nothing b does.
    let judged =
        |p: &str| Judged { name: p.into(), thresholds: Thresholds::default(), nexthop: None, application: false };
    f.b.configure(&[judged("a"), judged("b")], &[("a-to-x".into(), "b".into(), "x".into())], 0);
    assert!(!f.b.judges(&labels("a")));
    assert!(f.b.judges(&labels("b")));
    assert!(!f.b.judges(&crate::settled::RouteLabels::new("a-to-x", "b", "y")), "nor another inbox's");
}
