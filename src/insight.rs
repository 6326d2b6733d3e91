//! What a delivered canary's headers say about its path: the receiving
//! server's SPF, DKIM, DMARC and ARC verdicts (`Authentication-Results`,
//! RFC 8601), and the delay between successive `Received` hops.

use chrono::{DateTime, FixedOffset};
use mail_parser::{HeaderName, MessageParser};
use serde::{Deserialize, Serialize};

/// The authentication methods counted, and the results they can have.
pub const METHODS: [&str; 4] = ["spf", "dkim", "dmarc", "arc"];
pub const RESULTS: [&str; 9] =
    ["pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy", "hardfail"];

/// Hops beyond this position share its label, so the label stays bounded.
pub const MAX_HOP: usize = 8;
/// The topmost `Received` headers read (those the receiving side added
/// last); a message with more has a path nobody needs to see whole, and
/// whoever sent it wrote the rest. Each hop is kept in the ledger.
pub const MAX_RECEIVED: usize = 32;
/// Verdicts read from one `Authentication-Results` (each is counted).
pub const MAX_VERDICTS: usize = 16;
/// A host name is at most 253 characters; `by` is cut there.
const MAX_HOST: usize = 253;

/// One verdict: `method` and `result` as bounded label values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub method: &'static str,
    pub result: &'static str,
}

/// One hop of the `Received` chain, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    /// 1 for the first server the message reached.
    pub position: usize,
    /// The receiving host (`by`), if named.
    pub by: Option<String>,
    /// Whether the hop used TLS (`with ESMTPS`, `ESMTPSA`, `LMTPS`, ...).
    pub tls: bool,
    /// Seconds since the previous hop: clamped at 0 when clocks disagree,
    /// None when either timestamp is missing or unreadable.
    pub delay_seconds: Option<f64>,
}

/// Everything the headers say.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Insight {
    pub verdicts: Vec<Verdict>,
    pub hops: Vec<Hop>,
    /// Hops whose delay could not be computed (missing or malformed dates).
    pub unusable_hops: usize,
}

/// The headers the watcher fetches for the insight.
pub const FIELDS: &str = "Authentication-Results Received";

/// Reads the verdicts and hops from a header block.
pub fn read(headers: &[u8]) -> Insight {
    let parser = MessageParser::new()
        .header_raw(HeaderName::Received)
        .header_raw(HeaderName::Other("Authentication-Results".into()));
    let Some(message) = parser.parse_headers(headers) else { return Insight::default() };
    let raw = |name: &'static str| -> Vec<String> {
        message
            .headers()
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .filter_map(|h| h.value.as_text().map(unfold))
            .collect()
    };
    // The topmost Authentication-Results is the receiving server's own.
    let verdicts = raw("Authentication-Results").first().map(|ar| verdicts(ar)).unwrap_or_default();
    let received = raw("Received");
    let (hops, unusable_hops) = hops(&received[..received.len().min(MAX_RECEIVED)]);
    Insight { verdicts, hops, unusable_hops }
}

fn unfold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `mx.example.com; spf=pass smtp.mailfrom=a@b; dkim=fail (bad sig) header.d=b` →
/// spf pass, dkim fail. Comments in parentheses are dropped.
fn verdicts(header: &str) -> Vec<Verdict> {
    let mut text = String::new();
    let mut depth = 0usize;
    for c in header.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => text.push(c),
            _ => {}
        }
    }
    let mut out = Vec::new();
    // The first element is the authserv-id; each later one starts with method=result.
    for element in text.split(';').skip(1) {
        let Some((method, rest)) = element.trim().split_once('=') else { continue };
        let method = method.trim().to_ascii_lowercase();
        let result = rest.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        if let Some(method) = METHODS.iter().find(|m| **m == method) {
            let result = RESULTS.iter().find(|r| **r == result).copied().unwrap_or("other");
            out.push(Verdict { method, result });
        }
        if out.len() == MAX_VERDICTS {
            break;
        }
    }
    out
}

/// Hops oldest first (Received headers are prepended, so the last is the first hop).
fn hops(received: &[String]) -> (Vec<Hop>, usize) {
    let mut out = Vec::new();
    let mut unusable = 0;
    let mut previous: Option<DateTime<FixedOffset>> = None;
    for (i, header) in received.iter().rev().enumerate() {
        let (clauses, date) = header.rsplit_once(';').unwrap_or((header, ""));
        let when = DateTime::parse_from_rfc2822(strip_comment(date).trim()).ok();
        let words: Vec<&str> = clauses.split_whitespace().collect();
        let after = |key: &str| words.iter().position(|w| w.eq_ignore_ascii_case(key)).and_then(|p| words.get(p + 1));
        let by = after("by").map(|s| s.chars().filter(|c| !c.is_control()).take(MAX_HOST).collect());
        let tls = after("with").is_some_and(|w| {
            let w = w.to_ascii_uppercase();
            w.starts_with("ESMTPS") || w.starts_with("LMTPS") || w == "UTF8SMTPS"
        }) || clauses.contains("TLS");
        let delay_seconds = match (previous, when) {
            (Some(p), Some(w)) => Some(((w - p).num_milliseconds() as f64 / 1000.0).max(0.0)),
            (None, Some(_)) => Some(0.0),
            _ => {
                unusable += 1;
                None
            }
        };
        if when.is_some() {
            previous = when;
        }
        out.push(Hop { position: i + 1, by, tls, delay_seconds });
    }
    (out, unusable)
}

/// `Tue, 24 Nov 2026 12:00:00 +0000 (UTC)` → without the trailing comment.
fn strip_comment(date: &str) -> &str {
    match date.find('(') {
        Some(cut) => &date[..cut],
        None => date,
    }
}

/// The `hop` label of a position.
pub fn hop_label(position: usize) -> String {
    position.min(MAX_HOP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers as a large mailbox provider adds them (a real-world shape).
    const GMAIL_LIKE: &str = "Received: by 2002:a05:6a10:1234 with SMTP id abc;\r\n        Tue, 24 Nov 2026 04:04:12 -0800 (PST)\r\n\
ARC-Authentication-Results: i=1; mx.google.com;\r\n       dkim=pass header.i=@example.com\r\n\
Authentication-Results: mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=s1 header.b=AbCd;\r\n       spf=pass (google.com: domain of bounce@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=bounce@example.com;\r\n       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com\r\n\
Received: from a1-2.smtp-out.amazonses.com (a1-2.smtp-out.amazonses.com. [192.0.2.1])\r\n        by mx.google.com with ESMTPS id x1si123\r\n        for <ops@example.com>\r\n        (version=TLS1_3 cipher=TLS_AES_128_GCM_SHA256 bits=128/128);\r\n        Tue, 24 Nov 2026 04:04:11 -0800 (PST)\r\n\
Received: from ip-10-0-0-1 (ip-10-0-0-1 [10.0.0.1])\r\n        by email-smtp.amazonaws.com with ESMTPSA;\r\n        Tue, 24 Nov 2026 12:04:03 +0000\r\n\r\n";

    #[test]
    fn reads_a_real_world_header_block() {
        let insight = read(GMAIL_LIKE.as_bytes());
        assert_eq!(
            insight.verdicts,
            [
                Verdict { method: "dkim", result: "pass" },
                Verdict { method: "spf", result: "pass" },
                Verdict { method: "dmarc", result: "pass" }
            ]
        );
        let delays: Vec<Option<f64>> = insight.hops.iter().map(|h| h.delay_seconds).collect();
        assert_eq!(delays, [Some(0.0), Some(8.0), Some(1.0)], "{insight:?}");
        assert_eq!(insight.hops[0].by.as_deref(), Some("email-smtp.amazonaws.com"));
        assert!(insight.hops[0].tls && insight.hops[1].tls, "ESMTPSA and ESMTPS");
        assert!(!insight.hops[2].tls, "with SMTP");
        assert_eq!(insight.unusable_hops, 0);
    }

    #[test]
    fn failures_skew_and_junk() {
        let headers = "Authentication-Results: mx.test; spf=softfail smtp.mailfrom=x; dkim=fail (signature did not verify); dmarc=weird; foo=pass\r\n\
Received: from b by c with SMTP; Tue, 24 Nov 2026 12:00:00 +0000\r\n\
Received: from a by b with SMTP; this is not a date\r\n\
Received: from z by a with ESMTP; Tue, 24 Nov 2026 12:00:30 +0000\r\n\r\n";
        let insight = read(headers.as_bytes());
        let verdicts: Vec<(&str, &str)> = insight.verdicts.iter().map(|v| (v.method, v.result)).collect();
        assert_eq!(verdicts, [("spf", "softfail"), ("dkim", "fail"), ("dmarc", "other")]);
        let delays: Vec<Option<f64>> = insight.hops.iter().map(|h| h.delay_seconds).collect();
        // 12:00:30, then unreadable, then 12:00:00: the clock skew is clamped at 0.
        assert_eq!(delays, [Some(0.0), None, Some(0.0)]);
        assert_eq!(insight.unusable_hops, 1);
        assert_eq!(read(b"").verdicts, []);
        assert_eq!(hop_label(12), "8");
    }
}
