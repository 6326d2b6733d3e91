//! The one place a canary's fate is decided. [`Matcher::settle`] queues the
//! ledger's conditional update first (which lets each outcome happen once,
//! across processes too), then, only if it moved the canary, hands one
//! [`Settled`] to every consumer (crate::settled), in the order they were
//! registered. The other functions here only work out which
//! outcome a sighting or an early arrival makes, and hand it to `settle`.

use super::book::{Early, InFlight};
use super::{Matcher, Sighting, secs};
use crate::insight::Insight;
use crate::ledger::Seen;
use crate::metrics::RouteLabels;
use crate::outcome::{Observed, Outcome, Placement};
use crate::settled::{Consumer, Settled};

/// A pending outcome: its ledger write is queued, the rest waits for it.
pub(super) type Settling<'a> = std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

impl Matcher {
    /// A canary taken out of the book, seen: delivered, or (found after a
    /// gap, and received after its deadline) lost and then late.
    pub(super) fn settle_sighting(
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
            return self.settle(id, (c.labels, c.since), outcome, s.insight, now_ms);
        }
        // Nobody was looking when it came: the server's word says when.
        // INTERNALDATE names a whole second; the arrival lies within it and
        // no later than now, and its latency is not understated.
        let received_ms = s.received_ms.unwrap_or(now_ms);
        let arrived_ms = (received_ms + 999).min(now_ms).max(received_ms);
        let latency_seconds = secs(arrived_ms - c.since_ms);
        if received_ms <= c.deadline_ms {
            let outcome = arrived(latency_seconds);
            return self.settle(id, (c.labels, c.since), outcome, s.insight, now_ms);
        }
        // Both queued now, in order (the ledger makes it late only once it
        // is lost): with the other verdicts of the same fetch, not after them.
        let lost = self.settle(id, (c.labels.clone(), c.since), Outcome::Lost, Insight::default(), now_ms);
        let late = Outcome::Late { placement: s.placement, latency_seconds };
        let late = self.settle(id, (c.labels, c.since), late, s.insight, now_ms);
        Box::pin(async move {
            lost.await;
            late.await
        })
    }

    /// A canary that came back before its provider's answer, now accepted.
    pub(super) fn settle_early(&self, id: &str, c: InFlight, early: Early, now_ms: i64) -> Settling<'_> {
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
        self.settle(id, (c.labels, c.since), outcome, insight, now_ms)
    }

    /// Decides `outcome` for canary `id` (of the route `l`, accepted at
    /// `accepted` on the monotonic clock), at `at_ms`. The ledger's
    /// conditional update is queued now, so that anything asked of the
    /// ledger after this call sees it; the returned future waits for it and,
    /// only if this call moved the canary, hands the verdict to the
    /// consumers. True if it did.
    pub(super) fn settle(
        &self,
        id: &str,
        (l, accepted): (RouteLabels, std::time::Instant),
        outcome: Outcome,
        insight: Insight,
        at_ms: i64,
    ) -> Settling<'_> {
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
            let settled = Settled { canary: id, route: l, accepted, outcome, insight, at_ms };
            for consumer in self.consumers().iter() {
                consumer.settled(&settled);
            }
            // Last: whoever follows the events (`check`) finds the verdict
            // counted and logged.
            self.events.settled(&settled);
            true
        })
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
        Outcome::Refused { reason, detail } => ledger.record_refused(id, *reason, detail),
        Outcome::Mismatched { expectation, placement, latency_seconds } => {
            ledger.record_mismatched(id, &seen(*placement, *latency_seconds, Observed::Live), *expectation)
        }
    }
}
