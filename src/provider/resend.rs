//! `type: resend`: Resend `emails` with a Bearer API key; the token travels
//! in the `headers` object. Failures carry a `name`.

use super::common::provider_config;
use super::{Accepted, Provider, SendError, SendReason};
use crate::canary::Canary;
use crate::http::{Api, detail, headers_object, status_reason};
use crate::secret::Secret;
use crate::valid;

provider_config! {
    /// `type: resend`: Resend `emails`.
    ResendConfig {
        api_key: Secret,
    }
    with endpoint
}

impl ResendConfig {
    /// What is wrong with the keys only Resend has.
    pub fn problems(&self) -> Vec<(String, String)> {
        valid::secret(&self.api_key).map(|m| ("api_key".to_string(), m)).into_iter().collect()
    }
}

pub struct ResendProvider {
    name: String,
    api: Api,
    key: Secret,
}

impl ResendProvider {
    pub fn new(config: &ResendConfig) -> Result<Self, String> {
        Ok(ResendProvider {
            name: config.name.clone(),
            api: Api::new(config.endpoint.as_deref(), "https://api.resend.com", config.timeout)?,
            key: config.api_key.clone(),
        })
    }
}

/// Resend's error `name`s, as documented.
fn reason(name: &str) -> Option<SendReason> {
    Some(match name {
        "missing_api_key" | "invalid_api_key" | "restricted_api_key" => SendReason::Auth,
        "rate_limit_exceeded" | "daily_quota_exceeded" | "monthly_quota_exceeded" => SendReason::Throttled,
        "validation_error"
        | "invalid_from_address"
        | "invalid_to_address"
        | "invalid_attachment"
        | "missing_required_field"
        | "invalid_idempotency_key" => SendReason::Rejected,
        "application_error" | "internal_server_error" => SendReason::Other,
        _ => return None,
    })
}

impl Provider for ResendProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, canary: &Canary) -> Result<Accepted, SendError> {
        let headers = headers_object(canary);
        let body = serde_json::json!({
            "from": canary.from,
            "to": [canary.to],
            "subject": canary.subject,
            "text": canary.body,
            "headers": headers,
        });
        let request = self.api.client().post(self.api.url("/emails")).bearer_auth(self.key.expose()).json(&body);
        let reply = self.api.call(request).await?;
        let json = reply.json();
        if reply.status.is_success() {
            return Ok(Accepted { provider_id: json["id"].as_str().map(str::to_string) });
        }
        let name = json["name"].as_str();
        let reason = name.and_then(reason).unwrap_or_else(|| status_reason(reply.status));
        Err(SendError::new(reason, detail(reply.status, name, json["message"].as_str())))
    }
}
