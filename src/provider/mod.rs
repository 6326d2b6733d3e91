//! Sending providers: the closed set of ways a canary leaves, built from
//! config in one place, each kind in its own file (its config keys, their
//! checks, its sender). A new kind is a file and a line in each match here.

mod common;
mod mailgun;
mod postmark;
mod resend;
mod sendgrid;
mod ses;
mod smtp;

use crate::canary::Canary;
use serde::Deserialize;

pub use crate::outcome::{Accepted, SendError, SendReason};
pub use common::{HealthOverrides, ProviderFailover};
pub use mailgun::{MailgunConfig, MailgunRegion};
pub use postmark::PostmarkConfig;
pub use resend::ResendConfig;
pub use sendgrid::SendgridConfig;
pub use ses::SesConfig;
pub use smtp::SmtpConfig;

/// `providers:` one sending provider; `type` picks the kind.
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
    /// What every kind has (common.rs).
    fn common(&self) -> common::Common<'_> {
        match self {
            ProviderConfig::Smtp(c) => c.common(),
            ProviderConfig::Ses(c) => c.common(),
            ProviderConfig::Sendgrid(c) => c.common(),
            ProviderConfig::Mailgun(c) => c.common(),
            ProviderConfig::Postmark(c) => c.common(),
            ProviderConfig::Resend(c) => c.common(),
        }
    }

    /// What is wrong with this provider's keys, each by its key relative to
    /// the provider ("" for the provider as a whole). What needs the rest
    /// of the file (unique names, the bounce inbox) the config checks.
    pub fn problems(&self) -> Vec<(String, String)> {
        let own = match self {
            ProviderConfig::Smtp(c) => c.problems(),
            ProviderConfig::Ses(c) => c.problems(),
            ProviderConfig::Sendgrid(c) => c.problems(),
            ProviderConfig::Mailgun(c) => c.problems(),
            ProviderConfig::Postmark(c) => c.problems(),
            ProviderConfig::Resend(c) => c.problems(),
        };
        common::problems(self.common(), own)
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
    /// An application that sends its own email (crate::trigger).
    Trigger(crate::trigger::Trigger),
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

    /// The application trigger of a route that has one.
    pub fn trigger(config: &crate::trigger::TriggerConfig) -> Result<AnyProvider, String> {
        crate::trigger::Trigger::new(config).map(AnyProvider::Trigger)
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
            AnyProvider::Trigger(t) => t.name(),
        }
    }

    /// The provider's id for the message is its own text: kept quoted and
    /// cut (crate::quote), as it goes to the ledger, the status API and `check`.
    async fn send(&self, canary: &Canary) -> Result<Accepted, SendError> {
        let accepted = match self {
            AnyProvider::Smtp(p) => p.send(canary).await,
            AnyProvider::Ses(p) => p.send(canary).await,
            AnyProvider::Sendgrid(p) => p.send(canary).await,
            AnyProvider::Mailgun(p) => p.send(canary).await,
            AnyProvider::Postmark(p) => p.send(canary).await,
            AnyProvider::Resend(p) => p.send(canary).await,
            // The application sends its own email, to the canary's address.
            AnyProvider::Trigger(t) => t.fire(&canary.to).await,
        }?;
        Ok(Accepted { provider_id: accepted.provider_id.as_deref().map(crate::quote::quote) })
    }
}
