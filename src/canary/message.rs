//! Building a canary's RFC 5322 message, and finding the token in what an
//! inbox hands back.

use super::token::{SigningKey, Token};
use chrono::{DateTime, Utc};
use mail_parser::{HeaderName, MessageParser};

/// The header that carries the token.
pub const TOKEN_HEADER: &str = "X-Mailcanary-Token";

/// Headers an API provider must add to the message it builds: the token,
/// and the RFC 3834 marks that keep auto-responders quiet.
pub const AUTO_SUBMITTED: [(&str, &str); 2] =
    [("Auto-Submitted", "auto-generated"), ("X-Auto-Response-Suppress", "All")];

/// What a canary carries of its route: the `probe`, `provider` and `inbox`
/// labels. The route itself (crate::config::Route) also holds how it is
/// sent, a trigger for one, which sits above canaries; so a canary asks
/// only for the names.
pub trait RouteNames {
    /// The route's name: the `probe` label.
    fn probe(&self) -> &str;
    fn provider(&self) -> &str;
    fn inbox(&self) -> &str;
}

/// One canary, ready to hand to a provider.
#[derive(Debug, Clone)]
pub struct Canary {
    /// Random, unique, URL-safe; the ledger's key.
    pub id: String,
    /// The route's names: the `probe`, `provider` and `inbox` labels.
    pub probe: String,
    pub provider: String,
    pub inbox: String,
    /// Header sender, and envelope sender unless `return_path` is set.
    pub from: String,
    /// Envelope sender when bounces go to a watched bounce inbox.
    pub return_path: Option<String>,
    /// Envelope and header recipient: the inbox's address.
    pub to: String,
    pub token: String,
    pub subject: String,
    pub message_id: String,
    /// The plain-text body (CRLF line endings), for APIs that build the message.
    pub body: String,
    /// When the canary was made (ms since the Unix epoch).
    pub created_ms: i64,
    /// The whole message, CRLF line endings.
    pub raw: Vec<u8>,
    /// Sent at once to confirm a suspicion (crate::health), not on the
    /// route's schedule.
    pub confirmation: bool,
}

impl Canary {
    /// The headers an API provider must add to the message it builds from
    /// fields: the token, and the marks that keep auto-responders quiet.
    pub fn api_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![(TOKEN_HEADER, self.token.clone())];
        headers.extend(AUTO_SUBMITTED.iter().map(|(n, v)| (*n, v.to_string())));
        headers
    }

    /// Makes a signed canary for `route` from `from` to `to`.
    pub fn new(
        route: &impl RouteNames,
        from: &str,
        to: &str,
        instance: &str,
        operator: Option<&str>,
        key: &SigningKey,
        now: DateTime<Utc>,
    ) -> Canary {
        let id = crate::random::token(12);
        let created_ms = now.timestamp_millis();
        let token = Token {
            instance: instance.to_string(),
            probe: route.probe().to_string(),
            canary_id: id.clone(),
            sent_ms: created_ms,
        }
        .sign(key);
        let subject = format!("mailcanary {} {}", route.probe(), &id[..8]);
        let message_id = format!("<{id}@{instance}.mailcanary>");
        let operator = operator.map(|o| format!("It is run by {o}.\r\n")).unwrap_or_default();
        let body = format!(
            "This is a delivery monitoring message sent by mailcanary instance {instance}\r\n\
             on route {probe}. It checks that mail sent through {provider} reaches\r\n\
             this mailbox, and is deleted automatically once seen.\r\n\
             {operator}",
            probe = route.probe(),
            provider = route.provider(),
        );
        let raw = format!(
            "From: {from}\r\n\
             To: {to}\r\n\
             Subject: {subject}\r\n\
             Date: {date}\r\n\
             Message-ID: {message_id}\r\n\
             {TOKEN_HEADER}: {token}\r\n\
             Auto-Submitted: auto-generated\r\n\
             X-Auto-Response-Suppress: All\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 7bit\r\n\
             \r\n\
             {body}",
            date = now.to_rfc2822(),
        )
        .into_bytes();
        Canary {
            id,
            probe: route.probe().to_string(),
            provider: route.provider().to_string(),
            inbox: route.inbox().to_string(),
            from: from.to_string(),
            return_path: None,
            to: to.to_string(),
            token,
            subject,
            message_id,
            body,
            created_ms,
            raw,
            confirmation: false,
        }
    }
}

impl Canary {
    /// This canary as an application's email (crate::trigger): the
    /// application sends it, to `address`, which carries `tag`; the tag is
    /// its id, in the ledger and in the matcher. Its token and message are
    /// never sent.
    pub fn tagged(mut self, tag: String, address: String) -> Canary {
        self.id = tag;
        self.to = address;
        self
    }
}

/// A message that carries two different tokens: trusted with neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictingTokens;

/// The token header's value in a header block, if there is one.
pub fn extract_token(headers: &[u8]) -> Result<Option<String>, ConflictingTokens> {
    // As unstructured text: unfolded, and RFC 2047 encoded-words decoded,
    // which some relays make of a long header.
    let parser = MessageParser::new().header_text(HeaderName::Other(TOKEN_HEADER.into()));
    let Some(message) = parser.parse_headers(headers) else {
        return Ok(None);
    };
    let mut values = message.header_values(TOKEN_HEADER).filter_map(|v| v.as_text()).map(|t| t.trim().to_string());
    let first = values.next();
    match (first, values.next()) {
        (Some(a), Some(b)) if a != b => Err(ConflictingTokens),
        (first, _) => Ok(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Route;
    use crate::secret::Secret;
    use std::time::Duration;

    fn route() -> Route {
        Route {
            name: "relay-to-box".into(),
            provider: "relay".into(),
            inbox: "box".into(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(600),
            jitter: 0.1,
            trigger: None,
        }
    }

    #[test]
    fn a_canary_carries_a_verifiable_token_in_its_headers() {
        let key = SigningKey::new(Secret::new("0123456789abcdef"));
        let c = Canary::new(&route(), "a@x.test", "b@y.test", "eu-1", Some("SRE <sre@x.test>"), &key, Utc::now());
        let text = String::from_utf8(c.raw.clone()).unwrap();
        assert!(text.contains(&format!("Subject: mailcanary relay-to-box {}\r\n", &c.id[..8])));
        assert!(text.contains("It is run by SRE <sre@x.test>."));
        let header_end = text.find("\r\n\r\n").unwrap() + 4;
        let token = extract_token(&c.raw[..header_end]).unwrap().unwrap();
        let verified = Token::verify(&token, "eu-1", &[key]).unwrap();
        assert_eq!(verified.canary_id, c.id);
        assert_eq!(verified.probe, "relay-to-box");
    }

    #[test]
    fn folded_and_duplicate_headers() {
        assert_eq!(extract_token(b"X-Mailcanary-Token:\r\n mc1.abc\r\n\r\n").unwrap().as_deref(), Some("mc1.abc"));
        assert_eq!(extract_token(b"Subject: hi\r\n\r\n").unwrap(), None);
        assert!(extract_token(b"X-Mailcanary-Token: a\r\nX-Mailcanary-Token: b\r\n\r\n").is_err());
        assert_eq!(extract_token(b"").unwrap(), None);
    }

    proptest::proptest! {
        /// Any bytes as a header block: no panic, and a result or a refusal.
        #[test]
        fn arbitrary_headers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let _ = extract_token(&bytes);
        }

        #[test]
        fn header_like_junk_never_panics(lines in proptest::collection::vec("[ -~\t]{0,200}", 0..20)) {
            let block = lines.iter().map(|l| format!("X-Mailcanary-Token: {l}\r\n")).collect::<String>() + "\r\n";
            let _ = extract_token(block.as_bytes());
        }
    }

    #[test]
    fn encoded_words_are_decoded() {
        let h = b"X-Mailcanary-Token: =?utf-8?q?mc1=2E70985da1=2EdC1hcGk?=\r\n =?utf-8?q?=2Ee3=5FSFjg5R?=\r\n\r\n";
        assert_eq!(extract_token(h).unwrap().as_deref(), Some("mc1.70985da1.dC1hcGk.e3_SFjg5R"));
    }
}
