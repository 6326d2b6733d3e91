//! The `mailcanary_*` metrics (docs/metrics.md), with typed label sets. Every
//! per-route series exists at 0 from start-up so alerts never wait for a
//! first event. Labels carry names from the config, never addresses,
//! tokens or free text. What a route costs in series is pinned in
//! `detail`'s tests: the default keeps only what alerts and dashboards read.

mod detail;
mod exposition;
mod register;
mod settled;
mod text;
pub mod traffic;

use crate::insight::Insight;
use crate::outcome::{InboxError, Outcome, Placement, SendReason, Unmatched};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::AtomicU64;

pub use detail::{Detail, SendHistogram};
pub use exposition::Format;

pub use crate::settled::RouteLabels;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    #[prometheus(flatten)]
    pub route: RouteLabels,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlacementLabels {
    #[prometheus(flatten)]
    pub route: RouteLabels,
    pub placement: &'static str,
}

/// An application canary's failed expectation (crate::trigger).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExpectationLabels {
    #[prometheus(flatten)]
    pub route: RouteLabels,
    pub expectation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    #[prometheus(flatten)]
    pub route: RouteLabels,
    pub method: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HopLabels {
    #[prometheus(flatten)]
    pub route: RouteLabels,
    pub hop: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InboxLabels {
    pub inbox: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InboxReasonLabels {
    pub inbox: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderStateLabels {
    pub provider: String,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Every metric mailcanary exports.
pub struct Metrics {
    /// Every family, a part each (exposition.rs).
    parts: exposition::Parts,
    pub canaries_sent: Family<RouteLabels, Counter>,
    pub send_failures: Family<ReasonLabels, Counter>,
    pub canaries_delivered: Family<PlacementLabels, Counter>,
    pub canaries_lost: Family<RouteLabels, Counter>,
    pub canaries_late: Family<RouteLabels, Counter>,
    pub canaries_bounced: Family<RouteLabels, Counter>,
    pub canaries_mismatched: Family<ExpectationLabels, Counter>,
    pub delivery_latency: HistogramFamily,
    pub send_duration: Family<RouteLabels, Histogram, SendHistogram>,
    pub in_flight: Family<RouteLabels, Gauge>,
    pub oldest_in_flight: Family<RouteLabels, Gauge<f64, AtomicU64>>,
    pub last_delivery: Family<RouteLabels, Gauge<f64, AtomicU64>>,
    pub inbox_up: Family<InboxLabels, Gauge>,
    pub inbox_errors: Family<InboxReasonLabels, Counter>,
    pub unmatched: Family<InboxReasonLabels, Counter>,
    pub config_reload_ok: Gauge,
    pub auth_results: Family<AuthLabels, Counter>,
    pub hop_delay: Family<HopLabels, Histogram, fn() -> Histogram>,
    pub hop_unusable: Family<RouteLabels, Counter>,
    pub task_restarts: Family<TaskLabels, Counter>,
    pub provider_state: Family<ProviderStateLabels, Gauge>,
    pub provider_state_changes: Family<ProviderLabels, Counter>,
    /// Each route's overdue bound in force (crate::health::learn).
    pub overdue_bound: Family<RouteLabels, Gauge<f64, AtomicU64>>,
    /// Each route's canaries in flight past its bound, in a row from the newest.
    pub overdue_in_a_row: Family<RouteLabels, Gauge>,
    /// Confirmation canaries sent on suspicion, by provider.
    pub confirmations: Family<ProviderLabels, Counter>,
    /// The real traffic's series (`traffic_*`).
    pub traffic: traffic::TrafficMetrics,
    /// The opt-in series in force (`global.metrics.detail`).
    detail: detail::DetailState,
    /// The routes whose series exist (`init_route` to `remove_route`): a
    /// verdict for any other (settled while a reload forgot its route, or
    /// late after it went) is counted in the ledger, and makes no series
    /// again. Taken before `detail` when both are.
    routes: std::sync::Mutex<std::collections::HashSet<RouteLabels>>,
    /// The wall clock when scraped: Prometheus compares it with the scrape's
    /// own timestamp to tell a prober whose clock is off.
    pub time: Gauge<f64, AtomicU64>,
}

/// Every route has one, so only the bounds someone reads: 60 s is the
/// latency alert's threshold (its verdict stays exact), the ones under it
/// the dashboard's percentiles, 300 s a delay that is an incident.
fn latency_histogram() -> Histogram {
    Histogram::new([0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0])
}

/// `Received` dates have whole seconds, so finer buckets would only split 0
/// from 1 s; and every route has a histogram per hop, so few buckets.
fn hop_histogram() -> Histogram {
    Histogram::new([1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates every series of a route at 0, the opt-in ones when they are on.
    pub fn init_route(&self, route: &RouteLabels) {
        let mut routes = self.routes();
        routes.insert(route.clone());
        let detail = self.detail();
        let _ = self.canaries_sent.get_or_create(route);
        for reason in SendReason::ALL {
            let _ = self.send_failures.get_or_create(&ReasonLabels { route: route.clone(), reason: reason.as_str() });
        }
        for placement in [Placement::Inbox, Placement::Spam] {
            let _ = self
                .canaries_delivered
                .get_or_create(&PlacementLabels { route: route.clone(), placement: placement.as_str() });
        }
        let _ = self.canaries_lost.get_or_create(route);
        let _ = self.canaries_late.get_or_create(route);
        let _ = self.canaries_bounced.get_or_create(route);
        let _ = self.delivery_latency.get_or_create(route);
        let _ = self.send_duration.get_or_create(route);
        let _ = self.in_flight.get_or_create(route);
        let _ = self.oldest_in_flight.get_or_create(route);
        let _ = self.last_delivery.get_or_create(route);
        let _ = self.overdue_bound.get_or_create(route);
        let _ = self.overdue_in_a_row.get_or_create(route);
        self.init_detail(route, *detail);
    }

    /// An application canary route's expectations: each one's series exists
    /// at 0 from now on (only those it has, only on such routes).
    pub fn init_expectations(&self, route: &RouteLabels, expectations: &[crate::outcome::Expectation]) {
        for e in expectations {
            let _ = self
                .canaries_mismatched
                .get_or_create(&ExpectationLabels { route: route.clone(), expectation: e.as_str() });
        }
    }

    /// Forgets every series of a route a reload removed, so that a dashboard
    /// shows no route that no longer runs.
    pub fn remove_route(&self, route: &RouteLabels) {
        let mut routes = self.routes();
        routes.remove(route);
        self.canaries_sent.remove(route);
        for reason in SendReason::ALL {
            self.send_failures.remove(&ReasonLabels { route: route.clone(), reason: reason.as_str() });
        }
        for placement in [Placement::Inbox, Placement::Spam] {
            self.canaries_delivered.remove(&PlacementLabels { route: route.clone(), placement: placement.as_str() });
        }
        for family in [&self.canaries_lost, &self.canaries_late, &self.canaries_bounced] {
            family.remove(route);
        }
        for e in crate::outcome::Expectation::ALL {
            self.canaries_mismatched.remove(&ExpectationLabels { route: route.clone(), expectation: e.as_str() });
        }
        self.delivery_latency.remove(route);
        self.send_duration.remove(route);
        self.in_flight.remove(route);
        self.oldest_in_flight.remove(route);
        self.last_delivery.remove(route);
        self.overdue_bound.remove(route);
        self.overdue_in_a_row.remove(route);
        self.remove_auth(route);
        self.remove_hops(route);
    }

    /// The routes whose series exist, locked.
    fn routes(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<RouteLabels>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the task series of a route name no config has any more (a
    /// name whose route only moved keeps its task, and its series).
    pub fn remove_route_task(&self, probe: &str) {
        self.task_restarts.remove(&TaskLabels { task: format!("route:{probe}") });
    }

    /// A route a reload retired is judged no more: its overdue gauges go at
    /// once, not when its last canary settles (an alert reading them would
    /// fire on for a route that no longer runs).
    pub fn retire_route(&self, route: &RouteLabels) {
        self.overdue_bound.remove(route);
        self.overdue_in_a_row.remove(route);
    }

    /// Counts a canary the provider accepted after `seconds` of submission.
    pub fn accepted(&self, route: &RouteLabels, seconds: f64) {
        // Under the detail lock: the histogram is made with the buckets in force.
        let _detail = self.detail();
        self.canaries_sent.get_or_create(route).inc();
        self.send_duration.get_or_create(route).observe(seconds);
    }

    /// Shows `state` as the provider's current one (creating its series).
    pub fn set_provider_state(&self, provider: &str, state: crate::health::State) {
        let _ = self.provider_state_changes.get_or_create(&ProviderLabels { provider: provider.to_string() });
        let _ = self.confirmations.get_or_create(&ProviderLabels { provider: provider.to_string() });
        for s in crate::health::State::ALL {
            let l = ProviderStateLabels { provider: provider.to_string(), state: s.as_str() };
            self.provider_state.get_or_create(&l).set(i64::from(s == state));
        }
    }

    /// Forgets a provider a reload removed.
    pub fn remove_provider(&self, provider: &str) {
        self.provider_state_changes.remove(&ProviderLabels { provider: provider.to_string() });
        self.confirmations.remove(&ProviderLabels { provider: provider.to_string() });
        for s in crate::health::State::ALL {
            self.provider_state.remove(&ProviderStateLabels { provider: provider.to_string(), state: s.as_str() });
        }
    }

    /// Creates a supervised task's restart count at 0, so that an alert on
    /// `increase()` sees its first restart.
    pub fn task_started(&self, task: &str) {
        let _ = self.task_restarts.get_or_create(&TaskLabels { task: task.to_string() });
    }

    /// Counts a route or inbox task that panicked and is restarted.
    pub fn task_restarted(&self, task: &str) {
        self.task_restarts.get_or_create(&TaskLabels { task: task.to_string() }).inc();
    }

    /// Creates every series of an inbox, down until its first session.
    pub fn init_inbox(&self, inbox: &str) {
        self.inbox_up.get_or_create(&InboxLabels { inbox: inbox.to_string() }).set(0);
        for reason in InboxError::ALL {
            let _ = self
                .inbox_errors
                .get_or_create(&InboxReasonLabels { inbox: inbox.to_string(), reason: reason.as_str() });
        }
        for reason in Unmatched::ALL {
            let _ =
                self.unmatched.get_or_create(&InboxReasonLabels { inbox: inbox.to_string(), reason: reason.as_str() });
        }
    }

    pub fn inbox_error(&self, inbox: &str, reason: InboxError) {
        self.inbox_errors.get_or_create(&InboxReasonLabels { inbox: inbox.to_string(), reason: reason.as_str() }).inc();
    }

    pub fn unmatched(&self, inbox: &str, reason: Unmatched) {
        self.unmatched.get_or_create(&InboxReasonLabels { inbox: inbox.to_string(), reason: reason.as_str() }).inc();
    }

    pub fn set_inbox_up(&self, inbox: &str, up: bool) {
        self.inbox_up.get_or_create(&InboxLabels { inbox: inbox.to_string() }).set(i64::from(up));
    }
}

fn wall_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_names_counters_with_total() {
        let m = Metrics::new();
        m.init_route(&RouteLabels::new("p", "s", "i"));
        let text = m.encode_text();
        assert!(text.contains("# TYPE mailcanary_canaries_sent_total counter\n"), "{text}");
        assert!(text.contains("# HELP mailcanary_canaries_sent_total Canaries accepted by the provider.\n"));
        assert!(text.contains("mailcanary_canaries_sent_total{probe=\"p\",provider=\"s\",inbox=\"i\"} 0\n"));
        assert!(text.contains("# TYPE mailcanary_delivery_latency_seconds histogram\n"));
        assert!(!text.contains("# EOF"));
        assert!(m.encode_openmetrics().ends_with("# EOF\n"));
    }

    /// Every line of OpenMetrics but the comments comes through unchanged,
    /// in order: the text format is the OpenMetrics one with its counter
    /// families renamed and `# UNIT` and `# EOF` dropped.
    #[test]
    fn text_format_is_the_openmetrics_samples_with_prometheus_comments() {
        let m = Metrics::new();
        for (probe, provider, inbox) in [("p", "s", "i"), ("q", "t", "j")] {
            let route = RouteLabels::new(probe, provider, inbox);
            m.init_route(&route);
            m.accepted(&route, 0.25);
        }
        let samples = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.starts_with("mailcanary_time_seconds "))
                .map(String::from)
                .collect()
        };
        let (openmetrics, text) = (m.encode_openmetrics(), m.encode_text());
        assert_eq!(samples(&text), samples(&openmetrics));
        assert!(samples(&text).len() > 50);
        let comments = |text: &str| text.lines().filter(|l| l.starts_with('#')).count();
        let units = openmetrics.lines().filter(|l| l.starts_with("# UNIT ")).count();
        assert_eq!(comments(&text), comments(&openmetrics) - units - 1, "one HELP and one TYPE a family");
        for line in text.lines().filter(|l| l.starts_with("# TYPE ") && l.ends_with(" counter")) {
            assert!(line.strip_suffix(" counter").unwrap().ends_with("_total"), "{line}");
        }
    }

    #[test]
    fn time_is_the_wall_clock_at_each_scrape() {
        let m = Metrics::new();
        let read = |text: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with("mailcanary_time_seconds ")).expect("the time gauge");
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let wall = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let before = wall();
        let first = read(&m.encode_text());
        assert!(first >= before && first <= wall(), "{first} outside [{before}, now]");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(read(&m.encode_text()) > first, "not read again at the second scrape");
    }
}
