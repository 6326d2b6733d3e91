//! The one place where a canary's fate is decided: expected before it is
//! sent, then accepted or failed, then delivered, lost at its deadline, or
//! late after that. Every decision goes through the ledger (which lets each
//! outcome happen once) before it reaches the metrics, the status API and
//! anyone subscribed to events.

use crate::bounce::Bounce;
use crate::canary::{Canary, Token};
use crate::config::Route;
use crate::insight::{self, Hop, Insight, Verdict};
use crate::ledger::{Ledger, Seen, State};
use crate::metrics::{
    AuthLabels, HopLabels, Metrics, Placement, PlacementLabels, ReasonLabels, RouteLabels, Unmatched,
};
use crate::provider::{Accepted, SendError};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// What happened to a canary, as it happens.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Sent { canary: String, probe: String, provider_id: Option<String>, send_seconds: f64 },
    Failed { canary: String, probe: String, reason: &'static str, detail: String },
    Delivered { canary: String, probe: String, placement: &'static str, latency_seconds: f64, insight: Insight },
    Lost { canary: String, probe: String },
    Late { canary: String, probe: String, latency_seconds: f64 },
    Bounced { canary: String, probe: String, bounce: Bounce },
}

/// What the inbox watcher should do with a verified canary of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Counted now (delivered, late or bounced): clean it up.
    Resolved,
    /// Not counted: leave it and count it unmatched for this reason.
    Unmatched(Unmatched),
}

/// The last known state of one route, for `/api/v1/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteStatus {
    pub probe: String,
    pub provider: String,
    pub inbox: String,
    pub in_flight: usize,
    pub oldest_in_flight_seconds: f64,
    pub last_sent_ms: Option<i64>,
    pub last_outcome: Option<&'static str>,
    pub last_outcome_ms: Option<i64>,
    pub last_latency_seconds: Option<f64>,
    pub last_delivery_ms: Option<i64>,
    pub last_failure_reason: Option<&'static str>,
    /// The receiving server's verdicts on the last canary seen.
    pub last_auth: Vec<Verdict>,
    /// The `Received` hops of the last canary seen, oldest first.
    pub last_hops: Vec<Hop>,
    /// The last bounce (DSN) that came back for this route.
    pub last_bounce: Option<Bounce>,
    pub sent: u64,
    pub failed: u64,
    pub delivered: u64,
    pub spam: u64,
    pub lost: u64,
    pub late: u64,
    pub bounced: u64,
}

struct InFlight {
    labels: RouteLabels,
    timeout: Duration,
    /// Wall-clock ms and monotonic instant of acceptance (or of creation
    /// until accepted, or when resumed after a restart).
    since_ms: i64,
    since: Option<Instant>,
    accepted: bool,
    deadline_ms: i64,
    /// Seen (or bounced) before the provider's answer arrived.
    early: Option<Early>,
}

/// What came back for a canary before its provider's answer did.
enum Early {
    Seen(Placement, i64, Insight),
    Bounced(Bounce, i64),
}

#[derive(Default)]
struct Book {
    in_flight: HashMap<String, InFlight>,
    routes: HashMap<String, RouteStatus>,
}

pub struct Matcher {
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
    book: Mutex<Book>,
    events: broadcast::Sender<Event>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn labels(probe: &str, provider: &str, inbox: &str) -> RouteLabels {
    RouteLabels { probe: probe.to_string(), provider: provider.to_string(), inbox: inbox.to_string() }
}

impl Matcher {
    pub fn new(ledger: Arc<Ledger>, metrics: Arc<Metrics>) -> Self {
        Matcher { ledger, metrics, book: Mutex::new(Book::default()), events: broadcast::channel(1024).0 }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn emit(&self, event: Event) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    /// Starts tracking a route: its series exist at 0 from now on.
    pub fn add_route(&self, route: &Route) {
        let l = labels(&route.name, &route.provider, &route.inbox);
        self.metrics.init_route(&l);
        self.book().routes.entry(route.name.clone()).or_insert_with(|| RouteStatus {
            probe: route.name.clone(),
            provider: route.provider.clone(),
            inbox: route.inbox.clone(),
            ..Default::default()
        });
    }

    /// Picks up canaries the ledger still has in flight (after a restart),
    /// timed from the ledger's wall-clock times and deadlines.
    pub fn resume(&self) -> crate::ledger::Result<usize> {
        let pending = self.ledger.pending()?;
        let mut book = self.book();
        for p in &pending {
            let since_ms = p.accepted_ms.unwrap_or(p.created_ms);
            book.in_flight.insert(
                p.id.clone(),
                InFlight {
                    labels: labels(&p.probe, &p.provider, &p.inbox),
                    timeout: Duration::from_millis(u64::try_from(p.deadline_ms - since_ms).unwrap_or(0)),
                    since_ms,
                    since: None,
                    // Whether or not the provider answered before the crash,
                    // it may have taken it: wait for it until its deadline.
                    accepted: true,
                    deadline_ms: p.deadline_ms,
                    early: None,
                },
            );
        }
        Ok(pending.len())
    }

    /// Step 1-2: recorded and expected before the canary leaves, so that even
    /// the fastest arrival finds it.
    pub fn expect(&self, canary: &Canary, timeout: Duration) -> crate::ledger::Result<()> {
        let deadline_ms = canary.created_ms + timeout.as_millis() as i64;
        self.ledger.record_sending(canary, deadline_ms)?;
        self.book().in_flight.insert(
            canary.id.clone(),
            InFlight {
                labels: labels(&canary.probe, &canary.provider, &canary.inbox),
                timeout,
                since_ms: canary.created_ms,
                since: Some(Instant::now()),
                accepted: false,
                deadline_ms,
                early: None,
            },
        );
        Ok(())
    }

    /// The provider took it: from now on its latency and deadline run.
    pub fn accepted(&self, id: &str, accepted: &Accepted, send_duration: Duration) {
        let (at, at_ms) = (Instant::now(), now_ms());
        let (l, early, deadline_ms) = {
            let mut book = self.book();
            let Some(c) = book.in_flight.get_mut(id) else { return };
            c.accepted = true;
            c.since = Some(at);
            c.since_ms = at_ms;
            c.deadline_ms = at_ms + c.timeout.as_millis() as i64;
            let out = (c.labels.clone(), c.early.take(), c.deadline_ms);
            if let Some(status) = book.routes.get_mut(&out.0.probe) {
                status.sent += 1;
                status.last_sent_ms = Some(at_ms);
            }
            out
        };
        log_err(self.ledger.record_sent(
            id,
            at_ms,
            send_duration.as_millis() as i64,
            accepted.provider_id.as_deref(),
            deadline_ms,
        ));
        self.metrics.canaries_sent.get_or_create(&l).inc();
        self.metrics.send_duration.get_or_create(&l).observe(send_duration.as_secs_f64());
        self.emit(Event::Sent {
            canary: id.to_string(),
            probe: l.probe.clone(),
            provider_id: accepted.provider_id.clone(),
            send_seconds: send_duration.as_secs_f64(),
        });
        match early {
            Some(Early::Seen(placement, seen_ms, insight)) => self.deliver(id, placement, seen_ms, Some(at), insight),
            Some(Early::Bounced(bounce, seen_ms)) => self.bounce(id, bounce, seen_ms),
            None => {}
        }
    }

    /// The provider refused it: a send failure, never lost or late.
    pub fn failed(&self, id: &str, error: &SendError) {
        let Some(c) = self.book().in_flight.remove(id) else { return };
        log_err(self.ledger.record_failed(id, error.reason(), &error.detail));
        let reason = error.reason().as_str();
        self.metrics.send_failures.get_or_create(&ReasonLabels { route: c.labels.clone(), reason }).inc();
        self.update_status(&c.labels.probe, |s| {
            s.failed += 1;
            s.last_outcome = Some("failed");
            s.last_outcome_ms = Some(now_ms());
            s.last_failure_reason = Some(reason);
        });
        self.emit(Event::Failed {
            canary: id.to_string(),
            probe: c.labels.probe,
            reason,
            detail: error.detail.clone(),
        });
    }

    /// A verified canary of this instance was seen in `placement`, with what
    /// its headers say about its path.
    pub fn seen(&self, token: &Token, placement: Placement, insight: Insight) -> Disposition {
        let (at, seen_ms) = (Instant::now(), now_ms());
        {
            let mut book = self.book();
            if let Some(c) = book.in_flight.get_mut(&token.canary_id) {
                if !c.accepted {
                    // Arrived before the provider's answer: resolved on acceptance.
                    c.early.get_or_insert(Early::Seen(placement, seen_ms, insight));
                    return Disposition::Resolved;
                }
            } else {
                drop(book);
                return self.seen_after(token, placement, seen_ms, insight);
            }
        }
        self.deliver(&token.canary_id, placement, seen_ms, Some(at), insight);
        Disposition::Resolved
    }

    /// A canary no longer in flight: late if it was lost, otherwise unmatched.
    fn seen_after(&self, token: &Token, placement: Placement, seen_ms: i64, insight: Insight) -> Disposition {
        let Some(row) = self.recorded(&token.canary_id) else { return Disposition::Unmatched(Unmatched::Expired) };
        match row.state {
            State::Lost => {
                let latency_ms = (seen_ms - row.accepted_ms.unwrap_or(row.created_ms)).max(0);
                let seen = Seen { seen_ms, latency_ms, placement: placement.as_str(), hops: &insight.hops };
                match self.ledger.record_late(&row.id, &seen) {
                    Ok(true) => {}
                    Ok(false) => return Disposition::Unmatched(Unmatched::Duplicate),
                    Err(e) => tracing::error!(error = %e, "ledger write failed"),
                }
                let l = labels(&row.probe, &row.provider, &row.inbox);
                self.metrics.canaries_late.get_or_create(&l).inc();
                self.record_insight(&l, &insight);
                let latency = latency_ms as f64 / 1000.0;
                self.update_status(&row.probe, |s| {
                    s.late += 1;
                    s.last_auth = insight.verdicts.clone();
                    s.last_hops = insight.hops.clone();
                    s.last_outcome = Some("late");
                    s.last_outcome_ms = Some(seen_ms);
                    s.last_latency_seconds = Some(latency);
                });
                tracing::warn!(probe = %row.probe, canary = %row.id, latency_seconds = latency, "canary arrived late");
                self.emit(Event::Late { canary: row.id, probe: row.probe, latency_seconds: latency });
                Disposition::Resolved
            }
            State::Sending | State::Sent => Disposition::Unmatched(Unmatched::Expired),
            State::Delivered | State::Late | State::Failed | State::Bounced => {
                Disposition::Unmatched(Unmatched::Duplicate)
            }
        }
    }

    /// A DSN in a bounce inbox says delivery of a verified canary of this
    /// instance failed: it is resolved now as `bounced` rather than lost at
    /// its deadline. A bounce for a canary already counted lost is kept in
    /// the ledger as the reason, and counted nowhere else.
    pub fn bounced(&self, token: &Token, bounce: Bounce) -> Disposition {
        let seen_ms = now_ms();
        {
            let mut book = self.book();
            match book.in_flight.get_mut(&token.canary_id) {
                Some(c) if !c.accepted => {
                    c.early.get_or_insert(Early::Bounced(bounce, seen_ms));
                    return Disposition::Resolved;
                }
                Some(_) => {}
                None => {
                    drop(book);
                    return self.bounced_after(token, &bounce);
                }
            }
        }
        self.bounce(&token.canary_id, bounce, seen_ms);
        Disposition::Resolved
    }

    fn bounced_after(&self, token: &Token, bounce: &Bounce) -> Disposition {
        let Some(row) = self.recorded(&token.canary_id) else { return Disposition::Unmatched(Unmatched::Expired) };
        match self.ledger.record_bounce_after_lost(&row.id, &bounce.status, bounce.diagnostic.as_deref()) {
            Ok(true) => {
                tracing::warn!(probe = %row.probe, canary = %row.id, status = %bounce.status, detail = %bounce.summary(), "a canary counted lost bounced");
                self.update_status(&row.probe, |s| s.last_bounce = Some(bounce.clone()));
                Disposition::Resolved
            }
            Ok(false) if row.state == State::Sending || row.state == State::Sent => {
                Disposition::Unmatched(Unmatched::Expired)
            }
            Ok(false) => Disposition::Unmatched(Unmatched::Duplicate),
            Err(e) => {
                tracing::error!(error = %e, "ledger write failed");
                Disposition::Unmatched(Unmatched::Expired)
            }
        }
    }

    /// The ledger's row of a canary no longer in flight (None when it was
    /// never ours, was pruned, or cannot be read).
    fn recorded(&self, id: &str) -> Option<crate::ledger::Row> {
        self.ledger.get(id).unwrap_or_else(|e| {
            tracing::error!(error = %e, "ledger read failed");
            None
        })
    }

    fn bounce(&self, id: &str, bounce: Bounce, seen_ms: i64) {
        let Some(c) = self.book().in_flight.remove(id) else { return };
        match self.ledger.record_bounced(id, seen_ms, &bounce.status, bounce.diagnostic.as_deref()) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::error!(error = %e, "ledger write failed"),
        }
        let l = &c.labels;
        self.metrics.canaries_bounced.get_or_create(l).inc();
        self.update_status(&l.probe, |s| {
            s.bounced += 1;
            s.last_bounce = Some(bounce.clone());
            s.last_outcome = Some("bounced");
            s.last_outcome_ms = Some(seen_ms);
        });
        tracing::warn!(probe = %l.probe, canary = %id, status = %bounce.status, detail = %bounce.summary(), "canary bounced");
        self.emit(Event::Bounced { canary: id.to_string(), probe: l.probe.clone(), bounce });
    }

    fn deliver(&self, id: &str, placement: Placement, seen_ms: i64, seen_at: Option<Instant>, insight: Insight) {
        let Some(c) = self.book().in_flight.remove(id) else { return };
        // One clock: the monotonic one when acceptance and sight were both
        // measured by this process, the ledger's wall clock otherwise.
        let latency = match (c.since, seen_at) {
            (Some(since), Some(at)) => at.saturating_duration_since(since).as_secs_f64(),
            _ => ((seen_ms - c.since_ms).max(0) as f64) / 1000.0,
        };
        let seen =
            Seen { seen_ms, latency_ms: (latency * 1000.0) as i64, placement: placement.as_str(), hops: &insight.hops };
        match self.ledger.record_delivered(id, &seen) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::error!(error = %e, "ledger write failed"),
        }
        let l = &c.labels;
        self.metrics
            .canaries_delivered
            .get_or_create(&PlacementLabels { route: l.clone(), placement: placement.as_str() })
            .inc();
        self.metrics.delivery_latency.get_or_create(l).observe(latency);
        self.metrics.last_delivery.get_or_create(l).set(seen_ms as f64 / 1000.0);
        self.record_insight(l, &insight);
        self.update_status(&l.probe, |s| {
            s.delivered += 1;
            s.last_auth = insight.verdicts.clone();
            s.last_hops = insight.hops.clone();
            if placement == Placement::Spam {
                s.spam += 1;
            }
            s.last_outcome = Some(match placement {
                Placement::Inbox => "delivered",
                Placement::Spam => "spam",
            });
            s.last_outcome_ms = Some(seen_ms);
            s.last_latency_seconds = Some(latency);
            s.last_delivery_ms = Some(seen_ms);
        });
        tracing::info!(probe = %l.probe, canary = %id, placement = placement.as_str(), latency_seconds = latency, "canary delivered");
        self.emit(Event::Delivered {
            canary: id.to_string(),
            probe: l.probe.clone(),
            placement: placement.as_str(),
            latency_seconds: latency,
            insight,
        });
    }

    /// Counts the receiving server's verdicts and the hop delays of a canary seen.
    fn record_insight(&self, route: &RouteLabels, insight: &Insight) {
        for v in &insight.verdicts {
            let l = AuthLabels { route: route.clone(), method: v.method, result: v.result };
            self.metrics.auth_results.get_or_create(&l).inc();
        }
        for hop in &insight.hops {
            if let Some(delay) = hop.delay_seconds {
                let l = HopLabels { route: route.clone(), hop: insight::hop_label(hop.position) };
                self.metrics.hop_delay.get_or_create(&l).observe(delay);
            }
        }
        if insight.unusable_hops > 0 {
            self.metrics.hop_unusable.get_or_create(route).inc_by(insight.unusable_hops as u64);
        }
    }

    /// Counts as lost every accepted canary past its deadline, and refreshes
    /// the in-flight gauges. Called about once a second.
    pub fn tick(&self) {
        let now = now_ms();
        let expired: Vec<(String, RouteLabels)> = {
            let book = self.book();
            book.in_flight
                .iter()
                .filter(|(_, c)| c.accepted && c.deadline_ms <= now)
                .map(|(id, c)| (id.clone(), c.labels.clone()))
                .collect()
        };
        for (id, l) in expired {
            self.book().in_flight.remove(&id);
            match self.ledger.record_lost(&id, now) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(e) => tracing::error!(error = %e, "ledger write failed"),
            }
            self.metrics.canaries_lost.get_or_create(&l).inc();
            self.update_status(&l.probe, |s| {
                s.lost += 1;
                s.last_outcome = Some("lost");
                s.last_outcome_ms = Some(now);
            });
            tracing::warn!(probe = %l.probe, canary = %id, "canary lost: not seen within the route's timeout");
            self.emit(Event::Lost { canary: id, probe: l.probe });
        }
        let mut book = self.book();
        let mut per_route: HashMap<String, (usize, i64)> = HashMap::new();
        for c in book.in_flight.values().filter(|c| c.accepted) {
            let entry = per_route.entry(c.labels.probe.clone()).or_insert((0, now));
            entry.0 += 1;
            entry.1 = entry.1.min(c.since_ms);
        }
        for status in book.routes.values_mut() {
            let (count, oldest_ms) = per_route.get(&status.probe).copied().unwrap_or((0, now));
            let age = ((now - oldest_ms).max(0) as f64) / 1000.0;
            status.in_flight = count;
            status.oldest_in_flight_seconds = age;
            let l = labels(&status.probe, &status.provider, &status.inbox);
            self.metrics.in_flight.get_or_create(&l).set(count as i64);
            self.metrics.oldest_in_flight.get_or_create(&l).set(age);
        }
    }

    /// How many canaries sent into `inbox` are waiting to be seen.
    pub fn waiting_in(&self, inbox: &str) -> usize {
        self.book().in_flight.values().filter(|c| c.labels.inbox == inbox).count()
    }

    /// Every route's status, by probe name.
    pub fn status(&self) -> Vec<RouteStatus> {
        let mut routes: Vec<RouteStatus> = self.book().routes.values().cloned().collect();
        routes.sort_by(|a, b| a.probe.cmp(&b.probe));
        routes
    }

    fn update_status(&self, probe: &str, f: impl FnOnce(&mut RouteStatus)) {
        if let Some(status) = self.book().routes.get_mut(probe) {
            f(status);
        }
    }
}

fn log_err<T>(result: crate::ledger::Result<T>) {
    if let Err(e) = result {
        tracing::error!(error = %e, "ledger write failed");
    }
}
