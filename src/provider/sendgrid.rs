//! `type: sendgrid`: SendGrid v3 `mail/send` with a Bearer API key. SendGrid
//! builds the message itself; the token travels in `headers`.

use super::common::provider_config;
use super::{Accepted, Provider, SendError};
use crate::canary::Canary;
use crate::http::{Api, detail, headers_object, status_reason};
use crate::secret::Secret;
use crate::valid;

provider_config! {
    /// `type: sendgrid`: SendGrid v3 `mail/send`.
    SendgridConfig {
        api_key: Secret,
    }
    with endpoint
}

impl SendgridConfig {
    /// What is wrong with the keys only SendGrid has.
    pub fn problems(&self) -> Vec<(String, String)> {
        valid::secret(&self.api_key).map(|m| ("api_key".to_string(), m)).into_iter().collect()
    }
}

pub struct SendgridProvider {
    name: String,
    api: Api,
    key: Secret,
}

impl SendgridProvider {
    pub fn new(config: &SendgridConfig) -> Result<Self, String> {
        Ok(SendgridProvider {
            name: config.name.clone(),
            api: Api::new(config.endpoint.as_deref(), "https://api.sendgrid.com", config.timeout)?,
            key: config.api_key.clone(),
        })
    }
}

impl Provider for SendgridProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, canary: &Canary) -> Result<Accepted, SendError> {
        let headers = headers_object(canary);
        let body = serde_json::json!({
            "personalizations": [{ "to": [{ "email": canary.to }] }],
            "from": { "email": canary.from },
            "subject": canary.subject,
            "content": [{ "type": "text/plain", "value": canary.body }],
            "headers": headers,
        });
        let request = self.api.client().post(self.api.url("/v3/mail/send")).bearer_auth(self.key.expose()).json(&body);
        let reply = self.api.call(request).await?;
        if reply.status.is_success() {
            let id = reply.headers.get("x-message-id").and_then(|v| v.to_str().ok()).map(str::to_string);
            return Ok(Accepted { provider_id: id });
        }
        let json = reply.json();
        let first = &json["errors"][0];
        let message = first["message"].as_str();
        let field = first["field"].as_str();
        Err(SendError::new(status_reason(reply.status), detail(reply.status, field, message)))
    }
}
