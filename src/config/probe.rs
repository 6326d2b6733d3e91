//! `probes:` as written (single routes and matrices), and the [`Route`]s
//! they expand into once validated.

use super::duration::{self, Percent};
use serde::Deserialize;
use std::time::Duration;

/// One entry of `probes:` as written: a single route, or a `matrix`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeEntry {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub inbox: Option<String>,
    #[serde(default)]
    pub matrix: Option<Matrix>,
    /// Instead of `provider`: the request that makes an application send
    /// its own email (crate::trigger).
    #[serde(default)]
    pub trigger: Option<crate::trigger::TriggerConfig>,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub jitter: Option<Percent>,
}

/// `matrix:` every listed provider to every listed inbox.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub providers: Vec<String>,
    pub inboxes: Vec<String>,
}

/// One provider → inbox path, probed on its own schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The `probe` label.
    pub name: String,
    pub provider: String,
    pub inbox: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub jitter: f64,
    /// An application canary's trigger; `provider` is then its name.
    pub trigger: Option<Box<crate::trigger::TriggerConfig>>,
}

/// A canary made for a route carries its names.
impl crate::canary::RouteNames for Route {
    fn probe(&self) -> &str {
        &self.name
    }
    fn provider(&self) -> &str {
        &self.provider
    }
    fn inbox(&self) -> &str {
        &self.inbox
    }
}
