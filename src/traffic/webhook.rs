//! The webhook listener: one path per source, on a port of its own (the
//! listener's timeouts and caps, crate::listener), bodies read up to a cap.
//! A delivery is verified by its source, its events recorded (writer.rs),
//! and only then answered 2xx: an event acknowledged is on disk. A refusal
//! changes nothing, is counted by reason and logged without the body: what
//! it says quoted and cut, and at most ten a minute per source (refusal.rs).

use super::recipient::Recipients;
use super::refusal::{PerMinute, Reason, Refusal, for_log, status};
use super::writer::Writer;
use super::{Received, Source};
use crate::ledger::TrafficWrite;
use crate::metrics::Metrics;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use std::sync::Arc;

/// Largest body read (a SendGrid batch is at most a few hundred kB, an
/// SNS message 256 kB).
pub const MAX_BODY: usize = 1024 * 1024;

/// One source's endpoint and what it needs.
pub struct Hook {
    pub name: String,
    pub provider: String,
    pub source: Source,
    pub recipients: Recipients,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    /// Refusals this source may still log (refusal::LOGGED_PER_MINUTE).
    pub log_limit: PerMinute,
}

/// The listener's routes: `POST` on each source's path.
pub fn router(hooks: Vec<(String, Arc<Hook>)>) -> Router {
    let mut app = Router::new();
    for (path, hook) in hooks {
        app = app.route(&path, axum::routing::post(receive).with_state(hook));
    }
    app
}

async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Body) -> Response {
    match handle(&hook, &headers, body).await {
        Ok(answer) => answer,
        Err(r) => {
            hook.metrics.traffic.refused(&hook.name, r.reason, 1);
            let (log, unlogged) = hook.log_limit.admit(std::time::Instant::now());
            if unlogged > 0 {
                tracing::warn!(source = %hook.name, unlogged, "webhook deliveries refused and not logged in the last minute");
            }
            if log {
                let why = for_log(&r.why);
                tracing::warn!(source = %hook.name, reason = r.reason.as_str(), why = %why, "webhook delivery refused");
            }
            let mut answer = (status(r.reason), format!("{}\n", r.reason.as_str())).into_response();
            if r.reason == Reason::Forged && hook.source.basic_auth() {
                answer
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, "Basic realm=\"mailcanary\"".parse().expect("a header value"));
                *answer.status_mut() = StatusCode::UNAUTHORIZED;
            }
            answer
        }
    }
}

async fn handle(hook: &Hook, headers: &HeaderMap, body: Body) -> Result<Response, Refusal> {
    let too_large = || Refusal { reason: Reason::TooLarge, why: format!("a body over {MAX_BODY} bytes") };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| too_large())?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let Received { mut events, nonce, confirmed } = hook.source.receive(headers, &body, now_ms).await?;
    if events.is_empty() && nonce.is_none() {
        return Ok(ok(if confirmed { "subscription confirmed" } else { "nothing to record" }));
    }
    for e in &mut events {
        e.recipient = Some(hook.recipients.keep(&e.message_id, e.recipient.as_deref()));
    }
    let write =
        TrafficWrite { source: hook.name.clone(), provider: hook.provider.clone(), events, cursor: None, nonce };
    let done = hook
        .writer
        .record(write)
        .await
        .map_err(|e| Refusal { reason: Reason::Storage, why: format!("the ledger: {e}") })?;
    if done.replayed {
        return Err(Refusal { reason: Reason::Stale, why: "a single-use token seen before, with other events".into() });
    }
    Ok(ok(&format!("recorded {}, already had {}", done.recorded, done.duplicates)))
}

fn ok(text: &str) -> Response {
    (StatusCode::OK, format!("{text}\n")).into_response()
}
