//! Amazon SES events through an SNS topic's HTTPS subscription. SNS signs
//! each message: the string to sign is the message's fields, each as
//! `Name\nvalue\n`, in the order AWS documents (Message, MessageId,
//! Subject if any, Timestamp, TopicArn, Type for a notification; Message,
//! MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type for a
//! subscription's confirmation), RSA-signed with SHA-1 (SignatureVersion 1)
//! or SHA-256 (2) by the certificate at `SigningCertURL` (sns_cert.rs).
//! Only the configured topics are taken; a subscription confirmation is
//! confirmed by visiting its SubscribeURL, on a trusted host too. The SNS
//! `MessageId`, the same when SNS retries, is the event id.

use super::Received;
use super::refusal::{Refusal, fresh};
use super::sns_cert::{self, Certificates};
use crate::config::SesSnsSource;
pub use crate::config::traffic_keys::topic_region;
use crate::traffic_event::{BounceKind, Event, Kind, detail, rfc3339_ms};
use base64::Engine;
use serde_json::Value;

pub struct Ses {
    config: SesSnsSource,
    certificates: Certificates,
}

impl Ses {
    pub fn new(config: SesSnsSource) -> Result<Ses, String> {
        let certificates = Certificates::new(config.certificate_hosts.clone(), config.ca_file.as_deref())?;
        Ok(Ses { config, certificates })
    }

    /// Verifies an SNS message and reads the SES events it carries.
    pub async fn receive(&self, body: &[u8], now_ms: i64) -> Result<Received, Refusal> {
        let m: Value = serde_json::from_slice(body).map_err(|e| Refusal::malformed(format!("not JSON: {e}")))?;
        let field = |k: &str| m[k].as_str();
        let (kind, topic) = (field("Type").unwrap_or(""), field("TopicArn").unwrap_or(""));
        if !self.config.topic_arns.iter().any(|t| t == topic) {
            return Err(Refusal::forged(format!("topic {topic:?} is not one this source takes")));
        }
        let region = topic_region(topic).ok_or_else(|| Refusal::forged("the TopicArn is not an SNS topic's"))?;
        let names: &[&str] = match kind {
            "Notification" => &["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                &["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
            }
            other => return Err(Refusal::malformed(format!("Type {other:?} is not an SNS message type"))),
        };
        let mut signed = String::new();
        for name in names {
            match (field(name), *name) {
                (Some(value), _) => signed.push_str(&format!("{name}\n{value}\n")),
                (None, "Subject") => {}
                (None, _) => return Err(Refusal::malformed(format!("{name} is missing"))),
            }
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(field("Signature").unwrap_or(""))
            .map_err(|_| Refusal::malformed("Signature is not base64"))?;
        let cert_url = self.certificates.trusted(field("SigningCertURL").unwrap_or(""), region)?;
        let version = field("SignatureVersion").unwrap_or("");
        if !matches!(version, "1" | "2") {
            return Err(Refusal::malformed(format!("SignatureVersion {version:?} is neither 1 nor 2")));
        }
        let der = self.certificates.get(&cert_url).await?;
        sns_cert::verify(&der, version, signed.as_bytes(), &signature)?;
        let sent =
            field("Timestamp").and_then(rfc3339_ms).ok_or_else(|| Refusal::malformed("Timestamp is not a time"))?;
        fresh(sent / 1000, now_ms, self.config.tolerance)?;
        match kind {
            "Notification" => {
                let id = field("MessageId").unwrap_or("");
                let event: Value = serde_json::from_str(field("Message").unwrap_or(""))
                    .map_err(|e| Refusal::malformed(format!("the Message is not an SES event: {e}")))?;
                Ok(Received { events: events(id, &event)?, ..Default::default() })
            }
            "SubscriptionConfirmation" => self.confirm(field("SubscribeURL").unwrap_or(""), region, topic).await,
            _ => {
                tracing::warn!(source = %self.config.name, topic, "SNS says this endpoint was unsubscribed from the topic");
                Ok(Received::default())
            }
        }
    }

    /// Confirms a subscription (when configured to) by visiting its URL.
    async fn confirm(&self, url: &str, region: &str, topic: &str) -> Result<Received, Refusal> {
        if !self.config.confirm_subscriptions {
            tracing::warn!(source = %self.config.name, topic, "SNS asks to confirm a subscription; confirm_subscriptions is off");
            return Ok(Received::default());
        }
        let url = self.certificates.trusted(url, region)?;
        self.certificates.fetch(&url).await?;
        tracing::info!(source = %self.config.name, topic, "confirmed the SNS subscription");
        Ok(Received { confirmed: true, ..Default::default() })
    }
}

/// The events of one SES event record, one per recipient it names.
fn events(sns_id: &str, e: &Value) -> Result<Vec<Event>, Refusal> {
    let mail = &e["mail"];
    let message_id = mail["messageId"].as_str().ok_or_else(|| Refusal::malformed("mail.messageId is missing"))?;
    let sent_ms = mail["timestamp"].as_str().and_then(rfc3339_ms);
    let Some((kind, at_ms, recipients)) = record(e, sent_ms)? else { return Ok(Vec::new()) };
    let at_ms = at_ms.ok_or_else(|| Refusal::malformed("the event has no timestamp"))?;
    let smtp_id = mail["commonHeaders"]["messageId"].as_str().map(str::to_string);
    let many = recipients.len() > 1;
    let recipients = if recipients.is_empty() { vec![(None, String::new())] } else { recipients };
    Ok(recipients
        .into_iter()
        .enumerate()
        .map(|(i, (recipient, said))| Event {
            event_id: if many { format!("{sns_id}/{i}") } else { sns_id.to_string() },
            message_id: message_id.to_string(),
            recipient,
            kind,
            at_ms,
            sent_ms,
            smtp_id: smtp_id.clone(),
            detail: detail(&said),
        })
        .collect())
}

/// Each recipient of a record, with what was said of it.
type Recipients = Vec<(Option<String>, String)>;

/// What one record says: its kind, when, and its recipients; None for a
/// record not about delivery (opens, clicks, subscriptions).
fn record(e: &Value, sent_ms: Option<i64>) -> Result<Option<(Kind, Option<i64>, Recipients)>, Refusal> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let time = |v: &Value| v["timestamp"].as_str().and_then(rfc3339_ms);
    // Every destination, with the same words.
    let all = |said: String| -> Recipients {
        let list = e["mail"]["destination"].as_array().cloned().unwrap_or_default();
        list.iter().map(|r| (r.as_str().map(str::to_string), said.clone())).collect()
    };
    // Each listed recipient (at `key`, or the item itself), with its own words.
    let listed = |list: &Value, key: &str, about: &Value| -> Recipients {
        let list = list.as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|r| {
                let address = if key.is_empty() { r } else { &r[key] };
                let said = [&about["delayType"], &r["status"], &r["diagnosticCode"], &about["smtpResponse"]]
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                (address.as_str().map(str::to_string), said)
            })
            .collect()
    };
    Ok(Some(match e["eventType"].as_str().or(e["notificationType"].as_str()).unwrap_or("") {
        "Send" => (Kind::Sent, sent_ms, all(String::new())),
        "Delivery" => {
            let d = &e["delivery"];
            (Kind::Delivered, time(d), listed(&d["recipients"], "", d))
        }
        "Bounce" => {
            let b = &e["bounce"];
            let kind = match b["bounceType"].as_str().unwrap_or("") {
                "Permanent" => BounceKind::Permanent,
                "Transient" => BounceKind::Transient,
                _ => BounceKind::Undetermined,
            };
            (Kind::Bounced(kind), time(b), listed(&b["bouncedRecipients"], "emailAddress", b))
        }
        "DeliveryDelay" => {
            let d = &e["deliveryDelay"];
            (Kind::Deferred, time(d), listed(&d["delayedRecipients"], "emailAddress", d))
        }
        "Complaint" => {
            let c = &e["complaint"];
            (Kind::Complained, time(c), listed(&c["complainedRecipients"], "emailAddress", &Value::Null))
        }
        "Reject" => (Kind::Rejected, sent_ms, all(text(&e["reject"]["reason"]))),
        "Rendering Failure" => (Kind::Rejected, sent_ms, all(text(&e["failure"]["errorMessage"]))),
        "" => return Err(Refusal::malformed("neither eventType nor notificationType")),
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests;
