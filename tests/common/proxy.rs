//! A TCP proxy in front of the stack's IMAP server, counting what passes:
//! how a test measures what mailcanary costs a mail server.

use super::{stack, user};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A TCP proxy in front of the stack's plain IMAP port that counts the
/// connections made and the command lines clients send.
pub struct Proxy {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    /// Lines clients sent: IMAP commands (and IDLE's DONE).
    pub lines: Arc<AtomicUsize>,
    /// Bytes the server sent.
    pub bytes_down: Arc<AtomicUsize>,
}

pub fn imap_proxy() -> Proxy {
    let target = stack().imap;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (connections, lines, bytes_down) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, l, d) = (connections.clone(), lines.clone(), bytes_down.clone());
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
            let (mut from_server, mut to_client) = (server.try_clone().unwrap(), client.try_clone().unwrap());
            let d = d.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = from_server.read(&mut buf) {
                    if n == 0 || to_client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    d.fetch_add(n, Ordering::SeqCst);
                }
                let _ = to_client.shutdown(std::net::Shutdown::Both);
            });
            let l = l.clone();
            std::thread::spawn(move || {
                let (mut from_client, mut to_server) = (client, server);
                let mut buf = [0u8; 8192];
                while let Ok(n) = from_client.read(&mut buf) {
                    if n == 0 || to_server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    l.fetch_add(buf[..n].iter().filter(|b| **b == b'\n').count(), Ordering::SeqCst);
                }
                let _ = to_server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    Proxy { port, connections, lines, bytes_down }
}

/// An inbox of `user(base)` reached over plain IMAP through `proxy`.
pub fn proxied_inbox(name: &str, base: &str, proxy: &Proxy) -> String {
    let user = user(base);
    format!(
        "  - name: {name}\n    address: {user}@mailcanary.test\n    imap: {{ host: 127.0.0.1, port: {}, tls: none, username: {user}, password: \"{}\" }}\n    folders: {{ inbox: INBOX, spam: [Junk] }}\n",
        proxy.port,
        stack().password
    )
}
