//! Signing webhook deliveries the way each provider documents it, with keys
//! the test makes, and posting them to `mailcanary run`'s traffic listener.

#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use sha2::Sha256;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One POST on loopback: (status, body).
pub fn post(port: u16, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    try_post(port, path, headers, body).expect("connect to the traffic listener")
}

/// One POST on loopback, None when nothing listens.
pub fn try_post(port: u16, path: &str, headers: &[(&str, String)], body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    let _ = s.write_all(body);
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Some((code, body.to_string()))
}

/// Headers only, declaring a body of `length` bytes: what a listener that
/// refuses by the declared length answers.
pub fn post_declaring(port: u16, path: &str, length: usize) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the traffic listener");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n").unwrap();
    let mut response = [0u8; 64];
    let n = s.read(&mut response).unwrap_or(0);
    let head = String::from_utf8_lossy(&response[..n]);
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A POST whose body (`length` bytes of JSON-ish filler) comes in 64 KiB
/// chunks (`Transfer-Encoding: chunked`), declaring no length: its status.
/// The server may answer and close before the body is all sent.
pub fn post_chunked(port: u16, path: &str, length: usize) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the traffic listener");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < length {
        let n = chunk.len().min(length - sent);
        if write!(s, "{n:x}\r\n").and_then(|_| s.write_all(&chunk[..n])).and_then(|_| s.write_all(b"\r\n")).is_err() {
            break;
        }
        sent += n;
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let head = String::from_utf8_lossy(&response);
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Waits (10 s at most) until `port` takes connections: the traffic
/// listener starts after the main one answers.
pub fn wait_listening(port: u16) {
    let start = std::time::Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// SendGrid's P-256 key pair, its verification key as SendGrid shows it.
pub struct SendgridKey {
    pair: EcdsaKeyPair,
    pub public: String,
}

impl SendgridKey {
    pub fn new() -> SendgridKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let prefix: [u8; 26] = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        let public = STANDARD.encode([&prefix[..], pair.public_key().as_ref()].concat());
        SendgridKey { pair, public }
    }

    /// The two headers of a delivery of `body` signed at `timestamp`.
    pub fn sign(&self, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
        let sig = self.pair.sign(&SystemRandom::new(), format!("{timestamp}{body}").as_bytes()).unwrap();
        vec![
            ("X-Twilio-Email-Event-Webhook-Signature", STANDARD.encode(sig.as_ref())),
            ("X-Twilio-Email-Event-Webhook-Timestamp", timestamp.to_string()),
        ]
    }
}

/// A Mailgun body: `event_data` beside a signature of timestamp and token.
pub fn mailgun(key: &str, timestamp: i64, token: &str, event_data: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!(
        r#"{{"signature": {{"timestamp": "{timestamp}", "token": "{token}", "signature": "{signature}"}}, "event-data": {event_data}}}"#
    )
}

/// The three Svix headers of a delivery of `body`.
pub fn svix(secret: &str, id: &str, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("svix-id", id.to_string()),
        ("svix-timestamp", timestamp.to_string()),
        ("svix-signature", format!("v1,{signature}")),
    ]
}

pub fn basic(user: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))))]
}

/// Counts of the ledger's real traffic, read while the service runs.
pub fn ledger_count(state: &std::path::Path, sql: &str) -> i64 {
    let db =
        rusqlite::Connection::open_with_flags(state.join("ledger.sqlite"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}
