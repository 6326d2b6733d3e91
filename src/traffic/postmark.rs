//! Postmark's webhooks: Postmark signs nothing; it sends the credentials
//! written in the webhook's URL (`https://user:password@host/path`) as HTTP
//! basic auth, and that is what is checked. The event id is Postmark's own
//! where it has one (a bounce's or complaint's `ID`), and for a delivery
//! the message and recipient (one delivery each).

use super::Received;
use super::refusal::{Refusal, same};
use crate::secret::Secret;
use crate::traffic_event::{BounceKind, Event, Kind, detail, rfc3339_ms};
use serde_json::Value;

pub struct Postmark {
    pub username: String,
    pub password: Secret,
}

impl Postmark {
    /// Checks the credentials, then reads the event (none for opens,
    /// clicks, subscription changes and auto-replies).
    pub fn receive(&self, authorization: Option<&str>, body: &[u8]) -> Result<Received, Refusal> {
        use base64::Engine;
        let expected = format!("{}:{}", self.username, self.password.expose());
        let given = authorization
            // RFC 7617: the scheme's name is case-insensitive.
            .and_then(|a| a.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, credentials)| credentials)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
            .unwrap_or_default();
        if !same(&given, expected.as_bytes()) {
            return Err(Refusal::forged("basic auth credentials missing or wrong"));
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| Refusal::malformed(format!("not JSON: {e}")))?;
        Ok(Received { events: event(&v)?.into_iter().collect(), ..Default::default() })
    }
}

fn event(v: &Value) -> Result<Option<Event>, Refusal> {
    let text = |k: &str| v[k].as_str().map(str::to_string);
    let message_id = text("MessageID").ok_or_else(|| Refusal::malformed("MessageID is missing"))?;
    let time = |k: &str| {
        text(k)
            .as_deref()
            .and_then(rfc3339_ms)
            .ok_or_else(|| Refusal::malformed(format!("{k} is not an RFC 3339 time")))
    };
    let id = || v["ID"].as_i64().map(|n| n.to_string()).ok_or_else(|| Refusal::malformed("ID is missing"));
    let (event_id, kind, recipient, at_ms, said) = match v["RecordType"].as_str().unwrap_or("") {
        "Delivery" => {
            let recipient = text("Recipient");
            let id = format!("delivery:{message_id}:{}", recipient.as_deref().unwrap_or(""));
            (id, Kind::Delivered, recipient, time("DeliveredAt")?, text("Details"))
        }
        "Bounce" => {
            let Some(kind) = bounce(v["Type"].as_str().unwrap_or("")) else { return Ok(None) };
            let said = [text("Description"), text("Details")].into_iter().flatten().collect::<Vec<_>>().join(" ");
            (format!("bounce:{}", id()?), kind, text("Email"), time("BouncedAt")?, Some(said))
        }
        "SpamComplaint" => (format!("complaint:{}", id()?), Kind::Complained, text("Email"), time("BouncedAt")?, None),
        "" => return Err(Refusal::malformed("RecordType is missing")),
        _ => return Ok(None),
    };
    Ok(Some(Event {
        event_id,
        message_id,
        recipient,
        kind,
        at_ms,
        sent_ms: None,
        smtp_id: None,
        detail: said.as_deref().and_then(detail),
    }))
}

/// What a bounce `Type` says of the message, if anything.
fn bounce(kind: &str) -> Option<Kind> {
    Some(match kind {
        "HardBounce" | "BadEmailAddress" | "DMARCPolicy" | "InboundError" => Kind::Bounced(BounceKind::Permanent),
        // "Message delayed": Postmark is still trying.
        "Transient" => Kind::Deferred,
        "SoftBounce" | "DnsError" | "Blocked" => Kind::Bounced(BounceKind::Transient),
        "Unknown" => Kind::Bounced(BounceKind::Undetermined),
        "ManuallyDeactivated" => Kind::Dropped,
        "SMTPApiError" | "TemplateRenderingFailed" => Kind::Rejected,
        "SpamComplaint" => Kind::Complained,
        // Auto-replies, address changes, subscriptions, challenges, notifications.
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::refusal::Reason;

    /// Postmark's documented Delivery and Bounce webhook examples.
    pub(crate) const DELIVERY: &str = r#"{
      "RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
      "MessageID": "00000000-0000-0000-0000-000000000000", "Recipient": "john@example.com",
      "Tag": "welcome-email", "DeliveredAt": "2021-02-21T16:34:52Z", "Details": "Test delivery webhook details",
      "Metadata": {"a_key": "a_value", "b_key": "b_value"}
    }"#;

    const BOUNCE: &str = r#"{
      "RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce",
      "Tag": "Test", "MessageID": "00000000-0000-0000-0000-000000000000", "ServerID": 1234, "MessageStream": "outbound",
      "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
      "Details": "Test bounce details", "Email": "john@example.com", "From": "sender@example.com",
      "BouncedAt": "2021-02-21T16:34:52Z", "DumpAvailable": true, "Inactive": true, "CanActivate": true,
      "Subject": "Test subject", "Content": "Test content", "Metadata": {"a_key": "a_value"}
    }"#;

    fn source() -> Postmark {
        Postmark { username: "hook".into(), password: Secret::new("s3cret pass") }
    }

    fn basic(user_pass: &str) -> String {
        use base64::Engine;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
    }

    #[test]
    fn documented_events_with_the_credentials_are_read() {
        let auth = basic("hook:s3cret pass");
        let e = &source().receive(Some(&auth), DELIVERY.as_bytes()).unwrap().events[0];
        assert_eq!((e.kind, e.at_ms), (Kind::Delivered, 1_613_925_292_000));
        assert_eq!(e.event_id, "delivery:00000000-0000-0000-0000-000000000000:john@example.com");
        let e = &source().receive(Some(&auth), BOUNCE.as_bytes()).unwrap().events[0];
        assert_eq!((e.kind, e.event_id.as_str()), (Kind::Bounced(BounceKind::Permanent), "bounce:42"));
        assert!(e.detail.as_deref().unwrap().starts_with("The server was unable"));
        // The scheme's name in any case (RFC 7617).
        for scheme in ["basic", "BASIC", "bAsIc"] {
            let auth = auth.replacen("Basic", scheme, 1);
            assert_eq!(source().receive(Some(&auth), DELIVERY.as_bytes()).unwrap().events.len(), 1, "{scheme}");
        }
        let open = r#"{"RecordType": "Open", "MessageID": "m"}"#;
        assert_eq!(source().receive(Some(&auth), open.as_bytes()).unwrap().events, []);
    }

    #[test]
    fn wrong_or_missing_credentials_and_malformed_bodies_are_refused() {
        for auth in [None, Some(basic("hook:wrong")), Some(basic("other:s3cret pass")), Some("Bearer x".into())] {
            let got = source().receive(auth.as_deref(), DELIVERY.as_bytes());
            assert_eq!(got.unwrap_err().reason, Reason::Forged, "{auth:?}");
        }
        let auth = basic("hook:s3cret pass");
        assert_eq!(source().receive(Some(&auth), b"not json").unwrap_err().reason, Reason::Malformed);
        let no_time = r#"{"RecordType": "Delivery", "MessageID": "m", "DeliveredAt": "yesterday"}"#;
        assert_eq!(source().receive(Some(&auth), no_time.as_bytes()).unwrap_err().reason, Reason::Malformed);
    }
}
