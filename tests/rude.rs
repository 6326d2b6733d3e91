//! Misbehaving IMAP servers of our own, each a thread on a loopback port,
//! against the real client code (the IMAP session, and the service). Each test
//! asserts a bound — bytes held, what was fetched, the reason label — never
//! a sleep or a log line's wording. Memory is measured by a counting
//! allocator: the client runs on the test's own thread (a current-thread
//! runtime), the servers on theirs, so only the client's bytes count.

use mailcanary::config::{ImapConfig, TlsMode};
use mailcanary::inbox::imap::{HEADER_PARTIAL, ImapSession, MAX_BATCH};
use mailcanary::outcome::InboxError;
use mailcanary::secret::Secret;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counts the bytes each thread holds, and the most it held.
struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` on this thread; its output and the most bytes this thread held
/// meanwhile beyond what it held before.
fn measured<T>(f: impl Future<Output = T>) -> (T, u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = runtime.block_on(f);
    let peak = PEAK.with(Cell::get) - base;
    drop(runtime);
    (out, peak.max(0) as u64)
}

const MIB: u64 = 1024 * 1024;
/// What the rude server announces: the literal of issue 12.
const HUGE: u64 = 50 * MIB;

/// A rude IMAP server: answers LOGIN, CAPABILITY, SELECT, STATUS, UID
/// SEARCH (with `search`), NOOP, IDLE, STORE, EXPUNGE and LOGOUT like a
/// polite one unless `rude` answers first. It records the commands it
/// got, and each connection that `rude` ends reports how many bytes it
/// managed to write before the client hung up.
struct ImapServer {
    port: u16,
    commands: Arc<Mutex<Vec<String>>>,
    written: mpsc::Receiver<u64>,
}

/// What a rude answer did.
enum Act {
    /// Nothing: the polite answer goes out.
    Polite,
    /// It answered; serve on.
    Answered,
    /// It ended the connection after writing this many bytes.
    HungUp(u64),
}

/// `rude(tag, command, stream)`.
type Rude = fn(&str, &str, &mut TcpStream) -> Act;

fn imap_server(search: &'static str, rude: Rude) -> ImapServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let commands = Arc::new(Mutex::new(Vec::new()));
    let (tx, written) = mpsc::channel();
    let log = commands.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (log, tx) = (log.clone(), tx.clone());
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut lines = BufReader::new(stream);
                let _ = out.write_all(b"* OK rude IMAP ready\r\n");
                let mut line = String::new();
                while lines.read_line(&mut line).unwrap_or(0) > 0 {
                    let (tag, command) = line.trim_end().split_once(' ').unwrap_or(("*", ""));
                    let (tag, command) = (tag.to_string(), command.to_string());
                    line.clear();
                    log.lock().unwrap().push(command.clone());
                    match rude(&tag, &command, &mut out) {
                        Act::Polite => {}
                        Act::Answered => continue,
                        Act::HungUp(written) => {
                            let _ = tx.send(written);
                            return;
                        }
                    }
                    let verb = command.split(' ').take(2).collect::<Vec<_>>().join(" ").to_ascii_uppercase();
                    let answer = match verb.as_str() {
                        v if v.starts_with("CAPABILITY") => {
                            format!("* CAPABILITY IMAP4rev1 IDLE UIDPLUS\r\n{tag} OK done\r\n")
                        }
                        v if v.starts_with("SELECT") || v.starts_with("EXAMINE") => format!(
                            "* 1 EXISTS\r\n* OK [UIDVALIDITY 1] ok\r\n* OK [UIDNEXT 10] ok\r\n{tag} OK [READ-WRITE] done\r\n"
                        ),
                        v if v.starts_with("STATUS") => {
                            let folder = command.split(' ').nth(1).unwrap_or("INBOX");
                            format!("* STATUS {folder} (UIDNEXT 10 UIDVALIDITY 1)\r\n{tag} OK done\r\n")
                        }
                        "UID SEARCH" => format!("* SEARCH {search}\r\n{tag} OK done\r\n"),
                        v if v.starts_with("IDLE") => {
                            let _ = out.write_all(b"+ idling\r\n");
                            let mut done = String::new();
                            let _ = lines.read_line(&mut done);
                            format!("{tag} OK idle done\r\n")
                        }
                        v if v.starts_with("LOGOUT") => format!("* BYE see you\r\n{tag} OK done\r\n"),
                        _ => format!("{tag} OK done\r\n"),
                    };
                    if out.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    ImapServer { port, commands, written }
}

impl ImapServer {
    fn config(&self) -> ImapConfig {
        ImapConfig {
            host: "127.0.0.1".into(),
            port: Some(self.port),
            tls: Some(TlsMode::None),
            username: "u".into(),
            password: Some(Secret::new("p")),
            oauth2: None,
            ca_file: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(15),
        }
    }

    async fn session(&self) -> ImapSession {
        let tls = mailcanary::tls::client_config(None, false).unwrap();
        let mut session = ImapSession::connect(&self.config(), tls, None).await.unwrap();
        session.select("INBOX").await.unwrap();
        session
    }

    /// How many bytes the rude answer got out before the client hung up.
    fn written(&self) -> u64 {
        self.written.recv_timeout(Duration::from_secs(30)).expect("the rude connection ended")
    }

    fn fetches(&self) -> Vec<String> {
        self.commands
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.to_ascii_uppercase().starts_with("UID FETCH"))
            .cloned()
            .collect()
    }
}

/// Writes `n` bytes of `x` (or until the client hangs up); how many went out.
fn stream_bytes(out: &mut TcpStream, n: u64) -> u64 {
    let chunk = vec![b'x'; 64 * 1024];
    let mut written = 0;
    while written < n {
        let len = chunk.len().min((n - written) as usize);
        if out.write_all(&chunk[..len]).is_err() {
            break;
        }
        written += len as u64;
    }
    written
}

fn header_literal(uid: u32) -> String {
    let header = format!("X-Mailcanary-Token: t{uid}\r\n\r\n");
    format!("BODY[HEADER.FIELDS (X-MAILCANARY-TOKEN)]<0> {{{}}}\r\n{header}", header.len())
}

fn is_fetch(command: &str) -> bool {
    command.to_ascii_uppercase().starts_with("UID FETCH")
}

/// UID 5 answered politely, UID 7 with a 50 MiB literal (its UID said
/// before the literal), then UID 9.
fn huge_literal(tag: &str, command: &str, out: &mut TcpStream) -> Act {
    if !is_fetch(command) {
        return Act::Polite;
    }
    let _ = write!(out, "* 1 FETCH (UID 5 {})\r\n", header_literal(5));
    let _ = write!(out, "* 2 FETCH (UID 7 BODY[HEADER.FIELDS (X-MAILCANARY-TOKEN)]<0> {{{HUGE}}}\r\n");
    let written = stream_bytes(out, HUGE);
    let _ = write!(out, ")\r\n* 3 FETCH (UID 9 {})\r\n{tag} OK done\r\n", header_literal(9));
    Act::HungUp(written)
}

/// The same, with the UID said only after the literal.
fn huge_literal_uid_after(tag: &str, command: &str, out: &mut TcpStream) -> Act {
    if !is_fetch(command) {
        return Act::Polite;
    }
    let _ = write!(out, "* 1 FETCH (UID 5 {})\r\n", header_literal(5));
    let _ = write!(out, "* 2 FETCH (BODY[HEADER.FIELDS (X-MAILCANARY-TOKEN)]<0> {{{HUGE}}}\r\n");
    let written = stream_bytes(out, HUGE);
    let _ = write!(out, " UID 7)\r\n{tag} OK done\r\n");
    Act::HungUp(written)
}

#[test]
fn a_huge_literal_is_not_read_and_its_uid_is_skipped() {
    let server = imap_server("5 7 9", huge_literal);
    let (headers, peak) = measured(async {
        let mut session = server.session().await;
        let headers = session.fetch_headers("5:*", 5, "X-Mailcanary-Token").await.unwrap();
        let after = session.noop().await;
        (headers, after)
    });
    let (headers, after) = headers;
    let written = server.written();
    eprintln!("client peak {peak} bytes; the server got {written} bytes of {HUGE} out");
    let oversized = headers.oversized.as_ref().expect("the oversized message is reported");
    assert_eq!(oversized.uid, 7);
    assert_eq!(oversized.error.reason, InboxError::Protocol);
    assert!(oversized.error.too_large());
    assert_eq!(headers.messages.len(), 1, "what came before it is kept");
    assert_eq!(headers.messages[0].uid, 5);
    assert_eq!(headers.next_uid(), Some(8), "the cursor moves past it");
    assert!(after.is_err(), "the session is closed after it");
    assert!(peak < 2 * MIB, "the client held {peak} bytes at most");
    assert!(written < HUGE, "the client hung up before the whole literal");
    let fetch = server.fetches().join(" ");
    assert!(fetch.contains(&format!("<0.{HEADER_PARTIAL}>")), "a partial fetch is asked for: {fetch}");
}

#[test]
fn a_huge_literal_before_its_uid_skips_the_first_message_not_read() {
    let server = imap_server("5 7 9", huge_literal_uid_after);
    let ((headers, _), peak) = measured(async {
        let mut session = server.session().await;
        (session.fetch_headers("5:*", 5, "X-Mailcanary-Token").await.unwrap(), session)
    });
    server.written();
    assert_eq!(headers.oversized.as_ref().map(|o| o.uid), Some(7));
    assert_eq!(headers.next_uid(), Some(8));
    assert!(peak < 2 * MIB, "the client held {peak} bytes at most");
}

#[test]
fn the_older_headers_call_is_bounded_too() {
    let server = imap_server("5 7 9", huge_literal);
    let (result, peak) = measured(async { server.session().await.headers("5:*", 5, "X-Mailcanary-Token").await });
    server.written();
    let e = result.unwrap_err();
    assert_eq!(e.reason, InboxError::Protocol);
    assert!(e.too_large());
    assert!(peak < 2 * MIB, "the client held {peak} bytes at most");
}

#[test]
fn nothing_is_fetched_when_only_the_last_message_below_the_cursor_matches() {
    // `UID SEARCH UID 10:*` answers 9: `n:*` includes the last message.
    let server = imap_server("9", |_, command, _| {
        assert!(!is_fetch(command), "no FETCH expected");
        Act::Polite
    });
    let (headers, _) = measured(async { server.session().await.fetch_headers("10:*", 10, "X-Mailcanary-Token").await });
    let headers = headers.unwrap();
    assert!(headers.messages.is_empty() && headers.oversized.is_none() && !headers.more);
    assert_eq!(headers.next_uid(), None);
    assert!(server.fetches().is_empty(), "no FETCH sent: {:?}", server.fetches());
}

/// Answers a UID FETCH of any set with a small header for each UID in it.
fn polite_fetch(tag: &str, command: &str, out: &mut TcpStream) -> Act {
    if !is_fetch(command) {
        return Act::Polite;
    }
    let set = command.split(' ').nth(2).unwrap_or_default();
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        for uid in a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap() {
            let _ = write!(out, "* {uid} FETCH (UID {uid} {})\r\n", header_literal(uid));
        }
    }
    let _ = write!(out, "{tag} OK done\r\n");
    Act::Answered
}

#[test]
fn a_fetch_reads_one_batch_and_says_there_is_more() {
    let uids: String = (1..=100).map(|u| u.to_string()).collect::<Vec<_>>().join(" ");
    let server = imap_server(Box::leak(uids.into_boxed_str()), polite_fetch);
    let (headers, _) = measured(async {
        let mut session = server.session().await;
        let first = session.fetch_headers("1:*", 1, "X-Mailcanary-Token").await.unwrap();
        let next = first.next_uid().unwrap();
        let second = session.fetch_headers(&format!("{next}:*"), next, "X-Mailcanary-Token").await.unwrap();
        (first, second)
    });
    let (first, second) = headers;
    assert_eq!(first.messages.len(), MAX_BATCH);
    assert!(first.more);
    assert_eq!(first.next_uid(), Some(MAX_BATCH as u32 + 1));
    assert_eq!(second.messages.len(), 100 - MAX_BATCH);
    assert!(!second.more);
    assert_eq!(first.messages[0].headers, b"X-Mailcanary-Token: t1\r\n\r\n");
}

fn is_noop(command: &str) -> bool {
    command.eq_ignore_ascii_case("NOOP")
}

/// Answers any FETCH with UID 5 only, as if the others were expunged meanwhile.
fn only_five(tag: &str, command: &str, out: &mut TcpStream) -> Act {
    if !is_fetch(command) {
        return Act::Polite;
    }
    let _ = write!(out, "* 1 FETCH (UID 5 {})\r\n{tag} OK done\r\n", header_literal(5));
    Act::Answered
}

#[test]
fn messages_listed_then_gone_are_passed_by_the_cursor() {
    let server = imap_server("5 7", only_five);
    let (headers, _) = measured(async { server.session().await.fetch_headers("5:*", 5, "X-Mailcanary-Token").await });
    let headers = headers.unwrap();
    assert_eq!(headers.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [5]);
    assert_eq!(headers.next_uid(), Some(8));
}

/// Answers NOOP with unsolicited responses, forever.
fn flood(_: &str, command: &str, out: &mut TcpStream) -> Act {
    if !is_noop(command) {
        return Act::Polite;
    }
    let line = b"* 3 EXISTS\r\n".repeat(5000);
    let mut written = 0;
    while out.write_all(&line).is_ok() {
        written += line.len() as u64;
    }
    Act::HungUp(written)
}

/// Answers NOOP with one line that never ends.
fn endless_line(_: &str, command: &str, out: &mut TcpStream) -> Act {
    if !is_noop(command) {
        return Act::Polite;
    }
    let _ = out.write_all(b"* OK ");
    Act::HungUp(stream_bytes(out, 1024 * MIB))
}

#[test]
fn endless_answers_are_cut_whatever_their_shape() {
    for rude in [flood as Rude, endless_line] {
        let server = imap_server("", rude);
        let (result, peak) = measured(async { server.session().await.noop().await });
        server.written();
        let e = result.unwrap_err();
        assert_eq!(e.reason, InboxError::Protocol, "{}", e.detail);
        assert!(e.too_large());
        assert!(peak < 2 * MIB, "the client held {peak} bytes at most");
    }
}

/// Answers NOOP with BYE and hangs up.
fn bye(_: &str, command: &str, out: &mut TcpStream) -> Act {
    if !is_noop(command) {
        return Act::Polite;
    }
    let _ = out.write_all(b"* BYE server shutting down for maintenance\r\n");
    Act::HungUp(0)
}

#[test]
fn a_bye_is_reported_as_what_the_server_said() {
    let server = imap_server("", bye);
    let (result, _) = measured(async { server.session().await.noop().await });
    let e = result.unwrap_err();
    assert_eq!(e.reason, InboxError::Connect);
    assert!(e.detail.contains("server shutting down for maintenance"), "{}", e.detail);
}

/// Every FETCH answered with UID 1 in a 50 MiB literal, as in issue 12;
/// a client that reads it all is served on.
fn huge_every_time(tag: &str, command: &str, out: &mut TcpStream) -> Act {
    if !is_fetch(command) {
        return Act::Polite;
    }
    let _ = write!(out, "* 1 FETCH (UID 1 BODY[HEADER.FIELDS (X-MAILCANARY-TOKEN)]<0> {{{HUGE}}}\r\n");
    let written = stream_bytes(out, HUGE);
    if written < HUGE || write!(out, ")\r\n{tag} OK done\r\n").is_err() {
        return Act::HungUp(written);
    }
    Act::Answered
}

/// Runs `mailcanary run` for `window` with one inbox on `imap_port` (and a
/// relay that refuses connections, so that canaries fail fast); its peak
/// resident memory in bytes (VmHWM).
fn service_peak_rss(name: &str, imap_port: u16, window: Duration) -> u64 {
    let dir = std::env::temp_dir().join(format!("mailcanary-rude-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (listen, closed) = (free(), free());
    let config = format!(
        "global:\n  listen: \"127.0.0.1:{listen}\"\n  state_dir: \"{state}\"\n  instance: rude\n  \
         signing_key_file: \"{state}/signing.key\"\n  defaults: {{ interval: 1s, timeout: 1m, jitter: 0% }}\n\
         providers:\n  - {{ name: relay, type: smtp, host: 127.0.0.1, port: {closed}, tls: none, timeout: 2s, from: canary@mailcanary.test }}\n\
         inboxes:\n  - name: inbox\n    address: canary@mailcanary.test\n    \
         imap: {{ host: 127.0.0.1, port: {imap_port}, tls: none, timeout: 5s, username: u, password: p }}\n\
         probes:\n  - {{ name: probe, provider: relay, inbox: inbox }}\n",
        state = dir.join("state").display()
    );
    std::fs::write(dir.join("probes.yaml"), config).unwrap();
    let log = std::fs::File::create(dir.join("mailcanary.log")).unwrap();
    // MAILCANARY_BIN measures another build (e.g. an older one, for a before-and-after).
    let bin = std::env::var("MAILCANARY_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_mailcanary").to_string());
    let mut child = std::process::Command::new(bin)
        .args(["run", "--config"])
        .arg(dir.join("probes.yaml"))
        .current_dir(&dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // A measuring window, not a wait for something to happen.
    std::thread::sleep(window);
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM of the service");
    kb * 1024
}

#[test]
fn the_service_holds_its_memory_against_a_huge_literal() {
    let window = Duration::from_secs(15);
    let polite = imap_server("1", polite_fetch);
    let rude = imap_server("1", huge_every_time);
    let healthy = service_peak_rss("polite", polite.port, window);
    let hostile = service_peak_rss("huge", rude.port, window);
    let fetches = rude.fetches().len();
    let logins = rude.commands.lock().unwrap().iter().filter(|c| c.to_ascii_uppercase().starts_with("LOGIN")).count();
    eprintln!(
        "peak RSS {} KiB against a polite server, {} KiB against a 50 MiB literal; {fetches} fetches, {logins} logins in {window:?}",
        healthy / 1024,
        hostile / 1024
    );
    assert!(hostile < 2 * healthy, "{hostile} bytes against the huge literal, {healthy} against a polite server");
}
