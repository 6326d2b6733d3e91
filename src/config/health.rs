//! `global.health` and `global.failover` (DESIGN: provider health and
//! failover); a provider's own `health` and `failover` blocks are read with
//! its other keys (crate::provider).

use super::duration;
use crate::health::{LearnConfig, Thresholds};
use crate::provider::{HealthOverrides, ProviderConfig};
use serde::Deserialize;
use std::time::Duration;

/// `global.health`: when a provider counts as down, and up again.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthDefaults {
    /// A canary in flight this long counts against its route. Written
    /// alone, it pins every route's bound; without it (or with `learn`)
    /// each route learns its own, and this (90 s) is the bound until it has.
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub overdue_after: Option<Duration>,
    /// How routes learn their overdue bound from their deliveries.
    #[serde(default)]
    pub learn: Option<LearnConfig>,
    /// Failures in a row (refused, bounced, lost, overdue) that make a route fail.
    #[serde(default = "default_down_after")]
    pub down_after: u32,
    /// Canaries in a row delivered in time that bring a provider back from down.
    #[serde(default = "default_up_after")]
    pub up_after: u32,
    /// Confirmation canaries a provider may be sent per minute when its
    /// canaries are overdue (0: none).
    #[serde(default = "default_confirmations_per_minute")]
    pub confirmations_per_minute: u32,
    /// Confirmation canaries the whole prober may send per minute, over
    /// every provider: what a mailbox outage across many providers costs.
    #[serde(default = "default_confirmations_max_per_minute")]
    pub confirmations_max_per_minute: u32,
}

impl Default for HealthDefaults {
    fn default() -> Self {
        HealthDefaults {
            overdue_after: None,
            learn: None,
            down_after: default_down_after(),
            up_after: default_up_after(),
            confirmations_per_minute: default_confirmations_per_minute(),
            confirmations_max_per_minute: default_confirmations_max_per_minute(),
        }
    }
}

impl HealthDefaults {
    /// The thresholds of a provider with `overrides`. An `overdue_after`
    /// written without `learn` pins the bound; the provider's own words
    /// win over the global ones.
    pub fn with(&self, overrides: Option<&HealthOverrides>) -> Thresholds {
        let o = overrides.cloned().unwrap_or_default();
        let fixed = o.overdue_after.or(self.overdue_after).unwrap_or(DEFAULT_OVERDUE_AFTER);
        let learning = match (&o.learn, o.overdue_after, &self.learn, self.overdue_after) {
            (Some(l), _, global, _) => Some(l.over(global.as_ref(), fixed)),
            (None, Some(_), _, _) => None,
            (None, None, Some(l), _) => Some(l.over(None, fixed)),
            (None, None, None, Some(_)) => None,
            (None, None, None, None) => Some(LearnConfig::default().over(None, fixed)),
        };
        Thresholds {
            overdue_after: fixed,
            learning,
            down_after: o.down_after.unwrap_or(self.down_after),
            up_after: o.up_after.unwrap_or(self.up_after),
            confirmations_per_minute: o.confirmations_per_minute.unwrap_or(self.confirmations_per_minute),
        }
    }
}

/// The bound before a route has learned its own, and the ceiling of what
/// it learns, unless the config says otherwise: the latency objective the
/// shipped alerts used before bounds were learned.
const DEFAULT_OVERDUE_AFTER: Duration = Duration::from_secs(90);

/// The global health thresholds apply to every provider, over which its
/// own `health` block wins: that is the config's to say, so this lives here.
impl ProviderConfig {
    /// This provider's health thresholds, given the global ones.
    pub fn health(&self, defaults: &HealthDefaults) -> Thresholds {
        defaults.with(self.health_overrides())
    }
}

/// `global.failover`: the steering signals other machines act on
/// (docs/failover.md says which of them fail safe, and how).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFailover {
    /// `host:port` of HAProxy's agent check (`agent-check agent-port`): an
    /// unreachable agent leaves HAProxy's servers as they are.
    #[serde(default)]
    pub agent: Option<String>,
    /// A Postfix lookup table written here (`PATH.cdb`, for
    /// `transport_maps = cdb:PATH`), replaced atomically when the best
    /// provider changes: Postfix keeps reading it when mailcanary is gone.
    #[serde(default)]
    pub postfix_map: Option<std::path::PathBuf>,
    /// `host:port` of the socketmap server (`socketmap:inet:HOST:PORT:relay`
    /// in Postfix). Fails closed: Postfix defers mail while it cannot ask.
    #[serde(default)]
    pub socketmap: Option<String>,
}

fn default_confirmations_per_minute() -> u32 {
    6
}
fn default_confirmations_max_per_minute() -> u32 {
    60
}
fn default_down_after() -> u32 {
    2
}
fn default_up_after() -> u32 {
    2
}
