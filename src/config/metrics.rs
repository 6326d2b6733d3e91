//! `global.metrics`: the opt-in per-route series. Each one is paid for per
//! route and per prober on a Prometheus billed per series, so the default
//! exports only what the shipped alerts and dashboards read.

use crate::metrics::Detail;
use serde::Deserialize;

/// `global.metrics`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Opt-in series, e.g. `[auth, hops, send_duration]`.
    #[serde(default)]
    pub detail: Vec<DetailName>,
}

/// One item of `global.metrics.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetailName {
    /// `auth_results_total`: the receiving server's SPF, DKIM, DMARC, ARC verdicts.
    Auth,
    /// `hop_delay_seconds` and `hop_timestamps_unusable_total`.
    Hops,
    /// The finite buckets of `send_duration_seconds`, for its percentiles.
    SendDuration,
}

impl MetricsConfig {
    /// The series to export.
    pub fn detail(&self) -> Detail {
        let on = |name| self.detail.contains(&name);
        Detail { auth: on(DetailName::Auth), hops: on(DetailName::Hops), send_duration: on(DetailName::SendDuration) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_names_turn_on_their_series_and_nothing_is_on_by_default() {
        let config: MetricsConfig = serde_saphyr::from_str("detail: [hops, send_duration]").unwrap();
        assert_eq!(config.detail(), Detail { auth: false, hops: true, send_duration: true });
        assert_eq!(MetricsConfig::default().detail(), Detail::default());
        let all: MetricsConfig = serde_saphyr::from_str("detail: [auth, hops, send_duration]").unwrap();
        assert_eq!(all.detail(), Detail::ALL);
    }
}
