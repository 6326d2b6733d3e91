//! The byte stream under an IMAP session, metered. async-imap buffers a
//! response until the whole of it is in, and sizes its buffer from the
//! `{n}` a literal announces: a server that sends a 50 MiB literal costs
//! 50 MiB, whatever the command asked for. So the transport itself counts:
//! it follows response boundaries at byte level (a line ends a response
//! unless it ends in a `{n}` literal marker, whose n bytes belong to the
//! same response) and fails the read, before async-imap sees the bytes,
//! once one response, or everything read for one command, would pass the
//! limits the session set before sending that command.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How much one command may read from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in one response, literals included.
    pub response: u64,
    /// Bytes read in all, from the command until the next one.
    pub command: u64,
}

impl Limits {
    /// For commands whose answers are short: greeting, LOGIN, SELECT,
    /// STATUS, NOOP, IDLE, STORE, EXPUNGE, MOVE, LOGOUT.
    pub const SHORT: Limits = Limits { response: 64 * 1024, command: 1024 * 1024 };
}

/// An answer over the limits: the read fails with this inside an
/// `io::Error` of kind `InvalidData`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct TooLarge {
    /// The limit that was passed.
    pub limit: u64,
    /// Whether it was the limit of one response (else of the whole command).
    pub per_response: bool,
    /// The size of the literal that would have passed it, if one did.
    pub literal: Option<u64>,
    /// The message sequence number and UID of a FETCH response, as far as
    /// the response said before it went over.
    pub seq: Option<u32>,
    pub uid: Option<u32>,
}

impl TooLarge {
    fn describe(&self) -> String {
        let what = if self.per_response { "one response" } else { "the answers to one command" };
        let mut out = format!("the server sent more than {} bytes in {what}", self.limit);
        if let Some(n) = self.literal {
            out.push_str(&format!(" (a literal of {n} bytes)"));
        }
        if let Some(uid) = self.uid {
            out.push_str(&format!(", for UID {uid}"));
        }
        out
    }
}

/// Where the current line is in a possible `{n}` literal marker.
#[derive(Debug, Clone, Copy)]
enum Marker {
    None,
    /// After `{` and the digits so far (and whether there was one).
    Open(u64, bool),
    /// After `}` (and possibly `\r`): a marker if the line ends here.
    Closed(u64),
}

/// How much of a response is kept to say which message it was about.
const PREFIX: usize = 256;

/// The counting state, shared by the stream and the session that sets
/// its limits and reads what went wrong.
#[derive(Debug)]
pub struct Meter {
    limits: Limits,
    command: u64,
    response: u64,
    /// Literal bytes still to come in the current response.
    literal: u64,
    marker: Marker,
    /// The first bytes of the current response.
    prefix: Vec<u8>,
    /// What the server said in its last `* BYE`.
    bye: Option<String>,
    /// Why the stream stopped, once it did.
    too_large: Option<TooLarge>,
    /// The server closed the stream.
    eof: bool,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            limits: Limits::SHORT,
            command: 0,
            response: 0,
            literal: 0,
            marker: Marker::None,
            prefix: Vec::with_capacity(PREFIX),
            bye: None,
            too_large: None,
            eof: false,
        }
    }
}

impl Meter {
    /// A new command is about to be sent: reads count from zero, under `limits`.
    pub fn begin(&mut self, limits: Limits) {
        self.limits = limits;
        self.command = 0;
    }

    /// What the server said when it said BYE, quoted for a log line.
    pub fn bye(&self) -> Option<&str> {
        self.bye.as_deref()
    }

    /// Why the stream was stopped, if it was.
    pub fn too_large(&self) -> Option<&TooLarge> {
        self.too_large.as_ref()
    }

    /// Whether the server closed the stream.
    pub fn eof(&self) -> bool {
        self.eof
    }

    /// Counts `bytes` just read. Once they pass a limit: the error, and how
    /// many of them may still be handed on (the responses completed before
    /// the one that passed it).
    pub fn scan(&mut self, bytes: &[u8]) -> Result<(), (usize, TooLarge)> {
        if let Some(e) = &self.too_large {
            return Err((0, e.clone()));
        }
        let mut complete = 0;
        let mut i = 0;
        while i < bytes.len() {
            if self.literal > 0 {
                // Counted when announced; passes through in bulk.
                let n = self.literal.min((bytes.len() - i) as u64);
                self.literal -= n;
                i += n as usize;
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.response += 1;
            self.command += 1;
            if self.prefix.len() < PREFIX {
                self.prefix.push(b);
            }
            self.marker = match (self.marker, b) {
                (_, b'{') => Marker::Open(0, false),
                (Marker::Open(n, _), b'0'..=b'9') => {
                    Marker::Open(n.saturating_mul(10).saturating_add(u64::from(b - b'0')), true)
                }
                (Marker::Open(n, true), b'}') => Marker::Closed(n),
                (Marker::Closed(n), b'\r') => Marker::Closed(n),
                (marker, b'\n') => marker,
                _ => Marker::None,
            };
            // Before a newline ends the response: its last byte counts too.
            self.check(None).map_err(|e| (complete, e))?;
            if b == b'\n' {
                if let Marker::Closed(n) = self.marker {
                    self.response = self.response.saturating_add(n);
                    self.command = self.command.saturating_add(n);
                    self.literal = n;
                    self.check(Some(n)).map_err(|e| (complete, e))?;
                } else {
                    self.end_of_response();
                    complete = i;
                }
                self.marker = Marker::None;
            }
        }
        Ok(())
    }

    fn check(&mut self, literal: Option<u64>) -> Result<(), TooLarge> {
        let per_response = self.response > self.limits.response;
        if !per_response && self.command <= self.limits.command {
            return Ok(());
        }
        let (seq, uid) = fetch_ids(&self.prefix);
        let limit = if per_response { self.limits.response } else { self.limits.command };
        let e = TooLarge { limit, per_response, literal, seq, uid };
        self.too_large = Some(e.clone());
        Err(e)
    }

    fn end_of_response(&mut self) {
        if let Some(text) = self.prefix.strip_prefix(b"* BYE") {
            let text = text.strip_suffix(b"\r\n").or_else(|| text.strip_suffix(b"\n")).unwrap_or(text);
            self.bye = Some(crate::quote::quote_bytes(text.trim_ascii()));
        }
        self.response = 0;
        self.prefix.clear();
    }
}

/// The sequence number and UID of a `* n FETCH (... UID u ...` response,
/// as far as `prefix` holds them. A word the prefix ends in may be cut
/// (`UID 1` of `UID 1000`): it is not read.
fn fetch_ids(prefix: &[u8]) -> (Option<u32>, Option<u32>) {
    const SEPARATORS: [char; 5] = [' ', '(', ')', '\r', '\n'];
    let text = String::from_utf8_lossy(prefix);
    let whole = match text.ends_with(SEPARATORS) {
        true => &text[..],
        false => text.rfind(SEPARATORS).map_or("", |at| &text[..at]),
    };
    let mut words = whole.split(SEPARATORS).filter(|w| !w.is_empty());
    if words.next() != Some("*") {
        return (None, None);
    }
    let seq = words.next().and_then(|w| w.parse().ok());
    if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FETCH")) {
        return (None, None);
    }
    let mut uid = None;
    let mut previous = "";
    for word in words {
        if previous.eq_ignore_ascii_case("UID") {
            uid = word.parse().ok();
            break;
        }
        previous = word;
    }
    (seq, uid)
}

/// The metered byte stream: plain TCP or TLS over it. What is written
/// waits in a buffer until flushed: async-imap writes a command's tag, a
/// space, the command and its line end one by one and then flushes, and
/// each write would otherwise be a TLS record and a system call of its own.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    meter: Arc<Mutex<Meter>>,
}

#[derive(Debug)]
enum Stream {
    Plain(BufWriter<TcpStream>),
    Tls(Box<BufWriter<TlsStream<TcpStream>>>),
}

/// Room for a command: longer ones (a long UID set) go out in pieces.
const WRITE_BUFFER: usize = 4 * 1024;

impl Connection {
    /// Plain TCP, counted by `meter`.
    pub fn plain(tcp: TcpStream, meter: Arc<Mutex<Meter>>) -> Self {
        Connection { stream: Stream::Plain(BufWriter::with_capacity(WRITE_BUFFER, tcp)), meter }
    }

    /// TLS, counted by `meter`.
    pub fn tls(tls: TlsStream<TcpStream>, meter: Arc<Mutex<Meter>>) -> Self {
        Connection { stream: Stream::Tls(Box::new(BufWriter::with_capacity(WRITE_BUFFER, tls))), meter }
    }

    /// The TCP stream under a plain connection (for STARTTLS), once what
    /// was written to it is flushed (async-imap flushes every command).
    pub fn into_plain(self) -> Option<TcpStream> {
        match self.stream {
            Stream::Plain(tcp) => {
                debug_assert!(tcp.buffer().is_empty(), "STARTTLS after a command that was not flushed");
                Some(tcp.into_inner())
            }
            Stream::Tls(_) => None,
        }
    }
}

/// The meter, whatever another holder of it did while holding it.
pub fn lock(meter: &Mutex<Meter>) -> MutexGuard<'_, Meter> {
    meter.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let meter = lock(&this.meter);
        if let Some(e) = meter.too_large() {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e.clone())));
        }
        drop(meter);
        let result = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = result {
            let mut meter = lock(&this.meter);
            let new = &buf.filled()[before..];
            meter.eof |= new.is_empty() && buf.remaining() > 0;
            if let Err((complete, e)) = meter.scan(new) {
                // The caller never sees bytes past the limit; the responses
                // completed before it pass, and the next read fails.
                buf.set_filled(before + complete);
                if complete == 0 {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                }
            }
        }
        result
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(response: u64, command: u64) -> Meter {
        let mut m = Meter::default();
        m.begin(Limits { response, command });
        m
    }

    #[test]
    fn literals_belong_to_their_response() {
        let mut m = meter(100, 10_000);
        // Two responses of 60 bytes each pass; the literal counts toward its line's response.
        let one = b"* 1 FETCH (UID 7 BODY[HEADER]<0> {20}\r\n01234567890123456789)\r\n";
        m.scan(one).unwrap();
        m.scan(one).unwrap();
        assert_eq!(m.response, 0);
        // Byte by byte, the same.
        for b in one {
            m.scan(&[*b]).unwrap();
        }
    }

    #[test]
    fn an_announced_literal_over_the_limit_fails_before_its_bytes() {
        let mut m = meter(36 * 1024, 1 << 20);
        let (complete, e) =
            m.scan(b"* 2 FETCH (UID 41)\r\n* 3 FETCH (UID 42 BODY[HEADER.FIELDS (X-A)]<0> {52428800}\r\n").unwrap_err();
        assert_eq!(complete, 20, "the response before it passes");
        assert_eq!(e.literal, Some(52_428_800));
        assert_eq!((e.seq, e.uid), (Some(3), Some(42)));
        assert!(e.per_response);
        assert!(m.scan(b"more").is_err(), "the stream stays stopped");
    }

    #[test]
    fn a_line_without_end_is_cut_at_the_limit() {
        let mut m = meter(1000, 1 << 20);
        assert!(m.scan(&[b'x'; 999]).is_ok());
        let (_, e) = m.scan(b"xx").unwrap_err();
        assert_eq!((e.literal, e.seq, e.uid), (None, None, None));
    }

    #[test]
    fn many_small_responses_are_cut_by_the_command_limit() {
        let mut m = meter(100, 1000);
        for _ in 0..83 {
            m.scan(b"* 1 EXISTS\r\n").unwrap();
        }
        assert!(!m.scan(b"* 1 EXISTS\r\n* 1 EXISTS\r\n").unwrap_err().1.per_response);
        let mut m = meter(100, 1000);
        m.scan(b"* 1 EXISTS\r\n").unwrap();
        m.begin(Limits { response: 100, command: 1000 });
        assert_eq!(m.command, 0, "a new command counts from zero");
    }

    #[test]
    fn bye_is_remembered() {
        let mut m = meter(1000, 1000);
        m.scan(b"* OK ready\r\n* BYE shutting down\x1b[2J\r\n").unwrap();
        assert_eq!(m.bye(), Some("shutting down\\u{1b}[2J"));
    }

    #[test]
    fn text_that_looks_like_a_marker_only_counts_when_it_ends_the_line() {
        let mut m = meter(100, 10_000);
        m.scan(b"* OK {99999} is not a literal here\r\n").unwrap();
        assert_eq!(m.literal, 0);
    }
}
