//! Resend's webhooks, signed the Svix way: `svix-id`, `svix-timestamp` and
//! `svix-signature` (space-separated `v1,<base64>`), each a base64
//! HMAC-SHA256 of `id.timestamp.body` under the endpoint's secret (the
//! base64 after `whsec_`). Svix signs every attempt anew and keeps the id
//! across retries, so the timestamp must be recent (five minutes by
//! default, as Svix's libraries check) and the id is the event id.

use super::Received;
use super::refusal::{Refusal, fresh, same};
pub use crate::config::traffic_keys::secret_key;
use crate::secret::Secret;
use crate::traffic_event::{BounceKind, Event, Kind, detail, rfc3339_ms};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use serde_json::Value;
use sha2::Sha256;
use std::time::Duration;

pub struct Resend {
    key: Vec<u8>,
    tolerance: Duration,
}

impl Resend {
    pub fn new(secret: &Secret, tolerance: Duration) -> Result<Resend, String> {
        Ok(Resend { key: secret_key(secret)?, tolerance })
    }

    /// Verifies the Svix signature and reads the event, one per recipient.
    pub fn receive(&self, headers: &HeaderMap, body: &[u8], now_ms: i64) -> Result<Received, Refusal> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let (Some(id), Some(timestamp), Some(signatures)) =
            (header("svix-id"), header("svix-timestamp"), header("svix-signature"))
        else {
            return Err(Refusal::forged("svix-id, svix-timestamp or svix-signature missing"));
        };
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        let expected = STANDARD.encode(mac.finalize().into_bytes());
        let matches = signatures
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .fold(false, |any, s| same(s.as_bytes(), expected.as_bytes()) | any);
        if !matches {
            return Err(Refusal::forged("no v1 signature verifies with the secret"));
        }
        let signed: i64 = timestamp.parse().map_err(|_| Refusal::malformed("svix-timestamp is not a number"))?;
        fresh(signed, now_ms, self.tolerance)?;
        let v: Value = serde_json::from_slice(body).map_err(|e| Refusal::malformed(format!("not JSON: {e}")))?;
        Ok(Received { events: events(id, &v)?, ..Default::default() })
    }
}

fn events(svix_id: &str, v: &Value) -> Result<Vec<Event>, Refusal> {
    let data = &v["data"];
    let bounce = &data["bounce"];
    let kind = match v["type"].as_str().unwrap_or("") {
        "email.sent" => Kind::Sent,
        "email.delivered" => Kind::Delivered,
        "email.delivery_delayed" => Kind::Deferred,
        "email.bounced" => Kind::Bounced(match bounce["type"].as_str().unwrap_or("") {
            "Permanent" => BounceKind::Permanent,
            "Transient" => BounceKind::Transient,
            _ => BounceKind::Undetermined,
        }),
        "email.complained" => Kind::Complained,
        "email.failed" => Kind::Rejected,
        "email.suppressed" => Kind::Dropped,
        "" => return Err(Refusal::malformed("type is missing")),
        _ => return Ok(Vec::new()),
    };
    let message_id = data["email_id"].as_str().ok_or_else(|| Refusal::malformed("data.email_id is missing"))?;
    let at_ms =
        v["created_at"].as_str().and_then(rfc3339_ms).ok_or_else(|| Refusal::malformed("created_at is not a time"))?;
    let said = [&bounce["type"], &bounce["subType"], &bounce["message"], &data["failed"]["reason"]]
        .iter()
        .filter_map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let to: Vec<Option<String>> = match &data["to"] {
        Value::Array(list) if !list.is_empty() => list.iter().map(|a| a.as_str().map(str::to_string)).collect(),
        Value::String(one) => vec![Some(one.clone())],
        _ => vec![None],
    };
    let many = to.len() > 1;
    Ok(to
        .into_iter()
        .enumerate()
        .map(|(i, recipient)| Event {
            event_id: if many { format!("{svix_id}/{i}") } else { svix_id.to_string() },
            message_id: message_id.to_string(),
            recipient,
            kind,
            at_ms,
            sent_ms: data["created_at"].as_str().and_then(rfc3339_ms),
            smtp_id: None,
            detail: detail(&said),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::refusal::Reason;

    /// Resend's documented `email.delivered` and `email.bounced` examples.
    pub(crate) const DELIVERED: &str = r#"{"type":"email.delivered","created_at":"2024-02-22T23:41:12.126Z","data":{"created_at":"2024-02-22T23:41:11.894719+00:00","email_id":"56761188-7520-42d8-8898-ff6fc54ce618","from":"Acme <onboarding@resend.dev>","to":["delivered@resend.dev"],"subject":"Sending this example","tags":{"category":"confirm_email"}}}"#;
    const BOUNCED: &str = r#"{"type":"email.bounced","created_at":"2024-11-22T23:41:12.126Z","data":{"broadcast_id":"8b146471-e88e-4322-86af-016cd36fd216","created_at":"2024-11-22T23:41:11.894719+00:00","email_id":"56761188-7520-42d8-8898-ff6fc54ce618","from":"Acme <onboarding@resend.dev>","to":["delivered@resend.dev","second@resend.dev"],"subject":"Sending this example","bounce":{"message":"The recipient's email address is on the suppression list because it has a recent history of producing hard bounces.","subType":"Suppressed","type":"Permanent"}}}"#;

    /// The secret of Svix's own test vectors, with a key the test holds.
    pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    pub(crate) fn signed(secret: &str, id: &str, timestamp: i64, body: &str) -> HeaderMap {
        let key = secret_key(&Secret::new(secret)).unwrap();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        let mut h = HeaderMap::new();
        h.insert("svix-id", id.parse().unwrap());
        h.insert("svix-timestamp", timestamp.to_string().parse().unwrap());
        h.insert("svix-signature", format!("v1,bm9ub3NlbnNl v1,{signature}").parse().unwrap());
        h
    }

    fn source() -> Resend {
        Resend::new(&Secret::new(SECRET), Duration::from_secs(300)).unwrap()
    }

    #[test]
    fn documented_events_signed_with_the_secret_are_read() {
        let now = 1_708_645_272_000;
        let h = signed(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", now / 1000, DELIVERED);
        let e = &source().receive(&h, DELIVERED.as_bytes(), now).unwrap().events[0];
        assert_eq!((e.kind, e.event_id.as_str()), (Kind::Delivered, "msg_p5jXN8AQM9LWM0D4loKWxJek"));
        assert_eq!((e.at_ms, e.sent_ms), (1_708_645_272_126, Some(1_708_645_271_894)));
        let h = signed(SECRET, "msg_2", now / 1000, BOUNCED);
        let events = source().receive(&h, BOUNCED.as_bytes(), now).unwrap().events;
        assert_eq!(events.len(), 2, "one per recipient");
        assert_eq!(
            (events[1].event_id.as_str(), events[1].recipient.as_deref()),
            ("msg_2/1", Some("second@resend.dev"))
        );
        assert_eq!(events[0].kind, Kind::Bounced(BounceKind::Permanent));
    }

    /// Svix's own test vector (its documentation and libraries' tests).
    #[test]
    fn svixs_own_signed_example_verifies() {
        let mut h = HeaderMap::new();
        h.insert("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".parse().unwrap());
        h.insert("svix-timestamp", "1614265330".parse().unwrap());
        h.insert("svix-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".parse().unwrap());
        let payload = r#"{"test": 2432232314}"#;
        // Verified, then refused only because the example is no Resend event.
        let got = source().receive(&h, payload.as_bytes(), 1_614_265_330_000).unwrap_err();
        assert_eq!(got.reason, Reason::Malformed, "{got:?}");
        let tampered = r#"{"test": 2432232315}"#;
        assert_eq!(source().receive(&h, tampered.as_bytes(), 1_614_265_330_000).unwrap_err().reason, Reason::Forged);
    }

    #[test]
    fn forged_tampered_stale_and_unsigned_deliveries_are_refused() {
        let now = 1_708_645_272_000;
        let other = "whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ=";
        let h = signed(other, "msg_1", now / 1000, DELIVERED);
        assert_eq!(source().receive(&h, DELIVERED.as_bytes(), now).unwrap_err().reason, Reason::Forged);
        let h = signed(SECRET, "msg_1", now / 1000, DELIVERED);
        let tampered = DELIVERED.replace("delivered@", "mallory@");
        assert_eq!(source().receive(&h, tampered.as_bytes(), now).unwrap_err().reason, Reason::Forged);
        let h = signed(SECRET, "msg_1", now / 1000 - 301, DELIVERED);
        assert_eq!(source().receive(&h, DELIVERED.as_bytes(), now).unwrap_err().reason, Reason::Stale);
        assert_eq!(source().receive(&HeaderMap::new(), DELIVERED.as_bytes(), now).unwrap_err().reason, Reason::Forged);
        let body = r#"{"type":"email.delivered"}"#;
        let h = signed(SECRET, "msg_1", now / 1000, body);
        assert_eq!(source().receive(&h, body.as_bytes(), now).unwrap_err().reason, Reason::Malformed);
        assert!(Resend::new(&Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Duration::ZERO).is_err());
    }
}
