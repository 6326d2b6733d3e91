//! `traffic.sources[]`: one source of real-traffic events per item, its
//! kind picked by `type`, with what each kind must hold that serde cannot
//! check (crate::traffic builds and verifies them; their keys are read by traffic_keys.rs).

use super::duration;
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

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
    /// The topics whose messages are taken; any other is refused. Required
    /// (validation says why when it is missing or empty).
    #[serde(default)]
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

/// Why `topic_arns` is required, and what to add.
pub const TOPICS_REQUIRED: &str = "required: SNS signs every AWS account's notifications with the same \
certificate, so without a list of topics any account could subscribe this endpoint to a topic of its own \
and post signed notifications; add topic_arns: [\"arn:aws:sns:REGION:ACCOUNT:NAME\"], the topics your \
SES events are published to";

/// The checks of each kind of source.
pub(super) fn kind(source: &SourceConfig, at: &str, push: &mut impl FnMut(String, String)) {
    let empty = |s: &Secret| s.expose().trim().is_empty();
    let must = "must not be empty: give the credential, or a ${VAR} that holds it".to_string();
    match source {
        SourceConfig::SesSns(s) => {
            if s.topic_arns.is_empty() {
                push(format!("{at}.topic_arns"), TOPICS_REQUIRED.into());
            }
            for (j, arn) in s.topic_arns.iter().enumerate() {
                if super::traffic_keys::topic_region(arn).is_none() {
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
            if let Err(e) = super::traffic_keys::public_key(&s.public_key) {
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
            if let Err(e) = super::traffic_keys::secret_key(&s.secret) {
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
