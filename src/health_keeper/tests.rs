//! A black hole under the shipped health defaults (`overdue_after` 90 s,
//! `down_after` 2, `up_after` 2, canaries every 60 s), driven second by
//! second on a fake clock: from the first overdue canary on, no steering
//! signal points into it, and once repaired it comes back after `up_after`
//! deliveries although the canaries it swallowed are still in flight.

use super::*;
use crate::canary::{Canary, SigningKey, Token};
use crate::clock::FakeClock;
use crate::ledger::Ledger;
use crate::ledger::LedgerThread;
use crate::matcher::{Matcher, Sighting};
use crate::outcome::Accepted;
use crate::outcome::Placement;
use crate::secret::Secret;
use std::collections::HashMap;
use std::time::Duration;

const T0: i64 = 1_800_000_000_000;
const YAML: &str = "global: { instance: t, defaults: { interval: 60s, timeout: 10m } }
providers:
  - { name: a, type: smtp, host: 127.0.0.1, port: 25, tls: none, from: a@x.test, failover: { nexthop: '[a.example]:587' } }
  - { name: b, type: smtp, host: 127.0.0.1, port: 25, tls: none, from: a@x.test, failover: { nexthop: '[b.example]:587' } }
inboxes:
  - { name: i, address: i@x.test, imap: { host: 127.0.0.1, port: 143, tls: none, username: u, password: pw } }
  - { name: j, address: j@x.test, imap: { host: 127.0.0.1, port: 143, tls: none, username: u, password: pw } }
probes:
  - matrix: { providers: [a, b], inboxes: [i, j] }
";

struct World {
    matcher: Arc<Matcher>,
    health: Arc<HealthKeeper>,
    clock: Arc<FakeClock>,
    config: crate::config::Config,
    key: SigningKey,
}

impl World {
    fn new() -> World {
        let clock = Arc::new(FakeClock::new(T0));
        let ledger = LedgerThread::spawn(Ledger::in_memory().unwrap());
        let metrics = Arc::new(Metrics::new());
        let matcher = Arc::new(Matcher::with_clock(ledger.clone(), metrics.clone(), clock.clone()));
        let health = Arc::new(HealthKeeper::new(ledger, metrics, clock.clone()));
        matcher.register(health.clone());
        let config = crate::config::parse(YAML, &HashMap::new()).unwrap();
        for r in &config.routes {
            matcher.add_route(r);
        }
        health.configure(&config);
        for i in ["i", "j"] {
            matcher.inbox_caught_up(i);
        }
        World { matcher, health, clock, config, key: SigningKey::new(Secret::new("0123456789abcdef")) }
    }

    /// A canary of every route accepted now; their tokens, by probe.
    async fn send_all(&self) -> Vec<(String, Token)> {
        let mut sent = Vec::new();
        for route in &self.config.routes {
            let now = chrono::DateTime::from_timestamp_millis(self.clock.wall_ms()).unwrap();
            let canary = Canary::new(route, "a@x.test", "i@x.test", "t", None, &self.key, now);
            self.matcher.expect(&canary, route.timeout).await.unwrap();
            self.matcher.accepted(&canary.id, &Accepted { provider_id: None }, Duration::ZERO).await;
            let token = Token { instance: "t".into(), probe: route.name.clone(), canary_id: canary.id, sent_ms: 0 };
            sent.push((route.provider.clone(), token));
        }
        sent
    }

    async fn see(&self, token: &Token) {
        let sighting = Sighting {
            at: self.matcher.sight(),
            placement: Placement::Inbox,
            insight: Default::default(),
            received_ms: None,
            mismatch: None,
        };
        self.matcher.seen(token, sighting).await;
    }

    fn steering(&self) -> crate::steer::Steering {
        (**self.health.steering().borrow()).clone()
    }
}

#[tokio::test]
async fn no_signal_points_into_a_black_hole_after_its_first_overdue_canary() {
    let w = World::new();
    let (hole_opens, repaired) = (150, 420);
    let mut first_overdue: Option<u64> = None;
    let (mut drained_at, mut back_at) = (None, None);
    let mut due: Vec<(u64, Token)> = Vec::new();
    for second in 0..600u64 {
        if second % 60 == 0 {
            for (provider, token) in w.send_all().await {
                let swallowed = provider == "a" && (hole_opens..repaired).contains(&second);
                if swallowed {
                    // Its canary would be overdue 90 s from now.
                    first_overdue.get_or_insert(second + 90);
                } else {
                    due.push((second + 2, token));
                }
            }
        }
        for (_, token) in due.iter().filter(|(at, _)| *at == second) {
            w.see(token).await;
        }
        w.health.decide(&w.matcher.tick().await).await;
        let s = w.steering();
        let a = s.get("a").unwrap().clone();
        if a.drain {
            drained_at.get_or_insert(second);
        }
        if second >= repaired && drained_at.is_some() && !a.drain && a.weight_percent == 100 {
            back_at.get_or_insert(second);
        }
        if first_overdue.is_some_and(|t| second >= t) && back_at.is_none() {
            assert_eq!(s.nexthop.as_deref(), Some("[b.example]:587"), "Postfix pointed into the hole at {second} s");
            assert!(
                a.drain || a.weight_percent <= crate::steer::SUSPECT_WEIGHT_PERCENT,
                "HAProxy at {second} s: {a:?}"
            );
            assert_eq!(w.health.providers()[0].provider, "b", "best first at {second} s");
        }
        w.clock.advance(Duration::from_secs(1));
    }
    let (first_overdue, drained_at, back_at) = (first_overdue.unwrap(), drained_at.unwrap(), back_at.unwrap());
    // The second swallowed canary goes overdue an interval after the first.
    assert_eq!(drained_at, first_overdue + 60, "down after down_after overdue canaries in a row");
    // Two in-time deliveries after the repair (its canaries at 420 s and 480 s), however many
    // swallowed ones are still in flight (their 10 min timeout runs to 750 s and beyond).
    assert_eq!(back_at, 480 + 2, "back after up_after deliveries");
    assert!(w.matcher.in_flight() >= 4, "the swallowed canaries are still in flight");
}

/// The ticker looks again when the next canary in flight passes its bound
/// (the fixed 90 s here), and decides then: not up to a tick later.
#[tokio::test]
async fn a_canary_passing_its_bound_between_ticks_is_decided_on_then() {
    let w = World::new();
    for (provider, token) in w.send_all().await {
        if provider == "b" {
            w.see(&token).await;
        }
    }
    let failing = |w: &World| w.health.providers().iter().find(|p| p.provider == "a").unwrap().newest_failing_routes;
    w.clock.advance(Duration::from_millis(300));
    let due = w.health.decide(&w.matcher.tick().await).await;
    assert_eq!(due, Some(Duration::from_millis(89_700)), "a's two canaries pass the bound then");
    w.clock.advance(Duration::from_millis(89_000));
    let early = w.health.look(&w.matcher.tick().await).await;
    assert_eq!((early, failing(&w)), (Some(Duration::from_millis(700)), 0), "too early: nothing decided");
    w.clock.advance(Duration::from_millis(700));
    let at = w.health.look(&w.matcher.tick().await).await;
    assert_eq!((at, failing(&w)), (None, 2), "decided at the deadline; nothing else in flight");
}

/// A reload gives route `r` (through a, swallowed) to provider b: the
/// canaries a swallowed, lost after the reload, are no evidence against b.
#[tokio::test]
async fn a_route_moved_to_another_provider_is_not_judged_by_what_the_old_one_lost() {
    let through = |provider: &str| {
        let yaml = YAML.replace(
            "  - matrix: { providers: [a, b], inboxes: [i, j] }",
            &format!("  - {{ name: r, provider: {provider}, inbox: i }}"),
        );
        crate::config::parse(&yaml, &HashMap::new()).unwrap()
    };
    let mut w = World::new();
    w.config = through("a");
    let reload = |w: &World| {
        for r in &w.config.routes {
            w.matcher.add_route(r);
        }
        w.matcher.retain_routes(&w.config.routes);
        w.health.configure(&w.config);
    };
    reload(&w);
    let state = |w: &World, p: &str| w.health.providers().iter().find(|h| h.provider == p).unwrap().state;
    for _ in 0..3 {
        w.send_all().await;
        w.clock.advance(Duration::from_secs(60));
        w.health.decide(&w.matcher.tick().await).await;
    }
    w.config = through("b");
    reload(&w);
    // Past their 10 min timeout: the three are lost now, under r's name.
    w.clock.advance(Duration::from_secs(600));
    w.health.decide(&w.matcher.tick().await).await;
    let lost = w.matcher.status().iter().find(|s| s.provider == "a").map(|s| s.lost);
    assert_eq!(lost, Some(3), "counted to the retired route through a");
    assert_eq!(state(&w, "b"), crate::health::State::Unknown, "b has sent nothing yet");
}
