//! The last known state of each route, for `/api/v1/status`: kept up to
//! date from the outcomes the matcher settles, never decided here.

use crate::bounce::Bounce;
use crate::insight::{Hop, Insight, Verdict};
use crate::outcome::{Expectation, Observed, Outcome, Placement, SendReason};
use serde::Serialize;

/// One route, as `/api/v1/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteStatus {
    pub probe: String,
    pub provider: String,
    pub inbox: String,
    pub in_flight: usize,
    pub oldest_in_flight_seconds: f64,
    pub last_sent_ms: Option<i64>,
    /// `delivered`, `lost`, `late`, `bounced`, `refused` or `mismatched`.
    pub last_outcome: Option<&'static str>,
    /// Where the last canary seen landed: `inbox` or `spam`.
    pub last_placement: Option<Placement>,
    /// How the last canary seen was observed, when not live (found after a
    /// restart or after its inbox could not be watched).
    pub last_observed: Option<Observed>,
    pub last_outcome_ms: Option<i64>,
    pub last_latency_seconds: Option<f64>,
    pub last_delivery_ms: Option<i64>,
    pub last_failure_reason: Option<SendReason>,
    /// The receiving server's verdicts on the last canary seen.
    pub last_auth: Vec<Verdict>,
    /// The `Received` hops of the last canary seen, oldest first.
    pub last_hops: Vec<Hop>,
    /// The last bounce (DSN) that came back for this route.
    pub last_bounce: Option<Bounce>,
    /// The expectation the last mismatched application canary failed.
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

impl RouteStatus {
    /// Takes in an outcome the matcher settled at `at_ms`.
    pub fn settled(&mut self, outcome: &Outcome, insight: &Insight, at_ms: i64) {
        self.last_outcome = Some(outcome.kind());
        self.last_outcome_ms = Some(at_ms);
        if let Some(placement) = outcome.placement() {
            self.last_placement = Some(placement);
            self.last_latency_seconds = outcome.latency_seconds();
            self.last_auth = insight.verdicts.clone();
            self.last_hops = insight.hops.clone();
        }
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
            Outcome::Refused { reason, .. } => {
                self.refused += 1;
                self.last_failure_reason = Some(*reason);
            }
            Outcome::Mismatched { expectation, .. } => {
                self.mismatched += 1;
                self.last_mismatch = Some(*expectation);
            }
        }
    }
}
