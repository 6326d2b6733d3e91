//! The vocabulary of real traffic: what a provider (or a relay's log) says
//! happened to one real message, in one spelling that the ledger, the
//! metrics, health and `impact` all use, and the rules of a message's
//! account (account.rs). It sits below the ledger and crate::traffic, and
//! imports neither.

mod account;
pub use account::{Account, Effects};

/// What one event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The provider took the message (SES `Send`, SendGrid `processed`,
    /// Mailgun `accepted`, Resend `email.sent`, Postfix's queue).
    Sent,
    /// The receiving server accepted it.
    Delivered,
    /// A temporary failure: the provider will try again.
    Deferred,
    /// The provider gave up: a bounce, of a kind.
    Bounced(BounceKind),
    /// The recipient marked it as spam (after its delivery).
    Complained,
    /// The provider refused it at once (a virus, a bad request, a template).
    Rejected,
    /// The provider did not try (a suppression list, an unsubscribed address).
    Dropped,
}

/// How final a bounce is, as the providers tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceKind {
    /// A hard bounce: this address will not work (what SES's review counts).
    Permanent,
    /// A soft bounce the provider gave up retrying, or a block.
    Transient,
    /// The provider could not tell.
    Undetermined,
}

impl BounceKind {
    pub const ALL: [BounceKind; 3] = [BounceKind::Permanent, BounceKind::Transient, BounceKind::Undetermined];

    pub fn as_str(self) -> &'static str {
        match self {
            BounceKind::Permanent => "permanent",
            BounceKind::Transient => "transient",
            BounceKind::Undetermined => "undetermined",
        }
    }

    pub fn parse(s: &str) -> Option<BounceKind> {
        BounceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What a message came to, as `traffic_messages_total{outcome}` counts it.
/// A message reaches at most one of the settling outcomes (delivered,
/// bounced, rejected, dropped); it may also have been deferred before, and
/// complained about after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Delivered,
    Deferred,
    Bounced,
    Complained,
    Rejected,
    Dropped,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Delivered,
        Outcome::Deferred,
        Outcome::Bounced,
        Outcome::Complained,
        Outcome::Rejected,
        Outcome::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Deferred => "deferred",
            Outcome::Bounced => "bounced",
            Outcome::Complained => "complained",
            Outcome::Rejected => "rejected",
            Outcome::Dropped => "dropped",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether it ends the message's delivery (the first such event wins).
    pub fn settles(self) -> bool {
        matches!(self, Outcome::Delivered | Outcome::Bounced | Outcome::Rejected | Outcome::Dropped)
    }
}

impl Kind {
    /// The outcome this event brings, if any (`Sent` brings none).
    pub fn outcome(self) -> Option<Outcome> {
        Some(match self {
            Kind::Sent => return None,
            Kind::Delivered => Outcome::Delivered,
            Kind::Deferred => Outcome::Deferred,
            Kind::Bounced(_) => Outcome::Bounced,
            Kind::Complained => Outcome::Complained,
            Kind::Rejected => Outcome::Rejected,
            Kind::Dropped => Outcome::Dropped,
        })
    }

    /// The name kept in the ledger: the outcome's, or `sent`.
    pub fn as_str(self) -> &'static str {
        self.outcome().map_or("sent", Outcome::as_str)
    }
}

/// Why a source's delivery changed nothing: the `reason` label of
/// `traffic_source_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceError {
    /// A signature or credentials that do not verify, an unexpected topic,
    /// a signing certificate from a host not trusted.
    Forged,
    /// A signed timestamp outside the source's tolerance: a replay.
    Stale,
    /// A body or header the provider's format does not allow.
    Malformed,
    /// A body over the cap.
    TooLarge,
    /// The signing certificate could not be fetched or read (the provider
    /// retries; nothing was judged).
    Certificate,
    /// The ledger could not record the events (the provider retries).
    Storage,
    /// Events the ledger already had: answered 2xx, so the provider stops
    /// sending them, and counted here because they changed nothing.
    Duplicate,
}

impl SourceError {
    pub const ALL: [SourceError; 7] = [
        SourceError::Forged,
        SourceError::Stale,
        SourceError::Malformed,
        SourceError::TooLarge,
        SourceError::Certificate,
        SourceError::Storage,
        SourceError::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceError::Forged => "forged",
            SourceError::Stale => "stale",
            SourceError::Malformed => "malformed",
            SourceError::TooLarge => "too_large",
            SourceError::Certificate => "certificate",
            SourceError::Storage => "storage",
            SourceError::Duplicate => "duplicate",
        }
    }
}

/// One event about one message to one recipient, as a source read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per source, and the same when the provider sends it again:
    /// what makes a retried webhook change nothing.
    pub event_id: String,
    /// The provider's id of the message (SES `messageId`, SendGrid
    /// `sg_message_id`, a Postfix queue id).
    pub message_id: String,
    /// The recipient's address as the provider gave it (kept as the config
    /// says: crate::traffic::recipient).
    pub recipient: Option<String>,
    pub kind: Kind,
    /// When it happened (Unix ms), by the provider's clock.
    pub at_ms: i64,
    /// When the provider took the message, if the event says.
    pub sent_ms: Option<i64>,
    /// The message's own `Message-ID` header, if the event says.
    pub smtp_id: Option<String>,
    /// A status and diagnostic (`5.1.1 smtp; 550 user unknown`), cut short.
    pub detail: Option<String>,
}

/// Longest detail kept per event.
pub const MAX_DETAIL: usize = 300;

/// `text` cut to [`MAX_DETAIL`] bytes on a character boundary, without
/// control characters (a log line or a CSV field stays one line).
pub fn detail(text: &str) -> Option<String> {
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let clean = clean.trim();
    if clean.is_empty() {
        return None;
    }
    let mut end = clean.len().min(MAX_DETAIL);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    Some(clean[..end].to_string())
}

/// An RFC 3339 time (`2017-08-05T00:41:02.669Z`) as Unix ms.
pub fn rfc3339_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        for k in BounceKind::ALL {
            assert_eq!(BounceKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::Sent.as_str(), "sent");
        assert_eq!(Kind::Bounced(BounceKind::Transient).as_str(), "bounced");
    }

    #[test]
    fn details_are_one_short_line() {
        assert_eq!(detail("  550 5.1.1\r\nuser unknown ").as_deref(), Some("550 5.1.1  user unknown"));
        assert_eq!(detail(" \n"), None);
        let long = "é".repeat(400);
        let cut = detail(&long).unwrap();
        assert!(cut.len() <= MAX_DETAIL && cut.chars().all(|c| c == 'é'));
    }
}
