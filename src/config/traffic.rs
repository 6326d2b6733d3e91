//! `traffic:`: where the real mail's events come from (DESIGN: real
//! traffic). A listener of its own for the providers' webhooks, how
//! recipients are kept, and one source per item, its kind picked by `type`
//! (a closed enum, dispatched in crate::traffic::source).

use super::yaml::Document;
use super::{Config, Problem, duration};
use crate::secret::Secret;
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

/// One source of real-traffic events; `type` picks the kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    SesSns(SesSnsSource),
    Sendgrid(SendgridSource),
    Mailgun(MailgunSource),
    Postmark(PostmarkSource),
    Resend(ResendSource),
    PostfixLog(PostfixLogSource),
}

/// `type: ses_sns`: SES events published to an SNS topic whose HTTPS
/// subscription is this webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SesSnsSource {
    pub name: String,
    pub provider: String,
    pub path: String,
    /// The topics whose messages are taken; any other is refused.
    pub topic_arns: Vec<String>,
    /// Hosts (`host` or `host:port`) besides `sns.<region>.amazonaws.com`
    /// from which signing certificates and subscription confirmations are
    /// fetched (a private endpoint, or a test).
    #[serde(default)]
    pub certificate_hosts: Vec<String>,
    /// An extra CA trusted for those fetches.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Confirm a subscription by visiting its SubscribeURL once its
    /// signature verifies.
    #[serde(default = "yes")]
    pub confirm_subscriptions: bool,
    #[serde(default = "day", deserialize_with = "duration::deserialize")]
    pub tolerance: Duration,
}

/// `type: sendgrid`: the Signed Event Webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendgridSource {
    pub name: String,
    pub provider: String,
    pub path: String,
    /// The verification key SendGrid shows: base64 of the DER public key.
    pub public_key: String,
    #[serde(default = "day", deserialize_with = "duration::deserialize")]
    pub tolerance: Duration,
}

/// `type: mailgun`: webhooks signed with the account's signing key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailgunSource {
    pub name: String,
    pub provider: String,
    pub path: String,
    pub signing_key: Secret,
    #[serde(default = "day", deserialize_with = "duration::deserialize")]
    pub tolerance: Duration,
}

/// `type: postmark`: webhooks with basic auth credentials in their URL.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostmarkSource {
    pub name: String,
    pub provider: String,
    pub path: String,
    pub username: String,
    pub password: Secret,
}

/// `type: resend`: Svix-signed webhooks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendSource {
    pub name: String,
    pub provider: String,
    pub path: String,
    /// The endpoint's signing secret, `whsec_` and base64.
    pub secret: Secret,
    #[serde(default = "five_minutes", deserialize_with = "duration::deserialize")]
    pub tolerance: Duration,
}

/// `type: postfix_log`: the mail log of a Postfix that relays the mail.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostfixLogSource {
    pub name: String,
    pub provider: String,
    pub file: PathBuf,
    /// Where a source with no saved position starts: `end` (only what is
    /// logged from now on) or `beginning`.
    #[serde(default)]
    pub start_at: StartAt,
    #[serde(default = "quarter_second", deserialize_with = "duration::deserialize")]
    pub poll_interval: Duration,
}

/// `postfix_log.start_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    #[default]
    End,
    Beginning,
}

impl SourceConfig {
    /// The source's name: the `source` label.
    pub fn name(&self) -> &str {
        self.common().0
    }

    /// The provider its events are about: the `provider` label.
    pub fn provider(&self) -> &str {
        self.common().1
    }

    /// The webhook path, for webhook sources.
    pub fn path(&self) -> Option<&str> {
        self.common().2
    }

    fn common(&self) -> (&str, &str, Option<&str>) {
        match self {
            SourceConfig::SesSns(s) => (&s.name, &s.provider, Some(&s.path)),
            SourceConfig::Sendgrid(s) => (&s.name, &s.provider, Some(&s.path)),
            SourceConfig::Mailgun(s) => (&s.name, &s.provider, Some(&s.path)),
            SourceConfig::Postmark(s) => (&s.name, &s.provider, Some(&s.path)),
            SourceConfig::Resend(s) => (&s.name, &s.provider, Some(&s.path)),
            SourceConfig::PostfixLog(s) => (&s.name, &s.provider, None),
        }
    }

    /// How far a signed timestamp may be from now, for sources that sign one.
    pub fn tolerance(&self) -> Option<Duration> {
        match self {
            SourceConfig::SesSns(s) => Some(s.tolerance),
            SourceConfig::Sendgrid(s) => Some(s.tolerance),
            SourceConfig::Mailgun(s) => Some(s.tolerance),
            SourceConfig::Resend(s) => Some(s.tolerance),
            SourceConfig::Postmark(_) | SourceConfig::PostfixLog(_) => None,
        }
    }
}

impl TrafficConfig {
    /// Whether any source is a webhook (and so the listener is needed).
    pub fn has_webhooks(&self) -> bool {
        self.sources.iter().any(|s| s.path().is_some())
    }
}

fn yes() -> bool {
    true
}
fn day() -> Duration {
    Duration::from_secs(86_400)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn quarter_second() -> Duration {
    Duration::from_millis(250)
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

/// The checks of each kind of source.
fn kind(source: &SourceConfig, at: &str, push: &mut impl FnMut(String, String)) {
    let empty = |s: &Secret| s.expose().trim().is_empty();
    let must = "must not be empty: give the credential, or a ${VAR} that holds it".to_string();
    match source {
        SourceConfig::SesSns(s) => {
            if s.topic_arns.is_empty() {
                push(format!("{at}.topic_arns"), "name the SNS topics whose messages are taken".into());
            }
            for (j, arn) in s.topic_arns.iter().enumerate() {
                if crate::traffic::ses::topic_region(arn).is_none() {
                    push(
                        format!("{at}.topic_arns[{j}]"),
                        format!("{arn:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"),
                    );
                }
            }
            for (j, host) in s.certificate_hosts.iter().enumerate() {
                if host.is_empty() || host.contains(['/', ' ', '@']) {
                    push(format!("{at}.certificate_hosts[{j}]"), format!("{host:?} is not a host or host:port"));
                }
            }
            if let Some(file) = &s.ca_file
                && let Err(e) = crate::tls::read_pem_certs(file)
            {
                push(format!("{at}.ca_file"), e);
            }
        }
        SourceConfig::Sendgrid(s) => {
            if let Err(e) = crate::traffic::sendgrid::public_key(&s.public_key) {
                push(format!("{at}.public_key"), e);
            }
        }
        SourceConfig::Mailgun(s) if empty(&s.signing_key) => push(format!("{at}.signing_key"), must),
        SourceConfig::Mailgun(_) => {}
        SourceConfig::Postmark(s) => {
            if s.username.is_empty() || s.username.contains(':') {
                push(format!("{at}.username"), "the user name of the webhook URL's credentials, without ':'".into());
            }
            if empty(&s.password) {
                push(format!("{at}.password"), must);
            }
        }
        SourceConfig::Resend(s) => {
            if let Err(e) = crate::traffic::resend::secret_key(&s.secret) {
                push(format!("{at}.secret"), e);
            }
        }
        SourceConfig::PostfixLog(s) => {
            if s.poll_interval.is_zero() {
                push(format!("{at}.poll_interval"), "poll_interval must be more than 0s".into());
            }
            if s.file.as_os_str().is_empty() {
                push(format!("{at}.file"), "name the Postfix log file, such as /var/log/mail.log".into());
            }
        }
    }
}
