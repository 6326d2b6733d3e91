//! What can go wrong in an IMAP session, as a bounded reason and a detail
//! fit for a log line: server text quoted and cut, a refusal said as the
//! server's words rather than async-imap's Debug output, a BYE said as BYE.

use super::meter::Meter;
use crate::oauth2::{TokenError, TokenErrorKind};
use crate::outcome::InboxError;
use crate::quote::quote;

/// A failed IMAP operation: its reason label and what happened.
#[derive(Debug, thiserror::Error)]
#[error("{}: {detail}", .reason.as_str())]
pub struct ImapError {
    pub reason: InboxError,
    pub detail: String,
    /// The server refused the command (NO or BAD) and the session goes on.
    pub refused: bool,
    /// The server sent more than the command allowed; the session is closed.
    oversized: bool,
}

impl ImapError {
    pub(super) fn new(reason: InboxError, detail: impl Into<String>) -> Self {
        ImapError { reason, detail: detail.into(), refused: false, oversized: false }
    }

    /// The server sent more than the command allowed (reason `protocol`);
    /// the session is closed.
    pub fn too_large(&self) -> bool {
        self.oversized
    }
}

/// The reason and detail of async-imap's error, with what the meter saw.
pub(super) fn classify(e: async_imap::error::Error, meter: &Meter) -> ImapError {
    use async_imap::error::Error;
    if let Some(big) = meter.too_large() {
        return ImapError { oversized: true, ..ImapError::new(InboxError::Protocol, big.to_string()) };
    }
    let (reason, refused) = match &e {
        Error::Io(io) if crate::tls::is_tls_error(io) => (InboxError::Tls, false),
        // What the server said could not be parsed (async-imap reports that as
        // an io::Error of kind Other): it does not speak IMAP. Network
        // failures carry their own kinds (reset, broken pipe, EOF).
        Error::Io(io) if matches!(io.kind(), std::io::ErrorKind::Other | std::io::ErrorKind::InvalidData) => {
            (InboxError::Protocol, false)
        }
        Error::Io(_) | Error::ConnectionLost => (InboxError::Connect, false),
        Error::No(_) | Error::Bad(_) => (InboxError::Protocol, true),
        _ => (InboxError::Protocol, false),
    };
    let detail = match &e {
        Error::No(text) => format!("server said NO: {}", status_text(text)),
        Error::Bad(text) => format!("server said BAD: {}", status_text(text)),
        // async-imap puts the whole unparsable buffer in its message.
        Error::Io(io) if reason == InboxError::Protocol => match io.to_string().split_once(" during parsing of ") {
            Some((_, text)) => format!("the server's answer is not IMAP: {}", quote(text)),
            // An answer whose status is neither OK, NO nor BAD.
            None if io.to_string().contains("outcome: Outcome {") => {
                format!("unexpected answer: {}", status_text(&io.to_string()))
            }
            None => quote(&io.to_string()),
        },
        _ => quote(&crate::quote::dedup_prefixes(&e.to_string())),
    };
    // A server that says BYE and hangs up: said as BYE, not as the reset after it.
    if reason == InboxError::Connect && meter.bye().is_some() {
        return closed(meter);
    }
    ImapError { reason, detail, refused, oversized: false }
}

/// async-imap's Debug-formatted `code: Some(X), info: Some("text")`, said
/// for humans: `[X] text`.
pub(super) fn status_text(text: &str) -> String {
    fn some(v: &str) -> Option<&str> {
        v.strip_prefix("Some(")?.strip_suffix(')')
    }
    // Two spellings: "code: …, info: …" (tagged answers) and "[status: …, ]outcome:
    // Outcome { code: …, information: … }" (answers to FETCH, STORE, SEARCH…).
    let fields = text.strip_prefix("code: ").and_then(|t| t.split_once(", info: ")).or_else(|| {
        let (_, outcome) = text.split_once("outcome: Outcome { code: ")?;
        outcome.strip_suffix(" }")?.split_once(", information: ")
    });
    let Some((code, info)) = fields else {
        return quote(text);
    };
    let info = some(info).map(|i| {
        let i = i.strip_prefix('"').and_then(|i| i.strip_suffix('"')).unwrap_or(i);
        i.replace("\\\"", "\"").replace("\\\\", "\\")
    });
    let out = match (some(code), info) {
        (Some(code), Some(info)) => format!("[{code}] {info}"),
        (Some(code), None) => format!("[{code}]"),
        (None, Some(info)) => info,
        (None, None) => "(no text)".to_string(),
    };
    quote(&out)
}

/// The server hung up: what it said when it did, if anything.
pub(super) fn closed(meter: &Meter) -> ImapError {
    match meter.bye() {
        Some(bye) => ImapError::new(InboxError::Connect, format!("server said BYE: {bye}")),
        None => ImapError::new(InboxError::Connect, "the server closed the connection"),
    }
}

/// No access token: the token endpoint's failure, under the inbox's reasons.
pub(super) fn token_error(e: TokenError) -> ImapError {
    let reason = match e.kind {
        TokenErrorKind::Refused => InboxError::Auth,
        TokenErrorKind::Connect => InboxError::Connect,
        TokenErrorKind::Tls => InboxError::Tls,
        TokenErrorKind::Timeout => InboxError::Timeout,
        TokenErrorKind::Protocol => InboxError::Protocol,
    };
    ImapError::new(reason, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_said_for_humans() {
        assert_eq!(status_text(r#"code: None, info: Some("Authentication failed.")"#), "Authentication failed.");
        assert_eq!(
            status_text(r#"code: Some(AuthenticationFailed), info: Some("say \"no\"\r\n")"#),
            r#"[AuthenticationFailed] say "no"\r\n"#
        );
        assert_eq!(
            status_text(r#"outcome: Outcome { code: None, information: Some("Mailbox doesn't exist: Gone") }"#),
            "Mailbox doesn't exist: Gone"
        );
        assert_eq!(status_text(r#"status: Bye, outcome: Outcome { code: None, information: None }"#), "(no text)");
        assert_eq!(status_text("whatever else"), "whatever else");
    }
}
