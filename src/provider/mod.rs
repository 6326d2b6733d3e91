//! Sending providers: the closed set of ways a canary leaves, built from
//! config in one place, each kind in its own file.

pub(crate) mod http;
mod mailgun;
mod postmark;
mod resend;
mod sendgrid;
mod ses;
mod smtp;

use crate::canary::Canary;
use crate::config::ProviderConfig;
use std::fmt;

/// What a provider said when it took the canary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's own id for the message (SMTP queue id, API message id).
    pub provider_id: Option<String>,
}

/// The bounded `reason` label of a send failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SendReason {
    /// The provider refused the message or a recipient (5xx, validation).
    Rejected,
    /// Credentials were refused.
    Auth,
    /// TLS could not be set up or the certificate did not verify.
    Tls,
    /// No connection could be made, or it broke.
    Connect,
    /// No answer in time.
    Timeout,
    /// Refused for now: rate limits and other 4xx "try later" answers.
    Throttled,
    /// Anything else.
    Other,
}

impl SendReason {
    /// Every reason, so each per-route counter can exist at 0.
    pub const ALL: [SendReason; 7] = [
        SendReason::Rejected,
        SendReason::Auth,
        SendReason::Tls,
        SendReason::Connect,
        SendReason::Timeout,
        SendReason::Throttled,
        SendReason::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SendReason::Rejected => "rejected",
            SendReason::Auth => "auth",
            SendReason::Tls => "tls",
            SendReason::Connect => "connect",
            SendReason::Timeout => "timeout",
            SendReason::Throttled => "throttled",
            SendReason::Other => "other",
        }
    }
}

impl fmt::Display for SendReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A canary the provider did not take: the outcome of a probe, not a crash.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct SendError {
    pub reason: SendReason,
    /// What the provider said, for logs; never holds a credential.
    pub detail: String,
}

impl SendError {
    pub fn new(reason: SendReason, detail: impl Into<String>) -> Self {
        SendError { reason, detail: detail.into() }
    }

    /// The bounded label.
    pub fn reason(&self) -> SendReason {
        self.reason
    }
}

/// A way to send a canary.
pub trait Provider {
    /// The `provider` label.
    fn name(&self) -> &str;
    /// Hands the canary over; returns once the provider accepted or refused it.
    fn send(&self, canary: &Canary) -> impl Future<Output = Result<Accepted, SendError>> + Send;
}

/// Any configured provider: the closed set, dispatched here and only here.
pub enum AnyProvider {
    Smtp(smtp::SmtpProvider),
    Ses(ses::SesProvider),
    Sendgrid(sendgrid::SendgridProvider),
    Mailgun(mailgun::MailgunProvider),
    Postmark(postmark::PostmarkProvider),
    Resend(resend::ResendProvider),
}

impl AnyProvider {
    /// Builds the provider a config entry describes.
    pub fn build(config: &ProviderConfig) -> Result<AnyProvider, String> {
        match config {
            ProviderConfig::Smtp(c) => smtp::SmtpProvider::new(c).map(AnyProvider::Smtp),
            ProviderConfig::Ses(c) => ses::SesProvider::new(c).map(AnyProvider::Ses),
            ProviderConfig::Sendgrid(c) => sendgrid::SendgridProvider::new(c).map(AnyProvider::Sendgrid),
            ProviderConfig::Mailgun(c) => mailgun::MailgunProvider::new(c).map(AnyProvider::Mailgun),
            ProviderConfig::Postmark(c) => postmark::PostmarkProvider::new(c).map(AnyProvider::Postmark),
            ProviderConfig::Resend(c) => resend::ResendProvider::new(c).map(AnyProvider::Resend),
        }
    }
}

impl Provider for AnyProvider {
    fn name(&self) -> &str {
        match self {
            AnyProvider::Smtp(p) => p.name(),
            AnyProvider::Ses(p) => p.name(),
            AnyProvider::Sendgrid(p) => p.name(),
            AnyProvider::Mailgun(p) => p.name(),
            AnyProvider::Postmark(p) => p.name(),
            AnyProvider::Resend(p) => p.name(),
        }
    }

    async fn send(&self, canary: &Canary) -> Result<Accepted, SendError> {
        match self {
            AnyProvider::Smtp(p) => p.send(canary).await,
            AnyProvider::Ses(p) => p.send(canary).await,
            AnyProvider::Sendgrid(p) => p.send(canary).await,
            AnyProvider::Mailgun(p) => p.send(canary).await,
            AnyProvider::Postmark(p) => p.send(canary).await,
            AnyProvider::Resend(p) => p.send(canary).await,
        }
    }
}
