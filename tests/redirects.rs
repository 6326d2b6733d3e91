//! No secret crosses to another host: an application trigger, an API
//! provider and an OAuth2 token endpoint that answer with a redirect to
//! another host (127.0.0.2 here) get a send failure that names the
//! redirect, and the other host receives nothing: not the secret header,
//! not the body, not a `Referer` with the URL's secret.

mod common;
mod hosts;

use hosts::{Host, another_host, redirect};
use mailcanary::outcome::SendReason;
use mailcanary::provider::{AnyProvider, Provider};
use std::time::Duration;

const URL_SECRET: &str = "url-secret-Qz9xK";
const HEADER_SECRET: &str = "header-secret-7hJ2";
const BODY_SECRET: &str = "body-secret-Lm4p";

/// A host that answers every request with a `status` redirect to `to`.
fn redirecting(status: u16, to: &str) -> Host {
    let to = to.to_string();
    Host::start("127.0.0.1", move |_| redirect(status, &to))
}

fn trigger(url: &str) -> mailcanary::trigger::Trigger {
    let config: mailcanary::trigger::TriggerConfig = serde_saphyr::from_str(&format!(
        "{{ name: shop, url: \"{url}?key={URL_SECRET}&email={{{{address}}}}\", \
         headers: {{ X-Canary-Key: \"{HEADER_SECRET}\", Content-Type: application/json }}, \
         body: '{{\"email\": \"{{{{address}}}}\", \"key\": \"{BODY_SECRET}\"}}', timeout: 5s }}"
    ))
    .unwrap();
    mailcanary::trigger::Trigger::new(&config).unwrap()
}

fn assert_not_followed(result: Result<impl std::fmt::Debug, mailcanary::outcome::SendError>, status: u16) {
    let error = result.expect_err("a redirect is not an acceptance");
    assert_eq!(error.reason, SendReason::Other);
    assert_eq!(error.detail, format!("redirected (HTTP {status}) to another location: not followed"));
}

#[tokio::test]
async fn trigger_redirect_to_another_host_carries_no_secret() {
    let other = another_host();
    for status in [301, 302, 303, 307, 308] {
        let app = redirecting(status, &other.url("/login"));
        assert_not_followed(trigger(&app.url("/password-reset")).fire("ops+mc1@example.com").await, status);
        let asked = app.requests();
        assert_eq!(asked.len(), 1, "the application itself was asked once");
        assert!(asked[0].contains(HEADER_SECRET) && asked[0].contains(BODY_SECRET));
    }
    assert_eq!(other.requests(), Vec::<String>::new(), "another host received a request");
}

#[tokio::test]
async fn trigger_https_redirect_to_http_is_not_followed() {
    let dir = common::temp_dir("redirect-https");
    let (tls, ca) = common::tls_server(&dir, "app", &["127.0.0.1"], false);
    let other = another_host();
    let target = other.url("/plain");
    let app = Host::start_tls("127.0.0.1", tls, move |_| redirect(302, &target));
    let config: mailcanary::trigger::TriggerConfig = serde_saphyr::from_str(&format!(
        "{{ name: shop, url: \"{}\", headers: {{ X-Canary-Key: \"{HEADER_SECRET}\" }}, ca_file: \"{ca}\" }}",
        app.url("/reset")
    ))
    .unwrap();
    let result = mailcanary::trigger::Trigger::new(&config).unwrap().fire("ops+mc1@example.com").await;
    assert_not_followed(result, 302);
    assert_eq!(app.requests().len(), 1, "the application was asked over TLS");
    assert_eq!(other.requests(), Vec::<String>::new(), "the redirect to plain HTTP was followed");
}

fn canary() -> mailcanary::canary::Canary {
    let route = mailcanary::config::Route {
        name: "pm-to-x".into(),
        provider: "pm".into(),
        inbox: "x".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(60),
        jitter: 0.0,
        trigger: None,
    };
    let key = mailcanary::canary::SigningKey::new(mailcanary::secret::Secret::new("0123456789abcdef"));
    mailcanary::canary::Canary::new(&route, "a@example.com", "b@example.com", "i", None, &key, chrono::Utc::now())
}

#[tokio::test]
async fn provider_redirect_to_another_host_carries_no_token() {
    let other = another_host();
    let api = redirecting(307, &other.url("/email"));
    let config: mailcanary::config::ProviderConfig = serde_saphyr::from_str(&format!(
        "{{ name: pm, type: postmark, server_token: \"{HEADER_SECRET}\", from: a@example.com, endpoint: \"{}\" }}",
        api.url("")
    ))
    .unwrap();
    let provider = AnyProvider::build(&config).unwrap();
    assert_not_followed(provider.send(&canary()).await, 307);
    assert!(api.requests()[0].contains(HEADER_SECRET), "the API itself was asked with its token");
    assert_eq!(other.requests(), Vec::<String>::new(), "another host received the request");
}

#[tokio::test]
async fn token_endpoint_redirect_to_another_host_carries_no_refresh_token() {
    let other = another_host();
    let endpoint = redirecting(307, &other.url("/token"));
    let config: mailcanary::config::OAuth2Config = serde_saphyr::from_str(&format!(
        "{{ token_url: \"{}\", client_id: c, client_secret: \"{HEADER_SECRET}\", refresh_token: \"{BODY_SECRET}\" }}",
        endpoint.url("/token")
    ))
    .unwrap();
    let source = mailcanary::oauth2::TokenSource::new(&config, None, Duration::from_secs(5)).unwrap();
    let error = source.token().await.expect_err("a redirect is no token");
    assert_eq!(error.kind, mailcanary::oauth2::TokenErrorKind::Protocol);
    assert_eq!(error.detail, "redirected (HTTP 307) to another location: not followed");
    assert!(endpoint.requests()[0].contains(BODY_SECRET), "the endpoint itself was asked");
    assert_eq!(other.requests(), Vec::<String>::new(), "another host received the refresh token");
}
