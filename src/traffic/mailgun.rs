//! Mailgun's webhooks: a JSON body with `signature` (timestamp, token,
//! signature) beside `event-data`. The signature is the hex HMAC-SHA256 of
//! the timestamp and the token, concatenated, under the account's webhook
//! signing key. The token is random per request and the event id is
//! Mailgun's `event-data.id`, the same when Mailgun sends it again.

use super::Received;
use super::refusal::{Refusal, fresh, hex, same};
use crate::secret::Secret;
use crate::traffic_event::{BounceKind, Event, Kind, detail};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use std::time::Duration;

pub struct Mailgun {
    pub signing_key: Secret,
    pub tolerance: Duration,
}

#[derive(Deserialize)]
struct Body {
    signature: Signature,
    #[serde(rename = "event-data")]
    event: Value,
}

#[derive(Deserialize)]
struct Signature {
    timestamp: String,
    token: String,
    signature: String,
}

impl Mailgun {
    /// Verifies a delivery and reads its event (none for an event that is
    /// not about delivery: opens, clicks, list changes). The signature does
    /// not cover the body, so its token is single-use: the ledger refuses it
    /// again with other events.
    pub fn receive(&self, body: &[u8], now_ms: i64) -> Result<Received, Refusal> {
        let body: Body =
            serde_json::from_slice(body).map_err(|e| Refusal::malformed(format!("not a Mailgun webhook: {e}")))?;
        let s = &body.signature;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.signing_key.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(s.timestamp.as_bytes());
        mac.update(s.token.as_bytes());
        if !same(hex(&mac.finalize().into_bytes()).as_bytes(), s.signature.trim().to_ascii_lowercase().as_bytes()) {
            return Err(Refusal::forged("the signature does not verify with the signing key"));
        }
        let signed: i64 =
            s.timestamp.trim().parse().map_err(|_| Refusal::malformed("signature.timestamp is not a number"))?;
        fresh(signed, now_ms, self.tolerance)?;
        let events = event(&body.event)?.into_iter().collect();
        Ok(Received { events, nonce: Some(s.token.clone()), ..Default::default() })
    }
}

/// The event of `event-data`, if it is about delivery.
fn event(e: &Value) -> Result<Option<Event>, Refusal> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let id = text(&e["id"]).ok_or_else(|| Refusal::malformed("event-data.id is missing"))?;
    let at = e["timestamp"].as_f64().ok_or_else(|| Refusal::malformed("event-data.timestamp is not a number"))?;
    let severity = e["severity"].as_str().unwrap_or("");
    let reason = e["reason"].as_str().unwrap_or("");
    let kind = match e["event"].as_str().unwrap_or("") {
        "accepted" => Kind::Sent,
        "delivered" => Kind::Delivered,
        "failed" if severity == "temporary" => Kind::Deferred,
        "failed" if reason.starts_with("suppress-") => Kind::Dropped,
        "failed" if reason == "old" => Kind::Bounced(BounceKind::Transient),
        "failed" => Kind::Bounced(BounceKind::Permanent),
        "rejected" => Kind::Rejected,
        "complained" => Kind::Complained,
        "" => return Err(Refusal::malformed("event-data.event is missing")),
        _ => return Ok(None),
    };
    let header_id = text(&e["message"]["headers"]["message-id"]);
    let message_id =
        header_id.clone().ok_or_else(|| Refusal::malformed("event-data.message.headers.message-id is missing"))?;
    let status = &e["delivery-status"];
    let said = [&status["code"], &status["message"], &status["description"]]
        .iter()
        .filter_map(|v| match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Some(Event {
        event_id: id,
        message_id,
        recipient: text(&e["recipient"]),
        kind,
        at_ms: (at * 1000.0) as i64,
        sent_ms: None,
        smtp_id: header_id.map(|h| format!("<{}>", h.trim_matches(['<', '>']))),
        detail: detail(&said),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::refusal::Reason;

    /// Mailgun's documented `delivered` and permanent `failed` examples (a
    /// key and a timestamp of the test's own).
    pub(crate) fn signed(key: &str, timestamp: i64, token: &str, event_data: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{timestamp}{token}").as_bytes());
        let signature = hex(&mac.finalize().into_bytes());
        format!(
            r#"{{"signature": {{"timestamp": "{timestamp}", "token": "{token}", "signature": "{signature}"}}, "event-data": {event_data}}}"#
        )
    }

    pub(crate) const DELIVERED: &str = r#"{
      "event": "delivered", "id": "CPgfbmQMTCKtHW6uIWtuVe", "timestamp": 1521472262.908181,
      "log-level": "info", "recipient": "alice@example.com", "recipient-domain": "example.com",
      "envelope": {"transport": "smtp", "sender": "bob@sandbox.mailgun.org", "sending-ip": "209.61.154.250", "targets": "alice@example.com"},
      "message": {"headers": {"to": "Alice <alice@example.com>", "message-id": "20130503182626.18666.16540@sandbox.mailgun.org",
                              "from": "Bob <bob@sandbox.mailgun.org>", "subject": "Test delivered webhook"},
                  "attachments": [], "size": 111},
      "delivery-status": {"tls": true, "mx-host": "smtp-in.example.com", "code": 250, "description": "",
                          "session-seconds": 0.43, "utf8": true, "attempt-no": 1, "message": "OK", "certificate-verified": true}
    }"#;

    const FAILED: &str = r#"{
      "event": "failed", "id": "G9Bn5sl1TC6nu79C8C0bwg", "timestamp": 1521233195.375624, "log-level": "error",
      "severity": "permanent", "reason": "bounce", "recipient": "alice@example.com",
      "message": {"headers": {"message-id": "20130503192659.13651.20287@sandbox.mailgun.org"}},
      "delivery-status": {"attempt-no": 1, "message": "", "code": 605, "description": "Not delivering to previously bounced address", "session-seconds": 0.0}
    }"#;

    fn source() -> Mailgun {
        Mailgun { signing_key: Secret::new("key-test-signing"), tolerance: Duration::from_secs(300) }
    }

    #[test]
    fn documented_events_signed_with_the_key_are_read() {
        let now = 1_700_000_000_000;
        let body =
            signed("key-test-signing", now / 1000, "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0", DELIVERED);
        let got = source().receive(body.as_bytes(), now).unwrap();
        assert_eq!(got.nonce.as_deref(), Some("a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"));
        let events = got.events;
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.kind, e.event_id.as_str(), e.at_ms),
            (Kind::Delivered, "CPgfbmQMTCKtHW6uIWtuVe", 1_521_472_262_908)
        );
        assert_eq!(e.message_id, "20130503182626.18666.16540@sandbox.mailgun.org");
        assert_eq!((e.recipient.as_deref(), e.detail.as_deref()), (Some("alice@example.com"), Some("250 OK")));
        let body = signed("key-test-signing", now / 1000, "t2", FAILED);
        let e = &source().receive(body.as_bytes(), now).unwrap().events[0];
        assert_eq!(e.kind, Kind::Bounced(BounceKind::Permanent));
        assert_eq!(e.detail.as_deref(), Some("605 Not delivering to previously bounced address"));
    }

    #[test]
    fn forged_stale_and_malformed_deliveries_are_refused() {
        let now = 1_700_000_000_000;
        let forged = signed("another-key", now / 1000, "tok", DELIVERED);
        assert_eq!(source().receive(forged.as_bytes(), now).unwrap_err().reason, Reason::Forged);
        let tampered = signed("key-test-signing", now / 1000, "tok", DELIVERED).replace("alice@", "mallory@");
        // The signature covers timestamp and token only: the ledger's single-use token catches this.
        assert!(source().receive(tampered.as_bytes(), now).is_ok());
        let stale = signed("key-test-signing", now / 1000 - 301, "tok", DELIVERED);
        assert_eq!(source().receive(stale.as_bytes(), now).unwrap_err().reason, Reason::Stale);
        assert_eq!(source().receive(b"{}", now).unwrap_err().reason, Reason::Malformed);
        let no_id = signed("key-test-signing", now / 1000, "tok", r#"{"event": "delivered", "timestamp": 1}"#);
        assert_eq!(source().receive(no_id.as_bytes(), now).unwrap_err().reason, Reason::Malformed);
        let opened = signed("key-test-signing", now / 1000, "tok", r#"{"event": "opened", "id": "x", "timestamp": 1}"#);
        assert_eq!(source().receive(opened.as_bytes(), now).unwrap().events, []);
    }
}
