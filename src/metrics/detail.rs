//! The opt-in per-route series (`global.metrics.detail`). Every one of them
//! is multiplied by the routes, and by every prober, on a Prometheus billed
//! per series; no alert reads them, so they are off unless asked for, and a
//! reload switches them on or off without a restart.

use super::{AuthLabels, HopLabels, Metrics, RouteLabels};
use prometheus_client::metrics::family::MetricConstructor;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// Which opt-in series are exported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Detail {
    /// `auth_results_total`: pass and fail of SPF, DKIM, DMARC and ARC
    /// from start-up (8 per route), more as other verdicts come.
    pub auth: bool,
    /// `hop_delay_seconds`, a histogram per `Received` hop (10 series
    /// each), and `hop_timestamps_unusable_total` (1).
    pub hops: bool,
    /// The finite buckets of `send_duration_seconds` (12 more per route);
    /// without them its sum and count still give the mean.
    pub send_duration: bool,
}

impl Detail {
    /// Every opt-in series.
    pub const ALL: Detail = Detail { auth: true, hops: true, send_duration: true };
}

/// Makes a route's `send_duration_seconds`: with finite buckets while that
/// detail is on, else `+Inf` only.
#[derive(Clone, Debug, Default)]
pub struct SendHistogram {
    buckets: Arc<AtomicBool>,
}

impl MetricConstructor<Histogram> for SendHistogram {
    fn new_metric(&self) -> Histogram {
        if self.buckets.load(Ordering::Relaxed) {
            Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
        } else {
            Histogram::new(std::iter::empty())
        }
    }
}

/// The detail in force and the send-duration constructor that follows it.
/// The lock is held while series are created or removed, so a reload that
/// switches detail never races a canary being counted.
#[derive(Default)]
pub(super) struct DetailState {
    current: RwLock<Detail>,
    pub(super) send: SendHistogram,
}

impl Metrics {
    /// The detail in force, held until the guard is dropped.
    pub(super) fn detail(&self) -> RwLockReadGuard<'_, Detail> {
        self.detail.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Exports the opt-in series of `detail` from now on. For `routes`
    /// (those whose series exist) what is turned off is removed and what is
    /// turned on created at 0; a send-duration histogram whose buckets change
    /// starts again from 0, which `rate()` takes as a counter reset.
    pub fn set_detail(&self, detail: Detail, routes: &[RouteLabels]) {
        let mut current = self.detail.current.write().unwrap_or_else(|p| p.into_inner());
        let was = std::mem::replace(&mut *current, detail);
        self.detail.send.buckets.store(detail.send_duration, Ordering::Relaxed);
        for route in routes {
            if was.auth && !detail.auth {
                self.remove_auth(route);
            }
            if was.hops && !detail.hops {
                self.remove_hops(route);
            }
            if was.send_duration != detail.send_duration {
                self.send_duration.remove(route);
                let _ = self.send_duration.get_or_create(route);
            }
            self.init_detail(route, detail);
        }
    }

    /// Creates at 0 the opt-in series of a route that `detail` turns on and
    /// an alert could rise from.
    pub(super) fn init_detail(&self, route: &RouteLabels, detail: Detail) {
        if detail.auth {
            // pass and fail of every method, so a first failure is seen.
            for method in crate::insight::METHODS {
                for result in ["pass", "fail"] {
                    let _ = self.auth_results.get_or_create(&AuthLabels { route: route.clone(), method, result });
                }
            }
        }
        if detail.hops {
            let _ = self.hop_unusable.get_or_create(route);
        }
    }

    pub(super) fn remove_auth(&self, route: &RouteLabels) {
        for method in crate::insight::METHODS {
            for result in crate::insight::RESULTS.into_iter().chain(["other"]) {
                self.auth_results.remove(&AuthLabels { route: route.clone(), method, result });
            }
        }
    }

    pub(super) fn remove_hops(&self, route: &RouteLabels) {
        for position in 1..=crate::insight::MAX_HOP {
            self.hop_delay.remove(&HopLabels { route: route.clone(), hop: crate::insight::hop_label(position) });
        }
        self.hop_unusable.remove(route);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insight::{Hop, Insight, Verdict};
    use crate::outcome::{Observed, Outcome, Placement};

    fn route(probe: &str) -> RouteLabels {
        RouteLabels::new(probe, "relay", "box")
    }

    /// What one canary seen on the local stack carries: three verdicts and
    /// two `Received` hops (Postfix over SMTP, Dovecot over LMTP).
    fn seen() -> Insight {
        let hop = |position| Hop { position, by: None, tls: false, delay_seconds: Some(1.0) };
        Insight {
            verdicts: vec![
                Verdict { method: "spf", result: "pass" },
                Verdict { method: "dkim", result: "fail" },
                Verdict { method: "dmarc", result: "fail" },
            ],
            hops: vec![hop(1), hop(2)],
            unusable_hops: 0,
        }
    }

    use crate::settled::{Consumer, Settled};

    /// A route that sent a canary and saw it delivered.
    fn delivered(m: &Metrics, route: &RouteLabels) {
        m.init_route(route);
        m.accepted(route, 0.2);
        let outcome =
            Outcome::Delivered { placement: Placement::Inbox, latency_seconds: 0.7, observed: Observed::Live };
        let s = Settled {
            canary: "c".into(),
            route: route.clone(),
            accepted: std::time::Instant::now(),
            outcome,
            insight: seen(),
            at_ms: 1_800_000_000_000,
        };
        Consumer::settled(m, &s);
    }

    /// The series of `probe` in the exposition, and their names.
    fn series(m: &Metrics, probe: &str) -> Vec<String> {
        let label = format!("probe=\"{probe}\"");
        m.encode_text()
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(&label))
            .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn a_route_costs_32_series_by_default() {
        let m = Metrics::new();
        delivered(&m, &route("r"));
        let names = series(&m, "r");
        assert_eq!(names.len(), 32, "{names:#?}");
        let count = |name: &str| names.iter().filter(|n| *n == name).count();
        assert_eq!(count("mailcanary_send_failures_total"), 7, "every reason from start-up");
        assert_eq!(count("mailcanary_delivery_latency_seconds_bucket"), 9, "8 bounds and +Inf");
        assert_eq!(count("mailcanary_send_duration_seconds_bucket"), 1, "+Inf only");
        assert_eq!(count("mailcanary_send_duration_seconds_sum") + count("mailcanary_send_duration_seconds_count"), 2);
        assert!(!names.iter().any(|n| n.contains("auth_results") || n.contains("hop_")), "{names:#?}");
        assert!(m.encode_text().contains("le=\"60.0\""), "the latency alert's threshold is a bound");
    }

    #[test]
    fn full_detail_costs_73_series_with_two_hops() {
        let m = Metrics::new();
        m.set_detail(Detail::ALL, &[]);
        delivered(&m, &route("r"));
        let names = series(&m, "r");
        assert_eq!(names.len(), 73, "{names:#?}");
        let count = |name: &str| names.iter().filter(|n| *n == name).count();
        assert_eq!(count("mailcanary_auth_results_total"), 8);
        assert_eq!(count("mailcanary_hop_delay_seconds_bucket"), 16, "8 per hop");
        assert_eq!(count("mailcanary_hop_timestamps_unusable_total"), 1);
        assert_eq!(count("mailcanary_send_duration_seconds_bucket"), 13);
    }

    #[test]
    fn a_reload_switches_detail_on_and_off_cleanly() {
        let m = Metrics::new();
        let (r, other) = (route("r"), route("other"));
        delivered(&m, &r);
        m.init_route(&other);
        m.set_detail(Detail::ALL, &[r.clone(), other.clone()]);
        // Turned on: auth at 0, the unusable-hop counter, send buckets; hop
        // histograms come with the next canary seen.
        assert_eq!(series(&m, "r").len(), 32 - 3 + 15 + 8 + 1);
        assert_eq!(series(&m, "other").len(), series(&m, "r").len());
        delivered(&m, &r);
        assert_eq!(series(&m, "r").len(), 73);
        let count = "mailcanary_send_duration_seconds_count{probe=\"r\",provider=\"relay\",inbox=\"box\"} 1\n";
        assert!(m.encode_text().contains(count), "the histogram with new buckets started again");

        m.set_detail(Detail::default(), &[r.clone(), other.clone()]);
        assert_eq!(series(&m, "r").len(), 32);
        assert_eq!(series(&m, "other").len(), 32);
        delivered(&m, &r);
        assert_eq!(series(&m, "r").len(), 32, "nothing opt-in comes back with a canary");
    }

    #[test]
    fn a_removed_route_leaves_no_series_whatever_the_detail() {
        let m = Metrics::new();
        m.set_detail(Detail::ALL, &[]);
        let r = route("r");
        delivered(&m, &r);
        m.remove_route(&r);
        assert_eq!(series(&m, "r"), Vec::<String>::new());
    }
}
