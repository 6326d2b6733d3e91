//! `type: postmark`: Postmark `email` with the server token header; the
//! token travels in the `Headers` array. Failures carry an `ErrorCode`.

use super::common::provider_config;
use super::{Accepted, Provider, SendError, SendReason};
use crate::canary::Canary;
use crate::http::{Api, detail, status_reason};
use crate::secret::Secret;
use crate::valid;

provider_config! {
    /// `type: postmark`: Postmark `email` with a server token.
    PostmarkConfig {
        server_token: Secret,
    }
    after failover {
        /// The message stream; Postmark's default is `outbound`.
        #[serde(default)]
        message_stream: Option<String>,
    }
    with endpoint
}

impl PostmarkConfig {
    /// What is wrong with the keys only Postmark has.
    pub fn problems(&self) -> Vec<(String, String)> {
        valid::secret(&self.server_token).map(|m| ("server_token".to_string(), m)).into_iter().collect()
    }
}

pub struct PostmarkProvider {
    name: String,
    api: Api,
    token: Secret,
    stream: String,
}

impl PostmarkProvider {
    pub fn new(config: &PostmarkConfig) -> Result<Self, String> {
        Ok(PostmarkProvider {
            name: config.name.clone(),
            api: Api::new(config.endpoint.as_deref(), "https://api.postmarkapp.com", config.timeout)?,
            token: config.server_token.clone(),
            stream: config.message_stream.clone().unwrap_or_else(|| "outbound".into()),
        })
    }
}

/// Postmark's `ErrorCode`s, as documented in its API error codes.
fn reason(code: i64) -> Option<SendReason> {
    Some(match code {
        10 => SendReason::Auth, // bad or missing server token
        300 | 400 | 401 | 402 | 403 | 405 | 406 | 409 | 411 | 412 | 413 | 414 | 415 | 416 => SendReason::Rejected,
        429 => SendReason::Throttled,
        _ => return None,
    })
}

impl Provider for PostmarkProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, canary: &Canary) -> Result<Accepted, SendError> {
        let headers: Vec<serde_json::Value> =
            canary.api_headers().iter().map(|(n, v)| serde_json::json!({ "Name": n, "Value": v })).collect();
        let body = serde_json::json!({
            "From": canary.from,
            "To": canary.to,
            "Subject": canary.subject,
            "TextBody": canary.body,
            "Headers": headers,
            "MessageStream": self.stream,
        });
        let request = self
            .api
            .client()
            .post(self.api.url("/email"))
            .header("Accept", "application/json")
            .header("X-Postmark-Server-Token", self.token.expose())
            .json(&body);
        let reply = self.api.call(request).await?;
        let json = reply.json();
        let code = json["ErrorCode"].as_i64();
        if reply.status.is_success() && code.unwrap_or(0) == 0 {
            return Ok(Accepted { provider_id: json["MessageID"].as_str().map(str::to_string) });
        }
        let reason = code.and_then(reason).unwrap_or_else(|| status_reason(reply.status));
        let code = code.map(|c| format!("ErrorCode {c}"));
        Err(SendError::new(reason, detail(reply.status, code.as_deref(), json["Message"].as_str())))
    }
}
