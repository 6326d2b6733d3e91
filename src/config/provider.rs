//! `providers:`: one sending provider per item, its kind picked by `type`
//! (a closed enum, dispatched in crate::provider), with the keys every kind
//! shares read through one accessor.

use super::duration;
use super::{HealthDefaults, HealthOverrides, OAuth2Config, ProviderFailover, TlsMode};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

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

fn default_send_timeout() -> Duration {
    Duration::from_secs(30)
}
