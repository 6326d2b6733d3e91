//! Postfix's socketmap protocol (socketmap_table(5)), so that Postfix routes
//! its outgoing mail around a failing relay: with
//! `sender_dependent_relayhost_maps = socketmap:inet:127.0.0.1:9926:relay`,
//! any lookup in the map `relay` is answered with the `failover.nexthop` of
//! the best usable provider, or `NOTFOUND` when there is none (Postfix then
//! uses its own `relayhost`).
//!
//! Requests and replies are netstrings (`<length>:<bytes>,`): the request is
//! `<map> <key>`, the reply `OK <value>`, `NOTFOUND `, `TEMP <reason>` or
//! `PERM <reason>`. Every read is capped and timed; connections are bounded.
//!
//! This signal fails closed: Postfix defers every message while it cannot
//! ask (mailcanary stopped, hung or restarting: `451 4.3.0 Temporary lookup
//! failure`). It stays for what it is good at, answering at once, and for
//! tools that query it; Postfix's relay should read the table file of
//! crate::steer::postfix_map instead (docs/failover.md).

use crate::listener::Acceptor;
use crate::shutdown::stopped;
use crate::steer::Steering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The map this server answers.
pub const MAP: &str = "relay";
/// The longest request read (Postfix's own limit is 100,000; an address is
/// at most a few hundred bytes).
const MAX_REQUEST: usize = 4096;
/// A connection idle this long is closed (Postfix reconnects as needed;
/// its own idle limit is 100 s).
const IDLE: Duration = Duration::from_secs(100);
/// A connection must send its first request within this.
const FIRST_REQUEST: Duration = Duration::from_secs(10);
/// At most this many connections at once.
const MAX_CONNECTIONS: usize = 256;

/// One request read from the wire.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Lookup {
        map: String,
        key: String,
    },
    /// Not a netstring, or not `<map> <key>`: answered TEMP, then closed.
    Malformed(&'static str),
}

/// Reads one netstring request; None at a clean end of the connection.
pub async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Request>> {
    let mut len: usize = 0;
    let mut digits = 0;
    loop {
        let byte = match r.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && digits == 0 => return Ok(None),
            Err(e) => return Err(e),
        };
        match byte {
            b'0'..=b'9' if digits < 6 => {
                len = len * 10 + usize::from(byte - b'0');
                digits += 1;
            }
            b':' if digits > 0 => break,
            _ => return Ok(Some(Request::Malformed("not a netstring"))),
        }
    }
    if len > MAX_REQUEST {
        return Ok(Some(Request::Malformed("request too long")));
    }
    let mut data = vec![0u8; len + 1];
    r.read_exact(&mut data).await?;
    if data.pop() != Some(b',') {
        return Ok(Some(Request::Malformed("netstring without its comma")));
    }
    let Ok(text) = String::from_utf8(data) else { return Ok(Some(Request::Malformed("not UTF-8"))) };
    match text.split_once(' ') {
        Some((map, key)) if !map.is_empty() => Ok(Some(Request::Lookup { map: map.to_string(), key: key.to_string() })),
        _ => Ok(Some(Request::Malformed("expected \"<map> <key>\""))),
    }
}

/// `text` as a netstring.
pub fn netstring(text: &str) -> Vec<u8> {
    format!("{}:{text},", text.len()).into_bytes()
}

/// The reply to a lookup in `map`, given the best next hop there is.
pub fn answer(map: &str, nexthop: Option<String>) -> String {
    match (map == MAP, nexthop) {
        (true, Some(hop)) => format!("OK {hop}"),
        (true, None) => "NOTFOUND ".to_string(),
        (false, _) => {
            format!("PERM unknown map {:?}; this server answers \"{MAP}\"", map.chars().take(40).collect::<String>())
        }
    }
}

/// Serves Postfix on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    steering: watch::Receiver<Arc<Steering>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = Acceptor::new(listener, MAX_CONNECTIONS, "socketmap");
    while let Some((stream, _, slot)) = acceptor.next(&mut shutdown).await {
        let (steering, mut shutdown) = (steering.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = connection(stream, &steering) => {}
                _ = stopped(&mut shutdown) => {}
            }
            drop(slot);
        });
    }
}

/// Answers one connection's lookups until it ends, idles or errs.
async fn connection(stream: TcpStream, steering: &watch::Receiver<Arc<Steering>>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut wait = FIRST_REQUEST;
    loop {
        let request = match tokio::time::timeout(wait, read_request(&mut read)).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(_)) => return,
        };
        wait = IDLE;
        let (reply, close) = match request {
            Request::Lookup { map, .. } => (answer(&map, steering.borrow().nexthop.clone()), false),
            Request::Malformed(why) => (format!("TEMP malformed request: {why}"), true),
        };
        if write.write_all(&netstring(&reply)).await.is_err() || close {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> Option<Request> {
        read_request(&mut BufReader::new(bytes)).await.unwrap()
    }

    #[tokio::test]
    async fn reads_postfix_requests_and_refuses_anything_else() {
        let lookup = |m: &str, k: &str| Some(Request::Lookup { map: m.into(), key: k.into() });
        assert_eq!(read(b"24:relay sender@example.com,").await, lookup("relay", "sender@example.com"));
        assert_eq!(read(b"").await, None, "a clean end");
        assert_eq!(read(b"5:relay,").await, Some(Request::Malformed("expected \"<map> <key>\"")));
        assert_eq!(read(b"x:relay a,").await, Some(Request::Malformed("not a netstring")));
        assert_eq!(read(b"7:relay a;").await, Some(Request::Malformed("netstring without its comma")));
        assert_eq!(read(b"99999:").await, Some(Request::Malformed("request too long")));
        assert_eq!(read(b"1234567:").await, Some(Request::Malformed("not a netstring")), "at most 6 digits");
        assert!(read_request(&mut BufReader::new(&b"10:short"[..])).await.is_err(), "a cut request is an error");
    }

    #[test]
    fn answers_with_the_best_nexthop_or_notfound() {
        assert_eq!(answer("relay", Some("[smtp.b.example]:587".into())), "OK [smtp.b.example]:587");
        assert_eq!(answer("relay", None), "NOTFOUND ");
        assert!(answer("transport", None).starts_with("PERM unknown map"));
        assert_eq!(netstring("NOTFOUND "), b"9:NOTFOUND ,");
    }
}
