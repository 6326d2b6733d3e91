//! The one place where a canary's fate is decided: expected before it is
//! sent, then accepted or refused, then delivered, bounced, lost at its
//! deadline, or late after that. Every outcome goes through [`Matcher::settle`]:
//! the ledger's conditional update first (which lets each outcome happen
//! once, across processes too), then the metrics, the route status, the log
//! and the events, in that order.
//!
//! Deadlines run on the monotonic clock. A canary whose inbox nobody could
//! watch (after a restart, during an IMAP outage or a reload) is not judged
//! until its inbox has been seen whole again, and when it turns up it is
//! judged by when the server received it, not by when we looked.

pub mod book;
mod status;

pub use status::RouteStatus;

use crate::bounce::Bounce;
use crate::canary::{Canary, Token};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Route};
use crate::health::{Board, Evidence, ProviderHealth};
use crate::insight::Insight;
use crate::ledger::{LedgerError, LedgerThread, Row, Seen, State};
use crate::metrics::{Metrics, RouteLabels};
use crate::outcome::{Expectation, Observed, Outcome, Placement, Unmatched};
use crate::provider::{Accepted, SendError};
use book::{Book, Early, InFlight};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// What happened to a canary, as it happens.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Sent { canary: String, probe: String, provider_id: Option<String>, send_seconds: f64 },
    Settled { canary: String, probe: String, outcome: Outcome, insight: Insight },
}

/// What the inbox watcher should do with a verified canary of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Counted now (delivered, late or bounced): clean it up.
    Resolved,
    /// Not counted: leave it and count it unmatched for this reason.
    Unmatched(Unmatched),
}

/// The claim on an application canary whose email was seen and is being
/// checked (its link followed) away from the watcher: see [`Matcher::claim`].
/// Dropped unsettled (its task ended early), the canary is in flight as
/// before, and its deadline judges it.
pub struct Claim {
    matcher: Arc<Matcher>,
    tag: String,
}

impl Claim {
    /// Settles the canary by its sighting (whose moment is its first sight).
    pub async fn settle(self, sighting: Sighting) -> Disposition {
        self.matcher.seen_id(&self.tag, sighting, true).await
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Once settled, it is out of the book and this does nothing.
        if let Some(c) = self.matcher.book().in_flight.get_mut(&self.tag) {
            c.claimed = None;
        }
    }
}

/// A moment on the matcher's two clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sight {
    pub now: std::time::Instant,
    pub wall_ms: i64,
}

/// A verified canary of this instance, seen in a mailbox.
pub struct Sighting {
    /// When the watcher first saw it: its headers fetched, before anything
    /// slower (a body read, a link followed). Its latency ends here.
    pub at: Sight,
    pub placement: Placement,
    /// What its headers say about its path.
    pub insight: Insight,
    /// When the server received it (INTERNALDATE), in Unix milliseconds.
    pub received_ms: Option<i64>,
    /// The expectation an application's email failed (crate::trigger), if any.
    pub mismatch: Option<Expectation>,
}

pub struct Matcher {
    ledger: LedgerThread,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    book: Mutex<Book>,
    routes: Mutex<HashMap<String, RouteStatus>>,
    health: Mutex<Board>,
    events: broadcast::Sender<Event>,
    /// The expectations of each application canary route that has some, by probe.
    expectations: Mutex<HashMap<String, Arc<crate::trigger::Expect>>>,
}

fn labels(probe: &str, provider: &str, inbox: &str) -> RouteLabels {
    RouteLabels { probe: probe.to_string(), provider: provider.to_string(), inbox: inbox.to_string() }
}

fn secs(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

/// A pending outcome: its ledger write is queued, the rest waits for it.
type Settling<'a> = std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

impl Matcher {
    pub fn new(ledger: LedgerThread, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(ledger, metrics, Arc::new(SystemClock))
    }

    pub fn with_clock(ledger: LedgerThread, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        Matcher {
            ledger,
            metrics,
            clock,
            book: Mutex::new(Book::default()),
            routes: Mutex::new(HashMap::new()),
            health: Mutex::new(Board::default()),
            events: broadcast::channel(1024).0,
            expectations: Mutex::new(HashMap::new()),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<String, RouteStatus>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Board> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expectations(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<crate::trigger::Expect>>> {
        self.expectations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Now, as a sighting's moment: the watcher takes it when it fetches
    /// a message's headers.
    pub fn sight(&self) -> Sight {
        Sight { now: self.clock.now(), wall_ms: self.clock.wall_ms() }
    }

    /// Sets the providers and routes whose health is decided (crate::health).
    pub fn configure_health(&self, config: &Config) {
        let mut providers: Vec<_> = config
            .providers
            .iter()
            .map(|p| (p.name().to_string(), p.health(&config.global.health), p.nexthop().map(str::to_string)))
            .collect();
        // Application triggers are providers too, with the global thresholds.
        for t in config.routes.iter().filter_map(|r| r.trigger.as_deref()) {
            if !providers.iter().any(|(p, _, _)| *p == t.name) {
                providers.push((t.name.clone(), config.global.health.with(None), None));
            }
        }
        let routes: Vec<_> =
            config.routes.iter().map(|r| (r.name.clone(), r.provider.clone(), r.inbox.clone())).collect();
        let mut health = self.health();
        for (provider, _) in health.states() {
            if !providers.iter().any(|(p, _, _)| *p == provider) {
                self.metrics.remove_provider(&provider);
            }
        }
        health.configure(&providers, &routes, self.clock.wall_ms());
        for (provider, state) in health.states() {
            self.metrics.set_provider_state(&provider, state);
        }
    }

    /// Puts back the providers that were down when the service stopped.
    pub async fn restore_health(&self) -> Result<(), LedgerError> {
        let last = self.ledger.call(|l| l.last_transitions()).await?;
        let mut health = self.health();
        for t in last.into_iter().filter(|t| t.to == crate::health::State::Down) {
            health.restore_down(&t.provider, t.at_ms, t.reason);
        }
        for (provider, state) in health.states() {
            self.metrics.set_provider_state(&provider, state);
        }
        Ok(())
    }

    /// Every provider's health, best first.
    pub fn providers(&self) -> Vec<ProviderHealth> {
        self.health().providers()
    }

    /// Postfix's next hop: that of the best usable provider that has one.
    pub fn nexthop(&self) -> Option<String> {
        self.health().nexthop()
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The ledger this matcher writes to.
    pub fn ledger(&self) -> &LedgerThread {
        &self.ledger
    }

    /// Exports the opt-in series `detail` names, for the routes tracked now
    /// and those added later.
    pub fn configure_metrics(&self, detail: crate::metrics::Detail) {
        let routes: Vec<_> = self.routes().values().map(|s| labels(&s.probe, &s.provider, &s.inbox)).collect();
        self.metrics.set_detail(detail, &routes);
    }

    /// Starts tracking a route: its series exist at 0 from now on.
    pub fn add_route(&self, route: &Route) {
        let l = labels(&route.name, &route.provider, &route.inbox);
        self.metrics.init_route(&l);
        if let Some(t) = &route.trigger {
            self.metrics.init_expectations(&l, &t.expect.expectations());
            match crate::trigger::Expect::new(&t.expect, t.ca_file.as_deref(), t.timeout) {
                Ok(Some(expect)) => {
                    self.expectations().insert(route.name.clone(), Arc::new(expect));
                }
                Ok(None) => {
                    self.expectations().remove(&route.name);
                }
                Err(e) => tracing::error!(probe = %route.name, error = %e, "cannot check this route's expectations"),
            }
        } else {
            self.expectations().remove(&route.name);
        }
        self.routes().entry(route.name.clone()).or_insert_with(|| RouteStatus {
            probe: route.name.clone(),
            provider: route.provider.clone(),
            inbox: route.inbox.clone(),
            ..Default::default()
        });
    }

    /// Keeps only `routes`: the others' series and status are forgotten,
    /// except while canaries of theirs are in flight (they are forgotten
    /// at a later reload, once settled).
    pub fn retain_routes(&self, routes: &[Route]) {
        let busy: Vec<String> = self.book().in_flight.values().map(|c| c.labels.probe.clone()).collect();
        self.routes().retain(|name, status| {
            let keep =
                routes.iter().any(|r| &r.name == name && r.provider == status.provider && r.inbox == status.inbox)
                    || busy.contains(name);
            if !keep {
                self.metrics.remove_route(&labels(&status.probe, &status.provider, &status.inbox));
            }
            keep
        });
    }

    /// Picks up canaries the ledger still has in flight (after a restart).
    pub async fn resume(&self) -> Result<usize, LedgerError> {
        let pending = self.ledger.call(|l| l.pending()).await?;
        let (now, now_ms) = (self.clock.now(), self.clock.wall_ms());
        let mut book = self.book();
        for p in &pending {
            let since_ms = p.accepted_ms.unwrap_or(p.created_ms);
            let c = InFlight::resumed(labels(&p.probe, &p.provider, &p.inbox), since_ms, p.deadline_ms, now, now_ms);
            book.in_flight.insert(p.id.clone(), c);
        }
        Ok(pending.len())
    }

    /// Step 1-2: recorded (durably) and expected before the canary leaves,
    /// so that even the fastest arrival finds it.
    pub async fn expect(&self, canary: &Canary, timeout: Duration) -> Result<(), LedgerError> {
        let deadline_ms = canary.created_ms + timeout.as_millis() as i64;
        let record = canary.clone();
        self.ledger.call(move |l| l.record_sending(&record, deadline_ms)).await?;
        let c = InFlight::new(
            labels(&canary.probe, &canary.provider, &canary.inbox),
            timeout,
            self.clock.now(),
            canary.created_ms,
        );
        self.book().in_flight.insert(canary.id.clone(), c);
        Ok(())
    }

    /// The provider took it: from now on its latency and deadline run.
    pub async fn accepted(&self, id: &str, accepted: &Accepted, send_duration: Duration) {
        let (now, now_ms) = (self.clock.now(), self.clock.wall_ms());
        let (l, write, early) = {
            let mut book = self.book();
            let Some(c) = book.in_flight.get_mut(id) else { return };
            c.accept(now, now_ms);
            let (id2, provider_id, deadline_ms) = (id.to_string(), accepted.provider_id.clone(), c.deadline_ms);
            let send_ms = send_duration.as_millis() as i64;
            let write =
                self.ledger.call(move |l| l.record_sent(&id2, now_ms, send_ms, provider_id.as_deref(), deadline_ms));
            let l = c.labels.clone();
            // Seen before the answer came: settled now, with no wait to speak of.
            let early = match c.early.take() {
                Some(early) => {
                    let c = book.in_flight.remove(id).expect("just found");
                    Some(self.settle_early(id, c, early, now_ms))
                }
                None => None,
            };
            (l, write, early)
        };
        log_err(write.await);
        self.metrics.accepted(&l, send_duration.as_secs_f64());
        if let Some(status) = self.routes().get_mut(&l.probe) {
            status.sent += 1;
            status.last_sent_ms = Some(now_ms);
        }
        let _ = self.events.send(Event::Sent {
            canary: id.to_string(),
            probe: l.probe.clone(),
            provider_id: accepted.provider_id.clone(),
            send_seconds: send_duration.as_secs_f64(),
        });
        if let Some(settling) = early {
            settling.await;
        }
    }

    /// Its send was given up before the provider answered (a reload or a
    /// stop): the provider may have taken it, so it waits for its deadline
    /// like any canary sent, and stays `sending` in the ledger.
    pub fn unanswered(&self, id: &str) {
        let (now, now_ms) = (self.clock.now(), self.clock.wall_ms());
        if let Some(c) = self.book().in_flight.get_mut(id).filter(|c| !c.accepted) {
            c.accept(now, now_ms);
        }
    }

    /// The provider said no. Refused, unless the canary already came back:
    /// then the provider took it whatever it said, and it is settled by
    /// what came back.
    pub async fn failed(&self, id: &str, error: &SendError, send_duration: Duration) {
        let settling = {
            let mut book = self.book();
            match book.in_flight.get(id) {
                None => return,
                Some(c) if c.early.is_some() => None,
                Some(_) => {
                    let c = book.in_flight.remove(id).expect("just found");
                    let refused = Outcome::Refused { reason: error.reason(), detail: error.detail.clone() };
                    Some(self.settle(id, c.labels, refused, Insight::default(), self.clock.wall_ms()))
                }
            }
        };
        match settling {
            Some(settling) => {
                settling.await;
            }
            None => {
                tracing::warn!(canary = %id, reason = error.reason().as_str(), error = %error.detail, "the provider reported a failure, but the canary already came back: counted as accepted");
                self.accepted(id, &Accepted { provider_id: None }, send_duration).await;
            }
        }
    }

    /// A verified canary of this instance was seen.
    pub async fn seen(&self, token: &Token, sighting: Sighting) -> Disposition {
        self.seen_id(&token.canary_id, sighting, false).await
    }

    /// Whether the application canary tagged `tag` is in flight here, and
    /// if so what its email must look like (None: nothing).
    pub fn tag_in_flight(&self, tag: &str) -> Option<Option<Arc<crate::trigger::Expect>>> {
        let probe = self.book().in_flight.get(tag).map(|c| c.labels.probe.clone())?;
        Some(self.expectations().get(&probe).cloned())
    }

    /// An application's email to the canary address tagged `tag`: matched
    /// as a canary of that id, or left alone as stale (already settled)
    /// or unknown (never ours).
    pub async fn seen_tag(&self, tag: &str, sighting: Sighting) -> Disposition {
        match self.seen_id(tag, sighting, false).await {
            Disposition::Unmatched(Unmatched::Expired) if self.lookup(tag).await.is_none() => {
                Disposition::Unmatched(Unmatched::UnknownTag)
            }
            d => d,
        }
    }

    /// The watcher saw the application canary tagged `tag` at `at`, and
    /// checks it further (follows its link) away from its own loop. While
    /// the returned claim lives, only it settles the canary, judged as
    /// observed at `at`: its deadline passing does not make it lost, and
    /// another email to the tag is a duplicate. None if it is not in flight,
    /// or claimed already.
    pub fn claim(self: &Arc<Self>, tag: &str, at: Sight) -> Option<Claim> {
        match self.book().in_flight.get_mut(tag) {
            Some(c) if c.claimed.is_none() => c.claimed = Some(c.observed(at.now)),
            _ => return None,
        }
        Some(Claim { matcher: self.clone(), tag: tag.to_string() })
    }

    /// The canary `id` was seen; by `claimant`, the one who claimed it.
    async fn seen_id(&self, id: &str, sighting: Sighting, claimant: bool) -> Disposition {
        let (now, now_ms) = (sighting.at.now, sighting.at.wall_ms);
        let (settling, lookup) = {
            let mut book = self.book();
            match book.in_flight.get_mut(id) {
                // Seen already, and being checked: its claimant settles it.
                Some(c) if c.claimed.is_some() && !claimant => {
                    return Disposition::Unmatched(Unmatched::Duplicate);
                }
                Some(c) if !c.accepted => {
                    // Arrived before the provider's answer: settled on the answer.
                    c.early.get_or_insert(Early::Seen(sighting));
                    return Disposition::Resolved;
                }
                Some(_) => {
                    let c = book.in_flight.remove(id).expect("just found");
                    (Some(self.settle_sighting(id, c, sighting, now, now_ms)), None)
                }
                // Asked under the lock: any outcome queued before is seen.
                None => (None, Some((self.lookup(id), sighting))),
            }
        };
        if let Some(settling) = settling {
            settling.await;
            return Disposition::Resolved;
        }
        let (lookup, sighting) = lookup.expect("one or the other");
        let Some(row) = lookup.await else { return Disposition::Unmatched(Unmatched::Expired) };
        match row.state {
            State::Lost => {
                let late = Outcome::Late {
                    placement: sighting.placement,
                    latency_seconds: secs(now_ms - row.accepted_ms.unwrap_or(row.created_ms)),
                };
                let l = labels(&row.probe, &row.provider, &row.inbox);
                if self.settle(id, l, late, sighting.insight, now_ms).await {
                    Disposition::Resolved
                } else {
                    Disposition::Unmatched(Unmatched::Duplicate)
                }
            }
            State::Sending | State::Sent => Disposition::Unmatched(Unmatched::Expired),
            State::Delivered | State::Late | State::Failed | State::Bounced | State::Mismatched => {
                Disposition::Unmatched(Unmatched::Duplicate)
            }
        }
    }

    /// A DSN in a bounce inbox says delivery of a verified canary of this
    /// instance failed: it is settled now as bounced rather than lost at its
    /// deadline. A bounce for a canary already counted lost is kept in the
    /// ledger as the reason, and counted nowhere else.
    pub async fn bounced(&self, token: &Token, bounce: Bounce) -> Disposition {
        let id = token.canary_id.as_str();
        let (settling, lookup) = {
            let mut book = self.book();
            match book.in_flight.get_mut(id) {
                Some(c) if !c.accepted => {
                    c.early.get_or_insert(Early::Bounced(bounce));
                    return Disposition::Resolved;
                }
                Some(_) => {
                    let c = book.in_flight.remove(id).expect("just found");
                    let outcome = Outcome::Bounced { bounce: bounce.clone() };
                    (Some(self.settle(id, c.labels, outcome, Insight::default(), self.clock.wall_ms())), None)
                }
                None => {
                    let (id2, status, detail) = (id.to_string(), bounce.status.clone(), bounce.diagnostic.clone());
                    let after_lost =
                        self.ledger.call(move |l| l.record_bounce_after_lost(&id2, &status, detail.as_deref()));
                    (None, Some((after_lost, self.lookup(id))))
                }
            }
        };
        if let Some(settling) = settling {
            settling.await;
            return Disposition::Resolved;
        }
        let (after_lost, lookup) = lookup.expect("one or the other");
        let explained = after_lost.await;
        let row = lookup.await;
        match (explained, row) {
            (Ok(true), Some(row)) => {
                tracing::warn!(probe = %row.probe, canary = %row.id, status = %bounce.status, detail = %bounce.summary(), "a canary counted lost bounced");
                if let Some(s) = self.routes().get_mut(&row.probe) {
                    s.last_bounce = Some(bounce);
                }
                Disposition::Resolved
            }
            (Err(e), _) => {
                tracing::error!(error = %e, "ledger write failed");
                Disposition::Unmatched(Unmatched::Expired)
            }
            (_, Some(row)) if row.state != State::Sending && row.state != State::Sent => {
                Disposition::Unmatched(Unmatched::Duplicate)
            }
            _ => Disposition::Unmatched(Unmatched::Expired),
        }
    }

    /// The watcher of `inbox` has looked at all its folders and waits for news.
    pub fn inbox_caught_up(&self, inbox: &str) {
        self.book().caught_up(inbox);
    }

    /// The watcher of `inbox` stopped looking (its session failed or it stopped).
    pub fn inbox_behind(&self, inbox: &str) {
        let now = self.clock.now();
        self.book().behind(inbox, now);
    }

    /// Counts as lost every canary past its deadline whose inbox has been
    /// seen since (or that was held as long as it may be), and refreshes
    /// the in-flight gauges. Called about once a second.
    pub async fn tick(&self) {
        let (now, now_ms) = (self.clock.now(), self.clock.wall_ms());
        let (settling, per_route) = {
            let mut book = self.book();
            let mut settling: Vec<Settling<'_>> = book
                .due(now)
                .into_iter()
                .filter_map(|id| {
                    let c = book.in_flight.remove(&id)?;
                    Some(self.settle(&id, c.labels, Outcome::Lost, Insight::default(), now_ms))
                })
                .collect();
            // Came back early, and its send was given up on (`unanswered`).
            let early: Vec<String> = book
                .in_flight
                .iter()
                .filter(|(_, c)| c.accepted && c.early.is_some())
                .map(|(id, _)| id.clone())
                .collect();
            for id in early {
                let mut c = book.in_flight.remove(&id).expect("just found");
                let e = c.early.take().expect("just checked");
                settling.push(self.settle_early(&id, c, e, now_ms));
            }
            let mut per_route: HashMap<String, (usize, Duration)> = HashMap::new();
            for c in book.in_flight.values().filter(|c| c.accepted) {
                let entry = per_route.entry(c.labels.probe.clone()).or_default();
                entry.0 += 1;
                entry.1 = entry.1.max(now.saturating_duration_since(c.since));
            }
            (settling, per_route)
        };
        futures::future::join_all(settling).await;
        self.decide_health(&per_route, now_ms).await;
        for status in self.routes().values_mut() {
            let (count, oldest) = per_route.get(&status.probe).copied().unwrap_or_default();
            status.in_flight = count;
            status.oldest_in_flight_seconds = oldest.as_secs_f64();
            let l = labels(&status.probe, &status.provider, &status.inbox);
            self.metrics.in_flight.get_or_create(&l).set(count as i64);
            self.metrics.oldest_in_flight.get_or_create(&l).set(oldest.as_secs_f64());
        }
    }

    /// Decides every provider's state from the evidence so far; records,
    /// counts and logs each change.
    async fn decide_health(&self, per_route: &HashMap<String, (usize, Duration)>, now_ms: i64) {
        let oldest: HashMap<String, Duration> = per_route.iter().map(|(p, (_, age))| (p.clone(), *age)).collect();
        let live = self.book().live_inboxes();
        let changes = {
            let mut health = self.health();
            health.observe(&oldest, &live);
            health.decide(now_ms)
        };
        for t in changes {
            // The ledger first, as for every outcome: what the metrics show is recorded.
            let record = t.clone();
            log_err(self.ledger.call(move |l| l.record_transition(&record)).await);
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
    }

    /// How many canaries sent into `inbox` are waiting to be seen.
    pub fn waiting_in(&self, inbox: &str) -> usize {
        self.book().waiting_in(inbox)
    }

    /// The tags of the application canaries in flight into `inbox`.
    pub fn tags_in(&self, inbox: &str) -> Vec<String> {
        self.book().ids_in(inbox).into_iter().filter(|id| crate::trigger::tag::is_tag(id)).collect()
    }

    /// How many canaries in flight, in all.
    pub fn in_flight(&self) -> usize {
        self.book().in_flight.len()
    }

    /// How many canaries in flight are in inboxes being watched: those a
    /// drain may usefully wait for.
    pub fn in_flight_watched(&self) -> usize {
        self.book().watched()
    }

    /// Every route's status, by probe name.
    pub fn status(&self) -> Vec<RouteStatus> {
        let mut routes: Vec<RouteStatus> = self.routes().values().cloned().collect();
        routes.sort_by(|a, b| a.probe.cmp(&b.probe));
        routes
    }

    /// A canary taken out of the book, seen: delivered, or (found after a
    /// gap, and received after its deadline) lost and then late.
    fn settle_sighting(
        &self,
        id: &str,
        c: InFlight,
        s: Sighting,
        now: std::time::Instant,
        now_ms: i64,
    ) -> Settling<'_> {
        let observed = c.claimed.unwrap_or_else(|| c.observed(now));
        let arrived = |latency_seconds: f64| match s.mismatch {
            Some(expectation) => Outcome::Mismatched { expectation, placement: s.placement, latency_seconds },
            None => Outcome::Delivered { placement: s.placement, latency_seconds, observed },
        };
        if observed == Observed::Live {
            let outcome = arrived(now.saturating_duration_since(c.since).as_secs_f64());
            return self.settle(id, c.labels, outcome, s.insight, now_ms);
        }
        // Nobody was looking when it came: the server's word says when.
        // INTERNALDATE names a whole second; the arrival lies within it and
        // no later than now, and its latency is not understated.
        let received_ms = s.received_ms.unwrap_or(now_ms);
        let arrived_ms = (received_ms + 999).min(now_ms).max(received_ms);
        let latency_seconds = secs(arrived_ms - c.since_ms);
        if received_ms <= c.deadline_ms {
            let outcome = arrived(latency_seconds);
            return self.settle(id, c.labels, outcome, s.insight, now_ms);
        }
        let lost = self.settle(id, c.labels.clone(), Outcome::Lost, Insight::default(), now_ms);
        let (id, late) = (id.to_string(), Outcome::Late { placement: s.placement, latency_seconds });
        Box::pin(async move {
            lost.await;
            self.settle(&id, c.labels, late, s.insight, now_ms).await
        })
    }

    /// A canary that came back before its provider's answer, now accepted.
    fn settle_early(&self, id: &str, c: InFlight, early: Early, now_ms: i64) -> Settling<'_> {
        let outcome = match &early {
            Early::Seen(Sighting { placement, mismatch: Some(expectation), .. }) => {
                Outcome::Mismatched { expectation: *expectation, placement: *placement, latency_seconds: 0.0 }
            }
            Early::Seen(s) => {
                Outcome::Delivered { placement: s.placement, latency_seconds: 0.0, observed: Observed::Live }
            }
            Early::Bounced(bounce) => Outcome::Bounced { bounce: bounce.clone() },
        };
        let insight = match early {
            Early::Seen(s) => s.insight,
            Early::Bounced(_) => Insight::default(),
        };
        self.settle(id, c.labels, outcome, insight, now_ms)
    }

    /// Decides `outcome` for canary `id`, at `at_ms`. The ledger's
    /// conditional update is queued now, so that anything asked of the
    /// ledger after this call sees it; the returned future waits for it and,
    /// only if this call moved the canary, counts it in the metrics, the
    /// route status, the log and the events. True if it did.
    fn settle(&self, id: &str, l: RouteLabels, outcome: Outcome, insight: Insight, at_ms: i64) -> Settling<'_> {
        let write = {
            let (id, outcome, hops) = (id.to_string(), outcome.clone(), insight.hops.clone());
            self.ledger.call(move |ledger| record(ledger, &id, &outcome, hops, at_ms))
        };
        let id = id.to_string();
        Box::pin(async move {
            match write.await {
                Ok(true) => {}
                Ok(false) => return false,
                // The ledger could not say: count it rather than lose it.
                Err(e) => tracing::error!(error = %e, canary = %id, "ledger write failed"),
            }
            self.metrics.settled(&l, &outcome, &insight, at_ms);
            let evidence = match &outcome {
                Outcome::Delivered { .. } => Some(Evidence::Good),
                Outcome::Lost => Some(Evidence::Lost),
                Outcome::Bounced { .. } => Some(Evidence::Bounced),
                Outcome::Refused { .. } => Some(Evidence::Refused),
                Outcome::Mismatched { .. } => Some(Evidence::Mismatched),
                // Already counted when it was lost.
                Outcome::Late { .. } => None,
            };
            if let Some(evidence) = evidence {
                self.health().record(&l.probe, evidence, outcome.latency_seconds());
            }
            if let Some(status) = self.routes().get_mut(&l.probe) {
                status.settled(&outcome, &insight, at_ms);
            }
            log(&l, &id, &outcome);
            let _ = self.events.send(Event::Settled { canary: id, probe: l.probe, outcome, insight });
            true
        })
    }

    /// The ledger's row of a canary no longer in flight (None when it was
    /// never ours, was pruned, or cannot be read), queued now.
    fn lookup(&self, id: &str) -> impl Future<Output = Option<Row>> + Send + 'static {
        let id = id.to_string();
        let read = self.ledger.call(move |l| l.get(&id));
        async move {
            read.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "ledger read failed");
                None
            })
        }
    }
}

/// The ledger's conditional update for `outcome`: true if it moved the canary.
fn record(
    ledger: &crate::ledger::Ledger,
    id: &str,
    outcome: &Outcome,
    hops: Vec<crate::insight::Hop>,
    at_ms: i64,
) -> rusqlite::Result<bool> {
    let seen = |placement: Placement, latency_seconds: f64, observed: Observed| Seen {
        seen_ms: at_ms,
        latency_ms: (latency_seconds * 1000.0).round() as i64,
        placement,
        hops,
        observed,
    };
    match outcome {
        Outcome::Delivered { placement, latency_seconds, observed } => {
            ledger.record_delivered(id, &seen(*placement, *latency_seconds, *observed))
        }
        Outcome::Late { placement, latency_seconds } => {
            ledger.record_late(id, &seen(*placement, *latency_seconds, Observed::Live))
        }
        Outcome::Lost => ledger.record_lost(id, at_ms),
        Outcome::Bounced { bounce } => ledger.record_bounced(id, at_ms, &bounce.status, bounce.diagnostic.as_deref()),
        Outcome::Refused { reason, detail } => ledger.record_failed(id, *reason, detail),
        Outcome::Mismatched { expectation, placement, latency_seconds } => {
            ledger.record_mismatched(id, &seen(*placement, *latency_seconds, Observed::Live), *expectation)
        }
    }
}

fn log(l: &RouteLabels, id: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Delivered { placement, latency_seconds, observed } => {
            tracing::info!(probe = %l.probe, canary = %id, placement = placement.as_str(), latency_seconds, observed = observed.as_str(), "canary delivered")
        }
        Outcome::Lost => {
            tracing::warn!(probe = %l.probe, canary = %id, "canary lost: not seen within the route's timeout")
        }
        Outcome::Late { latency_seconds, .. } => {
            tracing::warn!(probe = %l.probe, canary = %id, latency_seconds, "canary arrived late")
        }
        Outcome::Bounced { bounce } => {
            tracing::warn!(probe = %l.probe, canary = %id, status = %bounce.status, detail = %bounce.summary(), "canary bounced")
        }
        Outcome::Refused { reason, detail } => {
            tracing::warn!(probe = %l.probe, canary = %id, reason = reason.as_str(), error = %detail, "send failed")
        }
        Outcome::Mismatched { expectation, latency_seconds, .. } => {
            tracing::warn!(probe = %l.probe, canary = %id, expectation = expectation.as_str(), latency_seconds, "the application's email arrived but failed an expectation")
        }
    }
}

fn log_err<T>(result: Result<T, LedgerError>) {
    if let Err(e) = result {
        tracing::error!(error = %e, "ledger write failed");
    }
}

#[cfg(test)]
mod tests;
