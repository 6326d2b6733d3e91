//! What every listener shares, so that none of them can be held, flooded
//! or starved: an accept loop that survives running out of file
//! descriptors without spinning, a cap on connections at once (past it a
//! connection is closed at once, holding nothing), and for HTTP a
//! first-request timeout, an idle timeout between requests and a limit on
//! a connection's whole life. Each listener runs on its own socket, so a
//! flood on one never silences another (docs/failover.md, docs/security.md).

use crate::shutdown::stopped;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection must have sent a whole request's headers within this.
    pub first_request: Duration,
    /// A kept-alive connection with no request for this long is closed.
    pub idle: Duration,
    /// Any connection is closed after this long, whatever it is doing (a
    /// client that never reads its answer holds nothing for longer).
    pub lifetime: Duration,
    /// Connections at once; past this, new ones are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            lifetime: Duration::from_secs(120),
            max_connections: 512,
        }
    }
}

/// Raises the soft limit on open files to the hard limit, so that a flood
/// of connections meets the listeners' caps before the process runs out of
/// descriptors (systemd gives services a soft limit of 1024). Returns the
/// limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

/// The longest pause after a failed accept (EMFILE, ENFILE, ENOBUFS).
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts connections within a cap, until `shutdown`.
pub struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    what: &'static str,
}

impl Acceptor {
    pub fn new(listener: TcpListener, max_connections: usize, what: &'static str) -> Self {
        Acceptor { listener, slots: Arc::new(Semaphore::new(max_connections.max(1))), what }
    }

    /// The next connection with a slot, or None once `shutdown` says stop.
    /// A connection past the cap is closed at once. When accepting fails
    /// (out of file descriptors, say) it waits, longer each time up to a
    /// second, rather than spinning: the pending connections wait in the
    /// kernel's backlog until descriptors are free again.
    pub async fn next(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
        let mut backoff = Duration::from_millis(10);
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = stopped(shutdown) => return None,
            };
            match accepted {
                Ok((stream, peer)) => match self.slots.clone().try_acquire_owned() {
                    Ok(slot) => return Some((stream, peer, slot)),
                    Err(_) => {
                        // Full: closed now, holding nothing; the client may retry.
                        drop(stream);
                        continue;
                    }
                },
                Err(e) => {
                    tracing::warn!(listener = self.what, error = %e, pause_ms = backoff.as_millis() as u64, "accept failed; pausing");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped(shutdown) => return None,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Serves `app` over HTTP/1.1 on `listener` within `limits`, with the TLS
/// and basic auth of `web`, until `shutdown`; connections in progress then
/// finish their request.
pub async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    web: web::Web,
    what: &'static str,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = Acceptor::new(listener, limits.max_connections, what);
    while let Some((stream, peer, slot)) = acceptor.next(&mut shutdown).await {
        let (app, web, stop) = (app.clone(), web.clone(), shutdown.clone());
        tokio::spawn(async move {
            match web.tls.clone() {
                None => connection(stream, peer, app, web, limits, stop).await,
                Some(tls) => {
                    // The handshake is part of the first request's time.
                    if let Ok(Ok(stream)) = tokio::time::timeout(limits.first_request, tls.accept(stream)).await {
                        connection(stream, peer, app, web, limits, stop).await;
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Serves one connection's requests within `limits`.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    app: axum::Router,
    web: web::Web,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        // The peer's address, for handlers that trust loopback callers.
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let denied = web.requires_auth()
            && !web.authorized(req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
        let app = app.clone();
        async move {
            if denied {
                return Ok(unauthorized());
            }
            app.oneshot(req.map(axum::body::Body::new)).await
        }
    });
    let io = TokioIo::new(idle::Idle::new(stream, limits.idle));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.first_request)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let life = tokio::time::sleep(limits.lifetime);
    tokio::pin!(life);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = &mut life => {}
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
        }
    }
}

fn unauthorized() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        http::StatusCode::UNAUTHORIZED,
        [(http::header::WWW_AUTHENTICATE, "Basic realm=\"mailcanary\", charset=\"UTF-8\"")],
        "authentication required\n",
    )
        .into_response()
}

pub mod idle;
pub mod web;

#[cfg(test)]
mod tests;
