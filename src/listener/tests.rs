//! The limits, against real sockets on loopback: each test waits for the
//! server to act (a closed connection, an answer), with a generous bound.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOUND: Duration = Duration::from_secs(10);

async fn server(limits: Limits) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let (stop, rx) = watch::channel(false);
    tokio::spawn(serve_http(listener, app, limits, web::Web::default(), "test", rx));
    (addr, stop)
}

/// Reads until the server closes; what it said.
async fn until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(BOUND, s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server never closed the connection");
    String::from_utf8_lossy(&out).into_owned()
}

fn quick() -> Limits {
    Limits {
        first_request: Duration::from_millis(300),
        idle: Duration::from_millis(600),
        lifetime: Duration::from_secs(30),
        max_connections: 2,
    }
}

#[tokio::test]
async fn a_half_sent_request_is_cut_off() {
    let (addr, _stop) = server(quick()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let said = until_closed(&mut s).await;
    assert!(!said.contains("200 OK"), "{said}");
    assert!(started.elapsed() >= Duration::from_millis(250), "not before its time: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_silent_connection_is_cut_off() {
    let (addr, _stop) = server(quick()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(until_closed(&mut s).await, "");
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_once_idle() {
    let (addr, _stop) = server(quick()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let said = until_closed(&mut s).await;
    assert!(said.starts_with("HTTP/1.1 200 OK") && said.ends_with("ok"), "{said}");
}

#[tokio::test]
async fn past_the_cap_a_connection_is_closed_at_once_and_a_slot_frees_when_one_ends() {
    let limits = Limits { first_request: Duration::from_secs(20), idle: Duration::from_secs(20), ..quick() };
    let (addr, _stop) = server(limits).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // A request answered proves the connection holds a slot.
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 15];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200 OK");
        held.push(s);
    }
    let mut third = TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(until_closed(&mut third).await, "", "closed without an answer");
    drop(held.pop());
    // The slot comes back once the server sees the close.
    let answered = tokio::time::timeout(BOUND, async {
        loop {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            if out.starts_with(b"HTTP/1.1 200 OK") {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(answered.is_ok(), "a slot was freed");
}
