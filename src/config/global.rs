//! `global:`: the prober's own settings (where it listens, where its ledger
//! and signing key live, who it is) and what a probe gets when it says
//! nothing, with their defaults.

use super::duration::{self, Percent};
use super::{GlobalFailover, HealthDefaults, MetricsConfig, StatusPageConfig};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The `global:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    /// Address of `/metrics`, `/healthz`, `/readyz` and `/api/v1/status`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where the SQLite ledger lives.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// This prober's identity, carried in every token; defaults to the host name.
    #[serde(default)]
    pub instance: Option<String>,
    /// File holding the signing key; created (mode 0600) if missing.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// The signing key itself, usually `${VAR}`; instead of `signing_key_file`.
    #[serde(default)]
    pub signing_key: Option<Secret>,
    /// Keys signed with before a rotation, usually `${VAR}`s: canaries
    /// still in flight under them verify until they are resolved.
    #[serde(default)]
    pub retired_signing_keys: Vec<Secret>,
    /// Who runs this prober, named in every canary's body.
    #[serde(default)]
    pub operator: Option<String>,
    /// Route defaults.
    #[serde(default)]
    pub defaults: Defaults,
    /// At most this many canaries being submitted at once.
    #[serde(default = "default_max_concurrent_sends")]
    pub max_concurrent_sends: usize,
    /// Fast polling of an inbox right after a canary was sent into it.
    #[serde(default)]
    pub fast_poll: FastPoll,
    /// How long resolved canaries stay in the ledger.
    #[serde(default = "default_retention", deserialize_with = "duration::deserialize")]
    pub retention: Duration,
    /// When a provider counts as down, and up again.
    #[serde(default)]
    pub health: HealthDefaults,
    /// The steering signals (HAProxy agent, Postfix table, socketmap).
    #[serde(default)]
    pub failover: Option<GlobalFailover>,
    /// Limits every listener enforces.
    #[serde(default)]
    pub web: WebConfig,
    /// Opt-in per-route series beyond what alerts and dashboards read.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The status page at `/status`, its feed and badges.
    #[serde(default)]
    pub status_page: StatusPageConfig,
}

/// `global.defaults`: what a probe gets when it says nothing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default = "default_interval", deserialize_with = "duration::deserialize")]
    pub interval: Duration,
    #[serde(default = "default_timeout", deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    #[serde(default = "default_jitter")]
    pub jitter: Percent,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { interval: default_interval(), timeout: default_timeout(), jitter: default_jitter() }
    }
}

/// `global.fast_poll`: servers may hold IDLE notifications back (Dovecot by
/// ~500 ms), so after a send the watcher polls its inbox every `interval`
/// for up to `window`, or until nothing it waits for is in flight.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastPoll {
    #[serde(default = "default_fast_interval", deserialize_with = "duration::deserialize")]
    pub interval: Duration,
    #[serde(default = "default_fast_window", deserialize_with = "duration::deserialize")]
    pub window: Duration,
}

impl Default for FastPoll {
    fn default() -> Self {
        FastPoll { interval: default_fast_interval(), window: default_fast_window() }
    }
}

/// `global.web`: what every listener (the main one, the status page's,
/// the agent, the socketmap) enforces, so that no client holds or floods it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// A connection must send its first request's headers within this.
    #[serde(default = "default_first_request_timeout", deserialize_with = "duration::deserialize")]
    pub first_request_timeout: Duration,
    /// A connection on which nothing moves for this long is closed.
    #[serde(default = "default_idle_timeout", deserialize_with = "duration::deserialize")]
    pub idle_timeout: Duration,
    /// Connections at once, per listener; past it new ones are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// TLS and basic auth for the main listener, in the Prometheus
    /// ecosystem's web configuration format (crate::listener::web); read at start.
    #[serde(default)]
    pub config_file: Option<PathBuf>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            first_request_timeout: default_first_request_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            config_file: None,
        }
    }
}

impl WebConfig {
    /// The limits of an HTTP listener.
    pub fn limits(&self) -> crate::listener::Limits {
        crate::listener::Limits {
            first_request: self.first_request_timeout,
            idle: self.idle_timeout,
            lifetime: (self.idle_timeout * 2).max(Duration::from_secs(120)),
            max_connections: self.max_connections,
        }
    }
}

fn default_first_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_connections() -> usize {
    512
}

fn default_listen() -> String {
    "127.0.0.1:9925".into()
}
pub(super) fn default_state_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_max_concurrent_sends() -> usize {
    64
}
fn default_retention() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_jitter() -> Percent {
    Percent(0.1)
}
fn default_fast_interval() -> Duration {
    Duration::from_millis(100)
}
fn default_fast_window() -> Duration {
    Duration::from_secs(10)
}

/// The machine's host name, the default `instance`.
pub fn default_instance() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mailcanary".into())
}
