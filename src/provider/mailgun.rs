//! `type: mailgun`: Mailgun `messages` for a sending domain, with basic auth
//! (`api` and the key), form fields, and the token as an `h:` header.

use super::common::provider_config;
use super::{Accepted, Provider, SendError};
use crate::canary::Canary;
use crate::http::{Api, detail, status_reason};
use crate::secret::Secret;
use crate::valid;
use serde::Deserialize;

/// Mailgun's two API regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailgunRegion {
    #[default]
    Us,
    Eu,
}

provider_config! {
    /// `type: mailgun`: Mailgun `messages` for a sending domain.
    MailgunConfig {
        api_key: Secret,
        domain: String,
        #[serde(default)]
        region: MailgunRegion,
    }
    with endpoint
}

impl MailgunConfig {
    /// What is wrong with the keys only Mailgun has.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<_> = valid::secret(&self.api_key).map(|m| ("api_key".to_string(), m)).into_iter().collect();
        if self.domain.trim().is_empty() || self.domain.contains(['/', ' ']) {
            out.push(("domain".to_string(), format!("{:?} is not a sending domain", self.domain)));
        }
        out
    }
}

pub struct MailgunProvider {
    name: String,
    api: Api,
    key: Secret,
    domain: String,
}

impl MailgunProvider {
    pub fn new(config: &MailgunConfig) -> Result<Self, String> {
        let default = match config.region {
            MailgunRegion::Us => "https://api.mailgun.net",
            MailgunRegion::Eu => "https://api.eu.mailgun.net",
        };
        Ok(MailgunProvider {
            name: config.name.clone(),
            api: Api::new(config.endpoint.as_deref(), default, config.timeout)?,
            key: config.api_key.clone(),
            domain: config.domain.clone(),
        })
    }
}

impl Provider for MailgunProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, canary: &Canary) -> Result<Accepted, SendError> {
        let headers: Vec<(String, String)> =
            canary.api_headers().into_iter().map(|(n, v)| (format!("h:{n}"), v)).collect();
        let mut form: Vec<(&str, &str)> =
            vec![("from", &canary.from), ("to", &canary.to), ("subject", &canary.subject), ("text", &canary.body)];
        form.extend(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let url = self.api.url(&format!("/v3/{}/messages", self.domain));
        let request = self.api.client().post(url).basic_auth("api", Some(self.key.expose())).form(&form);
        let reply = self.api.call(request).await?;
        let json = reply.json();
        if reply.status.is_success() {
            let id = json["id"].as_str().map(|id| id.trim_matches(['<', '>']).to_string());
            return Ok(Accepted { provider_id: id });
        }
        // Errors are {"message": ...}, except 401, which is a plain "Forbidden".
        let message = json["message"].as_str().unwrap_or(reply.body.trim());
        Err(SendError::new(status_reason(reply.status), detail(reply.status, None, Some(message))))
    }
}
