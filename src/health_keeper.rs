//! Provider health as the service keeps it: which providers and routes
//! are judged (from the config, and from the ledger after a restart), the
//! verdicts weighed as they are settled (a consumer of crate::settled), the
//! canaries in flight as each tick of the matcher finds them, and each
//! tick's decision, whose changes are recorded in the ledger before the
//! metrics show them; the board's answers for the API, the status page and
//! the steering signals (crate::steer). crate::health holds the rules.

use crate::clock::Clock;
use crate::config::Config;
use crate::health::{Board, Judged, ProviderHealth};
use crate::ledger::{LedgerError, LedgerThread};
use crate::matcher::Tick;
use crate::metrics::Metrics;
use crate::settled::{Consumer, Settled};
use crate::steer::Steering;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

mod confirm;
use confirm::Confirmer;

/// How far back a restart reads the routes' deliveries to learn from: a
/// day, whatever the window (at one canary a minute, 1,000 take 17 hours).
const LEARN_LOOKBACK_MS: i64 = 24 * 3600 * 1000;
/// At most this many deliveries per route are read at a restart, over
/// every route: more than a bound needs (20), without reading the whole
/// day for a route that never fills its window.
const LEARN_ROWS_PER_ROUTE: usize = 100;

pub struct HealthKeeper {
    board: Mutex<Board>,
    ledger: LedgerThread,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// What the steering signals say, decided at each tick (crate::steer).
    steering: watch::Sender<Arc<Steering>>,
    /// Set once the service stops its watchers: from then on no provider
    /// changes state (`stop_judging`).
    stopping: AtomicBool,
    /// Sends the confirmations a suspicion asks for (confirm.rs).
    confirmer: Mutex<Confirmer>,
    /// When this process began keeping health (wall clock, ms).
    started_ms: i64,
}

/// Every verdict but a late one is evidence (crate::outcome::OutcomeKind::evidence).
impl Consumer for HealthKeeper {
    fn settled(&self, s: &Settled) {
        let mut board = self.board();
        if let Some(evidence) = s.outcome.kind().evidence()
            && board.judges(&s.route)
            && let Some(bound) = board.record(s.route.probe(), s.accepted, evidence, s.outcome.latency_seconds())
        {
            // Under the board's lock: see `configure`.
            self.metrics.overdue_bound.get_or_create(&s.route).set(bound.as_secs_f64());
        }
    }
}

impl HealthKeeper {
    pub fn new(ledger: LedgerThread, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> HealthKeeper {
        let started_ms = clock.wall_ms();
        HealthKeeper {
            board: Mutex::new(Board::default()),
            ledger,
            metrics,
            clock,
            steering: watch::channel(Arc::default()).0,
            stopping: AtomicBool::new(false),
            confirmer: Mutex::default(),
            started_ms,
        }
    }

    fn confirmer(&self) -> MutexGuard<'_, Confirmer> {
        self.confirmer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A route started: the confirmations of its suspicions go through `confirm`.
    pub fn route_started(&self, probe: &str, confirm: Arc<crate::probe::Confirm>) {
        self.confirmer().register(probe, confirm);
    }

    fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the providers and routes whose health is decided (crate::health).
    pub fn configure(&self, config: &Config) {
        let mut providers: Vec<Judged> = config
            .providers
            .iter()
            .map(|p| Judged {
                name: p.name().to_string(),
                thresholds: p.health(&config.global.health),
                nexthop: p.nexthop().map(str::to_string),
                application: false,
            })
            .collect();
        // Application triggers are judged too, with the global thresholds,
        // but never ranked among providers nor steered to.
        for t in config.routes.iter().filter_map(|r| r.trigger.as_deref()) {
            if !providers.iter().any(|p| p.name == t.name) {
                providers.push(Judged {
                    name: t.name.clone(),
                    thresholds: config.global.health.with(None),
                    nexthop: None,
                    application: true,
                });
            }
        }
        let routes: Vec<_> =
            config.routes.iter().map(|r| (r.name.clone(), r.provider.clone(), r.inbox.clone())).collect();
        let mut health = self.board();
        for (provider, _) in health.states() {
            if !providers.iter().any(|p| p.name == provider) {
                self.metrics.remove_provider(&provider);
            }
        }
        // A route the board judges no more (removed, or its name given to
        // another provider or inbox) loses its overdue gauges here, under
        // the board's lock, so that no verdict or decision racing the
        // reload brings them back (both set them under it).
        let judged_before = health.bounds();
        health.configure(&providers, &routes, self.clock.wall_ms());
        for (probe, provider, inbox, _) in judged_before {
            let labels = crate::metrics::RouteLabels::new(probe, provider, inbox);
            if !health.judges(&labels) {
                self.metrics.retire_route(&labels);
            }
        }
        for (provider, state) in health.states() {
            self.metrics.set_provider_state(&provider, state);
        }
        let bounds = health.bounds();
        drop(health);
        self.show_bounds(bounds);
        let probes: Vec<&str> = routes.iter().map(|(probe, _, _)| probe.as_str()).collect();
        self.confirmer().configure(&probes, config.global.health.confirmations_max_per_minute);
    }

    /// Each route's bound in force, on its gauge.
    fn show_bounds(&self, bounds: Vec<(String, String, String, std::time::Duration)>) {
        for (probe, provider, inbox, bound) in bounds {
            let labels = crate::metrics::RouteLabels::new(probe, provider, inbox);
            self.metrics.overdue_bound.get_or_create(&labels).set(bound.as_secs_f64());
        }
    }

    /// Puts back the providers that were down when the service stopped,
    /// and what each route delivered lately (what its bound is learned
    /// from), so that a restart does not wait on the fixed bound until
    /// every route has delivered enough again.
    pub async fn restore(&self) -> Result<(), LedgerError> {
        let windows = self.board().learning_windows();
        if let Some(per_route) = windows.iter().map(|(_, w)| *w).max() {
            let routes: Vec<(String, String)> = windows.into_iter().map(|(route, _)| route).collect();
            // Sent before this process started: what it sent since, it learns live.
            let window = (self.started_ms - LEARN_LOOKBACK_MS, self.started_ms);
            let max_rows = routes.len().saturating_mul(LEARN_ROWS_PER_ROUTE);
            let asked = routes.clone();
            let history = self.ledger.call(move |l| l.recent_latencies(&asked, window, per_route, max_rows)).await?;
            let mut health = self.board();
            for ((probe, _), latencies) in routes.iter().zip(&history) {
                health.learn_history(probe, latencies);
            }
            let bounds = health.bounds();
            drop(health);
            self.show_bounds(bounds);
        }
        let last = self.ledger.call(|l| l.last_transitions()).await?;
        let mut health = self.board();
        for t in last.into_iter().filter(|t| t.to == crate::health::State::Down) {
            health.restore_down(&t.provider, t.at_ms, t.reason);
        }
        for (provider, state) in health.states() {
            self.metrics.set_provider_state(&provider, state);
        }
        drop(health);
        self.steer();
        Ok(())
    }

    /// Outcomes `provider`'s real messages reached (crate::traffic), each at
    /// its event's time: evidence for its health at the next decision
    /// (crate::health::traffic).
    pub fn observe_traffic(&self, provider: &str, effects: &[crate::traffic_event::Effects], now_ms: i64) {
        let outcomes = effects.iter().flat_map(|fx| fx.outcomes.iter().map(move |o| (*o, fx.at_ms.unwrap_or(now_ms))));
        self.board().traffic.observe(provider, outcomes, now_ms);
    }

    /// When real traffic counts against a provider (`traffic.health`).
    pub fn configure_traffic(&self, thresholds: crate::health::traffic::TrafficThresholds) {
        self.board().traffic.configure(thresholds);
    }

    /// Every provider's health, best first; application send paths too.
    pub fn providers(&self) -> Arc<Vec<Arc<ProviderHealth>>> {
        self.board().providers()
    }

    /// The steering signals' decision, as of the last tick (crate::steer).
    pub fn steering(&self) -> tokio::sync::watch::Receiver<Arc<Steering>> {
        self.steering.subscribe()
    }

    /// Decides the steering signals from the board now, keeping the last
    /// decision's next hop while it is as good as the best.
    fn steer(&self) {
        let ranked = self.board().providers();
        let previous = self.steering.borrow().clone();
        let next = crate::steer::decide(&ranked, Some(&previous));
        // Those who follow the decision hear of it only when it changes.
        self.steering.send_if_modified(|current| {
            let changed = **current != next;
            if changed {
                *current = Arc::new(next);
            }
            changed
        });
    }

    /// Stops deciding providers' states, for good: the service is stopping
    /// its watchers, and an inbox no longer watched because we are leaving
    /// says nothing of any provider. Without this every stop would record
    /// each provider going `unknown` (every inbox unseen) in the ledger, and
    /// `report` and the status page would show those changes as history.
    pub fn stop_judging(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Between ticks, at the deadline the last decision gave: decides now
    /// if a canary in flight has passed its route's bound since (a
    /// suspicion is acted on when it is one, not up to a tick later), and
    /// says when to look next. Unless one has, the board is asked only
    /// about the canaries in flight: no decision over every route.
    pub async fn look(&self, tick: &Tick) -> Option<Duration> {
        let (passed, next) = self.board().due(&tick.in_flight);
        if passed { self.decide(tick).await } else { next }
    }

    /// Decides every provider's state from the evidence so far (the
    /// verdicts consumed, and what the matcher's `tick` found in flight);
    /// records, counts and logs each change. Returns how long until a
    /// canary in flight now passes its route's bound (`look` then).
    pub async fn decide(&self, tick: &Tick) -> Option<Duration> {
        if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let (changes, asks, next) = {
            let mut health = self.board();
            let suspicions = health.observe(&tick.in_flight, &tick.live_inboxes);
            let asks: Vec<_> = suspicions.iter().flat_map(|probe| health.confirmations(probe)).collect();
            let next = health.due(&tick.in_flight).1;
            let changes = health.decide(tick.now_ms);
            // Under the board's lock: see `configure`.
            for r in health.take_overdue_runs() {
                let labels = crate::metrics::RouteLabels::new(r.probe, r.provider, r.inbox);
                self.metrics.overdue_in_a_row.get_or_create(&labels).set(i64::from(r.run));
            }
            (changes, asks, next)
        };
        self.steer();
        // Confirmations go before anything waits on the ledger: the sooner
        // they are sent, the sooner the suspicion is settled either way.
        if !asks.is_empty() {
            for provider in self.confirmer().ask(&asks, self.clock.now()) {
                self.metrics.confirmations.get_or_create(&crate::metrics::ProviderLabels { provider }).inc();
            }
        }
        for t in changes {
            // The ledger first, as for every outcome: what the metrics show is recorded.
            let record = t.clone();
            if let Err(e) = self.ledger.call(move |l| l.record_transition(&record)).await {
                tracing::error!(error = %e, "ledger write failed");
            }
            self.metrics.set_provider_state(&t.provider, t.to);
            self.metrics
                .provider_state_changes
                .get_or_create(&crate::metrics::ProviderLabels { provider: t.provider.clone() })
                .inc();
            if t.to == crate::health::State::Down {
                tracing::warn!(provider = %t.provider, from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason, "provider state changed");
            } else {
                tracing::info!(provider = %t.provider, from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason, "provider state changed");
            }
        }
        next
    }
}

#[cfg(test)]
mod tests;
