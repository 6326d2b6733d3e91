//! `type: ses`: Amazon SES v2 `SendEmail` with the canary's raw MIME, so its
//! headers reach the inbox exactly as built. One SigV4-signed request
//! (aws-sigv4), not the AWS SDK.

use super::common::provider_config;
use super::{Accepted, Provider, SendError, SendReason};
use crate::canary::Canary;
use crate::http::{Api, detail, status_reason};
use crate::secret::Secret;
use crate::valid;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;
use std::time::SystemTime;

provider_config! {
    /// `type: ses`: Amazon SES v2 `SendEmail` with the raw message, SigV4-signed.
    SesConfig {
        /// e.g. `us-east-1`; picks `https://email.<region>.amazonaws.com`.
        region: String,
        access_key_id: Secret,
        secret_access_key: Secret,
        /// For temporary credentials (STS).
        #[serde(default)]
        session_token: Option<Secret>,
    }
    after failover {
        /// Optional configuration set, for SES's own event publishing.
        #[serde(default)]
        configuration_set: Option<String>,
    }
    with endpoint
}

impl SesConfig {
    /// What is wrong with the keys only SES has (crate::provider::common
    /// checks the shared ones).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.region.is_empty()
            || !self.region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            out.push(("region".to_string(), format!("{:?} is not an AWS region such as us-east-1", self.region)));
        }
        out.extend(valid::secret(&self.access_key_id).map(|m| ("access_key_id".to_string(), m)));
        out.extend(valid::secret(&self.secret_access_key).map(|m| ("secret_access_key".to_string(), m)));
        out
    }
}

pub struct SesProvider {
    name: String,
    api: Api,
    region: String,
    identity: Identity,
    configuration_set: Option<String>,
}

impl SesProvider {
    pub fn new(config: &SesConfig) -> Result<Self, String> {
        let default = format!("https://email.{}.amazonaws.com", config.region);
        let identity = Credentials::new(
            config.access_key_id.expose(),
            config.secret_access_key.expose(),
            config.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "mailcanary-config",
        )
        .into();
        Ok(SesProvider {
            name: config.name.clone(),
            api: Api::new(config.endpoint.as_deref(), &default, config.timeout)?,
            region: config.region.clone(),
            identity,
            configuration_set: config.configuration_set.clone(),
        })
    }
}

impl SesProvider {
    /// A POST of `body` to `url`, signed with SigV4 for SES in the region.
    fn signed(&self, url: &str, body: Vec<u8>) -> Result<reqwest::RequestBuilder, SendError> {
        let cannot = |e: &dyn std::fmt::Display| SendError::new(SendReason::Other, format!("cannot sign: {e}"));
        let headers = [("content-type", "application/json")];
        let signable = SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(&body))
            .map_err(|e| cannot(&e))?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("ses")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| cannot(&e))?
            .into();
        let (instructions, _) = sign(signable, &params).map_err(|e| cannot(&e))?.into_parts();
        let mut request = self.api.client().post(url).header("content-type", "application/json").body(body);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        Ok(request)
    }
}

impl Provider for SesProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, canary: &Canary) -> Result<Accepted, SendError> {
        let mut body = serde_json::json!({
            "FromEmailAddress": canary.from,
            "Destination": { "ToAddresses": [canary.to] },
            "Content": { "Raw": { "Data": base64::engine::general_purpose::STANDARD.encode(&canary.raw) } },
        });
        if let Some(bounces) = &canary.return_path {
            // SES keeps its own envelope sender and forwards bounces here.
            body["FeedbackForwardingEmailAddress"] = bounces.clone().into();
        }
        if let Some(set) = &self.configuration_set {
            body["ConfigurationSetName"] = set.clone().into();
        }
        let body = serde_json::to_vec(&body).expect("JSON of strings");
        let url = self.api.url("/v2/email/outbound-emails");
        let request = self.signed(&url, body)?;
        let reply = self.api.call(request).await?;
        if reply.status.is_success() {
            return Ok(Accepted { provider_id: reply.json()["MessageId"].as_str().map(str::to_string) });
        }
        Err(refusal(&reply))
    }
}

/// What SES's refusal says: its error's name, as a bounded reason.
fn refusal(reply: &crate::http::Reply) -> SendError {
    let json = reply.json();
    // The error's name is in x-amzn-ErrorType ("Name:details") or the body.
    let code = reply
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_string())
        .or_else(|| {
            json["__type"].as_str().or(json["code"].as_str()).map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
        });
    let message = json["message"].as_str().or(json["Message"].as_str());
    let reason = match code.as_deref() {
        Some(
            "MessageRejected"
            | "MailFromDomainNotVerifiedException"
            | "AccountSuspendedException"
            | "SendingPausedException"
            | "BadRequestException"
            | "NotFoundException",
        ) => SendReason::Rejected,
        Some("TooManyRequestsException" | "LimitExceededException" | "Throttling" | "ThrottlingException") => {
            SendReason::Throttled
        }
        Some(
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "InvalidClientTokenId"
            | "ExpiredTokenException"
            | "AccessDeniedException"
            | "MissingAuthenticationToken",
        ) => SendReason::Auth,
        _ => status_reason(reply.status),
    };
    SendError::new(reason, detail(reply.status, code.as_deref(), message))
}
