//! The real traffic's metrics (DESIGN: real traffic), mapped from the
//! vocabulary of crate::traffic_event. Every series of a configured source
//! exists at 0 from start-up, so the rules never wait for a first event.

use crate::traffic_event::{BounceKind, Effects, Outcome, SourceError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub provider: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BounceLabels {
    pub provider: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DelayLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceErrorLabels {
    pub source: String,
    pub reason: &'static str,
}

/// Real mail is delayed by minutes to hours in an outage: buckets from a
/// second to a day, with 90 s (the canaries' objective) among them.
fn delay_histogram() -> Histogram {
    Histogram::new([1.0, 5.0, 30.0, 90.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0])
}

/// `traffic_*`.
pub struct TrafficMetrics {
    pub messages: Family<OutcomeLabels, Counter>,
    pub bounces: Family<BounceLabels, Counter>,
    pub delay: Family<DelayLabels, Histogram, fn() -> Histogram>,
    pub events: Family<SourceLabels, Counter>,
    pub source_errors: Family<SourceErrorLabels, Counter>,
}

impl Default for TrafficMetrics {
    fn default() -> Self {
        TrafficMetrics {
            messages: Family::default(),
            bounces: Family::default(),
            delay: Family::new_with_constructor(delay_histogram),
            events: Family::default(),
            source_errors: Family::default(),
        }
    }
}

impl TrafficMetrics {
    pub fn register(&self, r: &mut impl super::exposition::Register) {
        r.register(
            "traffic_messages",
            "Real messages by the outcome they reached: each counted once under delivered, bounced, rejected or \
             dropped, and besides once when deferred before and once when complained about",
            self.messages.clone(),
        );
        r.register("traffic_bounces", "Real messages that bounced, by the bounce's kind", self.bounces.clone());
        r.register(
            "traffic_delivery_delay_seconds",
            "A real message's provider acceptance to its delivery, as the provider reports them",
            self.delay.clone(),
        );
        r.register("traffic_events", "Events recorded per source (duplicates not counted)", self.events.clone());
        r.register(
            "traffic_source_errors",
            "Deliveries of a source that changed nothing, by reason",
            self.source_errors.clone(),
        );
    }

    /// Creates every series of a source and its provider.
    pub fn init_source(&self, source: &str, provider: &str) {
        for outcome in Outcome::ALL {
            let _ = self
                .messages
                .get_or_create(&OutcomeLabels { provider: provider.to_string(), outcome: outcome.as_str() });
        }
        for kind in BounceKind::ALL {
            let _ = self.bounces.get_or_create(&BounceLabels { provider: provider.to_string(), kind: kind.as_str() });
        }
        let _ = self.delay.get_or_create(&DelayLabels { provider: provider.to_string() });
        let _ = self.events.get_or_create(&SourceLabels { source: source.to_string() });
        for reason in SourceError::ALL {
            let _ = self
                .source_errors
                .get_or_create(&SourceErrorLabels { source: source.to_string(), reason: reason.as_str() });
        }
    }

    /// What one write recorded: its events and their effects.
    pub fn recorded(&self, source: &str, provider: &str, recorded: usize, effects: &[Effects]) {
        self.events.get_or_create(&SourceLabels { source: source.to_string() }).inc_by(recorded as u64);
        for fx in effects {
            for outcome in &fx.outcomes {
                self.messages
                    .get_or_create(&OutcomeLabels { provider: provider.to_string(), outcome: outcome.as_str() })
                    .inc();
            }
            if let Some(kind) = fx.bounce {
                self.bounces.get_or_create(&BounceLabels { provider: provider.to_string(), kind: kind.as_str() }).inc();
            }
            if let Some(delay) = fx.delay_seconds {
                self.delay.get_or_create(&DelayLabels { provider: provider.to_string() }).observe(delay);
            }
        }
    }

    /// `n` deliveries (or events) of `source` that changed nothing.
    pub fn refused(&self, source: &str, reason: SourceError, n: u64) {
        self.source_errors
            .get_or_create(&SourceErrorLabels { source: source.to_string(), reason: reason.as_str() })
            .inc_by(n);
    }
}
