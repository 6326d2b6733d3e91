//! OAuth2 access tokens for mailboxes and relays that refuse passwords
//! (Gmail, Microsoft 365): the refresh-token grant of RFC 6749 §6 against a
//! configured token endpoint, a token kept until shortly before it expires,
//! and the SASL initial responses that carry it, XOAUTH2 and OAUTHBEARER
//! (RFC 7628).
//!
//! Neither the refresh token, the client secret nor an access token ever
//! reaches a log line or an error: errors carry the endpoint's `error` code
//! and description only.

use crate::http::{Api, detail};
use crate::outcome::SendReason;
use crate::secret::Secret;
use serde::Deserialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `oauth2:` of an inbox's IMAP (or an SMTP provider): access tokens from a
/// token endpoint (RFC 6749 refresh-token grant), used with SASL XOAUTH2 or
/// OAUTHBEARER (RFC 7628).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// Such as `https://oauth2.googleapis.com/token` or
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
    pub token_url: String,
    pub client_id: String,
    /// Public clients have none.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    pub refresh_token: Secret,
    /// Scopes to ask for, space-separated; the grant's own when not given.
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub mechanism: SaslMechanism,
}

impl OAuth2Config {
    /// What is wrong with these settings, by key (relative to `oauth2`).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(m) = crate::valid::url(&self.token_url) {
            out.push(("token_url".to_string(), m));
        }
        if self.client_id.trim().is_empty() {
            out.push(("client_id".to_string(), "client_id must not be empty".to_string()));
        }
        if let Some(m) = crate::valid::secret(&self.refresh_token) {
            out.push(("refresh_token".to_string(), m));
        }
        out
    }
}

/// The SASL mechanism that carries the access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaslMechanism {
    /// Google's and Microsoft's `XOAUTH2`.
    #[default]
    Xoauth2,
    /// The standard one, RFC 7628.
    Oauthbearer,
}

/// A token is refreshed this long before it expires (or at half its life,
/// if that is sooner), so that it is never sent about to expire.
const MARGIN: Duration = Duration::from_secs(60);
/// When the endpoint does not say how long a token lives.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Why no access token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OAuth2 token endpoint: {detail}")]
pub struct TokenError {
    pub kind: TokenErrorKind,
    pub detail: String,
}

/// What kind of failure, for the `reason` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenErrorKind {
    /// The endpoint refused the grant or the client (`invalid_grant`, 401).
    Refused,
    /// No connection, or it broke.
    Connect,
    Tls,
    Timeout,
    /// An answer that is not a token.
    Protocol,
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// Hands out access tokens for one mailbox or relay, refreshing them as
/// needed. Shared by every session of its owner.
pub struct TokenSource {
    config: OAuth2Config,
    /// The token endpoint.
    api: Api,
    cached: Mutex<Option<Cached>>,
    /// Endpoints that rotate refresh tokens (Microsoft) hand out a new one.
    refresh_token: Mutex<Secret>,
}

impl TokenSource {
    /// A source for `config`; `ca_file` is an extra CA trusted for the endpoint.
    pub fn new(config: &OAuth2Config, ca_file: Option<&std::path::Path>, timeout: Duration) -> Result<Self, String> {
        Ok(TokenSource {
            refresh_token: Mutex::new(config.refresh_token.clone()),
            config: config.clone(),
            api: Api::trusting(&config.token_url, ca_file, timeout)?,
            cached: Mutex::new(None),
        })
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A token good for a while yet: the one kept, or a fresh one.
    pub async fn token(&self) -> Result<Secret, TokenError> {
        if let Some(c) = Self::lock(&self.cached).as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        self.refresh().await
    }

    /// The server refused the token we sent: do not send it again.
    pub fn invalidate(&self) {
        *Self::lock(&self.cached) = None;
    }

    async fn refresh(&self) -> Result<Secret, TokenError> {
        let refresh_token = Self::lock(&self.refresh_token).clone();
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", &self.config.client_id),
        ];
        if let Some(secret) = &self.config.client_secret {
            form.push(("client_secret", secret.expose()));
        }
        if let Some(scope) = &self.config.scope {
            form.push(("scope", scope));
        }
        let request = self.api.client().post(self.api.url("")).header("accept", "application/json").form(&form);
        let started = Instant::now();
        let reply = self.api.call(request).await.map_err(|e| TokenError {
            kind: match e.reason {
                SendReason::Timeout => TokenErrorKind::Timeout,
                SendReason::Tls => TokenErrorKind::Tls,
                SendReason::Connect => TokenErrorKind::Connect,
                _ => TokenErrorKind::Protocol,
            },
            detail: e.detail,
        })?;
        let (status, json) = (reply.status, reply.json());
        if !status.is_success() {
            return Err(refusal(status, &json));
        }
        let Some(token) = json["access_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(TokenError {
                kind: TokenErrorKind::Protocol,
                detail: format!("HTTP {} without an access_token", status.as_u16()),
            });
        };
        if let Some(kind) = json["token_type"].as_str()
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(TokenError {
                kind: TokenErrorKind::Protocol,
                detail: format!("token_type \"{}\", not Bearer", crate::quote::quote(kind)),
            });
        }
        let lifetime = json["expires_in"]
            .as_u64()
            .or_else(|| json["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let token = Secret::new(token);
        *Self::lock(&self.cached) =
            Some(Cached { token: token.clone(), refresh_at: started + lifetime - MARGIN.min(lifetime / 2) });
        if let Some(rotated) = json["refresh_token"].as_str().filter(|t| !t.is_empty()) {
            *Self::lock(&self.refresh_token) = Secret::new(rotated);
        }
        tracing::debug!(lifetime = ?lifetime, "OAuth2 access token refreshed");
        Ok(token)
    }
}

/// `HTTP 400 invalid_grant: Token has been expired or revoked.`
fn refusal(status: reqwest::StatusCode, json: &serde_json::Value) -> TokenError {
    let code = json["error"].as_str().unwrap_or("");
    let kind = match (status.as_u16(), code) {
        (_, "invalid_grant" | "invalid_client" | "unauthorized_client" | "invalid_scope") | (401 | 403, _) => {
            TokenErrorKind::Refused
        }
        (408 | 504, _) => TokenErrorKind::Timeout,
        _ => TokenErrorKind::Protocol,
    };
    let detail = detail(status, Some(code), json["error_description"].as_str());
    TokenError { kind, detail }
}

/// The SASL initial response that carries `token` for `user`.
pub fn initial_response(mechanism: SaslMechanism, user: &str, token: &Secret) -> Secret {
    Secret::new(match mechanism {
        // https://developers.google.com/gmail/imap/xoauth2-protocol
        SaslMechanism::Xoauth2 => format!("user={user}\x01auth=Bearer {}\x01\x01", token.expose()),
        // RFC 7628 §3.1: GS2 header with the authorization identity, then key/value pairs.
        SaslMechanism::Oauthbearer => format!("n,a={},\x01auth=Bearer {}\x01\x01", gs2_escape(user), token.expose()),
    })
}

/// RFC 5801 §4: `,` and `=` in a GS2 authzid.
fn gs2_escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl SaslMechanism {
    /// The name in AUTHENTICATE and AUTH.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Xoauth2 => "XOAUTH2",
            SaslMechanism::Oauthbearer => "OAUTHBEARER",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_responses_follow_their_specs() {
        let token = Secret::new("ya29.token");
        assert_eq!(
            initial_response(SaslMechanism::Xoauth2, "a@b.test", &token).expose(),
            "user=a@b.test\x01auth=Bearer ya29.token\x01\x01"
        );
        assert_eq!(
            initial_response(SaslMechanism::Oauthbearer, "a=b,c@d.test", &token).expose(),
            "n,a=a=3Db=2Cc@d.test,\x01auth=Bearer ya29.token\x01\x01"
        );
    }

    #[test]
    fn refusals_name_the_endpoint_code_only() {
        let json =
            serde_json::json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."});
        let e = refusal(reqwest::StatusCode::BAD_REQUEST, &json);
        assert_eq!(e.kind, TokenErrorKind::Refused);
        assert_eq!(e.to_string(), "OAuth2 token endpoint: HTTP 400 invalid_grant: Token has been expired or revoked.");
        assert_eq!(refusal(reqwest::StatusCode::UNAUTHORIZED, &serde_json::Value::Null).kind, TokenErrorKind::Refused);
        assert_eq!(refusal(reqwest::StatusCode::BAD_GATEWAY, &serde_json::Value::Null).kind, TokenErrorKind::Protocol);
    }
}
