//! The fate machine on an in-memory ledger and a fake clock. Races are
//! driven by ordering, not by sleeps: the synchronous part of each call
//! (the claim on a canary and its queued ledger write) runs when the call's
//! future is first polled, so `join!(a, b)` runs a's claim before b's.

use super::*;
use crate::bounce::Bounce;
use crate::canary::{SigningKey, Token};
use crate::clock::FakeClock;
use crate::config::Route;
use crate::health_keeper::HealthKeeper;
use crate::ledger::{Ledger, Row, State};
use crate::outcome::{Expectation, Observed, OutcomeKind, Placement};
use crate::secret::Secret;

const T0: i64 = 1_800_000_000_000;
const TIMEOUT: Duration = Duration::from_secs(60);

struct Fixture {
    matcher: Arc<Matcher>,
    /// Provider health, fed by the matcher as the service wires it.
    health: Arc<HealthKeeper>,
    clock: Arc<FakeClock>,
    metrics: Arc<Metrics>,
    ledger: LedgerThread,
    route: Route,
}

fn fixture() -> Fixture {
    let clock = Arc::new(FakeClock::new(T0));
    let metrics = Arc::new(Metrics::new());
    let ledger = LedgerThread::spawn(Ledger::in_memory().unwrap());
    let (matcher, health) = wired(&ledger, &metrics, &clock);
    let route = Route {
        name: "r".into(),
        provider: "p".into(),
        inbox: "i".into(),
        interval: Duration::from_secs(30),
        timeout: TIMEOUT,
        jitter: 0.0,
        trigger: None,
    };
    matcher.add_route(&route);
    matcher.inbox_caught_up("i");
    Fixture { matcher, health, clock, metrics, ledger, route }
}

/// A matcher and provider health over `ledger`, their verdicts counted in
/// `metrics`, as crate::runtime wires them.
fn wired(ledger: &LedgerThread, metrics: &Arc<Metrics>, clock: &Arc<FakeClock>) -> (Arc<Matcher>, Arc<HealthKeeper>) {
    let matcher = Arc::new(Matcher::with_clock(ledger.clone(), metrics.clone(), clock.clone()));
    let health = Arc::new(HealthKeeper::new(ledger.clone(), metrics.clone(), clock.clone()));
    matcher.register(health.clone());
    matcher.register(metrics.clone());
    (matcher, health)
}

impl Fixture {
    /// The service's tick: the matcher's, then provider health's decision.
    async fn tick(&self) {
        let tick = self.matcher.tick().await;
        self.health.decide(&tick).await;
    }

    /// A canary recorded and expected, not yet answered for.
    async fn expect(&self) -> (Canary, Token) {
        let key = SigningKey::new(Secret::new("0123456789abcdef"));
        let now = chrono::DateTime::from_timestamp_millis(self.clock.wall_ms()).unwrap();
        let canary = Canary::new(&self.route, "a@x.test", "b@x.test", "inst", None, &key, now);
        self.matcher.expect(&canary, TIMEOUT).await.unwrap();
        let token = Token { instance: "inst".into(), probe: "r".into(), canary_id: canary.id.clone(), sent_ms: 0 };
        (canary, token)
    }

    /// A canary accepted by its provider.
    async fn sent(&self) -> (Canary, Token) {
        let (canary, token) = self.expect().await;
        self.matcher.accepted(&canary.id, &Accepted { provider_id: Some("Q".into()) }, Duration::ZERO).await;
        (canary, token)
    }

    fn count(&self, metric: &str) -> f64 {
        self.metrics
            .encode_text()
            .lines()
            .filter(|l| l.starts_with(metric) && l.contains("probe=\"r\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// delivered, lost, late, bounced, refused, as counted in /metrics.
    fn counts(&self) -> [f64; 5] {
        [
            self.count("mailcanary_canaries_delivered_total"),
            self.count("mailcanary_canaries_lost_total"),
            self.count("mailcanary_canaries_late_total"),
            self.count("mailcanary_canaries_bounced_total"),
            self.count("mailcanary_send_failures_total"),
        ]
    }

    async fn row(&self, id: &str) -> Row {
        let id = id.to_string();
        self.ledger.call(move |l| l.get(&id)).await.unwrap().expect("recorded")
    }

    /// Seen now, received by the server at `received_ms`.
    fn seen_at(&self, received_ms: Option<i64>) -> Sighting {
        let at = self.matcher.sight();
        Sighting { at, placement: Placement::Inbox, insight: Insight::default(), received_ms, mismatch: None }
    }
}

#[tokio::test]
async fn a_canary_seen_in_time_is_delivered_once_with_its_latency() {
    let f = fixture();
    let (c, token) = f.sent().await;
    f.clock.advance(Duration::from_millis(1500));
    assert_eq!(f.matcher.seen(&token, f.seen_at(None)).await, Disposition::Resolved);
    assert_eq!(f.matcher.seen(&token, f.seen_at(None)).await, Disposition::Unmatched(Unmatched::Duplicate));
    f.clock.advance(TIMEOUT * 3);
    f.tick().await;
    assert_eq!(f.counts(), [1.0, 0.0, 0.0, 0.0, 0.0]);
    let row = f.row(&c.id).await;
    assert_eq!(
        (row.state, row.latency_ms, row.observed),
        (State::Settled(OutcomeKind::Delivered), Some(1500), Observed::Live)
    );
    let status = &f.matcher.status()[0];
    assert_eq!((status.last_outcome, status.delivered, status.sent), (Some(OutcomeKind::Delivered), 1, 1));
}

#[tokio::test]
async fn a_sighting_racing_the_deadline_ends_as_one_outcome_either_way() {
    // The sighting claims it first: delivered, and the tick finds nothing.
    let f = fixture();
    let (_, token) = f.sent().await;
    f.clock.advance(TIMEOUT);
    let (disposition, ()) = tokio::join!(f.matcher.seen(&token, f.seen_at(None)), f.tick());
    assert_eq!(disposition, Disposition::Resolved);
    assert_eq!(f.counts(), [1.0, 0.0, 0.0, 0.0, 0.0]);

    // The tick claims it first: lost, then the sighting makes it late, once.
    let f = fixture();
    let (c, token) = f.sent().await;
    f.clock.advance(TIMEOUT);
    let ((), disposition) = tokio::join!(f.tick(), f.matcher.seen(&token, f.seen_at(None)));
    assert_eq!(disposition, Disposition::Resolved);
    assert_eq!(f.counts(), [0.0, 1.0, 1.0, 0.0, 0.0]);
    assert_eq!(f.row(&c.id).await.state, State::Settled(OutcomeKind::Late));
    assert_eq!(f.matcher.seen(&token, f.seen_at(None)).await, Disposition::Unmatched(Unmatched::Duplicate));
    assert_eq!(f.counts(), [0.0, 1.0, 1.0, 0.0, 0.0]);
}

#[tokio::test]
async fn two_sightings_of_a_lost_canary_count_it_late_once() {
    let f = fixture();
    let (_, token) = f.sent().await;
    f.clock.advance(TIMEOUT);
    f.tick().await;
    let (a, b) = tokio::join!(f.matcher.seen(&token, f.seen_at(None)), f.matcher.seen(&token, f.seen_at(None)));
    let mut both = [a, b];
    both.sort_by_key(|d| *d != Disposition::Resolved);
    assert_eq!(both, [Disposition::Resolved, Disposition::Unmatched(Unmatched::Duplicate)], "one of them, once");
    assert_eq!(f.counts(), [0.0, 1.0, 1.0, 0.0, 0.0]);
}

#[tokio::test]
async fn a_canary_seen_before_its_send_failed_is_delivered_not_refused() {
    let f = fixture();
    let (c, token) = f.expect().await;
    assert_eq!(f.matcher.seen(&token, f.seen_at(None)).await, Disposition::Resolved, "ours: cleaned up");
    let error = SendError::new(crate::outcome::SendReason::Timeout, "no answer after DATA");
    f.matcher.failed(&c.id, &error, Duration::from_secs(30)).await;
    assert_eq!(f.counts(), [1.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(f.count("mailcanary_canaries_sent_total"), 1.0);
    assert_eq!(f.row(&c.id).await.state, State::Settled(OutcomeKind::Delivered));
}

#[tokio::test]
async fn a_bounce_racing_a_delivery_ends_as_one_outcome() {
    let f = fixture();
    let (c, token) = f.sent().await;
    let bounce = Bounce {
        action: "failed".into(),
        status: "5.1.1".into(),
        diagnostic: None,
        remote_mta: None,
        reporting_mta: None,
    };
    let (bounced, seen) = tokio::join!(f.matcher.bounced(&token, bounce), f.matcher.seen(&token, f.seen_at(None)));
    assert_eq!(bounced, Disposition::Resolved);
    assert_eq!(seen, Disposition::Unmatched(Unmatched::Duplicate));
    assert_eq!(f.counts(), [0.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(f.row(&c.id).await.state, State::Settled(OutcomeKind::Bounced));
}

#[tokio::test]
async fn a_refused_canary_is_never_lost() {
    let f = fixture();
    let (c, token) = f.expect().await;
    let error = SendError::new(crate::outcome::SendReason::Auth, "535 5.7.8");
    f.matcher.failed(&c.id, &error, Duration::ZERO).await;
    f.clock.advance(TIMEOUT * 3);
    f.tick().await;
    assert_eq!(f.matcher.seen(&token, f.seen_at(None)).await, Disposition::Unmatched(Unmatched::Duplicate));
    assert_eq!(f.counts(), [0.0, 0.0, 0.0, 0.0, 1.0]);
    assert_eq!(f.matcher.status()[0].last_failure_reason, Some(crate::outcome::SendReason::Auth));
}

#[tokio::test]
async fn a_wall_clock_step_of_an_hour_changes_no_verdict() {
    for step in [-3_600_000, 3_600_000] {
        let f = fixture();
        let (_, token) = f.sent().await;
        f.clock.advance(TIMEOUT / 2);
        f.clock.step_wall(step);
        f.tick().await;
        assert_eq!(f.counts(), [0.0, 0.0, 0.0, 0.0, 0.0], "a step of {step} ms loses nothing");
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(f.matcher.seen(&token, f.seen_at(None)).await, Disposition::Resolved);
        assert_eq!(f.counts(), [1.0, 0.0, 0.0, 0.0, 0.0]);
        let latency = f.matcher.status()[0].last_latency_seconds.unwrap();
        assert!((latency - 31.0).abs() < 1e-9, "latency on the monotonic clock: {latency}");
    }
}

#[tokio::test]
async fn a_send_given_up_waits_for_its_deadline() {
    let f = fixture();
    let (c, token) = f.expect().await;
    f.matcher.unanswered(&c.id);
    f.clock.advance(TIMEOUT - Duration::from_secs(1));
    f.tick().await;
    assert_eq!(f.counts(), [0.0; 5]);
    f.clock.advance(Duration::from_secs(1));
    f.tick().await;
    assert_eq!(f.counts(), [0.0, 1.0, 0.0, 0.0, 0.0]);
    assert_eq!(f.matcher.seen(&token, f.seen_at(None)).await, Disposition::Resolved);
    assert_eq!(f.counts(), [0.0, 1.0, 1.0, 0.0, 0.0]);
}

/// The ledger as a restarted process finds it: `n` canaries sent at T0 and
/// not yet seen.
async fn restarted(n: usize) -> (Fixture, Vec<Token>) {
    let before = fixture();
    let mut tokens = Vec::new();
    for _ in 0..n {
        tokens.push(before.sent().await.1);
    }
    let ledger = before.ledger.clone();
    // Down for two timeouts.
    let clock = Arc::new(FakeClock::new(T0 + 2 * TIMEOUT.as_millis() as i64));
    let metrics = Arc::new(Metrics::new());
    let (matcher, health) = wired(&ledger, &metrics, &clock);
    matcher.add_route(&before.route);
    assert_eq!(matcher.resume().await.unwrap(), n);
    (Fixture { matcher, health, clock, metrics, ledger, route: before.route }, tokens)
}

#[tokio::test]
async fn after_a_restart_nothing_is_judged_before_its_inbox_was_looked_at() {
    let (f, tokens) = restarted(3).await;
    // Past every deadline, but nobody has looked yet.
    f.tick().await;
    assert_eq!(f.counts(), [0.0; 5]);
    // The first scan finds two: one the server received in time, one after.
    let in_time = f.matcher.seen(&tokens[0], f.seen_at(Some(T0 + 2_000))).await;
    let too_late = f.matcher.seen(&tokens[1], f.seen_at(Some(T0 + TIMEOUT.as_millis() as i64 + 5_000))).await;
    assert_eq!((in_time, too_late), (Disposition::Resolved, Disposition::Resolved));
    f.matcher.inbox_caught_up("i");
    f.tick().await;
    // delivered 1, lost 2 (the late one and the one never found), late 1.
    assert_eq!(f.counts(), [1.0, 2.0, 1.0, 0.0, 0.0]);
    let row = f.row(&tokens[0].canary_id).await;
    assert_eq!(
        (row.state, row.latency_ms, row.observed),
        (State::Settled(OutcomeKind::Delivered), Some(2_999), Observed::AfterRestart)
    );
    assert_eq!(f.row(&tokens[1].canary_id).await.state, State::Settled(OutcomeKind::Late));
    assert_eq!(f.row(&tokens[2].canary_id).await.state, State::Settled(OutcomeKind::Lost));
}

#[tokio::test]
async fn after_a_restart_an_inbox_never_looked_at_holds_its_canaries_one_timeout() {
    let (f, _) = restarted(1).await;
    f.clock.advance(TIMEOUT - Duration::from_secs(1));
    f.tick().await;
    assert_eq!(f.counts(), [0.0; 5]);
    f.clock.advance(Duration::from_secs(1));
    f.tick().await;
    assert_eq!(f.counts(), [0.0, 1.0, 0.0, 0.0, 0.0]);
}

#[tokio::test]
async fn an_inbox_outage_holds_verdicts_until_the_inbox_is_seen_again() {
    let f = fixture();
    let (_, arrived) = f.sent().await;
    let (_, never) = f.sent().await;
    f.clock.advance(Duration::from_secs(10));
    f.matcher.inbox_behind("i");
    f.clock.advance(TIMEOUT);
    f.tick().await;
    assert_eq!(f.counts(), [0.0; 5], "nobody could look: no verdict yet");
    // Back: the one that came during the outage, in time by the server's word.
    assert_eq!(f.matcher.seen(&arrived, f.seen_at(Some(T0 + 20_000))).await, Disposition::Resolved);
    f.matcher.inbox_caught_up("i");
    f.tick().await;
    assert_eq!(f.counts(), [1.0, 1.0, 0.0, 0.0, 0.0]);
    let row = f.row(&arrived.canary_id).await;
    assert_eq!((row.latency_ms, row.observed), (Some(20_999), Observed::AfterGap));
    assert_eq!(f.row(&never.canary_id).await.state, State::Settled(OutcomeKind::Lost));
}

#[tokio::test]
async fn routes_a_reload_removed_lose_their_series_once_settled() {
    let f = fixture();
    let (_, token) = f.sent().await;
    f.matcher.retain_routes(&[]);
    assert!(f.count("mailcanary_canaries_sent_total") > 0.0, "kept while a canary is in flight");
    f.matcher.seen(&token, f.seen_at(None)).await;
    f.matcher.retain_routes(&[]);
    assert!(!f.metrics.encode_text().contains("probe=\"r\""), "{}", f.metrics.encode_text());
    assert!(f.matcher.status().is_empty());
}

/// The route's status by provider, as `/api/v1/status` lists it:
/// (provider, sent, delivered, in flight).
fn statuses(m: &Matcher) -> Vec<(String, u64, u64, usize)> {
    m.status().into_iter().map(|s| (s.provider, s.sent, s.delivered, s.in_flight)).collect()
}

#[tokio::test]
async fn a_reload_that_gives_a_route_name_another_provider_starts_it_anew_and_keeps_the_old_one_while_it_flies() {
    let mut f = fixture();
    let via = |provider: &str| Route { provider: provider.into(), ..f.route.clone() };
    let (p, q, z) = (via("p"), via("q"), via("z"));
    let reload = |f: &Fixture, route: &Route| {
        f.matcher.add_route(route);
        f.matcher.retain_routes(std::slice::from_ref(route));
    };
    let series = |f: &Fixture, provider: &str| f.metrics.encode_text().contains(&format!("provider=\"{provider}\""));
    let entry = |provider: &str, sent, delivered, in_flight| (provider.to_string(), sent, delivered, in_flight);
    f.metrics.task_started("route:r");

    // Nothing in flight: the route goes on through q, with nothing of p's.
    let (_, token) = f.sent().await;
    f.matcher.seen(&token, f.seen_at(None)).await;
    assert_eq!(statuses(&f.matcher), [entry("p", 1, 1, 0)]);
    reload(&f, &q);
    assert_eq!(statuses(&f.matcher), [entry("q", 0, 0, 0)]);
    assert!(series(&f, "q") && !series(&f, "p"), "{}", f.metrics.encode_text());

    // Back through p with a canary of q's in flight: q's route is retired,
    // not lost, and what its canary does counts to it alone.
    f.route = q.clone();
    let (_, flying) = f.sent().await;
    // A retired route is listed after the current one of its name, which
    // a lookup by name (the status page's badge) finds first.
    reload(&f, &z);
    assert_eq!(statuses(&f.matcher), [entry("z", 0, 0, 0), entry("q", 1, 0, 0)]);
    reload(&f, &p);
    f.clock.advance(Duration::from_secs(1));
    let tick = f.matcher.tick().await;
    assert!(tick.in_flight.is_empty(), "q's canary says nothing of p, which the name goes through now: {tick:?}");
    assert_eq!(statuses(&f.matcher), [entry("p", 0, 0, 0), entry("q", 1, 0, 1)]);
    let retired: Vec<bool> = f.matcher.status().iter().map(|s| s.retired).collect();
    assert_eq!(retired, [false, true], "the API says which is which");
    assert!(series(&f, "p") && series(&f, "q"));
    let text = f.metrics.encode_text();
    assert!(
        !text.lines().any(|l| l.starts_with("mailcanary_overdue") && l.contains("provider=\"q\"")),
        "a retired route is judged no more, and no alert reads its overdue gauges: {text}"
    );
    assert!(text.contains("mailcanary_task_restarts_total{task=\"route:r\"} 0"), "the name's task runs on: {text}");
    f.matcher.seen(&flying, f.seen_at(None)).await;
    f.matcher.tick().await;
    assert_eq!(statuses(&f.matcher), [entry("p", 0, 0, 0), entry("q", 1, 1, 0)]);
    // Settled: the next reload forgets q.
    reload(&f, &p);
    assert_eq!(statuses(&f.matcher), [entry("p", 0, 0, 0)]);
    assert!(series(&f, "p") && !series(&f, "q"), "{}", f.metrics.encode_text());

    // A retired route the name comes back to goes on where it was.
    f.route = p.clone();
    let (_, flying) = f.sent().await;
    reload(&f, &q);
    reload(&f, &p);
    let tick = f.matcher.tick().await;
    assert_eq!(tick.in_flight.get("r").map(Vec::len), Some(1), "p's own canary is p's again");
    assert_eq!(statuses(&f.matcher), [entry("p", 1, 0, 1)], "and q, with nothing in flight, is forgotten");
    f.matcher.seen(&flying, f.seen_at(None)).await;
    f.matcher.tick().await;
    assert_eq!(statuses(&f.matcher), [entry("p", 1, 1, 0)]);
    // Removed: its task's series goes with the rest.
    f.matcher.retain_routes(&[]);
    assert!(!f.metrics.encode_text().contains("route:r"));
}

#[tokio::test]
async fn a_canary_resumed_for_a_route_the_config_no_longer_has_keeps_a_status_until_it_settles() {
    let f = fixture();
    let (_, token) = f.sent().await;
    // Restarted with r through another provider.
    let metrics = Arc::new(Metrics::new());
    let restarted = Matcher::with_clock(f.ledger.clone(), metrics.clone(), f.clock.clone());
    restarted.register(metrics.clone());
    assert_eq!(restarted.resume().await.unwrap(), 1);
    let moved = Route { provider: "q".into(), ..f.route.clone() };
    restarted.add_route(&moved);
    restarted.retain_routes(std::slice::from_ref(&moved));
    restarted.inbox_caught_up("i");
    restarted.tick().await;
    assert_eq!(statuses(&restarted), [("q".to_string(), 0, 0, 0), ("p".to_string(), 0, 0, 1)]);
    let old = "probe=\"r\",provider=\"p\",inbox=\"i\"";
    assert!(
        metrics.encode_text().contains(&format!("mailcanary_canaries_in_flight{{{old}}} 1")),
        "its series, while it flies"
    );
    assert!(!metrics.encode_text().contains(&format!("mailcanary_overdue_bound_seconds{{{old}}}")), "judged no more");
    restarted.seen(&token, f.seen_at(None)).await;
    assert!(
        metrics.encode_text().contains(&format!("mailcanary_canaries_delivered_total{{{old},placement=\"inbox\"}} 1"))
    );
    assert_eq!(statuses(&restarted), [("q".to_string(), 0, 0, 0), ("p".to_string(), 0, 1, 1)]);
    restarted.retain_routes(std::slice::from_ref(&moved));
    assert_eq!(statuses(&restarted), [("q".to_string(), 0, 0, 0)]);
    assert!(!metrics.encode_text().contains("provider=\"p\""), "and its series went with it");
}

#[tokio::test]
async fn an_application_canary_is_matched_by_its_tag_after_a_restart() {
    let f = fixture();
    let key = SigningKey::new(Secret::new("0123456789abcdef"));
    let now = chrono::DateTime::from_timestamp_millis(f.clock.wall_ms()).unwrap();
    let tag = crate::trigger::tag::new();
    let canary =
        Canary::new(&f.route, "", "b@x.test", "inst", None, &key, now).tagged(tag.clone(), format!("b+{tag}@x.test"));
    f.matcher.expect(&canary, TIMEOUT).await.unwrap();
    f.matcher.accepted(&tag, &Accepted { provider_id: None }, Duration::ZERO).await;

    // A new process on the same ledger picks the tag up again.
    let metrics = Arc::new(Metrics::new());
    let restarted = Matcher::with_clock(f.ledger.clone(), metrics.clone(), f.clock.clone());
    restarted.register(metrics);
    restarted.add_route(&f.route);
    assert_eq!(restarted.resume().await.unwrap(), 1);
    restarted.inbox_caught_up("i");
    assert!(restarted.tag_in_flight(&tag).is_some());
    f.clock.advance(Duration::from_millis(800));
    let wrong = Sighting { mismatch: Some(Expectation::Subject), ..f.seen_at(Some(f.clock.wall_ms())) };
    assert_eq!(restarted.seen_tag(&tag, wrong).await, Disposition::Resolved);
    let row = f.row(&tag).await;
    assert_eq!((row.state, row.expectation), (State::Settled(OutcomeKind::Mismatched), Some(Expectation::Subject)));
    assert_eq!(restarted.status()[0].last_outcome, Some(OutcomeKind::Mismatched));

    // Settled: a second email to it is stale; a tag never made here is unknown.
    assert!(restarted.tag_in_flight(&tag).is_none());
    assert_eq!(restarted.seen_tag(&tag, f.seen_at(None)).await, Disposition::Unmatched(Unmatched::Duplicate));
    let unknown = crate::trigger::tag::new();
    assert_eq!(restarted.seen_tag(&unknown, f.seen_at(None)).await, Disposition::Unmatched(Unmatched::UnknownTag));
}

#[tokio::test]
async fn a_claimed_canary_is_judged_by_its_first_sight_however_long_its_check_takes() {
    let f = fixture();
    let tagged = |f: &Fixture| {
        let key = SigningKey::new(Secret::new("0123456789abcdef"));
        let now = chrono::DateTime::from_timestamp_millis(f.clock.wall_ms()).unwrap();
        let tag = crate::trigger::tag::new();
        Canary::new(&f.route, "", "b@x.test", "inst", None, &key, now).tagged(tag.clone(), format!("b+{tag}@x.test"))
    };
    let (canary, dropped) = (tagged(&f), tagged(&f));
    for c in [&canary, &dropped] {
        f.matcher.expect(c, TIMEOUT).await.unwrap();
        f.matcher.accepted(&c.id, &Accepted { provider_id: None }, Duration::ZERO).await;
    }

    // Seen 2 s after acceptance; its link takes past the deadline to answer.
    f.clock.advance(Duration::from_secs(2));
    let first = f.seen_at(None);
    let claim = f.matcher.claim(&canary.id, first.at).expect("in flight");
    assert!(f.matcher.claim(&canary.id, first.at).is_none(), "claimed once");
    // A claim whose task ends before settling gives the canary back to its deadline.
    drop(f.matcher.claim(&dropped.id, first.at).expect("in flight"));
    f.clock.advance(TIMEOUT * 3);
    f.tick().await;
    assert_eq!(f.count("mailcanary_canaries_lost_total"), 1.0, "only the one given back is lost");
    assert_eq!(f.row(&dropped.id).await.state, State::Settled(OutcomeKind::Lost));
    // A second email to the tag meanwhile does not settle it.
    let again = f.matcher.seen_tag(&canary.id, f.seen_at(None)).await;
    assert_eq!(again, Disposition::Unmatched(Unmatched::Duplicate));

    assert_eq!(claim.settle(first).await, Disposition::Resolved);
    let row = f.row(&canary.id).await;
    assert_eq!(
        (row.state, row.latency_ms, row.observed),
        (State::Settled(OutcomeKind::Delivered), Some(2_000), Observed::Live)
    );
    assert_eq!(f.count("mailcanary_canaries_delivered_total"), 1.0);
}

/// The fixture's route under provider health, delivered once: `p` healthy.
async fn healthy() -> Fixture {
    let f = fixture();
    let yaml = "global: { instance: t, health: { down_after: 1, up_after: 1 } }
providers:
  - { name: p, type: smtp, host: 127.0.0.1, port: 25, tls: none, from: a@x.test }
inboxes:
  - { name: i, address: b@x.test, imap: { host: 127.0.0.1, port: 143, tls: none, username: u, password: pw } }
probes:
  - { name: r, provider: p, inbox: i }
";
    let config = crate::config::parse(yaml, &HashMap::new()).unwrap();
    f.health.configure(&config);
    let (_, token) = f.sent().await;
    assert!(matches!(f.matcher.seen(&token, f.seen_at(None)).await, Disposition::Resolved));
    f.tick().await;
    assert_eq!(f.health.providers()[0].state, crate::health::State::Healthy);
    f
}

#[tokio::test]
async fn an_inbox_unseen_while_running_makes_its_provider_unknown() {
    let f = healthy().await;
    f.matcher.inbox_behind("i");
    f.tick().await;
    assert_eq!(f.health.providers()[0].state, crate::health::State::Unknown, "no usable evidence: fail open");
}

#[tokio::test]
async fn watchers_stopped_for_a_shutdown_change_no_provider_state() {
    let f = healthy().await;
    let before = f.ledger.call(|l| l.transitions_since(0)).await.unwrap().len();
    f.health.stop_judging();
    f.matcher.inbox_behind("i");
    f.tick().await;
    assert_eq!(f.health.providers()[0].state, crate::health::State::Healthy);
    let after = f.ledger.call(|l| l.transitions_since(0)).await.unwrap().len();
    assert_eq!(after, before, "no change recorded in the ledger");
}

/// A consumer registered with the matcher: the verdicts it was handed, and
/// what the metrics (registered before it) had counted by then.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, OutcomeKind, f64)>>, Mutex<Option<Arc<Metrics>>>);

impl crate::settled::Consumer for Seen {
    fn settled(&self, s: &crate::settled::Settled) {
        let metrics = self.1.lock().unwrap().clone().unwrap();
        let text = metrics.encode_text();
        let lost: f64 = text
            .lines()
            .filter(|l| l.starts_with("mailcanary_canaries_lost_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        self.0.lock().unwrap().push((s.canary.clone(), s.outcome.kind(), lost));
    }
}

#[tokio::test]
async fn a_registered_consumer_gets_each_verdict_once_after_the_others() {
    let f = fixture();
    let seen = Arc::new(Seen::default());
    *seen.1.lock().unwrap() = Some(f.metrics.clone());
    f.matcher.register(seen.clone());
    let (lost, token) = f.sent().await;
    let (refused, _) = f.expect().await;
    let error = SendError::new(crate::outcome::SendReason::Auth, "535");
    f.matcher.failed(&refused.id, &error, Duration::ZERO).await;
    f.clock.advance(TIMEOUT);
    // Lost at the tick, then late when it turns up; racing sightings count once.
    f.tick().await;
    let _ = tokio::join!(f.matcher.seen(&token, f.seen_at(None)), f.matcher.seen(&token, f.seen_at(None)));
    let got: Vec<(String, OutcomeKind)> = seen.0.lock().unwrap().iter().map(|(c, k, _)| (c.clone(), *k)).collect();
    assert_eq!(
        got,
        [
            (refused.id.clone(), OutcomeKind::Refused),
            (lost.id.clone(), OutcomeKind::Lost),
            (lost.id.clone(), OutcomeKind::Late)
        ]
    );
    assert_eq!(f.counts(), [0.0, 1.0, 1.0, 0.0, 1.0], "the metrics counted the same verdicts");
    let lost_counted: Vec<f64> = seen.0.lock().unwrap().iter().map(|(_, _, lost)| *lost).collect();
    assert_eq!(lost_counted, [0.0, 1.0, 1.0], "the metrics, registered first, had counted each verdict already");
}
