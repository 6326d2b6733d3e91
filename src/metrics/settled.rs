//! The metrics as a consumer of verdicts (crate::settled): the outcome
//! counters, latency, and what the receiving side said of a canary seen.

use super::*;
use crate::settled::{Consumer, Settled};

impl Consumer for Metrics {
    /// Counts an outcome the matcher settled, on a route whose series
    /// exist: under their lock, so that a reload forgetting the route now
    /// cannot have its series made again.
    fn settled(&self, s: &Settled) {
        let (route, insight, at_ms) = (&s.route, &s.insight, s.at_ms);
        let routes = self.routes();
        if !routes.contains(route) {
            return;
        }
        match &s.outcome {
            Outcome::Delivered { placement, latency_seconds, .. } => {
                let l = PlacementLabels { route: route.clone(), placement: placement.as_str() };
                self.canaries_delivered.get_or_create(&l).inc();
                self.delivery_latency.get_or_create(route).observe(*latency_seconds);
                self.last_delivery.get_or_create(route).set(at_ms as f64 / 1000.0);
                self.insight(route, insight);
            }
            Outcome::Lost => {
                self.canaries_lost.get_or_create(route).inc();
            }
            Outcome::Late { .. } => {
                self.canaries_late.get_or_create(route).inc();
                self.insight(route, insight);
            }
            Outcome::Bounced { .. } => {
                self.canaries_bounced.get_or_create(route).inc();
            }
            Outcome::Refused { reason, .. } => {
                self.send_failures.get_or_create(&ReasonLabels { route: route.clone(), reason: reason.as_str() }).inc();
            }
            Outcome::Mismatched { expectation, .. } => {
                let l = ExpectationLabels { route: route.clone(), expectation: expectation.as_str() };
                self.canaries_mismatched.get_or_create(&l).inc();
                self.insight(route, insight);
            }
        }
    }
}

impl Metrics {
    /// Counts the receiving server's verdicts and the hop delays of a canary
    /// seen, as far as they are exported.
    fn insight(&self, route: &RouteLabels, insight: &Insight) {
        let detail = self.detail();
        if detail.auth {
            for v in &insight.verdicts {
                let l = AuthLabels { route: route.clone(), method: v.method, result: v.result };
                self.auth_results.get_or_create(&l).inc();
            }
        }
        if !detail.hops {
            return;
        }
        for hop in &insight.hops {
            if let Some(delay) = hop.delay_seconds {
                let l = HopLabels { route: route.clone(), hop: crate::insight::hop_label(hop.position) };
                self.hop_delay.get_or_create(&l).observe(delay);
            }
        }
        if insight.unusable_hops > 0 {
            self.hop_unusable.get_or_create(route).inc_by(insight.unusable_hops as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_for_a_route_a_reload_forgot_makes_no_series_again() {
        let m = Metrics::new();
        let route = RouteLabels::new("gone", "relay", "box");
        let lost = Settled {
            canary: "c1".into(),
            route: route.clone(),
            accepted: std::time::Instant::now(),
            outcome: Outcome::Lost,
            insight: Insight::default(),
            at_ms: 0,
        };
        m.init_route(&route);
        // The reload forgets the route while its last canary is being
        // settled (out of the book, its consumers not run yet).
        m.remove_route(&route);
        m.settled(&lost);
        let text = m.encode_openmetrics();
        assert!(!text.contains("probe=\"gone\""), "{text}");
        // A route whose series exist counts it.
        m.init_route(&route);
        m.settled(&lost);
        let text = m.encode_openmetrics();
        assert!(
            text.contains("mailcanary_canaries_lost_total{probe=\"gone\",provider=\"relay\",inbox=\"box\"} 1"),
            "{text}"
        );
    }
}
