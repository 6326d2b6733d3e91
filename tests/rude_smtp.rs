//! Misbehaving SMTP servers of our own, each a thread on a loopback port,
//! against the real SMTP provider: each fault has its reason label, the
//! same as IMAP's where the cause is the same, and a detail fit for a log.

mod common;

use mailcanary::canary::{Canary, SigningKey};
use mailcanary::config::{ProviderConfig, Route, SmtpConfig, TlsMode};
use mailcanary::provider::{AnyProvider, Provider, SendReason};
use mailcanary::secret::Secret;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

/// A rude SMTP server: the greeting, then `script` line by line: for
/// each line the client sends, the next answer, or None to hang up.
fn smtp_server(script: &'static [Option<&'static str>]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut lines = BufReader::new(stream);
                let _ = out.write_all(b"220 rude.test ESMTP\r\n");
                let mut line = String::new();
                for answer in script {
                    line.clear();
                    if lines.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    match answer {
                        Some(answer) => {
                            let _ = out.write_all(answer.as_bytes());
                        }
                        None => return,
                    }
                }
            });
        }
    });
    port
}

fn send_to(port: u16, tls: TlsMode) -> mailcanary::provider::SendError {
    let config = SmtpConfig {
        name: "rude".into(),
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: Some(tls),
        username: None,
        password: None,
        oauth2: None,
        from: "canary@mailcanary.test".into(),
        bounce_inbox: None,
        health: None,
        failover: None,
        ca_file: None,
        insecure_skip_verify: false,
        timeout: Duration::from_secs(10),
    };
    let provider = AnyProvider::build(&ProviderConfig::Smtp(config)).unwrap();
    let route = Route {
        name: "rude".into(),
        provider: "rude".into(),
        inbox: "inbox".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(600),
        jitter: 0.0,
        trigger: None,
    };
    let key = SigningKey::new(Secret::new("a signing key for tests"));
    let canary =
        Canary::new(&route, "canary@mailcanary.test", "to@mailcanary.test", "test", None, &key, chrono::Utc::now());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(provider.send(&canary)).unwrap_err()
}

#[test]
fn smtp_without_the_required_starttls_is_tls() {
    let port = smtp_server(&[Some("250-rude.test\r\n250 SIZE 1000000\r\n"), Some("221 bye\r\n")]);
    let e = send_to(port, TlsMode::Starttls);
    assert_eq!(e.reason, SendReason::Tls, "{}", e.detail);
}

#[test]
fn smtp_closed_mid_dialogue_is_connect() {
    // Hangs up after EHLO, after MAIL FROM, after RCPT TO, after DATA.
    const EHLO: Option<&str> = Some("250-rude.test\r\n250 SIZE 1000000\r\n");
    const OK: Option<&str> = Some("250 ok\r\n");
    let scripts: [&'static [Option<&'static str>]; 4] =
        [&[None], &[EHLO, None], &[EHLO, OK, None], &[EHLO, OK, OK, Some("354 go on\r\n")]];
    for script in scripts {
        let port = smtp_server(script);
        let e = send_to(port, TlsMode::None);
        assert_eq!(e.reason, SendReason::Connect, "after {} answers: {}", script.len(), e.detail);
    }
}

/// An SMTP server on implicit TLS with a certificate nobody trusts.
fn untrusted_tls_server() -> u16 {
    use tokio_rustls::rustls::{ServerConnection, StreamOwned};
    let dir = common::temp_dir("untrusted-smtp");
    let (config, _) = common::tls_server(&dir, "untrusted", &["127.0.0.1"], false);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut tls = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), stream);
            let _ = tls.write_all(b"220 rude.test ESMTP\r\n");
        }
    });
    port
}

#[test]
fn smtp_tls_failures_say_each_part_once() {
    let e = send_to(untrusted_tls_server(), TlsMode::Tls);
    assert_eq!(e.reason, SendReason::Tls, "{}", e.detail);
    let parts: Vec<&str> = e.detail.split(": ").collect();
    assert!(parts.windows(2).all(|w| w[0] != w[1]), "a part said twice in a row: {}", e.detail);
}
