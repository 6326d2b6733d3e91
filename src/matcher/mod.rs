//! The one place where a canary's fate is decided: expected before it is
//! sent, then accepted or refused, then delivered, bounced, lost at its
//! deadline, or late after that. Every outcome goes through [`Matcher::settle`]:
//! the ledger's conditional update first (which lets each outcome happen
//! once, across processes too), then one `Settled` to every consumer
//! (crate::settled), the event stream last.
//!
//! Deadlines run on the monotonic clock. A canary whose inbox nobody could
//! watch (after a restart, during an IMAP outage or a reload) is not judged
//! until its inbox has been seen whole again, and when it turns up it is
//! judged by when the server received it, not by when we looked.
//!
//! This file holds the [`Matcher`] itself: the send side of a canary's
//! life (expected, accepted, refused) and the tick that finds canaries past
//! their deadline (and tells provider health what is in flight:
//! crate::health_keeper). What the watchers bring in is judged in
//! `arrival.rs`, the fate decided in `settle.rs`, the routes kept in
//! `routes.rs` and `status.rs`, so that each can be read on its own.

mod arrival;
pub mod book;
mod routes;
mod settle;
mod status;

pub use arrival::{Claim, Sight, Sighting};
pub use status::{RouteStatus, Routes};

use crate::canary::Canary;
use crate::clock::{Clock, SystemClock};
use crate::insight::Insight;
use crate::ledger::{LedgerError, LedgerThread};
use crate::metrics::{Metrics, RouteLabels};
use crate::outcome::{Outcome, Unmatched};
use crate::provider::{Accepted, SendError};
use crate::settled::{Consumer, Settled};
use book::{Book, InFlight};
use serde::Serialize;
use settle::Settling;
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

/// The event stream (`subscribe`) carries every verdict.
impl Consumer for broadcast::Sender<Event> {
    fn settled(&self, s: &Settled) {
        let _ = self.send(Event::Settled {
            canary: s.canary.clone(),
            probe: s.route.probe().to_string(),
            outcome: s.outcome.clone(),
            insight: s.insight.clone(),
        });
    }
}

/// What a tick found: each route's canaries in flight (when the provider
/// took each, and how old it is), the inboxes watched live, and when.
#[derive(Debug, Default)]
pub struct Tick {
    pub in_flight: HashMap<String, Vec<(std::time::Instant, Duration)>>,
    pub live_inboxes: Vec<String>,
    pub now_ms: i64,
}

/// What the inbox watcher should do with a verified canary of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Counted now (delivered, late or bounced): clean it up.
    Resolved,
    /// Not counted: leave it and count it unmatched for this reason.
    Unmatched(Unmatched),
}

pub struct Matcher {
    ledger: LedgerThread,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    book: Mutex<Book>,
    routes: Arc<Routes>,
    events: broadcast::Sender<Event>,
    /// Whatever reacts to a verdict (crate::settled), in order.
    consumers: std::sync::RwLock<Vec<Arc<dyn Consumer>>>,
    /// The expectations of each application canary route that has some, by probe.
    expectations: Mutex<HashMap<String, Arc<crate::trigger::Expect>>>,
}

fn labels(probe: &str, provider: &str, inbox: &str) -> RouteLabels {
    RouteLabels::new(probe, provider, inbox)
}

fn secs(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

impl Matcher {
    /// A matcher writing to `ledger`. `metrics` shows what is sent and in
    /// flight; the verdicts reach the metrics (and the log) once they are
    /// registered as consumers (`register`; crate::runtime does).
    pub fn new(ledger: LedgerThread, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(ledger, metrics, Arc::new(SystemClock))
    }

    pub fn with_clock(ledger: LedgerThread, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        let routes = Arc::new(Routes::default());
        let events = broadcast::channel(1024).0;
        // The verdict's consumer the matcher answers for itself: the route
        // status. The rest (provider health, the metrics, the log, ...) are
        // registered where it is wired (crate::runtime); the event stream it
        // serves (`subscribe`) hears of a verdict after them all.
        let consumers: Vec<Arc<dyn Consumer>> = vec![routes.clone()];
        Matcher {
            ledger,
            metrics,
            clock,
            book: Mutex::new(Book::default()),
            routes,
            events,
            consumers: std::sync::RwLock::new(consumers),
            expectations: Mutex::new(HashMap::new()),
        }
    }

    /// Adds a consumer of every verdict from now on, after the others.
    pub fn register(&self, consumer: Arc<dyn Consumer>) {
        self.consumers.write().unwrap_or_else(|p| p.into_inner()).push(consumer);
    }

    fn consumers(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<dyn Consumer>>> {
        self.consumers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, status::Table> {
        self.routes.lock()
    }

    /// The route's labels as its series hold them, or new ones for a route
    /// no longer tracked.
    fn route_labels(&self, probe: &str, provider: &str, inbox: &str) -> RouteLabels {
        match self.routes().find_mut(probe, provider, inbox) {
            Some(s) => s.labels.clone(),
            None => labels(probe, provider, inbox),
        }
    }

    fn expectations(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<crate::trigger::Expect>>> {
        self.expectations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The ledger this matcher writes to.
    pub fn ledger(&self) -> &LedgerThread {
        &self.ledger
    }

    /// Picks up canaries the ledger still has in flight (after a restart).
    pub async fn resume(&self) -> Result<usize, LedgerError> {
        let pending = self.ledger.call(|l| l.pending()).await?;
        let (now, now_ms) = (self.clock.now(), self.clock.wall_ms());
        let resumed: Vec<_> = pending
            .iter()
            .map(|p| {
                let since_ms = p.accepted_ms.unwrap_or(p.created_ms);
                let labels = self.route_labels(&p.probe, &p.provider, &p.inbox);
                (p.id.clone(), InFlight::resumed(labels, since_ms, p.deadline_ms, now, now_ms))
            })
            .collect();
        self.book().in_flight.extend(resumed);
        Ok(pending.len())
    }

    /// Step 1-2: recorded (durably) and expected before the canary leaves,
    /// so that even the fastest arrival finds it.
    pub async fn expect(&self, canary: &Canary, timeout: Duration) -> Result<(), LedgerError> {
        let deadline_ms = canary.created_ms + timeout.as_millis() as i64;
        let record = canary.clone();
        self.ledger.call(move |l| l.record_sending(&record, deadline_ms)).await?;
        let c = InFlight::new(
            self.route_labels(&canary.probe, &canary.provider, &canary.inbox),
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
        let (l, early) = {
            let mut book = self.book();
            let Some(c) = book.in_flight.get_mut(id) else { return };
            c.accept(now, now_ms);
            let (id2, provider_id, deadline_ms) = (id.to_string(), accepted.provider_id.clone(), c.deadline_ms);
            let send_ms = send_duration.as_millis() as i64;
            // Nobody waits for it: lost in a power cut, the canary is
            // restored as `sending`, which one whose answer never came is anyway.
            self.ledger.write_behind(
                "sent",
                move |l| l.record_sent(&id2, now_ms, send_ms, provider_id.as_deref(), deadline_ms).map(drop),
                || {},
            );
            let l = c.labels.clone();
            // Seen before the answer came: settled now, with no wait to speak of.
            let early = match c.early.take() {
                Some(early) => {
                    let c = book.in_flight.remove(id).expect("just found");
                    Some(self.settle_early(id, c, early, now_ms))
                }
                None => None,
            };
            (l, early)
        };
        self.metrics.accepted(&l, send_duration.as_secs_f64());
        if let Some(status) = self.routes().get_mut(&l) {
            status.sent += 1;
            status.last_sent_ms = Some(now_ms);
        }
        let _ = self.events.send(Event::Sent {
            canary: id.to_string(),
            probe: l.probe().to_string(),
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
                    Some(self.settle(id, (c.labels, c.since), refused, Insight::default(), self.clock.wall_ms()))
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
    /// the in-flight gauges. Called once a second, and when a canary in
    /// flight passes its route's bound; what it found in flight is provider
    /// health's to decide on (crate::health_keeper).
    pub async fn tick(&self) -> Tick {
        let (now, now_ms) = (self.clock.now(), self.clock.wall_ms());
        let (settling, per_route) = {
            let mut book = self.book();
            let mut settling: Vec<Settling<'_>> = book
                .due(now)
                .into_iter()
                .filter_map(|id| {
                    let c = book.in_flight.remove(&id)?;
                    Some(self.settle(&id, (c.labels, c.since), Outcome::Lost, Insight::default(), now_ms))
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
            let mut per_route: HashMap<RouteLabels, Vec<(std::time::Instant, Duration)>> = HashMap::new();
            for c in book.in_flight.values().filter(|c| c.accepted) {
                per_route.entry(c.labels.clone()).or_default().push((c.since, now.saturating_duration_since(c.since)));
            }
            (settling, per_route)
        };
        futures::future::join_all(settling).await;
        let mut routes = self.routes();
        for status in routes.all_mut() {
            let in_flight = per_route.get(&status.labels).map_or(&[][..], |v| v.as_slice());
            let count = in_flight.len();
            let oldest = in_flight.iter().map(|(_, age)| *age).max().unwrap_or_default().as_secs_f64();
            // Most routes have nothing in flight most of the time: their
            // gauges are left as they are, not looked up every second.
            if status.in_flight == count && status.oldest_in_flight_seconds == oldest {
                continue;
            }
            status.in_flight = count;
            status.oldest_in_flight_seconds = oldest;
            self.metrics.in_flight.get_or_create(&status.labels).set(count as i64);
            self.metrics.oldest_in_flight.get_or_create(&status.labels).set(oldest);
        }
        // Provider health judges the routes of the config in force: the
        // canaries of a route retired by a reload say nothing of the
        // provider its name goes through now.
        let in_flight = per_route
            .into_iter()
            .filter(|(l, _)| routes.current(l.probe()).is_none_or(|s| s.labels == *l))
            .map(|(l, v)| (l.probe().to_string(), v))
            .collect();
        drop(routes);
        Tick { in_flight, live_inboxes: self.book().live_inboxes(), now_ms }
    }

    /// How many canaries sent into `inbox` are waiting to be seen.
    pub fn waiting_in(&self, inbox: &str) -> usize {
        self.book().waiting_in(inbox)
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
}

#[cfg(test)]
mod tests;
