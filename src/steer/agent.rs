//! HAProxy's agent check (`agent-check`), answered on a port of its own.
//!
//! HAProxy connects, sends the server's `agent-send` string (the provider's
//! name and a newline), reads one line and closes. The answer is `drain`
//! for a provider that is down (no new connections; the server stays
//! checked), or `ready N%` (N of the server's configured weight: 100, or a
//! token share while its newest canaries fail and another provider's
//! arrive). A name this prober does not know gets only a `#` comment,
//! which changes nothing.
//!
//! Why an agent and not an HTTP check: HAProxy leaves a server as it is
//! when its agent cannot be reached, refuses or times out, so mailcanary
//! killed, hung, restarting or flooded changes nothing; a tracked HTTP
//! check marks every server down instead, and the mail stops.

use super::Steering;
use crate::listener::Acceptor;
use crate::shutdown::stopped;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// HAProxy sends `agent-send` at once; a client silent this long is cut off.
const READ: Duration = Duration::from_secs(2);
/// The longest `agent-send` read (a provider name and a newline).
const MAX_REQUEST: usize = 256;
/// At most this many connections at once (HAProxy holds one per server
/// for an instant per check).
const MAX_CONNECTIONS: usize = 256;

/// The line answering a check of `name` (without its newline).
pub fn answer(steering: &Steering, name: &str) -> String {
    match steering.get(name) {
        Some(s) if s.drain => "drain".into(),
        Some(s) => format!("ready {}%", s.weight_percent),
        None => format!("#unknown provider \"{}\": set agent-send to a provider name", crate::quote::quote(name)),
    }
}

/// Serves HAProxy's agent checks on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    steering: watch::Receiver<Arc<Steering>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = Acceptor::new(listener, MAX_CONNECTIONS, "agent");
    while let Some((stream, _, slot)) = acceptor.next(&mut shutdown).await {
        let (steering, mut stop) = (steering.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = check(stream, &steering) => {}
                _ = stopped(&mut stop) => {}
            }
            drop(slot);
        });
    }
}

/// Reads the provider's name, answers, closes.
async fn check(mut stream: TcpStream, steering: &watch::Receiver<Arc<Steering>>) {
    let mut buf = Vec::with_capacity(64);
    let read = async {
        let mut chunk = [0u8; 64];
        while buf.len() < MAX_REQUEST && !buf.contains(&b'\n') {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(READ, read).await;
    let name = String::from_utf8_lossy(&buf);
    let name = name.split(['\n', '\r']).next().unwrap_or("").trim();
    let line = answer(&steering.borrow(), name);
    let _ = tokio::time::timeout(READ, stream.write_all(format!("{line}\n").as_bytes())).await;
    let _ = stream.shutdown().await;
}
