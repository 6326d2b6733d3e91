//! Test harness: the real mail stack of scripts/mailstack.sh (started once if
//! it is not up), and the real `mailcanary` binary run per test with its own
//! config, state directory, port and mailbox users.

#![allow(dead_code)]

pub mod prometheus;
pub mod proxy;
pub mod share;
pub mod steering;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The running mail stack, as its env file describes it.
pub struct Stack {
    pub dir: PathBuf,
    pub password: String,
    pub ca: String,
    pub smtp: u16,
    pub submission: u16,
    pub smtps: u16,
    pub imap: u16,
    pub imaps: u16,
    /// Where Dovecot asks whether an OAuth2 access token is good.
    pub oauth: u16,
    /// Two more plain relays, each of which can be made a black hole alone
    /// (`mailstack.sh hold-relay a|b`).
    pub relay_a: u16,
    pub relay_b: u16,
    /// The application's MTA (`mailstack.sh app-mta`), and where it asks
    /// mailcanary's socketmap for its relay.
    pub app_mta: u16,
    pub socketmap: u16,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/mailstack.sh <args>`; panics with its output on failure.
/// Anything but `up` waits for the stack first: a test that holds a relay
/// before any test of its binary asked for the stack would otherwise write
/// into the directory another test's `up` is making anew.
pub fn mailstack(args: &[&str]) {
    if args.first() != Some(&"up") {
        let _ = stack();
    }
    let out = Command::new(repo().join("scripts/mailstack.sh")).args(args).output().expect("run mailstack.sh");
    assert!(
        out.status.success(),
        "mailstack.sh {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Ends `user`'s IMAP sessions, waiting (10 s at most) for one to be there:
/// a watcher between two logins has none, and `doveadm kick` then says
/// "no users kicked" and fails.
pub fn kick(user: &str) {
    let start = Instant::now();
    loop {
        let out =
            Command::new(repo().join("scripts/mailstack.sh")).args(["kick", user]).output().expect("run mailstack.sh");
        if out.status.success() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "mailstack.sh kick {user}: no session to end within 10 s:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stack, started on first use if `mailstack.sh status` says it is down.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let dir = PathBuf::from(std::env::var("MAILSTACK_DIR").unwrap_or_else(|_| "/tmp/mailcanary-stack".into()));
        let up = Command::new(repo().join("scripts/mailstack.sh"))
            .arg("status")
            .env("MAILSTACK_DIR", &dir)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !up || !dir.join("env").exists() {
            mailstack(&["up"]);
        }
        let text = std::fs::read_to_string(dir.join("env")).expect("mail stack env file");
        let env: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let port = |k: &str| env[k].parse().unwrap();
        Stack {
            dir: dir.clone(),
            password: env["MAILSTACK_PASSWORD"].to_string(),
            ca: env["MAILSTACK_CA"].to_string(),
            smtp: port("MAILSTACK_SMTP_PORT"),
            submission: port("MAILSTACK_SUBMISSION_PORT"),
            smtps: port("MAILSTACK_SMTPS_PORT"),
            imap: port("MAILSTACK_IMAP_PORT"),
            imaps: port("MAILSTACK_IMAPS_PORT"),
            oauth: env.get("MAILSTACK_OAUTH_PORT").map_or(10080, |p| p.parse().unwrap()),
            relay_a: port("MAILSTACK_RELAY_A_PORT"),
            relay_b: port("MAILSTACK_RELAY_B_PORT"),
            app_mta: port("MAILSTACK_APP_MTA_PORT"),
            socketmap: port("MAILSTACK_SOCKETMAP_PORT"),
        }
    })
}

/// The mailbox user for `base` in this test run: runs on the same stack
/// never see each other's mail. Prefixes (spam-, hold-) keep their meaning.
pub fn user(base: &str) -> String {
    format!("{base}-{}", std::process::id())
}

impl Stack {
    /// Messages in `user(base)`'s `folder` ("" for INBOX), read from the Maildir.
    pub fn messages(&self, base: &str, folder: &str) -> Vec<String> {
        let base = self.dir.join("mail").join(user(base)).join("Maildir");
        let base = if folder.is_empty() { base } else { base.join(format!(".{folder}")) };
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(base.join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    /// Waits (up to 10 s) until `user(base)`'s `folder` holds `count` messages.
    pub fn wait_messages(&self, base: &str, folder: &str, count: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let messages = self.messages(base, folder);
            if messages.len() == count || start.elapsed() > Duration::from_secs(10) {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Messages to recipients that `user(base)` starts with, held in the
    /// stack's queue (by `hold` or `hold-relay`).
    pub fn held(&self, base: &str) -> usize {
        let out = Command::new("postqueue").arg("-c").arg(self.dir.join("postfix")).arg("-j").output().unwrap();
        let user = user(base);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("\"queue_name\": \"hold\"") && l.contains(&user))
            .count()
    }

    /// Sends a raw message over plain SMTP, as any outsider could.
    pub fn inject(&self, to: &str, message: &str) {
        let stream = TcpStream::connect(("127.0.0.1", self.smtp)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut w = stream;
        let mut expect = |code: &str| loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "SMTP: expected {code}, got {line:?}");
            if line.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        };
        expect("220");
        for (cmd, code) in [
            ("EHLO test".to_string(), "250"),
            ("MAIL FROM:<outsider@example.test>".to_string(), "250"),
            (format!("RCPT TO:<{to}>"), "250"),
            ("DATA".to_string(), "354"),
        ] {
            write!(w, "{cmd}\r\n").unwrap();
            expect(code);
        }
        write!(w, "{}\r\n.\r\n", message.replace('\n', "\r\n")).unwrap();
        expect("250");
        write!(w, "QUIT\r\n").unwrap();
    }
}

/// A TLS server config with a self-signed certificate for `names`, valid
/// until `not_after` (year); returns it with the certificate's PEM.
pub fn tls_server(
    dir: &std::path::Path,
    label: &str,
    names: &[&str],
    expired: bool,
) -> (std::sync::Arc<tokio_rustls::rustls::ServerConfig>, String) {
    use std::sync::Arc;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem_path = dir.join(format!("{label}.pem"));
    std::fs::write(&pem_path, cert.pem()).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    (Arc::new(config), pem_path.display().to_string())
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh directory for one test, removed when it goes out of scope unless
/// the test is failing (then it is kept, and named, for its logs and ledger).
pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("mailcanary-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A test's directory; derefs to its path.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the failed test's directory {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The `global:` block every test config starts with.
pub fn global(instance: &str, port: u16, dir: &Path, interval: &str, timeout: &str) -> String {
    format!(
        "global:\n  listen: \"127.0.0.1:{port}\"\n  state_dir: \"{}\"\n  instance: \"{instance}\"\n  defaults: {{ interval: {interval}, timeout: {timeout}, jitter: 0% }}\n",
        dir.join("state").display()
    )
}

/// An inbox entry for mailbox `user(base)` over IMAPS with the stack's CA.
pub fn inbox(name: &str, base: &str) -> String {
    let s = stack();
    let user = user(base);
    format!(
        "  - name: {name}\n    address: {user}@mailcanary.test\n    imap: {{ host: localhost, port: {}, tls: tls, username: {user}, password: \"{}\", ca_file: \"{}\" }}\n    folders: {{ inbox: INBOX, spam: [Junk] }}\n",
        s.imaps, s.password, s.ca
    )
}

/// The plain relay provider.
pub fn relay(name: &str) -> String {
    format!(
        "  - {{ name: {name}, type: smtp, host: 127.0.0.1, port: {}, tls: none, from: canary@mailcanary.test }}\n",
        stack().smtp
    )
}

/// A token for canary `id` of `probe` on `instance`, signed with `key`, as
/// an outsider holding (or guessing) that key would make it.
pub fn signed_token(instance: &str, probe: &str, id: &str, key: &str) -> String {
    mailcanary::canary::Token { instance: instance.into(), probe: probe.into(), canary_id: id.into(), sent_ms: 1 }
        .sign(&mailcanary::canary::SigningKey::new(mailcanary::secret::Secret::new(key)))
}

/// Runs `mailcanary ARGS --config DIR/probes.yaml` to the end; its stdout.
pub fn run_cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(args)
        .arg("--config")
        .arg(dir.join("probes.yaml"))
        .output()
        .expect("run mailcanary");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `mailcanary run`.
pub struct Mailcanary {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

/// Parsed `/metrics` text.
pub struct Metrics(pub String);

impl Metrics {
    /// The sum of `name` over every series carrying all `labels` (as PromQL's
    /// `sum` would), or None when no series matches.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let values: Vec<f64> = self
            .0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (n, rest) = series.split_once('{').unwrap_or((series, ""));
                (n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
                    .then(|| value.parse::<f64>().ok())?
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// The sum of every sample whose line starts with `prefix`
    /// (`"name{"`: the family's series, whatever their labels).
    pub fn sum(&self, prefix: &str) -> f64 {
        self.0.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }

    /// Like `get`, 0 when the series is missing.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

/// One HTTP/1.1 request on loopback: (status code, body).
pub fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    http_with(port, method, path, "")
}

/// One HTTP/1.1 request with a JSON `body`.
pub fn http_with(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    Some((code, if chunked { dechunk(body)? } else { body.to_string() }))
}

/// A body sent in chunks (RFC 9112 §7.1), whole; `None` when cut short.
fn dechunk(mut chunks: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, rest) = chunks.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(rest.get(..size)?);
        chunks = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

pub fn http_get(port: u16, path: &str) -> Option<String> {
    http(port, "GET", path).filter(|(code, _)| *code == 200).map(|(_, body)| body)
}

impl Mailcanary {
    /// Starts `mailcanary run` on `config` (written to the test's directory).
    pub fn start(dir: &Path, port: u16, config: &str) -> Mailcanary {
        std::fs::write(dir.join("probes.yaml"), config).unwrap();
        let _ = std::fs::remove_file(dir.join("mailcanary.log"));
        Self::restart(dir, port, Path::new(env!("CARGO_BIN_EXE_mailcanary")), None)
    }

    /// Starts `binary` on the config already in `dir` (after a kill, or as
    /// an upgrade), its log appended to the one before; under a limit of
    /// `open_files` descriptors (soft and hard, as a unit's `LimitNOFILE`
    /// sets them) when given.
    pub fn restart(dir: &Path, port: u16, binary: &Path, open_files: Option<u64>) -> Mailcanary {
        Self::spawn(dir, port, binary, open_files, Some("mailcanary=debug"))
    }

    /// Starts `binary` on the config already in `dir` logging as it ships
    /// (`info`, no `RUST_LOG`), for measuring what a deployment costs:
    /// tests log at `debug` to say more when they fail.
    pub fn start_as_shipped(dir: &Path, port: u16, binary: &Path) -> Mailcanary {
        Self::spawn(dir, port, binary, None, None)
    }

    fn spawn(dir: &Path, port: u16, binary: &Path, open_files: Option<u64>, log_filter: Option<&str>) -> Mailcanary {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("mailcanary.log")).unwrap();
        let mut command = Command::new(binary);
        command.args(["run", "--config"]).arg(dir.join("probes.yaml")).stdout(log.try_clone().unwrap()).stderr(log);
        match log_filter {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        if let Some(n) = open_files {
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: n as libc::rlim_t, rlim_max: n as libc::rlim_t };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = command.spawn().expect("start mailcanary");
        let m = Mailcanary { child, port, dir: dir.to_path_buf() };
        m.wait_until("the HTTP server answers", Duration::from_secs(10), |_| true);
        m
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id, for reading its use of the machine.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The service's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mailcanary.log")).unwrap_or_default()
    }

    pub fn metrics(&self) -> Option<Metrics> {
        http_get(self.port, "/metrics").map(Metrics)
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&http_get(self.port, "/api/v1/status").expect("status API")).unwrap()
    }

    /// Polls `/metrics` until `cond` holds; panics with the log if it never does.
    pub fn wait_until(&self, what: &str, limit: Duration, cond: impl Fn(&Metrics) -> bool) -> Metrics {
        let start = Instant::now();
        loop {
            if let Some(m) = self.metrics()
                && cond(&m)
            {
                return m;
            }
            if start.elapsed() > limit {
                panic!(
                    "timed out after {limit:?} waiting for {what}\n--- metrics ---\n{}\n--- log ---\n{}",
                    self.metrics().map(|m| m.0).unwrap_or_default(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Rewrites the config file (for a reload).
    pub fn rewrite_config(&self, config: &str) {
        std::fs::write(self.dir.join("probes.yaml"), config).unwrap();
    }

    /// Sends a signal to the service.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("mailcanary did not stop within 30 s of SIGTERM\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mailcanary {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The route labels of a route.
pub fn route<'a>(probe: &'a str, provider: &'a str, inbox: &'a str) -> [(&'a str, &'a str); 3] {
    [("probe", probe), ("provider", provider), ("inbox", inbox)]
}

/// Starts tests/standins/SCRIPT on `port` (Debian's python3, with botocore
/// for the SES checks) and waits until it listens.
fn standin(script: &str, port: u16, args: &[&str]) -> Child {
    let child = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/standins").join(script))
        .args(["--port", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {script} with /usr/bin/python3: {e}"));
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "{script} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// The hosted-API stand-ins of tests/standins/providers.py, relaying into
/// the stack's Postfix.
pub struct Standin {
    child: Child,
    pub port: u16,
}

impl Standin {
    pub fn start() -> Standin {
        let port = free_port();
        let child = standin("providers.py", port, &["--smtp-port", &stack().smtp.to_string()]);
        Standin { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The OAuth2 authorization server of tests/standins/oauth2.py, on the port
/// the stack's Dovecot asks (so one at a time per stack).
pub struct AuthServer {
    child: Child,
    port: u16,
}

impl AuthServer {
    pub fn start(client_id: &str, client_secret: &str) -> AuthServer {
        let port = stack().oauth;
        let child = standin("oauth2.py", port, &["--client-id", client_id, "--client-secret", client_secret]);
        AuthServer { child, port }
    }

    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// Pulls one of the test's levers (see oauth2.py).
    pub fn control(&self, json: &str) {
        let (code, body) = http_with(self.port, "POST", "/control", json).expect("OAuth2 stand-in answers");
        assert_eq!(code, 200, "{body}");
    }

    pub fn stats(&self) -> serde_json::Value {
        let (_, body) = http(self.port, "GET", "/stats").expect("OAuth2 stand-in answers");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The application of tests/standins/app.py: sends its own password-reset
/// email through the stack's Postfix when asked (see app.py for its modes).
pub struct App {
    child: Child,
    pub port: u16,
}

impl App {
    pub fn start() -> App {
        let port = free_port();
        let child = standin("app.py", port, &["--smtp-port", &stack().smtp.to_string()]);
        App { child, port }
    }

    /// A probe's `trigger:` (flow style) that asks for a reset in `mode`.
    pub fn trigger(&self, name: &str, mode: &str, key: &str, extra: &str) -> String {
        format!(
            "{{ name: {name}, url: \"http://127.0.0.1:{}/password-reset?mode={mode}\", \
             headers: {{ Authorization: \"Bearer {key}\", Content-Type: application/json }}, \
             body: '{{\"email\": \"{{{{address}}}}\"}}', timeout: 5s{extra} }}",
            self.port
        )
    }

    /// What the application was asked, and which reset links were followed.
    pub fn stats(&self) -> serde_json::Value {
        let (_, body) = http(self.port, "GET", "/stats").expect("the application answers");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls `/stats` until `cond` holds; panics with them if it never does.
    pub fn wait_stats(&self, what: &str, limit: Duration, cond: impl Fn(&serde_json::Value) -> bool) {
        let start = Instant::now();
        loop {
            let stats = self.stats();
            if cond(&stats) {
                return;
            }
            assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}: {stats}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Lets the `slow-link` mode's links answer.
    pub fn release(&self) {
        let (code, _) = http(self.port, "POST", "/release").expect("the application answers");
        assert_eq!(code, 200);
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
