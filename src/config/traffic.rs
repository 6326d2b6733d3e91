//! `traffic:`: where the real mail's events come from (DESIGN: real
//! traffic). A listener of its own for the providers' webhooks, how
//! recipients are kept, and one source per item, its kind picked by `type`
//! (traffic_source.rs: a closed enum, dispatched in crate::traffic).

use super::traffic_source::{SourceConfig, kind};
use super::yaml::Document;
use super::{Config, Problem, duration};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The `traffic:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficConfig {
    /// The webhook listener's address.
    pub listen: Option<String>,
    pub recipients: RecipientPolicy,
    /// TLS and basic auth for the webhook listener (exporter-toolkit's web config).
    pub web_config_file: Option<PathBuf>,
    /// When real traffic counts against a provider's health.
    pub health: TrafficHealth,
    pub sources: Vec<SourceConfig>,
}

/// `traffic.health`: a spike of deferrals or bounces, over `window`, past
/// `min_messages`, makes a provider the canaries call healthy `degraded`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficHealth {
    #[serde(default = "minute", deserialize_with = "duration::deserialize")]
    pub window: Duration,
    #[serde(default = "twenty")]
    pub min_messages: u64,
    #[serde(default = "deferred_share")]
    pub deferred: super::Percent,
    #[serde(default = "bounced_share")]
    pub bounced: super::Percent,
}

impl Default for TrafficHealth {
    fn default() -> Self {
        TrafficHealth { window: minute(), min_messages: twenty(), deferred: deferred_share(), bounced: bounced_share() }
    }
}

impl TrafficHealth {
    pub fn thresholds(&self) -> crate::health::traffic::TrafficThresholds {
        crate::health::traffic::TrafficThresholds {
            window: self.window,
            min_messages: self.min_messages,
            deferred: self.deferred.0,
            bounced: self.bounced.0,
        }
    }
}

fn minute() -> Duration {
    Duration::from_secs(60)
}
fn twenty() -> u64 {
    20
}
fn deferred_share() -> super::Percent {
    super::Percent(0.2)
}
fn bounced_share() -> super::Percent {
    super::Percent(0.1)
}

/// The keys of `traffic:` besides its sources.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    recipients: RecipientPolicy,
    #[serde(default)]
    web_config_file: Option<PathBuf>,
    #[serde(default)]
    health: TrafficHealth,
    #[serde(default)]
    #[allow(dead_code)]
    sources: serde::de::IgnoredAny,
}

/// How a real message's recipient is kept in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientPolicy {
    /// A keyed hash (HMAC-SHA256 under a key derived from the signing key):
    /// the same address always gives the same value, which nobody without
    /// the key can turn back into the address.
    #[default]
    Hash,
    /// The address itself.
    Keep,
    /// Nothing: a message to several recipients is then one row.
    Drop,
}

impl TrafficConfig {
    /// Whether any source is a webhook (and so the listener is needed).
    pub fn has_webhooks(&self) -> bool {
        self.sources.iter().any(|s| s.path().is_some())
    }
}

/// Decodes `traffic:` if the file has it, every source on its own.
pub(super) fn decode(doc: &Document, problems: &mut Vec<Problem>) -> Option<TrafficConfig> {
    doc.node("traffic")?;
    let head = super::all_or_push(doc.decode_all::<Head>("traffic"), problems)?;
    let sources = super::decode_list::<SourceConfig>(doc, "traffic.sources", problems);
    Some(TrafficConfig {
        listen: head.listen,
        recipients: head.recipients,
        web_config_file: head.web_config_file,
        health: head.health,
        sources: sources.into_iter().map(|(_, s)| s).collect(),
    })
}

/// Checks what serde cannot: names, paths, keys, listeners, and that a
/// signed timestamp's tolerance stays within what the ledger remembers.
pub(super) fn validate(config: &Config, doc: &Document, problems: &mut Vec<Problem>) {
    let Some(t) = &config.traffic else { return };
    let mut push = |path: String, message: String| {
        let line = doc.line(&path);
        problems.push(Problem { path, line, message });
    };
    listener(config, t, &mut push);
    let h = &t.health;
    if h.window.is_zero() {
        push("traffic.health.window".into(), "window must be more than 0s".into());
    }
    if h.min_messages == 0 {
        push("traffic.health.min_messages".into(), "at least 1: a spike needs some volume".into());
    }
    for (key, share) in [("deferred", h.deferred.0), ("bounced", h.bounced.0)] {
        if !(share > 0.0 && share <= 1.0) {
            push(format!("traffic.health.{key}"), "must be more than 0% and at most 100%".into());
        }
    }
    let mut names = std::collections::HashSet::new();
    let mut paths = std::collections::HashSet::new();
    for (i, source) in t.sources.iter().enumerate() {
        let at = format!("traffic.sources[{i}]");
        for (key, value, what) in [("name", source.name(), "source"), ("provider", source.provider(), "provider")] {
            if value.is_empty()
                || value.len() > 64
                || !value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                push(
                    format!("{at}.{key}"),
                    format!("{what} name {value:?} may use only letters, digits, '-', '_' and '.' (at most 64)"),
                );
            }
        }
        if !names.insert(source.name()) {
            push(format!("{at}.name"), format!("duplicate source name {:?}", source.name()));
        }
        if let Some(path) = source.path() {
            if !path.starts_with('/') || path.contains(char::is_whitespace) || path.contains(['?', '#']) {
                push(format!("{at}.path"), format!("{path:?} is not a URL path such as /traffic/ses"));
            } else if !paths.insert(path) {
                push(format!("{at}.path"), format!("{path} is already used by another source"));
            }
        }
        if let Some(tolerance) = source.tolerance()
            && (tolerance.is_zero() || tolerance > config.global.retention)
        {
            push(
                format!("{at}.tolerance"),
                "must be more than 0s and at most global.retention: an event id is remembered that long, so a \
                 replay inside the tolerance is always recognised"
                    .into(),
            );
        }
        kind(source, &at, &mut push);
    }
}

/// The webhook listener: needed by webhook sources, apart from the others.
fn listener(config: &Config, t: &TrafficConfig, push: &mut impl FnMut(String, String)) {
    let g = &config.global;
    match &t.listen {
        None if t.has_webhooks() => {
            push("traffic.listen".into(), "webhook sources need a listener, such as 0.0.0.0:9928".into())
        }
        None => {}
        Some(listen) if listen.parse::<SocketAddr>().is_err() => {
            push("traffic.listen".into(), format!("{listen:?} is not an address:port such as 0.0.0.0:9928"))
        }
        Some(listen) => {
            let f = g.failover.as_ref();
            let others = [
                ("global.listen", Some(&g.listen)),
                ("global.status_page.listen", g.status_page.listen.as_ref()),
                ("global.failover.agent", f.and_then(|f| f.agent.as_ref())),
                ("global.failover.socketmap", f.and_then(|f| f.socketmap.as_ref())),
            ];
            if let Some((key, _)) = others.iter().find(|(_, l)| *l == Some(listen)) {
                push("traffic.listen".into(), format!("{listen} is already used by {key}"));
            }
        }
    }
    if let Some(path) = &t.web_config_file
        && let Err(e) = crate::listener::web::Web::load(path)
    {
        push("traffic.web_config_file".into(), e);
    }
}
