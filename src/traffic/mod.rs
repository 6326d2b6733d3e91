//! Real traffic (DESIGN: real traffic): the providers' events about the
//! real mail, and a relay's log, recorded once per message in the ledger,
//! counted, fed to provider health, and listed by `mailcanary impact`.
//!
//! - One file per kind of source, each verifying exactly what its provider
//!   documents and reading its events into crate::traffic_event's
//!   vocabulary: ses.rs (SNS, with sns_cert.rs), sendgrid.rs, mailgun.rs,
//!   postmark.rs, resend.rs, and postfix_log.rs (with follow.rs).
//! - webhook.rs: the listener of its own, bodies capped, each delivery
//!   answered 2xx only once its events are on disk.
//! - writer.rs: one place that records, ledger first (many deliveries per
//!   transaction), then metrics and health.
//! - impact.rs: the damage list after an outage.

pub mod follow;
pub mod impact;
pub mod mailgun;
pub mod postfix_log;
pub mod postmark;
pub mod recipient;
pub mod refusal;
pub mod resend;
pub mod sendgrid;
pub mod ses;
pub mod sns_cert;
mod start;
pub mod webhook;
pub mod writer;

pub use start::start;

use crate::config::SourceConfig;
use crate::traffic_event::Event;
use refusal::Refusal;

/// What a verified delivery brought.
#[derive(Debug, Default)]
pub struct Received {
    /// Its events about delivery (none for opens, clicks and the like).
    pub events: Vec<Event>,
    /// A single-use value its signature covers (crate::ledger's nonces).
    pub nonce: Option<String>,
    /// An SNS subscription it confirmed.
    pub confirmed: bool,
}

/// A webhook source, built from its config: one of a closed set.
pub enum Source {
    Ses(Box<ses::Ses>),
    Sendgrid(sendgrid::Sendgrid),
    Mailgun(mailgun::Mailgun),
    Postmark(postmark::Postmark),
    Resend(resend::Resend),
}

impl Source {
    /// The webhook source of `config`; None for a log source.
    pub fn build(config: &SourceConfig) -> Result<Option<Source>, String> {
        Ok(Some(match config {
            SourceConfig::SesSns(c) => Source::Ses(Box::new(ses::Ses::new(c.clone())?)),
            SourceConfig::Sendgrid(c) => Source::Sendgrid(sendgrid::Sendgrid::new(&c.public_key, c.tolerance)?),
            SourceConfig::Mailgun(c) => {
                Source::Mailgun(mailgun::Mailgun { signing_key: c.signing_key.clone(), tolerance: c.tolerance })
            }
            SourceConfig::Postmark(c) => {
                Source::Postmark(postmark::Postmark { username: c.username.clone(), password: c.password.clone() })
            }
            SourceConfig::Resend(c) => Source::Resend(resend::Resend::new(&c.secret, c.tolerance)?),
            SourceConfig::PostfixLog(_) => return Ok(None),
        }))
    }

    /// Verifies one delivery, as its provider documents, and reads it.
    pub async fn receive(&self, headers: &http::HeaderMap, body: &[u8], now_ms: i64) -> Result<Received, Refusal> {
        match self {
            Source::Ses(s) => s.receive(body, now_ms).await,
            Source::Sendgrid(s) => s.receive(headers, body, now_ms),
            Source::Mailgun(s) => s.receive(body, now_ms),
            Source::Postmark(s) => {
                let auth = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                s.receive(auth, body)
            }
            Source::Resend(s) => s.receive(headers, body, now_ms),
        }
    }

    /// Whether a refusal for bad credentials asks for basic auth (Postmark).
    pub fn basic_auth(&self) -> bool {
        matches!(self, Source::Postmark(_))
    }
}
