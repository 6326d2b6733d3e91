//! A decision assesses only the providers that what moved since the last
//! one can move (`Changed`). Held to the oracle: a second board fed the
//! same random life, which looks at every route and assesses every
//! provider at every tick, must decide, show and ask the same at each one.

use super::*;
use crate::traffic_event::Outcome;
use proptest::prelude::*;

const PROVIDERS: [&str; 3] = ["a", "b", "c"];
const INBOXES: [&str; 3] = ["x", "y", "z"];
const EVIDENCE: [Evidence; 6] =
    [Evidence::Good, Evidence::Slow, Evidence::Refused, Evidence::Bounced, Evidence::Lost, Evidence::Mismatched];

#[derive(Debug, Clone)]
enum Step {
    /// A canary of route `route` accepted now, in flight.
    Send { route: usize },
    /// The oldest canary in flight of `route` (or one accepted now) settled.
    Settle { route: usize, evidence: usize, latency_ms: u32 },
    /// Time passes, then a tick: the canaries in flight looked at, a decision.
    Tick { millis: u32 },
    /// An inbox's watcher loses it, or sees it again.
    Watch { inbox: usize, seen: bool },
    /// Real traffic through a provider: this many messages, this many deferred.
    Traffic { provider: usize, messages: u64, deferred: u64 },
    /// A reload: every route but `dropped` (its canaries still in flight).
    Reload { dropped: Option<usize> },
    /// A restart put a provider back down.
    Restore { provider: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let route = 0..PROVIDERS.len() * INBOXES.len();
    prop_oneof![
        3 => route.clone().prop_map(|route| Step::Send { route }),
        3 => (route.clone(), 0..EVIDENCE.len(), 1u32..4_000)
            .prop_map(|(route, evidence, latency_ms)| Step::Settle { route, evidence, latency_ms }),
        4 => (0u32..4_000).prop_map(|millis| Step::Tick { millis }),
        1 => (0..INBOXES.len(), proptest::bool::weighted(0.7)).prop_map(|(inbox, seen)| Step::Watch { inbox, seen }),
        1 => (0..PROVIDERS.len(), 0u64..30, 0u64..30)
            .prop_map(|(provider, messages, deferred)| Step::Traffic { provider, messages, deferred }),
        1 => proptest::option::of(route).prop_map(|dropped| Step::Reload { dropped }),
        1 => (0..PROVIDERS.len()).prop_map(|provider| Step::Restore { provider }),
    ]
}

/// The providers judged, with these thresholds.
fn judged(learning: bool) -> Vec<Judged> {
    let t = Thresholds {
        overdue_after: Duration::from_secs(6),
        learning: learning.then(|| Learning { min_deliveries: 3, ..Learning::default() }),
        ..Thresholds::default()
    };
    PROVIDERS
        .iter()
        .map(|p| Judged { name: p.to_string(), thresholds: t, nexthop: Some(format!("[{p}]:25")), application: false })
        .collect()
}

/// Both boards over the same config: `a` decides as the service does.
fn boards(learning: bool) -> (Board, Board) {
    let providers = judged(learning);
    let routes = routes();
    let board = || {
        let mut b = Board::default();
        b.configure(&providers, &routes, 0);
        b.traffic.configure(traffic::TrafficThresholds { min_messages: 10, ..Default::default() });
        b
    };
    (board(), board())
}

fn routes() -> Vec<(String, String, String)> {
    PROVIDERS
        .iter()
        .flat_map(|p| INBOXES.iter().map(move |i| (format!("{p}-{i}"), p.to_string(), i.to_string())))
        .collect()
}

/// What a board shows: its snapshot, as the API writes it.
fn shown(b: &Board) -> serde_json::Value {
    let ranked = b.providers();
    serde_json::to_value(ranked.iter().map(|p| &**p).collect::<Vec<_>>()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn deciding_from_what_moved_decides_as_deciding_from_everything(
        learning in proptest::bool::ANY,
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let (mut a, mut b) = boards(learning);
        let routes = routes();
        let start = Instant::now();
        let mut now = Duration::ZERO;
        let mut in_flight: Vec<Vec<Instant>> = vec![Vec::new(); routes.len()];
        let mut live: Vec<bool> = vec![true; INBOXES.len()];
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Send { route } => in_flight[route].push(start + now),
                Step::Settle { route, evidence, latency_ms } => {
                    let at = if in_flight[route].is_empty() { start + now } else { in_flight[route].remove(0) };
                    let latency = Some(f64::from(latency_ms) / 1000.0);
                    let evidence = EVIDENCE[evidence];
                    a.record(&routes[route].0, at, evidence, latency);
                    b.record(&routes[route].0, at, evidence, latency);
                }
                Step::Watch { inbox, seen } => live[inbox] = seen,
                Step::Reload { dropped } => {
                    let kept: Vec<_> = routes.iter().enumerate().filter(|(n, _)| Some(*n) != dropped).map(|(_, r)| r.clone()).collect();
                    let now_ms = now.as_millis() as i64;
                    a.configure(&judged(learning), &kept, now_ms);
                    b.configure(&judged(learning), &kept, now_ms);
                }
                Step::Restore { provider } => {
                    let now_ms = now.as_millis() as i64;
                    a.restore_down(PROVIDERS[provider], now_ms, "down before a restart".into());
                    b.restore_down(PROVIDERS[provider], now_ms, "down before a restart".into());
                }
                Step::Traffic { provider, messages, deferred } => {
                    let now_ms = now.as_millis() as i64;
                    let outcomes: Vec<(Outcome, i64)> = (0..messages)
                        .map(|n| (if n < deferred { Outcome::Deferred } else { Outcome::Delivered }, now_ms))
                        .collect();
                    a.traffic.observe(PROVIDERS[provider], outcomes.clone(), now_ms);
                    b.traffic.observe(PROVIDERS[provider], outcomes, now_ms);
                }
                Step::Tick { millis } => {
                    now += Duration::from_millis(u64::from(millis));
                    let flying: HashMap<String, Vec<(Instant, Duration)>> = routes
                        .iter()
                        .zip(&in_flight)
                        .filter(|(_, c)| !c.is_empty())
                        .map(|((probe, _, _), c)| (probe.clone(), c.iter().map(|at| (*at, start + now - *at)).collect()))
                        .collect();
                    let seen: Vec<String> =
                        INBOXES.iter().zip(&live).filter(|(_, s)| **s).map(|(i, _)| i.to_string()).collect();
                    let now_ms = now.as_millis() as i64;
                    prop_assert_eq!(a.observe(&flying, &seen), b.observe_everything(&flying, &seen), "suspicions at step {}", i);
                    prop_assert_eq!(a.decide(now_ms), b.decide_everything(now_ms), "transitions at step {}", i);
                    prop_assert_eq!(shown(&a), shown(&b), "snapshot at step {}", i);
                    let runs = |b: &mut Board| {
                        let mut r: Vec<_> = b.take_overdue_runs().into_iter().map(|r| (r.probe, r.run)).collect();
                        r.sort();
                        r
                    };
                    prop_assert_eq!(runs(&mut a), runs(&mut b), "overdue runs at step {}", i);
                    for (probe, _, _) in &routes {
                        prop_assert_eq!(a.confirmations(probe), b.confirmations(probe), "confirmations of {}", probe);
                    }
                }
            }
        }
    }
}

impl Board {
    /// `observe` as it was before it looked only at routes with canaries
    /// in flight: every route, every tick.
    fn observe_everything(
        &mut self,
        in_flight: &HashMap<String, Vec<(Instant, Duration)>>,
        live: &[String],
    ) -> Vec<String> {
        let mut unseen: Vec<String> =
            self.routes.values().filter(|r| !live.contains(&r.inbox)).map(|r| r.inbox.clone()).collect();
        unseen.sort_unstable();
        unseen.dedup();
        let mut suspicions = Vec::new();
        for (probe, r) in self.routes.iter_mut() {
            let down_after = self.thresholds.get(&r.provider).copied().unwrap_or_default().down_after;
            let seen = unseen.binary_search(&r.inbox).is_err();
            if r.observe(in_flight.get(probe).map_or(&[][..], |v| v.as_slice()), down_after, seen).suspicion {
                suspicions.push(probe.clone());
            }
        }
        self.unseen = unseen;
        suspicions.sort_unstable();
        suspicions
    }

    /// `decide` assessing every provider and every route.
    fn decide_everything(&mut self, now_ms: i64) -> Vec<Transition> {
        self.changed.everything = true;
        self.decide(now_ms)
    }
}
