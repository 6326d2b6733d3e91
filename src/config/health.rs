//! `global.health` and `global.failover` (DESIGN: provider health and
//! failover); a provider's own `health` and `failover` blocks are read with
//! its other keys (crate::provider).

use super::duration;
use crate::health::Thresholds;
use crate::provider::{HealthOverrides, ProviderConfig};
use serde::Deserialize;
use std::time::Duration;

/// `global.health`: when a provider counts as down, and up again.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthDefaults {
    /// A canary in flight this long counts against its route, before its timeout.
    #[serde(default = "default_overdue_after", deserialize_with = "duration::deserialize")]
    pub overdue_after: Duration,
    /// Failures in a row (refused, bounced, lost, overdue) that make a route fail.
    #[serde(default = "default_down_after")]
    pub down_after: u32,
    /// Canaries in a row delivered in time that bring a provider back from down.
    #[serde(default = "default_up_after")]
    pub up_after: u32,
}

impl Default for HealthDefaults {
    fn default() -> Self {
        HealthDefaults {
            overdue_after: default_overdue_after(),
            down_after: default_down_after(),
            up_after: default_up_after(),
        }
    }
}

impl HealthDefaults {
    /// The thresholds of a provider with `overrides`.
    pub fn with(&self, overrides: Option<&HealthOverrides>) -> Thresholds {
        let o = overrides.cloned().unwrap_or_default();
        Thresholds {
            overdue_after: o.overdue_after.unwrap_or(self.overdue_after),
            down_after: o.down_after.unwrap_or(self.down_after),
            up_after: o.up_after.unwrap_or(self.up_after),
        }
    }
}

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

fn default_overdue_after() -> Duration {
    Duration::from_secs(90)
}
fn default_down_after() -> u32 {
    2
}
fn default_up_after() -> u32 {
    2
}
