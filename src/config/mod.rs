//! `probes.yaml`: decode with unknown keys refused, expand `${VAR}`, apply
//! defaults, validate the whole file, and report every problem at once with
//! its path and line.

pub mod duration;
mod health;
mod metrics;
mod status_page;
mod validate;
mod yaml;

use crate::secret::Secret;
pub use health::{GlobalFailover, HealthDefaults, HealthOverrides, ProviderFailover};
pub use metrics::{DetailName, MetricsConfig};
use serde::Deserialize;
pub use status_page::StatusPageConfig;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::trigger::TriggerConfig;
pub use duration::Percent;

/// A loaded, validated configuration with every probe expanded into routes.
#[derive(Debug, Clone)]
pub struct Config {
    pub global: Global,
    pub providers: Vec<ProviderConfig>,
    pub inboxes: Vec<InboxConfig>,
    /// Every route, matrices expanded, defaults applied.
    pub routes: Vec<Route>,
}

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
    /// The Postfix socketmap server, when failover is wanted.
    #[serde(default)]
    pub failover: Option<GlobalFailover>,
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

/// How a connection is secured. `none` is never a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (SMTPS 465, IMAPS 993).
    Tls,
    /// Plain connection upgraded with STARTTLS, which is required.
    Starttls,
    /// No encryption at all; must be written out.
    None,
}

/// One sending provider; `type` picks the kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProviderConfig {
    Smtp(SmtpConfig),
    Ses(SesConfig),
    Sendgrid(SendgridConfig),
    Mailgun(MailgunConfig),
    Postmark(PostmarkConfig),
    Resend(ResendConfig),
}

impl ProviderConfig {
    /// What every kind has: name, sender, bounce mailbox, and (for API
    /// providers) the endpoint override; and the request timeout.
    fn common(&self) -> Common<'_> {
        macro_rules! common {
            ($c:expr, $endpoint:expr) => {
                Common {
                    name: &$c.name,
                    from: &$c.from,
                    bounce_inbox: $c.bounce_inbox.as_deref(),
                    endpoint: $endpoint,
                    timeout: $c.timeout,
                    health: $c.health.as_ref(),
                    failover: $c.failover.as_ref(),
                }
            };
        }
        match self {
            ProviderConfig::Smtp(c) => common!(c, None),
            ProviderConfig::Ses(c) => common!(c, c.endpoint.as_deref()),
            ProviderConfig::Sendgrid(c) => common!(c, c.endpoint.as_deref()),
            ProviderConfig::Mailgun(c) => common!(c, c.endpoint.as_deref()),
            ProviderConfig::Postmark(c) => common!(c, c.endpoint.as_deref()),
            ProviderConfig::Resend(c) => common!(c, c.endpoint.as_deref()),
        }
    }

    /// This provider's health thresholds, given the global ones.
    pub fn health(&self, defaults: &HealthDefaults) -> crate::health::Thresholds {
        defaults.with(self.common().health)
    }

    /// Postfix's next hop for this provider, if failover names one.
    pub fn nexthop(&self) -> Option<&str> {
        self.common().failover.map(|f| f.nexthop.as_str())
    }

    /// The `provider` label.
    pub fn name(&self) -> &str {
        self.common().name
    }

    /// The header sender (and the envelope sender unless a bounce inbox is set).
    pub fn from(&self) -> &str {
        self.common().from
    }

    /// The inbox that receives this provider's bounces (DSNs), if any.
    pub fn bounce_inbox(&self) -> Option<&str> {
        self.common().bounce_inbox
    }

    /// The API base URL override, if any.
    pub fn endpoint(&self) -> Option<&str> {
        self.common().endpoint
    }

    /// The limit for one submission.
    pub fn timeout(&self) -> Duration {
        self.common().timeout
    }
}

/// The keys every provider kind shares.
struct Common<'a> {
    name: &'a str,
    from: &'a str,
    bounce_inbox: Option<&'a str>,
    endpoint: Option<&'a str>,
    timeout: Duration,
    health: Option<&'a HealthOverrides>,
    failover: Option<&'a ProviderFailover>,
}

/// `type: ses`: Amazon SES v2 `SendEmail` with the raw message, SigV4-signed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SesConfig {
    pub name: String,
    /// e.g. `us-east-1`; picks `https://email.<region>.amazonaws.com`.
    pub region: String,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// For temporary credentials (STS).
    #[serde(default)]
    pub session_token: Option<Secret>,
    pub from: String,
    /// The inbox (by name) where this provider's bounces arrive: DSNs there
    /// resolve canaries as `bounced` at once instead of at their timeout.
    #[serde(default)]
    pub bounce_inbox: Option<String>,
    /// Health thresholds over `global.health`.
    #[serde(default)]
    pub health: Option<HealthOverrides>,
    /// What Postfix is told while this provider is the best usable one.
    #[serde(default)]
    pub failover: Option<ProviderFailover>,
    /// Optional configuration set, for SES's own event publishing.
    #[serde(default)]
    pub configuration_set: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_send_timeout", deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

/// `type: sendgrid`: SendGrid v3 `mail/send`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendgridConfig {
    pub name: String,
    pub api_key: Secret,
    pub from: String,
    /// The inbox (by name) where this provider's bounces arrive: DSNs there
    /// resolve canaries as `bounced` at once instead of at their timeout.
    #[serde(default)]
    pub bounce_inbox: Option<String>,
    /// Health thresholds over `global.health`.
    #[serde(default)]
    pub health: Option<HealthOverrides>,
    /// What Postfix is told while this provider is the best usable one.
    #[serde(default)]
    pub failover: Option<ProviderFailover>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_send_timeout", deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

/// Mailgun's two API regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailgunRegion {
    #[default]
    Us,
    Eu,
}

/// `type: mailgun`: Mailgun `messages` for a sending domain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailgunConfig {
    pub name: String,
    pub api_key: Secret,
    pub domain: String,
    #[serde(default)]
    pub region: MailgunRegion,
    pub from: String,
    /// The inbox (by name) where this provider's bounces arrive: DSNs there
    /// resolve canaries as `bounced` at once instead of at their timeout.
    #[serde(default)]
    pub bounce_inbox: Option<String>,
    /// Health thresholds over `global.health`.
    #[serde(default)]
    pub health: Option<HealthOverrides>,
    /// What Postfix is told while this provider is the best usable one.
    #[serde(default)]
    pub failover: Option<ProviderFailover>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_send_timeout", deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

/// `type: postmark`: Postmark `email` with a server token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostmarkConfig {
    pub name: String,
    pub server_token: Secret,
    pub from: String,
    /// The inbox (by name) where this provider's bounces arrive: DSNs there
    /// resolve canaries as `bounced` at once instead of at their timeout.
    #[serde(default)]
    pub bounce_inbox: Option<String>,
    /// Health thresholds over `global.health`.
    #[serde(default)]
    pub health: Option<HealthOverrides>,
    /// What Postfix is told while this provider is the best usable one.
    #[serde(default)]
    pub failover: Option<ProviderFailover>,
    /// The message stream; Postmark's default is `outbound`.
    #[serde(default)]
    pub message_stream: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_send_timeout", deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

/// `type: resend`: Resend `emails`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendConfig {
    pub name: String,
    pub api_key: Secret,
    pub from: String,
    /// The inbox (by name) where this provider's bounces arrive: DSNs there
    /// resolve canaries as `bounced` at once instead of at their timeout.
    #[serde(default)]
    pub bounce_inbox: Option<String>,
    /// Health thresholds over `global.health`.
    #[serde(default)]
    pub health: Option<HealthOverrides>,
    /// What Postfix is told while this provider is the best usable one.
    #[serde(default)]
    pub failover: Option<ProviderFailover>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_send_timeout", deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

/// `type: smtp`: a relay or submission server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub name: String,
    pub host: String,
    /// Defaults to 465 for `tls`, 587 for `starttls`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: Option<TlsMode>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// AUTH XOAUTH2 with an access token instead of a password.
    #[serde(default)]
    pub oauth2: Option<OAuth2Config>,
    pub from: String,
    /// The inbox (by name) where this provider's bounces arrive: DSNs there
    /// resolve canaries as `bounced` at once instead of at their timeout.
    #[serde(default)]
    pub bounce_inbox: Option<String>,
    /// Health thresholds over `global.health`.
    #[serde(default)]
    pub health: Option<HealthOverrides>,
    /// What Postfix is told while this provider is the best usable one.
    #[serde(default)]
    pub failover: Option<ProviderFailover>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Limit for one whole submission (connect, TLS, AUTH, DATA).
    #[serde(default = "default_send_timeout", deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

impl SmtpConfig {
    /// The TLS mode, STARTTLS unless said otherwise.
    pub fn tls_mode(&self) -> TlsMode {
        self.tls.unwrap_or(TlsMode::Starttls)
    }

    /// The port, from the TLS mode unless given.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls_mode() {
            TlsMode::Tls => 465,
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        })
    }
}

/// One watched mailbox.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// The `inbox` label.
    pub name: String,
    /// Where canaries are sent.
    pub address: String,
    pub imap: ImapConfig,
    #[serde(default)]
    pub folders: Folders,
    #[serde(default)]
    pub cleanup: Cleanup,
}

/// `inboxes[].imap`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    pub host: String,
    /// Defaults to 993 for `tls`, 143 otherwise.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: Option<TlsMode>,
    pub username: String,
    /// LOGIN with a password, or (instead) `oauth2`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// AUTHENTICATE with an OAuth2 access token, refreshed as needed.
    #[serde(default)]
    pub oauth2: Option<OAuth2Config>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Limit for every single IMAP command.
    #[serde(default = "default_imap_timeout", deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// How often every folder is checked even when IDLE reports nothing.
    #[serde(default = "default_poll_interval", deserialize_with = "duration::deserialize")]
    pub poll_interval: Duration,
}

impl ImapConfig {
    /// The TLS mode, implicit TLS unless said otherwise.
    pub fn tls_mode(&self) -> TlsMode {
        self.tls.unwrap_or(TlsMode::Tls)
    }

    /// The port, from the TLS mode unless given.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls_mode() {
            TlsMode::Tls => 993,
            _ => 143,
        })
    }
}

/// `oauth2:` of an inbox's IMAP (or an SMTP provider): access tokens from a
/// token endpoint (RFC 6749 refresh-token grant), used with SASL XOAUTH2 or
/// OAUTHBEARER (RFC 7628).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// Such as `https://oauth2.googleapis.com/token` or
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
    pub token_url: String,
    pub client_id: String,
    /// Public clients have none.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    pub refresh_token: Secret,
    /// Scopes to ask for, space-separated; the grant's own when not given.
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub mechanism: SaslMechanism,
}

/// The SASL mechanism that carries the access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaslMechanism {
    /// Google's and Microsoft's `XOAUTH2`.
    #[default]
    Xoauth2,
    /// The standard one, RFC 7628.
    Oauthbearer,
}

/// `inboxes[].folders`: where a canary counts as `inbox` or `spam`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Folders {
    #[serde(default = "default_inbox_folder")]
    pub inbox: String,
    #[serde(default)]
    pub spam: Vec<String>,
}

impl Default for Folders {
    fn default() -> Self {
        Folders { inbox: default_inbox_folder(), spam: Vec::new() }
    }
}

/// What happens to a verified canary of this instance once it is seen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cleanup {
    #[default]
    Delete,
    Keep,
    Move(String),
}

impl<'de> Deserialize<'de> for Cleanup {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Word(String),
            Move {
                #[serde(rename = "move")]
                folder: String,
            },
        }
        match Repr::deserialize(d)
            .map_err(|_| serde::de::Error::custom("cleanup must be delete, keep or { move: FOLDER }"))?
        {
            Repr::Word(w) if w == "delete" => Ok(Cleanup::Delete),
            Repr::Word(w) if w == "keep" => Ok(Cleanup::Keep),
            Repr::Word(w) => {
                Err(serde::de::Error::custom(format!("unknown cleanup {w:?}: use delete, keep or {{ move: FOLDER }}")))
            }
            Repr::Move { folder } => Ok(Cleanup::Move(folder)),
        }
    }
}

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

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
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
/// come from the env file that `scripts/mailstack.sh up` writes.
fn hint(problems: &[Problem]) -> Option<String> {
    let stack = problems
        .iter()
        .any(|p| p.message.starts_with("environment variable MAILSTACK_") && p.message.ends_with(" is not set"));
    stack.then(|| {
        let dir = std::env::var("MAILSTACK_DIR").unwrap_or_else(|_| "/tmp/mailcanary-stack".into());
        format!("hint: the MAILSTACK_* variables come from the mail stack; source its env first: set -a; . {dir}/env; set +a")
    })
}

/// Loads and validates `path`, reading `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read { path: path.to_path_buf(), source: std::sync::Arc::new(e) })?;
    let env: HashMap<String, String> = std::env::vars().collect();
    parse(&text, &env).map_err(|problems| ConfigError::Invalid { path: path.to_path_buf(), problems })
}

/// Only `global.state_dir` of `path`, for commands that read nothing but the
/// ledger (`report`): no other key is checked and no other `${VAR}` need be set.
pub fn load_state_dir(path: &Path) -> Result<PathBuf, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read { path: path.to_path_buf(), source: std::sync::Arc::new(e) })?;
    let env: HashMap<String, String> = std::env::vars().collect();
    let invalid = |problems| ConfigError::Invalid { path: path.to_path_buf(), problems };
    let mut problems = Vec::new();
    let doc = yaml::Document::parse(&text, &env, &mut problems).map_err(|p| invalid(vec![p]))?;
    problems.retain(|p| under_or_at(&p.path, "global.state_dir"));
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    match doc.node("global.state_dir") {
        None => Ok(default_state_dir()),
        Some(_) => doc.decode::<PathBuf>("global.state_dir").map_err(|p| invalid(vec![yaml::redact(p, &doc.expanded)])),
    }
}

/// Parses and validates config text; `env` supplies `${VAR}`.
pub fn parse(text: &str, env: &HashMap<String, String>) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let doc = yaml::Document::parse(text, env, &mut problems).map_err(|p| vec![p])?;
    let unset = problems.len();
    for (key, line) in &doc.top_keys {
        if !["global", "providers", "inboxes", "probes"].contains(&key.as_str()) {
            problems.push(Problem::at(
                key,
                Some(*line),
                format!("unknown key {key:?}, expected one of global, providers, inboxes, probes"),
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
    let mut config = Config {
        global: global.unwrap_or_else(|| doc_default_global().expect("defaults decode")),
        providers: providers.iter().map(|(_, p)| p.clone()).collect(),
        inboxes: inboxes.iter().map(|(_, i)| i.clone()).collect(),
        routes: Vec::new(),
    };
    config.routes = validate::validate(&config, &providers, &inboxes, &probes, &doc, &mut problems);
    // A value whose ${VAR} is unset was left as written: what it breaks
    // further (a CA file "${MAILSTACK_CA}" that does not exist) is the same cause.
    let mut index = 0;
    problems.retain(|p| {
        index += 1;
        index <= unset || !doc.unexpanded.iter().any(|u| under_or_at(&p.path, u))
    });
    if ["providers", "inboxes", "probes"].iter().all(|s| doc.node(s).is_none()) {
        problems.push(Problem::at(
            "",
            None,
            "nothing to monitor: the file has no providers, inboxes or probes (the repository's probes.yaml is an example)",
        ));
    } else if problems.is_empty() && config.routes.is_empty() {
        problems.push(Problem::at(
            "probes",
            doc.node("probes").map(|n| n.line),
            "no routes: add a probe (name, provider, inbox) or a matrix",
        ));
    }
    problems.sort_by_key(|p| p.line.unwrap_or(0));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems.into_iter().map(|p| yaml::redact(p, &doc.expanded)).collect())
    }
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

fn default_listen() -> String {
    "0.0.0.0:9925".into()
}
fn default_state_dir() -> PathBuf {
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
fn default_send_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_imap_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_inbox_folder() -> String {
    "INBOX".into()
}

/// The machine's host name, the default `instance`.
pub fn default_instance() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mailcanary".into())
}
