//! One authenticated IMAP session over TLS, STARTTLS or plain TCP. Every
//! command runs under the inbox's timeout; every failure maps to a bounded
//! reason. Messages are learnt by UID, headers only, and every byte read
//! from the server is bounded (meter.rs): each command says how much its
//! answers may weigh, and the stream stops at that.

mod error;
mod meter;
#[cfg(test)]
mod proptests;

use crate::config::{ImapConfig, SaslMechanism, TlsMode};
use crate::oauth2::{TokenSource, initial_response};
use crate::outcome::InboxError;
use crate::quote::quote;
use crate::secret::Secret;
use async_imap::{Client, Session};
pub use error::ImapError;
use error::{classify, closed, status_text, token_error};
use futures::TryStreamExt;
pub use meter::{Connection, Limits, TooLarge};
use meter::{Meter, lock};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

/// How much of each message's header fields a fetch asks for. The token
/// comes below the Received lines, which grow with every hop; 32 KiB holds
/// a hundred of them.
pub const HEADER_PARTIAL: usize = 32 * 1024;
/// What a FETCH response carries besides its literal (UID, FLAGS, framing).
const SLACK: usize = 4 * 1024;
/// Most messages one header fetch reads; the rest wait for the next.
pub const MAX_BATCH: usize = 64;
/// A UID SEARCH answer: ten bytes a UID, a hundred thousand UIDs.
const SEARCH: Limits = Limits { response: 1024 * 1024, command: 2 * 1024 * 1024 };

/// A mailbox's identity and where its next message will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    pub uid_validity: u32,
    pub uid_next: u32,
}

/// What the server can do, as far as we care.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capabilities {
    pub idle: bool,
    pub mv: bool,
    pub uidplus: bool,
}

/// One message's headers as fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub uid: u32,
    pub headers: Vec<u8>,
    /// When the server received it (INTERNALDATE), in Unix milliseconds.
    pub received_ms: Option<i64>,
}

/// How an IDLE wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Woken {
    /// The server reported a change.
    Changed,
    /// The wait ran out.
    Timeout,
    /// Our side asked to stop waiting.
    Interrupted,
}

pub struct ImapSession {
    session: Option<Session<Connection>>,
    timeout: Duration,
    pub capabilities: Capabilities,
    /// The selected folder and its state as SELECT reported it.
    selected: Option<(String, FolderState)>,
    /// Counts what the server sends; each command sets its limits.
    meter: Arc<Mutex<Meter>>,
    /// Since `news` was last asked: the server said the selected folder
    /// grew (EXISTS), or a folder was selected, or IDLE ended.
    news: bool,
    /// When `news` was last asked.
    asked: Instant,
    /// How many messages' headers this session has read.
    headers_read: u64,
}

/// However quiet the server, the selected folder is read again this often.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// What a header fetch read.
#[derive(Debug, Default)]
pub struct Headers {
    /// The header fields of each message read, by UID ascending, every UID
    /// at least the `min` asked for.
    pub messages: Vec<Fetched>,
    /// A message whose answer went over the limit. The session is closed
    /// (its stream stopped mid-answer); `messages` holds what came before.
    pub oversized: Option<Oversized>,
    /// More messages matched than one fetch reads ([`MAX_BATCH`]): fetch
    /// again from [`Headers::next_uid`].
    pub more: bool,
    /// The last UID this fetch asked for, when its answer came whole.
    asked_through: Option<u32>,
}

/// A message whose header answer was larger than asked for.
#[derive(Debug)]
pub struct Oversized {
    pub uid: u32,
    /// Reason `protocol`; says what the server sent.
    pub error: ImapError,
}

impl Headers {
    /// Where the cursor goes once `messages` are handled: past every UID
    /// this fetch asked for (a message the server listed and then did not
    /// answer for is gone), or, when an answer was oversized, past it and
    /// the messages before it, so that none is fetched again. None when
    /// nothing was asked for.
    pub fn next_uid(&self) -> Option<u32> {
        let last = self.messages.last().map(|m| m.uid + 1);
        let skipped = self.oversized.as_ref().map(|o| o.uid + 1);
        let asked = self.asked_through.map(|uid| uid + 1);
        last.max(skipped).max(asked)
    }
}

async fn within<T>(
    limit: Duration,
    what: &str,
    meter: &Mutex<Meter>,
    f: impl Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(limit, f).await {
        // async-imap ends some commands (NOOP) without error when the
        // stream ends before their tagged answer.
        Ok(Ok(_)) if lock(meter).eof() => Err(closed(&lock(meter))),
        Ok(result) => result.map_err(|e| classify(e, &lock(meter))),
        Err(_) => Err(ImapError::new(InboxError::Timeout, format!("{what}: no answer within {limit:?}"))),
    }
}

impl ImapSession {
    /// Connects, secures and logs in: LOGIN with the password, or
    /// AUTHENTICATE with an access token from `tokens` (for `oauth2`).
    pub async fn connect(
        config: &ImapConfig,
        tls: Arc<ClientConfig>,
        tokens: Option<&TokenSource>,
    ) -> Result<Self, ImapError> {
        let limit = config.timeout;
        let address = (config.host.as_str(), config.port());
        let tcp = tokio::time::timeout(limit, TcpStream::connect(address))
            .await
            .map_err(|_| ImapError::new(InboxError::Timeout, format!("connect: no answer within {limit:?}")))?
            .map_err(|e| {
                ImapError::new(InboxError::Connect, format!("connect to {}:{}: {e}", config.host, config.port()))
            })?;
        let _ = tcp.set_nodelay(true);
        let meter = Arc::new(Mutex::new(Meter::default()));
        let secure = |tcp: TcpStream| async {
            let name = ServerName::try_from(config.host.clone())
                .map_err(|e| ImapError::new(InboxError::Tls, format!("server name {:?}: {e}", config.host)))?;
            let stream = tokio::time::timeout(limit, TlsConnector::from(tls.clone()).connect(name, tcp))
                .await
                .map_err(|_| ImapError::new(InboxError::Timeout, "TLS handshake: no answer in time"))?
                .map_err(|e| ImapError::new(InboxError::Tls, format!("TLS handshake: {}", quote(&e.to_string()))))?;
            Ok::<_, ImapError>(Connection::tls(stream, meter.clone()))
        };
        let mut client = match config.tls_mode() {
            TlsMode::Tls => Client::new(secure(tcp).await?),
            TlsMode::None | TlsMode::Starttls => Client::new(Connection::plain(tcp, meter.clone())),
        };
        within(limit, "greeting", &meter, async {
            client.read_response().await?.ok_or(async_imap::error::Error::ConnectionLost)
        })
        .await?;
        if config.tls_mode() == TlsMode::Starttls {
            lock(&meter).begin(Limits::SHORT);
            within(limit, "STARTTLS", &meter, client.run_command_and_check_ok("STARTTLS", None))
                .await
                .map_err(|e| ImapError::new(InboxError::Tls, format!("server refused STARTTLS: {}", e.detail)))?;
            let tcp = client.into_inner().into_plain().expect("STARTTLS starts on plain TCP");
            client = Client::new(secure(tcp).await?);
        }
        lock(&meter).begin(Limits::SHORT);
        let session = match (tokens, &config.oauth2, &config.password) {
            (Some(tokens), Some(oauth2), _) => {
                let token = tokens.token().await.map_err(token_error)?;
                let mechanism = oauth2.mechanism;
                let sasl = Sasl { first: Some(initial_response(mechanism, &config.username, &token)), mechanism };
                let result = tokio::time::timeout(limit, client.authenticate(mechanism.as_str(), sasl))
                    .await
                    .map_err(|_| ImapError::new(InboxError::Timeout, "AUTHENTICATE: no answer in time"))?;
                if result.is_err() {
                    // Whatever the server disliked, the next login gets a fresh token.
                    tokens.invalidate();
                }
                logged_in(result, mechanism.as_str(), &meter)?
            }
            (_, _, Some(password)) => {
                let login = tokio::time::timeout(limit, client.login(&config.username, password.expose()))
                    .await
                    .map_err(|_| ImapError::new(InboxError::Timeout, "LOGIN: no answer in time"))?;
                logged_in(login, "login", &meter)?
            }
            _ => return Err(ImapError::new(InboxError::Auth, "no password and no oauth2 configured")),
        };
        let mut this = ImapSession {
            session: Some(session),
            timeout: limit,
            capabilities: Capabilities::default(),
            selected: None,
            meter,
            news: true,
            asked: Instant::now(),
            headers_read: 0,
        };
        let (session, meter) = this.command(Limits::SHORT)?;
        let caps = within(limit, "CAPABILITY", &meter, session.capabilities()).await?;
        this.capabilities =
            Capabilities { idle: caps.has_str("IDLE"), mv: caps.has_str("MOVE"), uidplus: caps.has_str("UIDPLUS") };
        Ok(this)
    }

    /// The session, for a command whose answers may weigh up to `limits`.
    fn command(&mut self, limits: Limits) -> Result<(&mut Session<Connection>, Arc<Mutex<Meter>>), ImapError> {
        lock(&self.meter).begin(limits);
        let meter = self.meter.clone();
        let session = self.session.as_mut().ok_or_else(|| {
            ImapError::new(InboxError::Protocol, "no session: it ended in IDLE or after an oversized answer")
        })?;
        Ok((session, meter))
    }

    /// Reads the server's unsolicited responses: whether the selected
    /// folder grew is kept for `news`, the rest is state read explicitly.
    fn drain(&mut self) {
        if let Some(s) = self.session.as_mut() {
            while let Ok(r) = s.unsolicited_responses.try_recv() {
                // EXISTS only: a server must send it when the folder grows
                // (RFC 3501 §7.3.1). RECENT comes with it then, but also
                // alone after each EXPUNGE (Dovecot does), when it is no news.
                self.news |= matches!(r, async_imap::types::UnsolicitedResponse::Exists(_));
            }
        }
    }

    /// Whether the selected folder may hold something new since this was
    /// last asked: the server said so (RFC 3501 §7.3.1: it must, when the
    /// folder grows, in answer to any command, NOOP included), or a folder
    /// was selected or IDLE ended since, or [`LOOK_AGAIN`] has passed. A
    /// fast poll that finds no news costs one NOOP, not a NOOP and a search.
    pub fn news(&mut self) -> bool {
        let news = self.news || self.asked.elapsed() >= LOOK_AGAIN;
        (self.news, self.asked) = (false, Instant::now());
        news
    }

    /// Whether `news` would say yes but for [`LOOK_AGAIN`], leaving it to
    /// be asked: a command since the last look (a cleanup, a SELECT) may
    /// have carried the news, and IDLE would not report it again.
    pub fn news_pending(&self) -> bool {
        self.news
    }

    /// How many messages' headers this session has read.
    pub fn headers_read(&self) -> u64 {
        self.headers_read
    }

    /// UIDVALIDITY and UIDNEXT of `folder`, without selecting it.
    pub async fn status(&mut self, folder: &str) -> Result<FolderState, ImapError> {
        let limit = self.timeout;
        let (session, meter) = self.command(Limits::SHORT)?;
        let mailbox = within(limit, "STATUS", &meter, session.status(folder, "(UIDNEXT UIDVALIDITY)")).await?;
        self.drain();
        folder_state(folder, mailbox.uid_validity, mailbox.uid_next)
    }

    /// Selects `folder` (read-write, for cleanup) unless it already is.
    pub async fn select(&mut self, folder: &str) -> Result<FolderState, ImapError> {
        let limit = self.timeout;
        self.selected = None;
        let (session, meter) = self.command(Limits::SHORT)?;
        let mailbox = within(limit, "SELECT", &meter, session.select(folder)).await?;
        self.drain();
        let state = folder_state(folder, mailbox.uid_validity, mailbox.uid_next)?;
        self.selected = Some((folder.to_string(), state));
        self.news = true;
        Ok(state)
    }

    /// The folder currently selected, with its state when it was selected.
    pub fn selected(&self) -> Option<(&str, FolderState)> {
        self.selected.as_ref().map(|(f, s)| (f.as_str(), *s))
    }

    /// UIDs of messages in the selected folder that match the IMAP SEARCH
    /// `criteria` (searched by the server), ascending.
    pub async fn search(&mut self, criteria: &str) -> Result<Vec<u32>, ImapError> {
        let limit = self.timeout;
        let (session, meter) = self.command(SEARCH)?;
        let mut uids: Vec<u32> =
            within(limit, "UID SEARCH", &meter, session.uid_search(criteria)).await?.into_iter().collect();
        self.drain();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The `fields` headers (the first [`HEADER_PARTIAL`] bytes of them) of
    /// the messages in the UID `set` of the selected folder whose UID is at
    /// least `min`, at most [`MAX_BATCH`] of them, the lowest UIDs first.
    ///
    /// The server is asked which UIDs exist first (`UID SEARCH UID set`),
    /// so a FETCH is sent only when there is something to read: `n:*`
    /// always includes the last message, even when its UID is below n.
    /// A message whose answer is larger than asked for is not read: it is
    /// returned as `oversized` and the session is closed.
    pub async fn fetch_headers(&mut self, set: &str, min: u32, fields: &str) -> Result<Headers, ImapError> {
        let mut uids = self.search(&format!("UID {set}")).await?;
        uids.retain(|uid| *uid >= min);
        let more = uids.len() > MAX_BATCH;
        uids.truncate(MAX_BATCH);
        if uids.is_empty() {
            return Ok(Headers::default());
        }
        let limit = self.timeout;
        let query = format!("(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({fields})]<0.{HEADER_PARTIAL}>)");
        let per_message = (HEADER_PARTIAL + SLACK) as u64;
        let limits =
            Limits { response: per_message, command: per_message * uids.len() as u64 + Limits::SHORT.response };
        let (session, meter) = self.command(limits)?;
        let mut read = BTreeMap::new();
        let fetched = within(limit, "UID FETCH", &meter, async {
            let mut answers = session.uid_fetch(uid_set(&uids), &query).await?;
            while let Some(fetch) = answers.try_next().await? {
                if let Some(uid) = fetch.uid.filter(|uid| uids.binary_search(uid).is_ok()) {
                    let received_ms = fetch.internal_date().map(|d| d.timestamp_millis());
                    read.insert(
                        uid,
                        Fetched { uid, headers: fetch.header().unwrap_or_default().to_vec(), received_ms },
                    );
                }
            }
            Ok(())
        })
        .await;
        let big = lock(&meter).too_large().cloned();
        match (fetched, big) {
            (Ok(()), _) => {
                self.drain();
                self.headers_read += read.len() as u64;
                let asked_through = uids.last().copied();
                Ok(Headers { messages: read.into_values().collect(), oversized: None, more, asked_through })
            }
            (Err(error), Some(big)) => {
                // The stream stopped mid-answer: nothing more can be read from it.
                self.session = None;
                // The message it was about, else the first one not read.
                let Some(uid) = big
                    .uid
                    .filter(|uid| uids.binary_search(uid).is_ok())
                    .or_else(|| uids.iter().copied().find(|uid| !read.contains_key(uid)))
                else {
                    return Err(error);
                };
                let messages = read.range(..uid).map(|(_, m)| m.clone()).collect();
                Ok(Headers { messages, oversized: Some(Oversized { uid, error }), more: false, asked_through: None })
            }
            (Err(error), None) => Err(error),
        }
    }

    /// [`ImapSession::fetch_headers`] for every matching message, batch
    /// after batch; an oversized answer is an error (and the session is
    /// closed). Prefer `fetch_headers`, which says which UID to skip.
    pub async fn headers(&mut self, set: &str, min: u32, fields: &str) -> Result<Vec<Fetched>, ImapError> {
        let mut out = Vec::new();
        let mut from = min;
        loop {
            let batch = self.fetch_headers(set, from, fields).await?;
            if let Some(oversized) = batch.oversized {
                return Err(oversized.error);
            }
            let next = batch.next_uid().unwrap_or(from);
            out.extend(batch.messages);
            if !batch.more || next <= from {
                return Ok(out);
            }
            from = next;
        }
    }

    /// Up to the first `limit` bytes of message `uid` of the selected folder
    /// (None if it is gone). A server that sends more fails the command
    /// ([`ImapError::too_large`]) and the session is closed.
    pub async fn message(&mut self, uid: u32, limit: usize) -> Result<Option<Vec<u8>>, ImapError> {
        let timeout = self.timeout;
        let query = format!("(UID BODY.PEEK[]<0.{limit}>)");
        let answer = (limit + SLACK) as u64;
        let (session, meter) = self.command(Limits { response: answer, command: answer + Limits::SHORT.response })?;
        let fetched = within(timeout, "UID FETCH", &meter, async {
            let stream = session.uid_fetch(uid.to_string(), &query).await?;
            stream.try_collect::<Vec<_>>().await
        })
        .await
        .inspect_err(|e| {
            if e.too_large() {
                self.session = None;
            }
        })?;
        self.drain();
        Ok(fetched.iter().find(|f| f.uid == Some(uid)).and_then(|f| f.body()).map(<[u8]>::to_vec))
    }

    /// Removes `uids` from the selected folder.
    pub async fn delete(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        let limit = self.timeout;
        let uidplus = self.capabilities.uidplus;
        let (session, meter) = self.command(Limits::SHORT)?;
        within(limit, "UID STORE", &meter, async {
            session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect::<Vec<_>>().await
        })
        .await?;
        let (session, meter) = self.command(Limits::SHORT)?;
        within(limit, "EXPUNGE", &meter, async {
            if uidplus {
                session.uid_expunge(&set).await?.try_collect::<Vec<_>>().await
            } else {
                session.expunge().await?.try_collect::<Vec<_>>().await
            }
        })
        .await?;
        self.drain();
        Ok(())
    }

    /// Moves `uids` from the selected folder to `folder`.
    pub async fn move_to(&mut self, uids: &[u32], folder: &str) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        let limit = self.timeout;
        if self.capabilities.mv {
            let (session, meter) = self.command(Limits::SHORT)?;
            within(limit, "UID MOVE", &meter, session.uid_mv(&set, folder)).await?;
        } else {
            let (session, meter) = self.command(Limits::SHORT)?;
            within(limit, "UID COPY", &meter, session.uid_copy(&set, folder)).await?;
            self.delete(uids).await?;
        }
        self.drain();
        Ok(())
    }

    /// Keeps the session alive and lets the server report changes.
    pub async fn noop(&mut self) -> Result<(), ImapError> {
        let limit = self.timeout;
        let (session, meter) = self.command(Limits::SHORT)?;
        within(limit, "NOOP", &meter, session.noop()).await?;
        self.drain();
        Ok(())
    }

    /// Waits in IDLE on the selected folder for up to `wait`, or until
    /// `interrupt` completes.
    pub async fn idle(&mut self, wait: Duration, interrupt: impl Future<Output = ()>) -> Result<Woken, ImapError> {
        let limit = self.timeout;
        self.command(Limits::SHORT)?;
        let meter = self.meter.clone();
        let session = self.session.take().ok_or_else(|| ImapError::new(InboxError::Protocol, "no session"))?;
        let mut handle = session.idle();
        within(limit, "IDLE", &meter, handle.init()).await?;
        let woken = {
            let (wait_fut, stop) = handle.wait_with_timeout(wait);
            tokio::pin!(wait_fut);
            tokio::pin!(interrupt);
            tokio::select! {
                result = &mut wait_fut => match result.map_err(|e| classify(e, &lock(&meter)))? {
                    async_imap::extensions::idle::IdleResponse::NewData(_) => Woken::Changed,
                    async_imap::extensions::idle::IdleResponse::Timeout => Woken::Timeout,
                    async_imap::extensions::idle::IdleResponse::ManualInterrupt => Woken::Interrupted,
                },
                _ = &mut interrupt => {
                    drop(stop);
                    // Let the wait future observe the stop before DONE is sent.
                    let _ = tokio::time::timeout(limit, wait_fut).await;
                    Woken::Interrupted
                }
            }
        };
        let session = within(limit, "DONE", &meter, handle.done()).await?;
        self.session = Some(session);
        self.drain();
        self.news = true;
        Ok(woken)
    }

    /// Says goodbye, briefly.
    pub async fn logout(mut self) {
        lock(&self.meter).begin(Limits::SHORT);
        if let Some(mut s) = self.session.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.logout()).await;
        }
    }
}

/// The session after LOGIN or AUTHENTICATE, or why there is none.
fn logged_in(
    result: Result<Session<Connection>, (async_imap::error::Error, Client<Connection>)>,
    what: &str,
    meter: &Mutex<Meter>,
) -> Result<Session<Connection>, ImapError> {
    match result {
        Ok(session) => Ok(session),
        Err((async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text), _)) => {
            Err(ImapError::new(InboxError::Auth, format!("{what} refused: {}", status_text(&text))))
        }
        Err((e, _)) => Err(classify(e, &lock(meter))),
    }
}

/// SASL with an OAuth2 initial response. A second challenge is the
/// server's error report; RFC 7628 §3.2.3 answers it with a lone %x01
/// (XOAUTH2 with nothing), after which the server says NO.
struct Sasl {
    first: Option<Secret>,
    mechanism: SaslMechanism,
}

impl async_imap::Authenticator for Sasl {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        match (self.first.take(), self.mechanism) {
            (Some(first), _) => first.expose().as_bytes().to_vec(),
            (None, SaslMechanism::Oauthbearer) => vec![1],
            (None, SaslMechanism::Xoauth2) => Vec::new(),
        }
    }
}

fn folder_state(folder: &str, uid_validity: Option<u32>, uid_next: Option<u32>) -> Result<FolderState, ImapError> {
    match (uid_validity, uid_next) {
        (Some(uid_validity), Some(uid_next)) => Ok(FolderState { uid_validity, uid_next }),
        _ => Err(ImapError::new(InboxError::Protocol, format!("{folder:?}: server sent no UIDVALIDITY/UIDNEXT"))),
    }
}

/// `1,3,5:7` from sorted or unsorted UIDs.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}:{end}") });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 9, 7, 8]), "1:3,5,7:9");
        assert_eq!(uid_set(&[4]), "4");
    }
}
