//! SendGrid's Signed Event Webhook: a JSON array of events, signed with
//! ECDSA (P-256, SHA-256) over the `X-Twilio-Email-Event-Webhook-Timestamp`
//! header followed by the raw body; the signature (base64 DER) is in
//! `X-Twilio-Email-Event-Webhook-Signature`, and the verification key
//! SendGrid shows is the base64 of its DER SubjectPublicKeyInfo. Each
//! event's `sg_event_id` is its event id.

use super::Received;
use super::refusal::{Refusal, fresh};
pub use crate::config::traffic_keys::public_key;
use crate::traffic_event::{BounceKind, Event, Kind, detail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde_json::Value;
use std::time::Duration;

pub struct Sendgrid {
    point: Vec<u8>,
    tolerance: Duration,
}

impl Sendgrid {
    pub fn new(public_key_text: &str, tolerance: Duration) -> Result<Sendgrid, String> {
        Ok(Sendgrid { point: public_key(public_key_text)?, tolerance })
    }

    /// Verifies the signature and reads every event about delivery.
    pub fn receive(&self, headers: &HeaderMap, body: &[u8], now_ms: i64) -> Result<Received, Refusal> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let (Some(signature), Some(timestamp)) =
            (header("x-twilio-email-event-webhook-signature"), header("x-twilio-email-event-webhook-timestamp"))
        else {
            return Err(Refusal::forged("the signature or timestamp header is missing"));
        };
        let signature = STANDARD.decode(signature).map_err(|_| Refusal::forged("the signature is not base64"))?;
        let mut signed = Vec::with_capacity(timestamp.len() + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(body);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(&signed, &signature)
            .map_err(|_| Refusal::forged("the signature does not verify with the public key"))?;
        let at: i64 = timestamp.parse().map_err(|_| Refusal::malformed("the timestamp is not a number"))?;
        fresh(at, now_ms, self.tolerance)?;
        let list: Vec<Value> =
            serde_json::from_slice(body).map_err(|e| Refusal::malformed(format!("not a JSON array: {e}")))?;
        let events = list.iter().map(event).collect::<Result<Vec<_>, _>>()?;
        Ok(Received { events: events.into_iter().flatten().collect(), ..Default::default() })
    }
}

/// One event of the array, if it is about delivery.
fn event(e: &Value) -> Result<Option<Event>, Refusal> {
    let text = |k: &str| e[k].as_str().map(str::to_string);
    let kind = match e["event"].as_str().unwrap_or("") {
        "processed" => Kind::Sent,
        "delivered" => Kind::Delivered,
        "deferred" => Kind::Deferred,
        "bounce" if e["type"].as_str() == Some("blocked") => Kind::Bounced(BounceKind::Transient),
        "bounce" => Kind::Bounced(BounceKind::Permanent),
        "dropped" => Kind::Dropped,
        "spamreport" => Kind::Complained,
        "" => return Err(Refusal::malformed("an event without `event`")),
        _ => return Ok(None),
    };
    let event_id = text("sg_event_id").ok_or_else(|| Refusal::malformed("an event without sg_event_id"))?;
    let message_id = text("sg_message_id").ok_or_else(|| Refusal::malformed("an event without sg_message_id"))?;
    let at = e["timestamp"].as_i64().ok_or_else(|| Refusal::malformed("an event whose timestamp is not a number"))?;
    let said = ["status", "response", "reason"].iter().filter_map(|k| e[*k].as_str()).collect::<Vec<_>>().join(" ");
    Ok(Some(Event {
        event_id,
        message_id,
        recipient: text("email"),
        kind,
        at_ms: at * 1000,
        sent_ms: None,
        smtp_id: text("smtp-id"),
        detail: detail(&said),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::traffic_keys::P256_SPKI;
    use crate::traffic::refusal::Reason;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    /// SendGrid's documented example events (each its own event id).
    pub(crate) const EVENTS: &str = r#"[
      {"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"processed","category":"cat facts","sg_event_id":"ev-processed","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"},
      {"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"deferred","category":"cat facts","sg_event_id":"ev-deferred","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","response":"400 try again later","attempt":"5"},
      {"email":"example@test.com","timestamp":1513299629,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"delivered","category":"cat facts","sg_event_id":"ev-delivered","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","response":"250 OK"},
      {"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"open","category":"cat facts","sg_event_id":"ev-open","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","useragent":"Mozilla/4.0","ip":"255.255.255.255"},
      {"email":"other@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce94.dfd.64b469@ismtpd-555>","event":"bounce","category":"cat facts","sg_event_id":"ev-bounce","sg_message_id":"14c5d75ce94.dfd.64b469.filter0001.16648.5515E0B88.0","reason":"500 unknown recipient","status":"5.0.0","type":"bounce"}
    ]"#;

    /// A key pair made here, its verification key as SendGrid shows one.
    pub(crate) fn key() -> (EcdsaKeyPair, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let spki = [&P256_SPKI[..], pair.public_key().as_ref()].concat();
        (pair, STANDARD.encode(spki))
    }

    pub(crate) fn signed(pair: &EcdsaKeyPair, timestamp: i64, body: &str) -> HeaderMap {
        let sig = pair.sign(&SystemRandom::new(), format!("{timestamp}{body}").as_bytes()).unwrap();
        let mut h = HeaderMap::new();
        h.insert("X-Twilio-Email-Event-Webhook-Signature", STANDARD.encode(sig.as_ref()).parse().unwrap());
        h.insert("X-Twilio-Email-Event-Webhook-Timestamp", timestamp.to_string().parse().unwrap());
        h
    }

    #[test]
    fn documented_events_signed_with_the_key_are_read() {
        let (pair, public) = key();
        let source = Sendgrid::new(&public, Duration::from_secs(600)).unwrap();
        let now = 1_700_000_000_000;
        let events = source.receive(&signed(&pair, now / 1000, EVENTS), EVENTS.as_bytes(), now).unwrap().events;
        let kinds: Vec<Kind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [Kind::Sent, Kind::Deferred, Kind::Delivered, Kind::Bounced(BounceKind::Permanent)],
            "no open"
        );
        assert_eq!(events[2].at_ms, 1_513_299_629_000);
        assert_eq!(events[1].detail.as_deref(), Some("400 try again later"));
        assert_eq!(events[0].smtp_id.as_deref(), Some("<14c5d75ce93.dfd.64b469@ismtpd-555>"));
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{public}\n-----END PUBLIC KEY-----\n");
        assert!(Sendgrid::new(&pem, Duration::from_secs(1)).is_ok(), "PEM armour is taken too");
    }

    /// SendGrid's own test vector (its libraries' tests): the signed string
    /// is built as SendGrid builds it, not only as this file does.
    #[test]
    fn sendgrids_own_signed_example_verifies() {
        let public = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
        let mut h = HeaderMap::new();
        let signature =
            "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
        h.insert("X-Twilio-Email-Event-Webhook-Signature", signature.parse().unwrap());
        h.insert("X-Twilio-Email-Event-Webhook-Timestamp", "1588788367".parse().unwrap());
        let payload = r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
        let source = Sendgrid::new(public, Duration::from_secs(600)).unwrap();
        // Verified, then refused only because the example is not an array of events.
        let got = source.receive(&h, payload.as_bytes(), 1_588_788_367_000).unwrap_err();
        assert_eq!(got.reason, Reason::Malformed, "{got:?}");
        let tampered = payload.replace("test_event", "test_evenT");
        assert_eq!(source.receive(&h, tampered.as_bytes(), 1_588_788_367_000).unwrap_err().reason, Reason::Forged);
    }

    #[test]
    fn forged_tampered_stale_and_unsigned_deliveries_are_refused() {
        let (pair, public) = key();
        let (other, _) = key();
        let source = Sendgrid::new(&public, Duration::from_secs(600)).unwrap();
        let now = 1_700_000_000_000;
        let refused = |h: &HeaderMap, body: &str| source.receive(h, body.as_bytes(), now).unwrap_err().reason;
        assert_eq!(refused(&signed(&other, now / 1000, EVENTS), EVENTS), Reason::Forged);
        assert_eq!(refused(&signed(&pair, now / 1000, EVENTS), &EVENTS.replace("250 OK", "550 NO")), Reason::Forged);
        let mut moved = signed(&pair, now / 1000, EVENTS);
        moved.insert("X-Twilio-Email-Event-Webhook-Timestamp", (now / 1000 + 1).to_string().parse().unwrap());
        assert_eq!(refused(&moved, EVENTS), Reason::Forged, "the timestamp is signed");
        assert_eq!(refused(&signed(&pair, now / 1000 - 601, EVENTS), EVENTS), Reason::Stale);
        assert_eq!(refused(&HeaderMap::new(), EVENTS), Reason::Forged);
        assert_eq!(refused(&signed(&pair, now / 1000, "{}"), "{}"), Reason::Malformed);
        assert!(public_key("MFkwEwYHKoZIzj0CAQ==").is_err());
    }
}
