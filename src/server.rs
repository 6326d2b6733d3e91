//! HTTP: `/metrics`, `/healthz`, `/readyz`, `/api/v1/status`,
//! `POST /-/reload`, and the status page (crate::status_page). Nothing here
//! ever shows a secret: the status API is built from route names and
//! outcomes only.

use crate::health::{ProviderHealth, State as HealthState};
use crate::listener::Limits;
use crate::listener::web::Web;
use crate::matcher::{Matcher, RouteStatus};
use crate::metrics::Metrics;
use crate::status_page::{self, StatusPage};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

/// A reload request and where to send its result.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

pub struct AppState {
    pub instance: String,
    pub metrics: Arc<Metrics>,
    pub matcher: Arc<Matcher>,
    /// Provider health, for its endpoints.
    pub health: Arc<crate::health_keeper::HealthKeeper>,
    /// False until the first config runs, and again while draining.
    pub ready: AtomicBool,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// `/status`, its JSON, feed and badges (crate::status_page).
    pub status_page: Arc<StatusPage>,
    /// Every request on this listener carries a user's credentials
    /// (`global.web.config_file`): control endpoints then take any caller.
    pub authenticated: bool,
}

#[derive(Serialize)]
struct Status {
    instance: String,
    version: &'static str,
    routes: Vec<RouteStatus>,
}

/// Serves until `shutdown` turns true, within `limits`, with `web`'s TLS
/// and basic auth.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    limits: Limits,
    web: Web,
    shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .route("/api/v1/providers", get(providers))
        .route("/api/v1/providers/{name}/health", get(provider_health))
        .route("/-/reload", post(reload))
        .with_state(state.clone())
        .merge(status_page::router(state.status_page.clone()));
    crate::listener::serve_http(listener, app, limits, web, "http", shutdown).await;
}

/// Serves only the status page (`global.status_page.listen`) until
/// `shutdown` turns true: what a reverse proxy may expose to customers.
pub async fn serve_status_page(
    listener: TcpListener,
    page: Arc<StatusPage>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    let (app, web) = (status_page::router(page), Web::default());
    crate::listener::serve_http(listener, app, limits, web, "status page", shutdown).await;
}

/// OpenMetrics for scrapers that ask for it, Prometheus text otherwise.
/// Streamed a family at a time (crate::metrics::Format): each is encoded
/// when the connection can take more, so a scrape holds one family's text,
/// not the whole exposition.
async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    use crate::metrics::Format;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (format, content_type) = if accept.contains("application/openmetrics-text") {
        (Format::OpenMetrics, "application/openmetrics-text; version=1.0.0; charset=utf-8")
    } else {
        (Format::Text, "text/plain; version=0.0.4; charset=utf-8")
    };
    let metrics = state.metrics.clone();
    let parts = futures::stream::iter(0..metrics.parts())
        .map(move |i| Ok::<_, std::convert::Infallible>(metrics.part(i, format)))
        .filter(|part| std::future::ready(!matches!(part, Ok(p) if p.is_empty())));
    ([(header::CONTENT_TYPE, content_type)], axum::body::Body::from_stream(parts)).into_response()
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// JSON for people with curl as much as for programs: indented, one
/// document, ending in a newline.
fn json(value: &impl Serialize) -> Response {
    let mut body = serde_json::to_string_pretty(value).expect("serializable");
    body.push('\n');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn status(State(state): State<Arc<AppState>>) -> Response {
    json(&Status {
        instance: state.instance.clone(),
        version: env!("CARGO_PKG_VERSION"),
        routes: state.matcher.status(),
    })
}

#[derive(Serialize)]
struct Providers<'a> {
    instance: String,
    /// Sending providers, best first: usable before down, newest canaries
    /// arrived before newest failed, then by state, then recent p95 latency.
    providers: Vec<&'a ProviderHealth>,
    /// Applications' own send paths (triggers), judged alike but not ranked
    /// among the providers: an application cannot send through another's.
    applications: Vec<&'a ProviderHealth>,
}

async fn providers(State(state): State<Arc<AppState>>) -> Response {
    let ranked = state.health.providers();
    let (applications, providers) = ranked.iter().map(|p| &**p).partition(|p| p.application);
    json(&Providers { instance: state.instance.clone(), providers, applications })
}

/// For load balancers' health checks: 200 unless the provider is down.
async fn provider_health(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let providers = state.health.providers();
    let Some(p) = providers.iter().find(|p| p.provider == name) else {
        return (StatusCode::NOT_FOUND, "no such provider\n").into_response();
    };
    let code = if p.state == HealthState::Down { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, format!("{}: {}\n", p.state.as_str(), p.reason)).into_response()
}

/// Why a request to change state is refused, if it is: without
/// credentials on the listener only loopback callers may, and a browser's
/// cross-site request never may (a plain form posted from any page would
/// otherwise reach a listener the browser can see).
fn control_refused(authenticated: bool, peer: SocketAddr, headers: &HeaderMap) -> Option<&'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("origin").is_some() || header("sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none") {
        return Some("cross-origin requests may not change state\n");
    }
    let form = header("content-type").map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if form.is_some_and(|t| {
        ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain"].contains(&t.as_str())
    }) {
        return Some("form posts may not change state: send no body (curl -X POST)\n");
    }
    if !authenticated && !peer.ip().is_loopback() {
        return Some("only loopback callers may change state unless global.web.config_file sets basic_auth_users\n");
    }
    None
}

async fn reload(
    State(state): State<Arc<AppState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(why) = control_refused(state.authenticated, peer, &headers) {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let (tx, rx) = oneshot::channel();
    if state.reload.send(tx).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match rx.await {
        Ok(Ok(())) => (StatusCode::OK, "reloaded\n").into_response(),
        Ok(Err(errors)) => (StatusCode::BAD_REQUEST, format!("{errors}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), http::HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn control_endpoints_take_loopback_or_credentials_and_never_a_browser_cross_site() {
        let (local, remote): (SocketAddr, SocketAddr) =
            ("127.0.0.1:5000".parse().unwrap(), "192.0.2.7:5000".parse().unwrap());
        assert_eq!(control_refused(false, local, &headers(&[])), None, "curl -X POST on the host");
        assert!(control_refused(false, remote, &headers(&[])).is_some(), "another host, no credentials");
        assert_eq!(control_refused(true, remote, &headers(&[])), None, "authenticated by the listener");
        for cross_site in [
            &[("origin", "http://evil.example")][..],
            &[("sec-fetch-site", "cross-site")],
            &[("content-type", "application/x-www-form-urlencoded")],
            &[("content-type", "text/plain;charset=UTF-8")],
            &[("content-type", "multipart/form-data; boundary=x")],
        ] {
            assert!(control_refused(true, local, &headers(cross_site)).is_some(), "{cross_site:?}");
        }
        assert_eq!(control_refused(false, local, &headers(&[("sec-fetch-site", "same-origin")])), None);
    }
}
