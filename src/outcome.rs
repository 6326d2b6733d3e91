//! The vocabulary of a canary's fate, below everything that records or shows
//! it: where a canary landed, what finally became of it, why a send or an
//! inbox failed, and why a message was left alone. The ledger, the metrics,
//! the status API, `check` and `report` all speak these types; `metrics.rs`
//! only maps them to label values.

use crate::bounce::Bounce;
use serde::Serialize;
use std::fmt;

/// Where a delivered canary landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    Inbox,
    Spam,
}

impl Placement {
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Inbox => "inbox",
            Placement::Spam => "spam",
        }
    }

    pub fn parse(s: &str) -> Option<Placement> {
        match s {
            "inbox" => Some(Placement::Inbox),
            "spam" => Some(Placement::Spam),
            _ => None,
        }
    }
}

/// How a canary's arrival was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    /// By a watcher that was looking when it arrived: latency on our clock.
    #[default]
    Live,
    /// Found after a restart: timed and judged by the server's arrival
    /// time (INTERNALDATE), since nobody was looking when it came.
    AfterRestart,
    /// Found after its inbox could not be watched for a while (an IMAP
    /// outage, a reload): judged by the server's arrival time too.
    AfterGap,
}

impl Observed {
    pub fn as_str(self) -> &'static str {
        match self {
            Observed::Live => "live",
            Observed::AfterRestart => "after_restart",
            Observed::AfterGap => "after_gap",
        }
    }

    pub fn parse(s: Option<&str>) -> Observed {
        match s {
            Some("after_restart") => Observed::AfterRestart,
            Some("after_gap") => Observed::AfterGap,
            _ => Observed::Live,
        }
    }
}

/// What finally became of a canary: exactly one per canary (`Late` follows
/// `Lost`, and is the only outcome that follows another).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Seen within its route's timeout, in `placement`.
    Delivered { placement: Placement, latency_seconds: f64, observed: Observed },
    /// Not seen within its route's timeout.
    Lost,
    /// Seen after it was counted lost.
    Late { placement: Placement, latency_seconds: f64 },
    /// A delivery status notification said delivery failed.
    Bounced { bounce: Bounce },
    /// The provider did not take it.
    Refused { reason: SendReason, detail: String },
    /// An application's own email (crate::trigger) arrived in time but
    /// failed one of its route's expectations: the mail came, the thing a
    /// user needs from it did not.
    Mismatched { expectation: Expectation, placement: Placement, latency_seconds: f64 },
}

impl Outcome {
    /// Which outcome it is: its one spelling (OutcomeKind::as_str).
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Delivered { .. } => OutcomeKind::Delivered,
            Outcome::Lost => OutcomeKind::Lost,
            Outcome::Late { .. } => OutcomeKind::Late,
            Outcome::Bounced { .. } => OutcomeKind::Bounced,
            Outcome::Refused { .. } => OutcomeKind::Refused,
            Outcome::Mismatched { .. } => OutcomeKind::Mismatched,
        }
    }

    pub fn placement(&self) -> Option<Placement> {
        match self {
            Outcome::Delivered { placement, .. }
            | Outcome::Late { placement, .. }
            | Outcome::Mismatched { placement, .. } => Some(*placement),
            _ => None,
        }
    }

    pub fn latency_seconds(&self) -> Option<f64> {
        match self {
            Outcome::Delivered { latency_seconds, .. }
            | Outcome::Late { latency_seconds, .. }
            | Outcome::Mismatched { latency_seconds, .. } => Some(*latency_seconds),
            _ => None,
        }
    }
}

/// Which of the outcomes (Outcome) a canary reached, without its details:
/// the only spelling of an outcome, in the ledger, the status API, `check`,
/// `report`, the status page and the metrics alike. Adding one here is
/// adding one everywhere the compiler then points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Seen within its route's timeout, in any folder.
    Delivered,
    /// Not seen within its route's timeout.
    Lost,
    /// Seen after it was counted lost.
    Late,
    /// A delivery status notification said delivery failed.
    Bounced,
    /// The provider (or the application) did not take it.
    Refused,
    /// An application's email that came in time but failed an expectation.
    Mismatched,
}

impl OutcomeKind {
    /// Every outcome, in the order reports list them.
    pub const ALL: [OutcomeKind; 6] = [
        OutcomeKind::Delivered,
        OutcomeKind::Late,
        OutcomeKind::Lost,
        OutcomeKind::Bounced,
        OutcomeKind::Refused,
        OutcomeKind::Mismatched,
    ];

    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Delivered => "delivered",
            OutcomeKind::Lost => "lost",
            OutcomeKind::Late => "late",
            OutcomeKind::Bounced => "bounced",
            OutcomeKind::Refused => "refused",
            OutcomeKind::Mismatched => "mismatched",
        }
    }

    pub fn parse(s: &str) -> Option<OutcomeKind> {
        OutcomeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What it says of its provider (crate::health), or nothing: a late
    /// canary was already counted when it was lost.
    pub fn evidence(self) -> Option<Evidence> {
        match self {
            OutcomeKind::Delivered => Some(Evidence::Good),
            OutcomeKind::Lost => Some(Evidence::Lost),
            OutcomeKind::Late => None,
            OutcomeKind::Bounced => Some(Evidence::Bounced),
            OutcomeKind::Refused => Some(Evidence::Refused),
            OutcomeKind::Mismatched => Some(Evidence::Mismatched),
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One settled canary's verdict, as evidence of its provider's health
/// (crate::health).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Delivered within `overdue_after` (to any folder: the provider did its part).
    Good,
    /// Delivered, but later than `overdue_after`.
    Slow,
    /// Refused by the provider.
    Refused,
    /// Bounced.
    Bounced,
    /// Not seen within its timeout.
    Lost,
    /// An application's email that came but failed an expectation.
    Mismatched,
}

/// Which expectation on an application's email failed: the bounded
/// `expectation` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// The sender did not match `expect.from`.
    From,
    /// The subject did not match `expect.subject`.
    Subject,
    /// No link in the body matched `expect.link`.
    Link,
    /// The link was found but did not answer 2xx (`expect.follow_link`).
    LinkDead,
}

impl Expectation {
    pub const ALL: [Expectation; 4] =
        [Expectation::From, Expectation::Subject, Expectation::Link, Expectation::LinkDead];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Expectation::From => "from",
            Expectation::Subject => "subject",
            Expectation::Link => "link",
            Expectation::LinkDead => "link_dead",
        }
    }

    pub fn parse(s: &str) -> Option<Expectation> {
        Expectation::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// The bounded `reason` label of a send failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
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

    pub fn parse(s: &str) -> SendReason {
        SendReason::ALL.into_iter().find(|r| r.as_str() == s).unwrap_or(SendReason::Other)
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

/// What a provider (or an application's trigger) said when it took the
/// canary: the other side of [`SendError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's own id for the message (SMTP queue id, API message id).
    pub provider_id: Option<String>,
}

/// Why an inbox session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxError {
    Connect,
    Tls,
    Auth,
    Protocol,
    Timeout,
}

impl InboxError {
    pub const ALL: [InboxError; 5] =
        [InboxError::Connect, InboxError::Tls, InboxError::Auth, InboxError::Protocol, InboxError::Timeout];

    pub fn as_str(self) -> &'static str {
        match self {
            InboxError::Connect => "connect",
            InboxError::Tls => "tls",
            InboxError::Auth => "auth",
            InboxError::Protocol => "protocol",
            InboxError::Timeout => "timeout",
        }
    }
}

/// Why a message in an inbox was not matched to a canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    /// The token does not verify.
    Forged,
    /// A valid-looking token of another instance.
    Foreign,
    /// A canary already resolved, seen again.
    Duplicate,
    /// A genuine canary this instance no longer tracks.
    Expired,
    /// A bounce about one of our canaries that cannot be read, or a message
    /// whose headers are larger than a canary's could be.
    Malformed,
    /// Sent to a canary address whose tag (crate::trigger) this instance
    /// never made: another instance's, or made up.
    UnknownTag,
}

impl Unmatched {
    pub const ALL: [Unmatched; 6] = [
        Unmatched::Forged,
        Unmatched::Foreign,
        Unmatched::Duplicate,
        Unmatched::Expired,
        Unmatched::Malformed,
        Unmatched::UnknownTag,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Unmatched::Forged => "forged",
            Unmatched::Foreign => "foreign",
            Unmatched::Duplicate => "duplicate",
            Unmatched::Expired => "expired",
            Unmatched::Malformed => "malformed",
            Unmatched::UnknownTag => "unknown_tag",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OutcomeKind;

    /// ALL names the kinds in order, once each, each spelled apart and read
    /// back as itself. A kind added to the enum stops this match compiling:
    /// give it the next place, and put it in ALL.
    #[test]
    fn every_outcome_kind_is_listed_once_and_spelled_apart() {
        let place = |k: OutcomeKind| match k {
            OutcomeKind::Delivered => 0,
            OutcomeKind::Late => 1,
            OutcomeKind::Lost => 2,
            OutcomeKind::Bounced => 3,
            OutcomeKind::Refused => 4,
            OutcomeKind::Mismatched => 5,
        };
        let places: Vec<usize> = OutcomeKind::ALL.into_iter().map(place).collect();
        assert_eq!(places, (0..OutcomeKind::ALL.len()).collect::<Vec<_>>());
        let mut words: Vec<&str> = OutcomeKind::ALL.iter().map(|k| k.as_str()).collect();
        assert!(OutcomeKind::ALL.iter().all(|k| OutcomeKind::parse(k.as_str()) == Some(*k)));
        words.dedup();
        assert_eq!(words.len(), OutcomeKind::ALL.len());
    }
}
