//! The last known state of each route, for `/api/v1/status`: kept up to
//! date from the outcomes the matcher settles, never decided here.

use crate::bounce::Bounce;
use crate::insight::{Hop, Insight, Verdict};
use crate::outcome::{Expectation, Observed, Outcome, OutcomeKind, Placement, SendReason};
use crate::settled::RouteLabels;
use crate::settled::{Consumer, Settled};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// One route, as `/api/v1/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteStatus {
    pub probe: String,
    pub provider: String,
    pub inbox: String,
    /// The same names as the route's series hold them: its canaries and
    /// gauges take these, not copies.
    #[serde(skip)]
    pub labels: crate::settled::RouteLabels,
    /// A route a reload retired (removed, or its name given to another
    /// provider or inbox), listed while canaries of its own are in flight.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    pub in_flight: usize,
    pub oldest_in_flight_seconds: f64,
    pub last_sent_ms: Option<i64>,
    /// The route's last outcome. Every `last_*` field below describes its canary
    /// (none when it has no such thing: a refused canary has no placement),
    /// except `last_delivery_ms` and `last_bounce`, which keep the last of
    /// their kind.
    pub last_outcome: Option<OutcomeKind>,
    /// Where it landed: `inbox` or `spam`.
    pub last_placement: Option<Placement>,
    /// How it was observed, when not live (found after a restart or after
    /// its inbox could not be watched).
    pub last_observed: Option<Observed>,
    pub last_outcome_ms: Option<i64>,
    pub last_latency_seconds: Option<f64>,
    /// When this route last delivered, whatever came after.
    pub last_delivery_ms: Option<i64>,
    /// Why it was refused: the bounded reason ...
    pub last_failure_reason: Option<SendReason>,
    /// ... and what the provider or application answered, e.g. `HTTP 500`.
    pub last_failure_detail: Option<String>,
    /// The receiving server's verdicts on it.
    pub last_auth: Vec<Verdict>,
    /// Its `Received` hops, oldest first.
    pub last_hops: Vec<Hop>,
    /// The last bounce (DSN) that came back for this route.
    pub last_bounce: Option<Bounce>,
    /// The expectation it failed, when it was a mismatched application canary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_mismatch: Option<Expectation>,
    pub sent: u64,
    /// Not accepted by the provider.
    pub refused: u64,
    /// Seen within the timeout, in any folder.
    pub delivered: u64,
    /// Of those delivered, how many landed in spam.
    pub spam: u64,
    pub lost: u64,
    pub late: u64,
    pub bounced: u64,
    /// Application canaries that arrived but failed an expectation.
    pub mismatched: u64,
}

/// Every route's status: kept by the verdicts it consumes.
#[derive(Default)]
pub struct Routes(std::sync::Mutex<Table>);

impl Routes {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Consumer for Routes {
    fn settled(&self, s: &Settled) {
        if let Some(status) = self.lock().get_mut(&s.route) {
            status.settled(&s.outcome, &s.insight, s.at_ms);
        }
    }
}

/// The routes of the config in force, by probe name, and those a reload
/// retired while canaries of theirs were in flight: a route removed, or
/// whose name now goes through another provider or into another inbox.
/// A retired route's canaries count to it, never to its successor of the
/// same name; it is forgotten at the first reload that finds none in flight.
#[derive(Default)]
pub struct Table {
    current: HashMap<String, RouteStatus>,
    retired: Vec<RouteStatus>,
}

impl Table {
    /// The route (current or retired) these labels name.
    pub fn get_mut(&mut self, l: &RouteLabels) -> Option<&mut RouteStatus> {
        self.find_mut(l.probe(), l.provider(), l.inbox())
    }

    /// The route (current or retired) of this probe, provider and inbox.
    pub fn find_mut(&mut self, probe: &str, provider: &str, inbox: &str) -> Option<&mut RouteStatus> {
        let same = |s: &RouteStatus| s.probe == probe && s.provider == provider && s.inbox == inbox;
        if self.current.get(probe).is_some_and(same) {
            return self.current.get_mut(probe);
        }
        self.retired.iter_mut().find(|s| same(s))
    }

    /// The current route of this name.
    pub fn current(&self, probe: &str) -> Option<&RouteStatus> {
        self.current.get(probe)
    }

    /// Every route, current and retired.
    pub fn all(&self) -> impl Iterator<Item = &RouteStatus> {
        self.current.values().chain(&self.retired)
    }

    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut RouteStatus> {
        self.current.values_mut().chain(&mut self.retired)
    }

    /// Makes the route these labels name current. Its status goes on
    /// when it is current already, or was retired; the route its name
    /// named before, through another provider or into another inbox, is
    /// retired (and returned).
    pub fn add(&mut self, labels: &RouteLabels) -> Option<RouteLabels> {
        if self.current.get(&**labels.probe()).is_some_and(|s| s.labels == *labels) {
            return None;
        }
        let mut status = match self.retired.iter().position(|s| s.labels == *labels) {
            Some(i) => self.retired.swap_remove(i),
            None => RouteStatus::new(labels.clone()),
        };
        status.retired = false;
        let before = self.current.insert(labels.probe().to_string(), status)?;
        let retired = before.labels.clone();
        self.retire(before);
        Some(retired)
    }

    fn retire(&mut self, mut status: RouteStatus) {
        status.retired = true;
        self.retired.push(status);
    }

    /// Retires the current routes whose name `keep` refuses, and forgets
    /// the retired routes with no canary in flight (`busy`, by route; a
    /// canary of a route none knows, resumed after a restart, makes a
    /// retired route of its own): returns the labels of the routes retired,
    /// of those forgotten (whose series go with them) and of those made for
    /// resumed canaries (whose series come with them).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool, busy: &HashSet<RouteLabels>) -> Retained {
        let gone: Vec<String> = self.current.keys().filter(|name| !keep(name)).cloned().collect();
        let mut retired = Vec::new();
        for name in gone {
            if let Some(status) = self.current.remove(&name) {
                retired.push(status.labels.clone());
                self.retire(status);
            }
        }
        let mut adopted = Vec::new();
        for labels in busy {
            if self.find_mut(labels.probe(), labels.provider(), labels.inbox()).is_none() {
                adopted.push(labels.clone());
                self.retire(RouteStatus::new(labels.clone()));
            }
        }
        let mut forgotten = Vec::new();
        self.retired.retain(|s| {
            let keep = busy.contains(&s.labels);
            if !keep {
                forgotten.push(s.labels.clone());
            }
            keep
        });
        Retained { retired, forgotten, adopted }
    }
}

/// What `Table::retain` did, by route.
pub struct Retained {
    pub retired: Vec<RouteLabels>,
    pub forgotten: Vec<RouteLabels>,
    pub adopted: Vec<RouteLabels>,
}

impl RouteStatus {
    /// A route with nothing sent yet.
    pub fn new(labels: RouteLabels) -> RouteStatus {
        RouteStatus {
            probe: labels.probe().to_string(),
            provider: labels.provider().to_string(),
            inbox: labels.inbox().to_string(),
            labels,
            ..Default::default()
        }
    }
}

impl RouteStatus {
    /// Takes in an outcome the matcher settled at `at_ms`. What described
    /// the previous outcome goes: a refusal never sits beside the placement
    /// and latency of the delivery before it.
    pub fn settled(&mut self, outcome: &Outcome, insight: &Insight, at_ms: i64) {
        self.last_outcome = Some(outcome.kind());
        self.last_outcome_ms = Some(at_ms);
        self.last_placement = outcome.placement();
        self.last_latency_seconds = outcome.latency_seconds();
        self.last_auth = insight.verdicts.clone();
        self.last_hops = insight.hops.clone();
        self.last_observed = None;
        self.last_failure_reason = None;
        self.last_failure_detail = None;
        self.last_mismatch = None;
        match outcome {
            Outcome::Delivered { placement, observed, .. } => {
                self.delivered += 1;
                self.spam += u64::from(*placement == Placement::Spam);
                self.last_delivery_ms = Some(at_ms);
                self.last_observed = (*observed != Observed::Live).then_some(*observed);
            }
            Outcome::Lost => self.lost += 1,
            Outcome::Late { .. } => self.late += 1,
            Outcome::Bounced { bounce } => {
                self.bounced += 1;
                self.last_bounce = Some(bounce.clone());
            }
            Outcome::Refused { reason, detail } => {
                self.refused += 1;
                self.last_failure_reason = Some(*reason);
                self.last_failure_detail = Some(crate::quote::quote(detail));
            }
            Outcome::Mismatched { expectation, .. } => {
                self.mismatched += 1;
                self.last_mismatch = Some(*expectation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_clears_what_described_the_delivery_before_it_and_says_what_was_answered() {
        let mut s = RouteStatus::default();
        let delivered =
            Outcome::Delivered { placement: Placement::Inbox, latency_seconds: 1.5, observed: Observed::AfterGap };
        s.settled(&delivered, &Insight::default(), 1_000);
        assert_eq!((s.last_placement, s.last_latency_seconds), (Some(Placement::Inbox), Some(1.5)));
        let refused = Outcome::Refused { reason: SendReason::Other, detail: "HTTP 500".into() };
        s.settled(&refused, &Insight::default(), 2_000);
        assert_eq!(s.last_outcome, Some(OutcomeKind::Refused));
        assert_eq!((s.last_placement, s.last_latency_seconds, s.last_observed), (None, None, None));
        assert_eq!(
            (s.last_failure_reason, s.last_failure_detail.as_deref()),
            (Some(SendReason::Other), Some("HTTP 500"))
        );
        assert_eq!(s.last_delivery_ms, Some(1_000), "when it last delivered stays");
        s.settled(&delivered, &Insight::default(), 3_000);
        assert_eq!(
            (s.last_failure_reason, s.last_failure_detail),
            (None, None),
            "nor a stale failure after a delivery"
        );
        assert_eq!((s.delivered, s.refused), (2, 1));
    }
}
