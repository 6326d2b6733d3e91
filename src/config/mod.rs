//! `probes.yaml`: decode with unknown keys refused, expand `${VAR}`, apply
//! defaults, validate the whole file, and report every problem at once with
//! its path and line.
//!
//! This file loads and parses; each part of the file has its own: `global:`
//! in global.rs, `inboxes:` in inbox.rs, `probes:` and the routes they make
//! in probe.rs. What a part below the config reads of its own lives with it
//! and is re-exported here: each provider's keys and their checks with the
//! provider (crate::provider, one file a kind), TLS modes in crate::tls,
//! OAuth2 in crate::oauth2, durations in crate::duration. Every type is used
//! as `config::X`.

mod checker;
mod expand;
mod global;
mod health;
mod inbox;
mod metrics;
mod probe;
mod routes;
mod status_page;
mod traffic;
pub mod traffic_keys;
mod traffic_source;
mod validate;
mod yaml;

use crate::canary::SigningKey;
pub use global::{Defaults, FastPoll, Global, WebConfig, default_instance};
pub use health::{GlobalFailover, HealthDefaults};
pub use inbox::{Cleanup, Folders, ImapConfig, InboxConfig};
pub use metrics::{DetailName, MetricsConfig};
pub use probe::{Matrix, ProbeEntry, Route};
pub use status_page::StatusPageConfig;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
pub use traffic::{RecipientPolicy, TrafficConfig, TrafficHealth};
pub use traffic_source::{
    MailgunSource, PostfixLogSource, PostmarkSource, ResendSource, SendgridSource, SesSnsSource, SourceConfig, StartAt,
};
#[cfg(test)]
pub(crate) use yaml::quoted as yaml_quoted;

pub use crate::duration::{self, Percent};
pub use crate::oauth2::{OAuth2Config, SaslMechanism};
pub use crate::provider::{
    HealthOverrides, MailgunConfig, MailgunRegion, PostmarkConfig, ProviderConfig, ProviderFailover, ResendConfig,
    SendgridConfig, SesConfig, SmtpConfig,
};
pub use crate::tls::TlsMode;
pub use crate::trigger::TriggerConfig;

/// A loaded, validated configuration with every probe expanded into routes.
#[derive(Debug, Clone)]
pub struct Config {
    pub global: Global,
    pub providers: Vec<ProviderConfig>,
    pub inboxes: Vec<InboxConfig>,
    /// Every route, matrices expanded, defaults applied.
    pub routes: Vec<Route>,
    /// The real traffic's event sources (crate::traffic), if any.
    pub traffic: Option<TrafficConfig>,
}

impl Config {
    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name() == name)
    }

    /// The inbox named `name`.
    pub fn inbox(&self, name: &str) -> Option<&InboxConfig> {
        self.inboxes.iter().find(|i| i.name == name)
    }

    /// The route named `name`.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// This prober's identity.
    pub fn instance(&self) -> String {
        self.global.instance.clone().unwrap_or_else(default_instance)
    }

    /// The signing key this config names: given itself, or read from its
    /// file (created if missing).
    pub fn signing_key(&self) -> Result<SigningKey, String> {
        if let Some(key) = &self.global.signing_key {
            return Ok(SigningKey::new(key.clone()));
        }
        let path = self.global.signing_key_file.clone().unwrap_or_else(|| self.global.state_dir.join("signing.key"));
        SigningKey::load_or_create(&path).map_err(|e| format!("signing key {}: {e}", path.display()))
    }
}

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, as `probes[2].provider`; empty for the whole file.
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    fn at(path: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Problem { path: path.to_string(), line, message: message.into() }
    }
}

/// Keys and values come from the file: shown escaped (crate::quote), so a
/// key holding a terminal escape is shown, not obeyed.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", crate::quote::escape(&self.path))?;
        }
        f.write_str(&crate::quote::escape(&self.message))?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Why a config could not be loaded: every problem found, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    #[error("{} has {} problem{}:\n{}", .path.display(), .problems.len(), if .problems.len() == 1 { "" } else { "s" }, list(.problems))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

fn list(problems: &[Problem]) -> String {
    let mut text = problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n");
    if let Some(hint) = hint(problems) {
        text.push('\n');
        text.push_str(&hint);
    }
    text
}

/// Where the fix lies outside the file: the local mail stack's variables
/// come from the env file that `scripts/mailstack.sh up` writes into its
/// directory (`MAILSTACK_DIR`). Named only when known: from `MAILSTACK_DIR`,
/// or the default directory when that holds one.
fn hint(problems: &[Problem]) -> Option<String> {
    let stack = problems
        .iter()
        .any(|p| p.message.starts_with("environment variable MAILSTACK_") && p.message.ends_with(" is not set"));
    if !stack {
        return None;
    }
    let start = "hint: the MAILSTACK_* variables come from the mail stack; source its env first";
    let default = Path::new("/tmp/mailcanary-stack/env");
    Some(match std::env::var_os("MAILSTACK_DIR") {
        Some(dir) => format!("{start}: set -a; . {}; set +a", Path::new(&dir).join("env").display()),
        None if default.is_file() => format!("{start}: set -a; . {}; set +a", default.display()),
        None => format!(
            "{start}: set -a; . DIR/env; set +a, where DIR is the stack's directory (MAILSTACK_DIR when it was started)"
        ),
    })
}

/// Loads and validates `path`, reading `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read { path: path.to_path_buf(), source: std::sync::Arc::new(e) })?;
    let env: HashMap<String, String> = std::env::vars().collect();
    parse(&text, &env).map_err(|problems| ConfigError::Invalid { path: path.to_path_buf(), problems })
}

/// What `report` reads of a config: where the ledger is and the threshold
/// that makes a delivery delayed.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    pub state_dir: PathBuf,
    /// `global.status_page.slow`.
    pub slow: std::time::Duration,
}

/// Only `global.state_dir` and `global.status_page.slow` of `path`, for
/// commands that read nothing but the ledger (`report`): no other key is
/// checked and no other `${VAR}` need be set.
pub fn load_report_settings(path: &Path) -> Result<ReportSettings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read { path: path.to_path_buf(), source: std::sync::Arc::new(e) })?;
    let env: HashMap<String, String> = std::env::vars().collect();
    let invalid = |problems| ConfigError::Invalid { path: path.to_path_buf(), problems };
    let mut problems = Vec::new();
    let doc = yaml::Document::parse(&text, &env, &mut problems).map_err(|p| invalid(vec![p]))?;
    const KEYS: [&str; 2] = ["global.state_dir", "global.status_page.slow"];
    problems.retain(|p| KEYS.iter().any(|k| under_or_at(&p.path, k)));
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let state_dir = match doc.node(KEYS[0]) {
        None => global::default_state_dir(),
        Some(_) => doc.decode::<PathBuf>(KEYS[0]).map_err(|p| invalid(yaml::redact(vec![p], &doc.expanded)))?,
    };
    let slow = match doc.scalar(KEYS[1]) {
        None => StatusPageConfig::default().slow,
        Some(text) => duration::parse_duration(text)
            .map_err(|e| invalid(vec![Problem::at(KEYS[1], doc.line(KEYS[1]), e.to_string())]))?,
    };
    Ok(ReportSettings { state_dir, slow })
}

/// Parses and validates config text; `env` supplies `${VAR}`.
pub fn parse(text: &str, env: &HashMap<String, String>) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let doc = yaml::Document::parse(text, env, &mut problems).map_err(|p| vec![p])?;
    let unset = problems.len();
    for (key, line) in &doc.top_keys {
        if !["global", "providers", "inboxes", "probes", "traffic"].contains(&key.as_str()) {
            problems.push(Problem::at(
                key,
                Some(*line),
                format!("unknown key {key:?}, expected one of global, providers, inboxes, probes, traffic"),
            ));
        }
    }
    let global = match doc.node("global") {
        Some(_) => all_or_push(doc.decode_all::<Global>("global"), &mut problems),
        None => ok_or_push(doc_default_global(), &mut problems),
    };
    let providers = decode_list::<ProviderConfig>(&doc, "providers", &mut problems);
    let inboxes = decode_list::<InboxConfig>(&doc, "inboxes", &mut problems);
    let probes = decode_list::<ProbeEntry>(&doc, "probes", &mut problems);
    let traffic = traffic::decode(&doc, &mut problems);
    let mut config = Config {
        global: global.unwrap_or_else(|| doc_default_global().expect("defaults decode")),
        providers: providers.iter().map(|(_, p)| p.clone()).collect(),
        inboxes: inboxes.iter().map(|(_, i)| i.clone()).collect(),
        routes: Vec::new(),
        traffic,
    };
    config.routes = validate::validate(&config, &providers, &inboxes, &probes, &doc, &mut problems);
    traffic::validate(&config, &doc, &mut problems);
    // A value whose ${VAR} is unset was left as written: what it breaks
    // further (a CA file "${MAILSTACK_CA}" that does not exist) is the same cause.
    let mut index = 0;
    problems.retain(|p| {
        index += 1;
        index <= unset || !doc.unexpanded.iter().any(|u| under_or_at(&p.path, u))
    });
    // Real traffic alone is something to monitor.
    if ["providers", "inboxes", "probes", "traffic"].iter().all(|s| doc.node(s).is_none()) {
        problems.push(Problem::at(
            "",
            None,
            "nothing to monitor: the file has no providers, inboxes or probes (the repository's probes.yaml is an example)",
        ));
    } else if problems.is_empty()
        && config.routes.is_empty()
        && (config.traffic.is_none() || doc.node("probes").is_some())
    {
        problems.push(Problem::at(
            "probes",
            doc.node("probes").map(|n| n.line),
            "no routes: add a probe (name, provider, inbox) or a matrix",
        ));
    }
    problems.sort_by_key(|p| p.line.unwrap_or(0));
    if problems.is_empty() { Ok(config) } else { Err(yaml::redact(problems, &doc.expanded)) }
}

/// Whether `path` is `at` or a key or item below it.
fn under_or_at(path: &str, at: &str) -> bool {
    path.strip_prefix(at).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Decodes each item of the list at `section` on its own, with its index.
fn decode_list<T: serde::de::DeserializeOwned>(
    doc: &yaml::Document,
    section: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(usize, T)> {
    match doc.node(section) {
        None => return Vec::new(),
        Some(node) if node.kind == yaml::Kind::Sequence => {}
        Some(node) if node.kind == yaml::Kind::Scalar && doc.len(section) == 0 => return Vec::new(),
        Some(node) => {
            problems.push(Problem::at(section, Some(node.line), "must be a list (each item starts with -)"));
            return Vec::new();
        }
    }
    (0..doc.len(section))
        .filter_map(|i| {
            let path = format!("{section}[{i}]");
            all_or_push(doc.decode_all::<T>(&path), problems).map(|item| (i, item))
        })
        .collect()
}

fn all_or_push<T>((value, found): (Option<T>, Vec<Problem>), problems: &mut Vec<Problem>) -> Option<T> {
    problems.extend(found);
    value
}

fn ok_or_push<T>(result: Result<T, Problem>, problems: &mut Vec<Problem>) -> Option<T> {
    result.map_err(|p| problems.push(p)).ok()
}

fn doc_default_global() -> Result<Global, Problem> {
    serde_saphyr::from_str::<Global>("{}").map_err(|e| Problem::at("global", None, e.to_string()))
}
