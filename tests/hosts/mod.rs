//! Real HTTP listeners on loopback for the tests of what may cross to
//! another host: one plays the configured host (an application, an API, a
//! token endpoint, a link) and answers as the test says, another on
//! 127.0.0.2 plays "another host" and records every request it receives.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::rustls::{ServerConfig, ServerConnection, StreamOwned};

type Answer = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A listener that records each request (head and body) before answering it.
pub struct Host {
    pub addr: SocketAddr,
    tls: bool,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Host {
    /// Listens on `ip` (any port) and answers each request with `answer(request)`.
    pub fn start(ip: &str, answer: impl Fn(&str) -> String + Send + Sync + 'static) -> Host {
        Self::listen(ip, None, Arc::new(answer))
    }

    /// As `start`, over TLS with `config`.
    pub fn start_tls(
        ip: &str,
        config: Arc<ServerConfig>,
        answer: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Host {
        Self::listen(ip, Some(config), Arc::new(answer))
    }

    fn listen(ip: &str, tls: Option<Arc<ServerConfig>>, answer: Answer) -> Host {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, secure) = (requests.clone(), tls.is_some());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, answer, tls) = (seen.clone(), answer.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    match tls {
                        None => serve(stream, &seen, &*answer),
                        Some(config) => {
                            let Ok(conn) = ServerConnection::new(config) else { return };
                            serve(StreamOwned::new(conn, stream), &seen, &*answer)
                        }
                    }
                });
            }
        });
        Host { addr, tls: secure, requests }
    }

    /// The URL of `path` on this host.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// Every request received so far, head and body.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads one request (head, then as much body as Content-Length says),
/// records it, answers, and closes.
fn serve<S: Read + Write>(stream: S, seen: &Mutex<Vec<String>>, answer: &(dyn Fn(&str) -> String + Send + Sync)) {
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        request.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    request.push_str(&String::from_utf8_lossy(&body));
    seen.lock().unwrap().push(request.clone());
    let mut stream = reader.into_inner();
    let _ = stream.write_all(answer(&request).as_bytes());
    let _ = stream.flush();
}

/// `200 OK` with a JSON body.
pub fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A redirect with `status` to `location`.
pub fn redirect(status: u16, location: &str) -> String {
    format!("HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

/// "Another host": 127.0.0.2, answering 200 to anything, recording all.
pub fn another_host() -> Host {
    Host::start("127.0.0.2", |_| ok(r#"{"MessageID": "x", "access_token": "t", "token_type": "Bearer"}"#))
}

/// Connects to `addr` once and sends nothing: true if it is listening.
pub fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}
