//! Sending providers: the closed set of ways a canary leaves, built from
//! config in one place, each kind in its own file (its config keys, their
//! checks, its sender). A new kind is a file, its `mod` and `pub use`, and
//! a line in `kinds!` here.

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

/// The closed set of kinds, written once: each kind's `type` (its name in
/// lower case), its config and its sender. From it come `ProviderConfig`,
/// `AnyProvider` and every dispatch between them.
macro_rules! kinds {
    ($($kind:ident($config:ty => $sender:ty)),* $(,)?) => {
        /// `providers:` one sending provider; `type` picks the kind.
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
        pub enum ProviderConfig {
            $($kind($config),)*
        }

        impl ProviderConfig {
            /// What every kind has (common.rs).
            fn common(&self) -> common::Common<'_> {
                match self {
                    $(ProviderConfig::$kind(c) => c.common(),)*
                }
            }

            /// The kind's own checks of its keys.
            fn own_problems(&self) -> Vec<(String, String)> {
                match self {
                    $(ProviderConfig::$kind(c) => c.problems(),)*
                }
            }
        }

        /// Any configured provider: the closed set, dispatched here and only here.
        pub enum AnyProvider {
            $($kind($sender),)*
            /// An application that sends its own email (crate::trigger).
            Trigger(crate::trigger::Trigger),
        }

        impl AnyProvider {
            /// Builds the provider a config entry describes.
            pub fn build(config: &ProviderConfig) -> Result<AnyProvider, String> {
                match config {
                    $(ProviderConfig::$kind(c) => <$sender>::new(c).map(AnyProvider::$kind),)*
                }
            }

            /// The `provider` label.
            fn label(&self) -> &str {
                match self {
                    $(AnyProvider::$kind(p) => p.name(),)*
                    AnyProvider::Trigger(t) => t.name(),
                }
            }

            async fn hand_over(&self, canary: &Canary) -> Result<Accepted, SendError> {
                match self {
                    $(AnyProvider::$kind(p) => p.send(canary).await,)*
                    // The application sends its own email, to the canary's address.
                    AnyProvider::Trigger(t) => t.fire(&canary.to).await,
                }
            }
        }
    };
}

kinds! {
    Smtp(SmtpConfig => smtp::SmtpProvider),
    Ses(SesConfig => ses::SesProvider),
    Sendgrid(SendgridConfig => sendgrid::SendgridProvider),
    Mailgun(MailgunConfig => mailgun::MailgunProvider),
    Postmark(PostmarkConfig => postmark::PostmarkProvider),
    Resend(ResendConfig => resend::ResendProvider),
}

impl ProviderConfig {
    /// What is wrong with this provider's keys, each by its key relative to
    /// the provider ("" for the provider as a whole). What needs the rest
    /// of the file (unique names, the bounce inbox) the config checks.
    pub fn problems(&self) -> Vec<(String, String)> {
        common::problems(self.common(), self.own_problems())
    }
}

/// A way to send a canary.
pub trait Provider {
    /// The `provider` label.
    fn name(&self) -> &str;
    /// Hands the canary over; returns once the provider accepted or refused it.
    fn send(&self, canary: &Canary) -> impl Future<Output = Result<Accepted, SendError>> + Send;
}

impl AnyProvider {
    /// The application trigger of a route that has one.
    pub fn trigger(config: &crate::trigger::TriggerConfig) -> Result<AnyProvider, String> {
        crate::trigger::Trigger::new(config).map(AnyProvider::Trigger)
    }
}

impl Provider for AnyProvider {
    fn name(&self) -> &str {
        self.label()
    }

    /// The provider's id for the message is its own text: kept quoted and
    /// cut (crate::quote), as it goes to the ledger, the status API and `check`.
    async fn send(&self, canary: &Canary) -> Result<Accepted, SendError> {
        let accepted = self.hand_over(canary).await?;
        Ok(Accepted { provider_id: accepted.provider_id.as_deref().map(crate::quote::quote) })
    }
}
