//! What the failover tests share: HAProxy (Debian's) in front of the
//! stack's relays, an application submitting mail through SMTP throughout,
//! and the lock that lets one test at a time make relays black holes.

use super::*;
use std::process::Command;

/// How long a failover test waits for what it expects.
pub const WAIT: Duration = Duration::from_secs(40);

/// A running HAProxy with its admin socket.
pub struct Haproxy {
    child: std::process::Child,
    sock: std::path::PathBuf,
}

impl Haproxy {
    pub fn start(dir: &std::path::Path, config: &str) -> Haproxy {
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new("haproxy").arg("-c").arg("-f").arg(&path).output().expect("haproxy installed");
        assert!(check.status.success(), "haproxy -c: {check:?}");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let h = Haproxy { child, sock: dir.join("haproxy.sock") };
        h.wait("its stats socket", |h| h.stat("smtp", "relay-a").is_some());
        h
    }

    /// The columns named of a server's row in `show stat`.
    fn columns<const N: usize>(&self, proxy: &str, server: &str, names: [&str; N]) -> Option<[String; N]> {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.sock).ok()?;
        s.write_all(b"show stat\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let at: Vec<usize> = names.iter().map(|n| header.iter().position(|h| h == n)).collect::<Option<_>>()?;
        let row: Vec<&str> =
            lines.map(|l| l.split(',').collect::<Vec<_>>()).find(|f| f[0] == proxy && f[1] == server)?;
        Some(std::array::from_fn(|i| row[at[i]].to_string()))
    }

    /// `status` (its first word) and `stot` (sessions started) of a server.
    pub fn stat(&self, proxy: &str, server: &str) -> Option<(String, u64)> {
        let [status, stot] = self.columns(proxy, server, ["status", "stot"])?;
        Some((status.split_whitespace().next().unwrap_or("").to_string(), stot.parse().unwrap_or(0)))
    }

    /// `status` (UP, DOWN, DRAIN…) and current `weight` of a server.
    pub fn state(&self, proxy: &str, server: &str) -> Option<(String, u64)> {
        let [status, weight] = self.columns(proxy, server, ["status", "weight"])?;
        Some((status, weight.parse().unwrap_or(0)))
    }

    pub fn wait(&self, what: &str, cond: impl Fn(&Haproxy) -> bool) {
        let start = std::time::Instant::now();
        while !cond(self) {
            assert!(start.elapsed() < WAIT, "timed out waiting for {what}: {:?}", self.stat("smtp", "relay-a"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message through SMTP on `port`, as an application sends it.
pub fn submit(port: u16, to: &str, n: usize) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut expect = |code: &str| -> Result<(), String> {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            if !line.starts_with(code) {
                return Err(format!("expected {code}, got {line:?}"));
            }
            if line.as_bytes().get(3) == Some(&b' ') {
                return Ok(());
            }
        }
    };
    expect("220")?;
    for (cmd, code) in [
        ("EHLO app".to_string(), "250"),
        // A sender per message, as password resets have a recipient per
        // message: Postfix keeps a resolved next hop for 30 s per pair.
        (format!("MAIL FROM:<app-{n}@example.test>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        write!(w, "{cmd}\r\n").map_err(|e| e.to_string())?;
        expect(code)?;
    }
    write!(w, "Subject: order confirmation {n}\r\n\r\nthank you\r\n.\r\n").map_err(|e| e.to_string())?;
    expect("250")?;
    let _ = write!(w, "QUIT\r\n");
    Ok(())
}

/// The tests that make relays black holes, and release the queue: one at a
/// time, each leaving both relays delivering (even when it fails).
static RELAYS: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Relays(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

pub fn relays() -> Relays {
    let guard = RELAYS.lock().unwrap_or_else(|p| p.into_inner());
    for r in ["a", "b"] {
        mailstack(&["unhold-relay", r]);
        mailstack(&["unhold-route", r]);
    }
    Relays(guard)
}

impl Drop for Relays {
    fn drop(&mut self) {
        for r in ["a", "b"] {
            mailstack(&["unhold-relay", r]);
            mailstack(&["unhold-route", r]);
            mailstack(&["unhold-route", r]);
        }
        mailstack(&["release"]);
    }
}

/// An application that sends an order confirmation every 200 ms through
/// SMTP on `port`, until dropped.
pub struct SmtpApp {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SmtpApp {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl SmtpApp {
    pub fn start(port: u16, to: String) -> SmtpApp {
        use std::sync::atomic::Ordering;
        let mut app =
            SmtpApp { stop: Default::default(), sent: Default::default(), failed: Default::default(), thread: None };
        let (stop, sent, failed) = (app.stop.clone(), app.sent.clone(), app.failed.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 3000 {
                n += 1;
                match submit(port, &to, n) {
                    Ok(()) => sent.fetch_add(1, Ordering::SeqCst),
                    Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                };
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        app.thread = Some(thread);
        app
    }

    pub fn sent(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn failed(&self) -> usize {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops it; how many of its messages were refused.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub fn until(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// HAProxy (Debian's) in TCP mode in front of two relays, each weighted by
/// mailcanary's agent on `agent`: the configuration docs/failover.md gives.
pub fn haproxy_agent_config(dir: &std::path::Path, front: u16, agent: u16, a: u16, b: u16) -> String {
    format!(
        "global\n    stats socket {sock} mode 600 level admin\n\
         defaults\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n    timeout check 1s\n\
         listen smtp\n    bind 127.0.0.1:{front}\n    mode tcp\n    balance roundrobin\n\
         \x20   default-server weight 100 check inter 1s agent-check agent-addr 127.0.0.1 agent-port {agent} agent-inter 1s\n\
         \x20   server relay-a 127.0.0.1:{a} agent-send \"relay-a\\n\"\n\
         \x20   server relay-b 127.0.0.1:{b} agent-send \"relay-b\\n\"\n",
        sock = dir.join("haproxy.sock").display()
    )
}

/// The old recipe, kept to pin its failure: each relay's server tracks an
/// HTTP check of mailcanary's health endpoint.
pub fn haproxy_http_track_config(dir: &std::path::Path, front: u16, mailcanary: u16, a: u16, b: u16) -> String {
    format!(
        "global\n    stats socket {sock} mode 600 level admin\n\
         defaults\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         backend check_a\n    mode http\n    option httpchk GET /api/v1/providers/relay-a/health\n    server relay-a 127.0.0.1:{mailcanary} check inter 1s fall 1 rise 1\n\
         backend check_b\n    mode http\n    option httpchk GET /api/v1/providers/relay-b/health\n    server relay-b 127.0.0.1:{mailcanary} check inter 1s fall 1 rise 1\n\
         listen smtp\n    bind 127.0.0.1:{front}\n    mode tcp\n    balance roundrobin\n\
         \x20   server relay-a 127.0.0.1:{a} track check_a/relay-a\n\
         \x20   server relay-b 127.0.0.1:{b} track check_b/relay-b\n",
        sock = dir.join("haproxy.sock").display()
    )
}

/// HAProxy sends new connections to `server` at its full weight.
pub fn serving(h: &Haproxy, server: &str) -> bool {
    h.state("smtp", server).is_some_and(|(status, weight)| status == "UP" && weight == 100)
}

/// HAProxy sends no new connection to `server`: drained by the agent.
pub fn drained(h: &Haproxy, server: &str) -> bool {
    h.state("smtp", server).is_some_and(|(status, _)| status.starts_with("DRAIN"))
}
