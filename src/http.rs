//! What every HTTP client of mailcanary shares (the API providers, the
//! application triggers, the OAuth2 token endpoint and the link follower):
//! one reqwest client each, built here and only here on our rustls
//! configuration, a base URL that `endpoint:` can override, every request
//! under its timeout, answers read up to a bound, and the mapping of
//! transport failures and status codes to `reason`s.
//!
//! No client follows a redirect to another host or sends a `Referer`: the
//! requests carry credentials (API keys in headers, a refresh token in a
//! form, a secret in a trigger's URL or body), and a redirect would hand
//! them to whoever the answer names. An API answering 3xx is an outcome.

use crate::outcome::{SendError, SendReason};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// Largest answer body read from a provider.
const MAX_BODY: usize = 64 * 1024;

/// A provider's API: a reused client and where to reach it.
pub struct Api {
    client: reqwest::Client,
    base: String,
}

/// What the provider answered.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body as JSON, or `null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Api {
    /// A client for `endpoint` (or `default` when none is configured).
    pub fn new(endpoint: Option<&str>, default: &str, timeout: Duration) -> Result<Api, String> {
        Self::trusting(endpoint.unwrap_or(default), None, timeout)
    }

    /// A client for `base`, trusting `ca_file` besides the system's roots.
    pub fn trusting(base: &str, ca_file: Option<&std::path::Path>, timeout: Duration) -> Result<Api, String> {
        let base = base.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base).map_err(|e| format!("endpoint {base:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("endpoint {base:?}: must be http:// or https://"));
        }
        let client = builder(ca_file, timeout, Redirects::None)?.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Api { client, base })
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The shared client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` and reads the answer, whatever its status.
    /// A 3xx is a failure: its target is not asked (see the module's doc).
    pub async fn call(&self, request: reqwest::RequestBuilder) -> Result<Reply, SendError> {
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(SendError::new(SendReason::Other, redirected(status)));
        }
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            let room = MAX_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        Ok(Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
    }
}

/// What a client does with a 3xx answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Nothing: the 3xx is the answer.
    None,
    /// Up to this many hops, each on the first URL's own origin (scheme,
    /// host and port); a hop elsewhere is not taken and its 3xx is the answer.
    SameOrigin(usize),
}

/// The one way a reqwest client is made here: our TLS (with `ca_file`
/// trusted besides the system's roots), `timeout` on connecting and on
/// the whole request, no `Referer` ever, and `redirects` as asked.
pub fn builder(
    ca_file: Option<&std::path::Path>,
    timeout: Duration,
    redirects: Redirects,
) -> Result<reqwest::ClientBuilder, String> {
    let tls = crate::tls::client_config(ca_file, false)?;
    let policy = match redirects {
        Redirects::None => reqwest::redirect::Policy::none(),
        Redirects::SameOrigin(max) => reqwest::redirect::Policy::custom(move |attempt| {
            let first = attempt.previous().first().map(reqwest::Url::origin);
            if first.as_ref() != Some(&attempt.url().origin()) || attempt.previous().len() > max {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }),
    };
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(policy)
        .referer(false)
        .user_agent(concat!("mailcanary/", env!("CARGO_PKG_VERSION"))))
}

/// The detail of a 3xx answer that was not followed. The target is not
/// named: it may carry what the request carried.
pub fn redirected(status: StatusCode) -> String {
    format!("redirected (HTTP {}) to another location: not followed", status.as_u16())
}

/// The canary's extra headers as a JSON object, for APIs that take one.
pub fn headers_object(canary: &crate::canary::Canary) -> serde_json::Map<String, serde_json::Value> {
    canary.api_headers().into_iter().map(|(n, v)| (n.to_string(), v.into())).collect()
}

/// The reason for an HTTP status when the provider's own code says no more.
pub fn status_reason(status: StatusCode) -> SendReason {
    match status.as_u16() {
        401 | 403 => SendReason::Auth,
        429 => SendReason::Throttled,
        408 => SendReason::Timeout,
        400..=499 => SendReason::Rejected,
        _ => SendReason::Other,
    }
}

/// A request that got no answer: timeout, TLS, connection, or other.
fn transport_error(e: reqwest::Error) -> SendError {
    let reason = if e.is_timeout() {
        SendReason::Timeout
    } else if crate::tls::is_tls_error(&e) {
        SendReason::Tls
    } else if e.is_connect() {
        SendReason::Connect
    } else {
        SendReason::Other
    };
    // Without the URL: it may carry a domain or path the operator considers private.
    SendError::new(reason, crate::quote::error_chain(&e.without_url()))
}

/// "HTTP 422 code: message", the provider's words quoted and cut to a
/// log-friendly length.
pub fn detail(status: StatusCode, code: Option<&str>, message: Option<&str>) -> String {
    let mut out = format!("HTTP {}", status.as_u16());
    if let Some(code) = code.filter(|c| !c.is_empty()) {
        out.push_str(&format!(" {}", crate::quote::quote(code)));
    }
    if let Some(message) = message.filter(|m| !m.is_empty()) {
        out.push_str(&format!(": {}", crate::quote::quote(message)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_reasons() {
        assert_eq!(status_reason(StatusCode::UNAUTHORIZED), SendReason::Auth);
        assert_eq!(status_reason(StatusCode::FORBIDDEN), SendReason::Auth);
        assert_eq!(status_reason(StatusCode::TOO_MANY_REQUESTS), SendReason::Throttled);
        assert_eq!(status_reason(StatusCode::UNPROCESSABLE_ENTITY), SendReason::Rejected);
        assert_eq!(status_reason(StatusCode::BAD_GATEWAY), SendReason::Other);
    }

    #[test]
    fn endpoints_must_be_http() {
        assert!(Api::new(Some("ftp://x"), "https://a", Duration::from_secs(1)).is_err());
        assert!(Api::new(Some("not a url"), "https://a", Duration::from_secs(1)).is_err());
        let api = Api::new(Some("http://127.0.0.1:9/"), "https://a", Duration::from_secs(1)).unwrap();
        assert_eq!(api.url("/v3/mail/send"), "http://127.0.0.1:9/v3/mail/send");
    }
}
