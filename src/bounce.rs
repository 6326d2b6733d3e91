//! Delivery status notifications (RFC 3464). A bounce that carries a
//! canary's headers resolves that canary at once as `bounced`, with the
//! status code the reporting server gave, instead of at its timeout.
//!
//! A DSN is a `multipart/report; report-type=delivery-status` message: a
//! human-readable part, a `message/delivery-status` part (one block of fields
//! about the message, then one block per recipient), and the returned message
//! (`message/rfc822`) or only its headers (`text/rfc822-headers`), which is
//! where the canary's token is. RFC 6533's `global-` forms are read the same.

use crate::canary::{ConflictingTokens, extract_token};
use mail_parser::{MessageParser, MimeHeaders};
use serde::Serialize;

/// Headers the watcher fetches to tell a DSN from other mail.
pub const FIELDS: &str = "Content-Type";

/// Diagnostic text is cut here: it is for people, and it is quoted in the
/// ledger and the status API.
const MAX_DIAGNOSTIC: usize = 300;
/// Other fields are names and words: cut at a host name's length.
const MAX_FIELD: usize = 253;

/// What the reporting server says became of the canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounce {
    /// `failed` resolves the canary; `delayed` (a warning) does not.
    pub action: String,
    /// The RFC 3463 status code, such as `5.1.1`.
    pub status: String,
    /// The remote server's answer, such as `smtp; 550 5.1.1 User unknown`.
    pub diagnostic: Option<String>,
    /// The server that refused it, and the one that wrote the report.
    pub remote_mta: Option<String>,
    pub reporting_mta: Option<String>,
}

impl Bounce {
    /// Delivery failed for good: the canary will not arrive.
    pub fn failed(&self) -> bool {
        self.action == "failed"
    }

    /// One line for logs, reports and `check`.
    pub fn summary(&self) -> String {
        match &self.diagnostic {
            Some(d) => format!("{} {}", self.status, d),
            None => self.status.clone(),
        }
    }
}

/// A DSN as read: the token of the message it returns, and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The returned message's token header, if it has one.
    pub token: Result<Option<String>, ConflictingTokens>,
    /// None when the report has no readable delivery-status part.
    pub bounce: Option<Bounce>,
}

/// Whether a header block says the message is a delivery status report.
pub fn is_report(headers: &[u8]) -> bool {
    let Some(message) = MessageParser::new().parse_headers(headers) else { return false };
    message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct.attribute("report-type").is_some_and(|t| t.to_ascii_lowercase().ends_with("delivery-status"))
    })
}

/// Reads a whole DSN. None when it is not a message at all.
pub fn read(raw: &[u8]) -> Option<Report> {
    let message = MessageParser::new().parse(raw)?;
    let mut status = None;
    let mut returned: Option<&[u8]> = None;
    for part in message.parts.iter().skip(1) {
        let Some(ct) = part.content_type() else { continue };
        let kind = (ct.ctype().to_ascii_lowercase(), ct.subtype().unwrap_or("").to_ascii_lowercase());
        match (kind.0.as_str(), kind.1.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") if status.is_none() => {
                status = fields(&String::from_utf8_lossy(part.contents()));
            }
            ("message", "rfc822" | "global") | ("text" | "message", "rfc822-headers" | "global-headers")
                if returned.is_none() =>
            {
                returned = Some(part.contents());
            }
            _ => {}
        }
    }
    let bounce = status;
    let token = match returned {
        // Parsed as headers only: a returned body is never read.
        Some(bytes) => extract_token(bytes),
        None => Ok(None),
    };
    Some(Report { token, bounce })
}

/// The verdict in a delivery-status body: the first recipient block that
/// failed, or else the first one with an action.
fn fields(body: &str) -> Option<Bounce> {
    let mut blocks: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if blocks.last().is_some_and(|b| !b.is_empty()) {
                blocks.push(Vec::new());
            }
        } else if line.starts_with([' ', '\t']) {
            // A folded continuation of the field before.
            if let Some((_, value)) = blocks.last_mut().and_then(|b| b.last_mut()) {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            blocks.last_mut()?.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let get = |block: &[(String, String)], name: &str| {
        block.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
    };
    let reporting_mta = blocks.first().and_then(|b| get(b, "reporting-mta")).map(|v| word(&after_type(&v)));
    let recipients: Vec<&Vec<(String, String)>> = blocks.iter().filter(|b| get(b, "action").is_some()).collect();
    let chosen = recipients
        .iter()
        .find(|b| get(b, "action").is_some_and(|a| a.eq_ignore_ascii_case("failed")))
        .or(recipients.first())?;
    let action = word(&get(chosen, "action")?.split_whitespace().next()?.to_ascii_lowercase());
    let status = get(chosen, "status").and_then(|s| status_code(&s)).unwrap_or_else(|| "unknown".into());
    let diagnostic = get(chosen, "diagnostic-code").map(|d| {
        let mut d = after_type(&d).chars().filter(|c| !c.is_control()).collect::<String>();
        if d.len() > MAX_DIAGNOSTIC {
            let cut = (0..=MAX_DIAGNOSTIC).rev().find(|&i| d.is_char_boundary(i)).unwrap_or(0);
            d.truncate(cut);
            d.push('…');
        }
        d
    });
    let remote_mta = get(chosen, "remote-mta").map(|v| word(&after_type(&v)));
    Some(Bounce { action, status, diagnostic, remote_mta, reporting_mta })
}

/// A field a server wrote, without control characters, cut at [`MAX_FIELD`].
fn word(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(MAX_FIELD).collect()
}

/// `dns; mx.example.com` → `mx.example.com`.
fn after_type(value: &str) -> String {
    value.split_once(';').map_or(value, |(_, v)| v).trim().to_string()
}

/// The `class.subject.detail` code at the start of a Status field.
fn status_code(value: &str) -> Option<String> {
    let code = value.split_whitespace().next()?;
    let parts: Vec<&str> = code.split('.').collect();
    let numeric = |p: &str, max: usize| !p.is_empty() && p.len() <= max && p.chars().all(|c| c.is_ascii_digit());
    (parts.len() == 3 && ["2", "4", "5"].contains(&parts[0]) && numeric(parts[1], 3) && numeric(parts[2], 3))
        .then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape Postfix's bounce daemon writes (a real one, token shortened).
    const POSTFIX: &str = "From: MAILER-DAEMON@mx.mailcanary.test (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: returns@mailcanary.test\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"4Xb1.1700000000/mx.mailcanary.test\"\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--4Xb1.1700000000/mx.mailcanary.test\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
I'm sorry to have to inform you that your message could not\r\n\
be delivered to one or more recipients.\r\n\
\r\n\
--4Xb1.1700000000/mx.mailcanary.test\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.mailcanary.test\r\n\
X-Postfix-Queue-ID: 4Xb1\r\n\
X-Postfix-Sender: rfc822; returns@mailcanary.test\r\n\
Arrival-Date: Tue, 24 Nov 2026 10:00:00 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; undeliverable-1@mailcanary.test\r\n\
Original-Recipient: rfc822;undeliverable-1@mailcanary.test\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: X-Postfix; mailbox unavailable\r\n\
\r\n\
--4Xb1.1700000000/mx.mailcanary.test\r\n\
Content-Description: Undelivered Message\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: canary@mailcanary.test\r\n\
To: undeliverable-1@mailcanary.test\r\n\
Subject: mailcanary r 12345678\r\n\
X-Mailcanary-Token: mc1.abc.def\r\n\
\r\n\
This is a delivery monitoring message.\r\n\
\r\n\
--4Xb1.1700000000/mx.mailcanary.test--\r\n";

    #[test]
    fn reads_a_postfix_bounce() {
        let header_end = POSTFIX.find("\r\n\r\n").unwrap() + 4;
        assert!(is_report(&POSTFIX.as_bytes()[..header_end]));
        let report = read(POSTFIX.as_bytes()).unwrap();
        assert_eq!(report.token, Ok(Some("mc1.abc.def".into())));
        let bounce = report.bounce.unwrap();
        assert_eq!(bounce.action, "failed");
        assert!(bounce.failed());
        assert_eq!(bounce.status, "5.1.1");
        assert_eq!(bounce.diagnostic.as_deref(), Some("mailbox unavailable"));
        assert_eq!(bounce.reporting_mta.as_deref(), Some("mx.mailcanary.test"));
        assert_eq!(bounce.remote_mta, None);
    }

    /// Headers only (RET=HDRS, or servers that never return bodies), a
    /// delayed recipient before the failed one, and folded fields.
    #[test]
    fn reads_returned_headers_and_picks_the_failed_recipient() {
        let dsn = "Content-Type: multipart/report; report-type=\"delivery-status\"; boundary=b\n\n\
--b\nContent-Type: text/plain\n\nsorry\n\
--b\nContent-Type: message/delivery-status\n\n\
Reporting-MTA: dns; mail.example.net\n\n\
Final-Recipient: rfc822; a@example.org\nAction: delayed\nStatus: 4.4.7\n\n\
Final-Recipient: rfc822; b@example.org\nAction: failed\nStatus: 5.7.1 (delivery not authorized)\n\
Remote-MTA: dns; mx.example.org\nDiagnostic-Code: smtp; 550 5.7.1 Message rejected\n  as spam by policy\n\n\
--b\nContent-Type: text/rfc822-headers\n\n\
From: canary@example.net\nX-Mailcanary-Token:\n mc1.folded\n\n--b--\n";
        let report = read(dsn.as_bytes()).unwrap();
        assert_eq!(report.token, Ok(Some("mc1.folded".into())));
        let bounce = report.bounce.unwrap();
        assert_eq!(bounce.status, "5.7.1");
        assert_eq!(bounce.remote_mta.as_deref(), Some("mx.example.org"));
        assert_eq!(bounce.diagnostic.as_deref(), Some("550 5.7.1 Message rejected as spam by policy"));
        assert_eq!(bounce.summary(), "5.7.1 550 5.7.1 Message rejected as spam by policy");
    }

    #[test]
    fn a_delay_warning_is_not_a_failure() {
        let dsn = POSTFIX.replace("Action: failed", "Action: delayed").replace("Status: 5.1.1", "Status: 4.4.1");
        let bounce = read(dsn.as_bytes()).unwrap().bounce.unwrap();
        assert!(!bounce.failed());
        assert_eq!(bounce.status, "4.4.1");
    }

    #[test]
    fn other_mail_is_not_a_report() {
        assert!(!is_report(b"Content-Type: text/plain\r\n\r\n"));
        assert!(!is_report(
            b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n\r\n"
        ));
        assert!(!is_report(b""));
        // A report without a delivery-status part: whose it is, but no verdict.
        let broken = POSTFIX.replace("message/delivery-status", "text/plain");
        let report = read(broken.as_bytes()).unwrap();
        assert_eq!((report.token, report.bounce), (Ok(Some("mc1.abc.def".into())), None));
        // A report that returns no message has no token.
        let start = POSTFIX.find("--4Xb1.1700000000/mx.mailcanary.test\r\nContent-Description: Undelivered").unwrap();
        let no_message = format!("{}--4Xb1.1700000000/mx.mailcanary.test--\r\n", &POSTFIX[..start]);
        assert_eq!(read(no_message.as_bytes()).unwrap().token, Ok(None));
    }

    #[test]
    fn odd_status_fields_stay_bounded() {
        let long = "x".repeat(5000);
        let dsn = POSTFIX
            .replace("Status: 5.1.1", "Status: banana")
            .replace("Diagnostic-Code: X-Postfix; mailbox unavailable", &format!("Diagnostic-Code: smtp; {long}"));
        let bounce = read(dsn.as_bytes()).unwrap().bounce.unwrap();
        assert_eq!(bounce.status, "unknown");
        assert!(bounce.diagnostic.unwrap().len() <= MAX_DIAGNOSTIC + '…'.len_utf8());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let _ = is_report(&bytes);
            let _ = read(&bytes);
        }

        #[test]
        fn arbitrary_status_bodies_never_panic(lines in proptest::collection::vec("[ -~\t]{0,120}", 0..30)) {
            let _ = fields(&lines.join("\n"));
        }
    }
}
