//! One authenticated IMAP session over TLS, STARTTLS or plain TCP. Every
//! command runs under the inbox's timeout; every failure maps to a bounded
//! reason. Messages are learnt by UID, headers only.

use crate::config::{ImapConfig, SaslMechanism, TlsMode};
use crate::oauth2::{TokenError, TokenErrorKind, TokenSource, initial_response};
use crate::outcome::InboxError;
use crate::secret::Secret;
use async_imap::{Client, Session};
use futures::TryStreamExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

/// A failed IMAP operation: its reason label and what happened.
#[derive(Debug, thiserror::Error)]
#[error("{}: {detail}", .reason.as_str())]
pub struct ImapError {
    pub reason: InboxError,
    pub detail: String,
    /// The server refused the command (NO or BAD) and the session goes on.
    pub refused: bool,
}

impl ImapError {
    fn new(reason: InboxError, detail: impl Into<String>) -> Self {
        ImapError { reason, detail: detail.into(), refused: false }
    }
}

fn classify(e: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error;
    let (reason, refused) = match &e {
        Error::Io(io) if crate::tls::is_tls_error(io) => (InboxError::Tls, false),
        // What the server said could not be parsed (async-imap reports that as
        // an io::Error of kind Other): it does not speak IMAP. Network
        // failures carry their own kinds (reset, broken pipe, EOF).
        Error::Io(io) if matches!(io.kind(), std::io::ErrorKind::Other | std::io::ErrorKind::InvalidData) => {
            (InboxError::Protocol, false)
        }
        Error::Io(_) | Error::ConnectionLost => (InboxError::Connect, false),
        Error::No(_) | Error::Bad(_) => (InboxError::Protocol, true),
        _ => (InboxError::Protocol, false),
    };
    ImapError { reason, detail: e.to_string(), refused }
}

/// The byte stream under the session: plain TCP or TLS over it.
#[derive(Debug)]
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

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
}

async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result.map_err(classify),
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
        let secure = |tcp: TcpStream| async {
            let name = ServerName::try_from(config.host.clone())
                .map_err(|e| ImapError::new(InboxError::Tls, format!("server name {:?}: {e}", config.host)))?;
            let stream = tokio::time::timeout(limit, TlsConnector::from(tls.clone()).connect(name, tcp))
                .await
                .map_err(|_| ImapError::new(InboxError::Timeout, "TLS handshake: no answer in time"))?
                .map_err(|e| ImapError::new(InboxError::Tls, format!("TLS handshake: {e}")))?;
            Ok::<_, ImapError>(Connection::Tls(Box::new(stream)))
        };
        let mut client = match config.tls_mode() {
            TlsMode::Tls => Client::new(secure(tcp).await?),
            TlsMode::None | TlsMode::Starttls => Client::new(Connection::Plain(tcp)),
        };
        within(limit, "greeting", async {
            client.read_response().await?.ok_or(async_imap::error::Error::ConnectionLost)
        })
        .await?;
        if config.tls_mode() == TlsMode::Starttls {
            within(limit, "STARTTLS", client.run_command_and_check_ok("STARTTLS", None))
                .await
                .map_err(|e| ImapError::new(InboxError::Tls, format!("server refused STARTTLS: {}", e.detail)))?;
            let Connection::Plain(tcp) = client.into_inner() else { unreachable!("STARTTLS starts on plain TCP") };
            client = Client::new(secure(tcp).await?);
        }
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
                logged_in(result, mechanism.as_str())?
            }
            (_, _, Some(password)) => {
                let login = tokio::time::timeout(limit, client.login(&config.username, password.expose()))
                    .await
                    .map_err(|_| ImapError::new(InboxError::Timeout, "LOGIN: no answer in time"))?;
                logged_in(login, "login")?
            }
            _ => return Err(ImapError::new(InboxError::Auth, "no password and no oauth2 configured")),
        };
        let mut this = ImapSession {
            session: Some(session),
            timeout: limit,
            capabilities: Capabilities::default(),
            selected: None,
        };
        let caps = within(limit, "CAPABILITY", this.session()?.capabilities()).await?;
        this.capabilities =
            Capabilities { idle: caps.has_str("IDLE"), mv: caps.has_str("MOVE"), uidplus: caps.has_str("UIDPLUS") };
        Ok(this)
    }

    fn session(&mut self) -> Result<&mut Session<Connection>, ImapError> {
        self.session.as_mut().ok_or_else(|| ImapError::new(InboxError::Protocol, "session lost in IDLE"))
    }

    /// Discards the server's unsolicited responses (we read state explicitly).
    fn drain(&mut self) {
        if let Some(s) = self.session.as_mut() {
            while s.unsolicited_responses.try_recv().is_ok() {}
        }
    }

    /// UIDVALIDITY and UIDNEXT of `folder`, without selecting it.
    pub async fn status(&mut self, folder: &str) -> Result<FolderState, ImapError> {
        let limit = self.timeout;
        let mailbox = within(limit, "STATUS", self.session()?.status(folder, "(UIDNEXT UIDVALIDITY)")).await?;
        self.drain();
        folder_state(folder, mailbox.uid_validity, mailbox.uid_next)
    }

    /// Selects `folder` (read-write, for cleanup) unless it already is.
    pub async fn select(&mut self, folder: &str) -> Result<FolderState, ImapError> {
        let limit = self.timeout;
        self.selected = None;
        let mailbox = within(limit, "SELECT", self.session()?.select(folder)).await?;
        self.drain();
        let state = folder_state(folder, mailbox.uid_validity, mailbox.uid_next)?;
        self.selected = Some((folder.to_string(), state));
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
        let mut uids: Vec<u32> =
            within(limit, "UID SEARCH", self.session()?.uid_search(criteria)).await?.into_iter().collect();
        self.drain();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The `fields` headers (and arrival time) of the messages in the UID
    /// `set` of the selected folder whose UID is at least `min`, in UID order.
    pub async fn headers(&mut self, set: &str, min: u32, fields: &str) -> Result<Vec<Fetched>, ImapError> {
        let limit = self.timeout;
        let query = format!("(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({fields})])");
        let session = self.session()?;
        let fetched = within(limit, "UID FETCH", async {
            let stream = session.uid_fetch(set, &query).await?;
            stream.try_collect::<Vec<_>>().await
        })
        .await?;
        self.drain();
        // `n:*` always includes the last message, even when its UID is below n.
        let mut out: Vec<Fetched> = fetched
            .iter()
            .filter_map(|f| {
                Some(Fetched {
                    uid: f.uid?,
                    headers: f.header().unwrap_or_default().to_vec(),
                    received_ms: f.internal_date().map(|d| d.timestamp_millis()),
                })
            })
            .filter(|m| m.uid >= min)
            .collect();
        out.sort_by_key(|m| m.uid);
        Ok(out)
    }

    /// Up to the first `limit` bytes of message `uid` of the selected folder
    /// (None if it is gone).
    pub async fn message(&mut self, uid: u32, limit: usize) -> Result<Option<Vec<u8>>, ImapError> {
        let timeout = self.timeout;
        let query = format!("(UID BODY.PEEK[]<0.{limit}>)");
        let session = self.session()?;
        let fetched = within(timeout, "UID FETCH", async {
            let stream = session.uid_fetch(uid.to_string(), &query).await?;
            stream.try_collect::<Vec<_>>().await
        })
        .await?;
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
        let session = self.session()?;
        within(limit, "UID STORE", async {
            session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect::<Vec<_>>().await
        })
        .await?;
        let session = self.session()?;
        within(limit, "EXPUNGE", async {
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
            within(limit, "UID MOVE", self.session()?.uid_mv(&set, folder)).await?;
        } else {
            within(limit, "UID COPY", self.session()?.uid_copy(&set, folder)).await?;
            self.delete(uids).await?;
        }
        self.drain();
        Ok(())
    }

    /// Keeps the session alive and lets the server report changes.
    pub async fn noop(&mut self) -> Result<(), ImapError> {
        let limit = self.timeout;
        within(limit, "NOOP", self.session()?.noop()).await?;
        self.drain();
        Ok(())
    }

    /// Waits in IDLE on the selected folder for up to `wait`, or until
    /// `interrupt` completes.
    pub async fn idle(&mut self, wait: Duration, interrupt: impl Future<Output = ()>) -> Result<Woken, ImapError> {
        let limit = self.timeout;
        let session = self.session.take().ok_or_else(|| ImapError::new(InboxError::Protocol, "no session"))?;
        let mut handle = session.idle();
        within(limit, "IDLE", handle.init()).await?;
        let woken = {
            let (wait_fut, stop) = handle.wait_with_timeout(wait);
            tokio::pin!(wait_fut);
            tokio::pin!(interrupt);
            tokio::select! {
                result = &mut wait_fut => match result.map_err(classify)? {
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
        let session = within(limit, "DONE", handle.done()).await?;
        self.session = Some(session);
        self.drain();
        Ok(woken)
    }

    /// Says goodbye, briefly.
    pub async fn logout(mut self) {
        if let Some(mut s) = self.session.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.logout()).await;
        }
    }
}

/// The session after LOGIN or AUTHENTICATE, or why there is none.
fn logged_in(
    result: Result<Session<Connection>, (async_imap::error::Error, Client<Connection>)>,
    what: &str,
) -> Result<Session<Connection>, ImapError> {
    match result {
        Ok(session) => Ok(session),
        Err((async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text), _)) => {
            Err(ImapError::new(InboxError::Auth, format!("{what} refused: {text}")))
        }
        Err((e, _)) => Err(classify(e)),
    }
}

/// No access token: the token endpoint's failure, under the inbox's reasons.
fn token_error(e: TokenError) -> ImapError {
    let reason = match e.kind {
        TokenErrorKind::Refused => InboxError::Auth,
        TokenErrorKind::Connect => InboxError::Connect,
        TokenErrorKind::Tls => InboxError::Tls,
        TokenErrorKind::Timeout => InboxError::Timeout,
        TokenErrorKind::Protocol => InboxError::Protocol,
    };
    ImapError::new(reason, e.to_string())
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
