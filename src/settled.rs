//! The one event every verdict makes. The matcher decides each canary's
//! outcome once (its ledger update moved the canary) and hands the
//! [`Settled`] value to every [`Consumer`] registered with it, in the order
//! they were registered: first those it answers for itself (provider
//! health, the route status: crate::matcher), then those registered where
//! it is wired (the metrics and the log: crate::runtime), and last the
//! event stream `check` follows. Adding a consumer is implementing
//! [`Consumer`] where it lives and one registration line.

use crate::insight::Insight;
use crate::outcome::Outcome;
use std::time::Instant;

pub use crate::route_labels::{Name, RouteLabels};

/// A canary's verdict, decided once.
#[derive(Debug, Clone)]
pub struct Settled {
    pub canary: String,
    pub route: RouteLabels,
    /// When its provider took it, on the monotonic clock: the order
    /// provider health weighs canaries in.
    pub accepted: Instant,
    pub outcome: Outcome,
    /// What the receiving side said of it (hops, verdicts), when it came.
    pub insight: Insight,
    /// When it was decided, on the wall clock.
    pub at_ms: i64,
}

/// Whatever reacts to a verdict. Called once per verdict, on the task that
/// decided it: quick, and never waiting on the network.
pub trait Consumer: Send + Sync {
    fn settled(&self, s: &Settled);
}

/// The log line of each verdict: a warning for each failure, and a debug
/// line for each canary delivered in time (at 1,000 routes a line a
/// minute per route is 1.4 million a day that the ledger, the metrics and
/// `report` hold already; `RUST_LOG=mailcanary=debug` shows them).
pub struct Log;

impl Consumer for Log {
    fn settled(&self, s: &Settled) {
        let (probe, canary) = (&s.route.probe(), &s.canary);
        match &s.outcome {
            Outcome::Delivered { placement, latency_seconds, observed } => {
                tracing::debug!(probe = %probe, canary = %canary, placement = placement.as_str(), latency_seconds, observed = observed.as_str(), "canary delivered")
            }
            Outcome::Lost => {
                tracing::warn!(probe = %probe, canary = %canary, "canary lost: not seen within the route's timeout")
            }
            Outcome::Late { latency_seconds, .. } => {
                tracing::warn!(probe = %probe, canary = %canary, latency_seconds, "canary arrived late")
            }
            Outcome::Bounced { bounce } => {
                tracing::warn!(probe = %probe, canary = %canary, status = %bounce.status, detail = %bounce.summary(), "canary bounced")
            }
            Outcome::Refused { reason, detail } => {
                tracing::warn!(probe = %probe, canary = %canary, reason = reason.as_str(), error = %detail, "send failed")
            }
            Outcome::Mismatched { expectation, latency_seconds, .. } => {
                tracing::warn!(probe = %probe, canary = %canary, expectation = expectation.as_str(), latency_seconds, "the application's email arrived but failed an expectation")
            }
        }
    }
}
