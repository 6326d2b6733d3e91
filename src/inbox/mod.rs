//! The inbox watcher: one task and one IMAP session per inbox, serving every
//! route that ends there. It learns new messages by UID from a cursor kept
//! in the ledger (never a full-mailbox scan per tick), verifies tokens, hands
//! genuine canaries to the matcher, and cleans up only what the matcher
//! resolved. In a provider's bounce inbox it also reads delivery status
//! notifications (crate::bounce) that return a canary. It waits in IDLE,
//! polls fast for a short window after a send (servers may hold IDLE
//! notifications back), and reconnects with capped exponential backoff.
//!
//! This file holds the watcher's life and its session loop: connecting,
//! scanning folders from the cursor, waiting. What each fetched message is
//! and what becomes of it is decided in classify.rs, application canaries'
//! part in tagged.rs, the IMAP protocol in imap.rs.

mod classify;
mod cleanup;
mod cursor;
pub mod imap;
mod scan;
mod tagged;

use crate::canary::{SigningKey, TOKEN_HEADER};
use crate::config::{FastPoll, InboxConfig};
use crate::ledger::LedgerThread;
use crate::matcher::Matcher;
use crate::metrics::Metrics;
use crate::oauth2::TokenSource;
use crate::outcome::Placement;
use imap::{ImapError, ImapSession, Woken};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_rustls::rustls::ClientConfig;

/// Headers fetched for each new message: the token, and what the receiving
/// servers say about the path (crate::insight); where the recipient and
/// sender stand, for application canaries (crate::trigger); in a bounce
/// inbox also what tells a bounce apart (crate::bounce).
const FIELDS: &str = "X-Mailcanary-Token Authentication-Results Received To Delivered-To X-Original-To From Subject";
const BOUNCE_FIELDS: &str = "X-Mailcanary-Token Authentication-Results Received To Delivered-To X-Original-To \
                             From Subject Content-Type";
const BACKOFF_START: Duration = Duration::from_millis(500);
/// The first fast poll after a send; it doubles up to `fast_poll.interval`.
const FAST_START: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A session must stay up this long before a failure retries quickly again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// What every watcher shares with the rest of the service.
pub struct Shared {
    pub instance: String,
    /// The current signing key first, then retired ones.
    pub keys: Vec<SigningKey>,
    pub matcher: Arc<Matcher>,
    pub metrics: Arc<Metrics>,
    pub ledger: LedgerThread,
    pub fast_poll: FastPoll,
}

/// The probe side of a watcher: tells it a canary is on its way.
#[derive(Clone)]
pub struct InboxHandle {
    sent: Arc<watch::Sender<Instant>>,
    cleanup: Arc<Mutex<cleanup::Waiting>>,
}

impl InboxHandle {
    /// A canary was just accepted for this inbox: poll fast for a while.
    pub fn canary_sent(&self) {
        self.sent.send_replace(Instant::now());
    }

    /// How many canaries seen in this inbox are not cleaned up yet, of
    /// those a session is up to clean up.
    pub fn cleanups(&self) -> usize {
        self.cleanup.lock().unwrap_or_else(|p| p.into_inner()).pending()
    }
}

/// A watcher built from its config, not yet running: everything about it
/// that can fail (TLS set-up, the OAuth2 client) has been tried.
pub struct Prepared {
    watcher: Watcher,
    sent: watch::Sender<Instant>,
}

/// Builds the watcher of `config`. With `bounces`, it is some provider's
/// bounce inbox and reads DSNs too.
pub fn prepare(config: InboxConfig, bounces: bool, shared: Arc<Shared>) -> Result<Prepared, String> {
    let (tls, tokens) = clients(&config)?;
    // Long ago: no fast polling until the first send.
    let long_ago = Instant::now().checked_sub(shared.fast_poll.window).unwrap_or_else(Instant::now);
    let (sent, sent_rx) = watch::channel(long_ago);
    let (cursors, cleanup_waiting) = (Arc::default(), Arc::default());
    Ok(Prepared {
        watcher: Watcher {
            config,
            bounces,
            tls,
            tokens,
            shared,
            sent: sent_rx,
            logged_in: None,
            cursors,
            cleanup_waiting,
        },
        sent,
    })
}

/// The TLS set-up and the OAuth2 client of an inbox, or why they cannot be
/// made (what `validate` checks, and a reload tries before it stops anything).
pub fn clients(config: &InboxConfig) -> Result<(Arc<ClientConfig>, Option<Arc<TokenSource>>), String> {
    let tls = crate::tls::client_config(config.imap.ca_file.as_deref(), config.imap.insecure_skip_verify)
        .map_err(|e| format!("inbox {}: {e}", config.name))?;
    let tokens = match &config.imap.oauth2 {
        Some(oauth2) => Some(Arc::new(
            TokenSource::new(oauth2, config.imap.ca_file.as_deref(), config.imap.timeout)
                .map_err(|e| format!("inbox {}: oauth2: {e}", config.name))?,
        )),
        None => None,
    };
    Ok((tls, tokens))
}

impl Prepared {
    /// Starts watching, until `shutdown` says stop; a panic restarts it.
    pub fn start(self, shutdown: watch::Receiver<bool>) -> (InboxHandle, tokio::task::JoinHandle<()>) {
        let Prepared { watcher, sent } = self;
        let cleanup = watcher.cleanup_waiting.clone();
        let name = watcher.config.name.clone();
        if watcher.config.imap.insecure_skip_verify {
            tracing::warn!(inbox = %name, "TLS certificate verification is OFF for this inbox (insecure_skip_verify)");
        }
        watcher.shared.metrics.init_inbox(&name);
        let metrics = watcher.shared.metrics.clone();
        let stop = shutdown.clone();
        let task = crate::supervise::spawn(format!("inbox:{name}"), metrics, stop, move || {
            watcher.clone().run(shutdown.clone())
        });
        (InboxHandle { sent: Arc::new(sent), cleanup }, task)
    }
}

#[derive(Clone)]
struct Watcher {
    config: InboxConfig,
    bounces: bool,
    tls: Arc<ClientConfig>,
    /// Access tokens, for an inbox that logs in with OAuth2.
    tokens: Option<Arc<TokenSource>>,
    shared: Arc<Shared>,
    sent: watch::Receiver<Instant>,
    /// When the current session logged in.
    logged_in: Option<Instant>,
    /// Each folder's cursor as last read from or written to the ledger:
    /// this watcher is its only writer, so a poll that finds nothing new
    /// asks nothing of the ledger, and an unmoved cursor is not written.
    cursors: Arc<Mutex<HashMap<String, (u32, u32)>>>,
    /// Resolved canaries not cleaned up yet: waiting for the next ones, or
    /// being cleaned up (cleanup.rs). A stop waits for them
    /// (`InboxHandle::cleanups`).
    cleanup_waiting: Arc<Mutex<cleanup::Waiting>>,
}

/// Resolves when a canary is sent into this inbox. Once no route can send
/// here any more (its handle is gone), never: a bounce inbox, or one kept
/// for canaries of a removed route, waits in IDLE like any other.
async fn next_send(sent: &mut watch::Receiver<Instant>) {
    if sent.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Watcher {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn fields(&self) -> &'static str {
        if self.bounces { BOUNCE_FIELDS } else { FIELDS }
    }

    /// Sessions, one after another, until `shutdown` says stop (or its
    /// sender is gone). Stopping cancels whatever IMAP command is in flight.
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_START;
        loop {
            self.logged_in = None;
            let result = {
                // Down when the session ends, fails or panics.
                let _up = cleanup::SessionUp(self.cleanup_waiting.clone());
                tokio::select! {
                    result = self.session() => result,
                    _ = crate::shutdown::stopped(&mut shutdown) => break,
                }
            };
            self.shared.matcher.inbox_behind(self.name());
            self.shared.metrics.set_inbox_up(self.name(), false);
            let e = match result {
                Ok(never) => match never {},
                Err(e) => e,
            };
            // Only a session that stayed healthy for a while earns a quick
            // retry: one that fails soon after login keeps backing off.
            if self.logged_in.is_some_and(|t| t.elapsed() >= HEALTHY_AFTER) {
                backoff = BACKOFF_START;
            }
            self.shared.metrics.inbox_error(self.name(), e.reason);
            tracing::warn!(inbox = %self.name(), reason = e.reason.as_str(), error = %e.detail, retry_in_seconds = backoff.as_secs_f64(), "inbox session failed");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = crate::shutdown::stopped(&mut shutdown) => break,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        self.shared.matcher.inbox_behind(self.name());
        self.shared.metrics.set_inbox_up(self.name(), false);
    }

    /// One session, from login until it fails.
    async fn session(&mut self) -> Result<std::convert::Infallible, ImapError> {
        let mut imap = ImapSession::connect(&self.config.imap, self.tls.clone(), self.tokens.as_deref()).await?;
        self.logged_in = Some(Instant::now());
        tracing::info!(inbox = %self.name(), idle = imap.capabilities.idle, "inbox connected");
        // The inbox folder first: once the canaries awaited are found
        // there, the spam folders can wait (scan.rs).
        let mut folders = vec![(self.config.folders.inbox.clone(), Placement::Inbox)];
        folders.extend(self.config.folders.spam.iter().map(|f| (f.clone(), Placement::Spam)));
        let mut spam_looked = None;
        let mut news_skipped = false;
        // Folders the server refuses (deleted, renamed): counted, skipped, retried.
        let mut refused: Vec<String> = Vec::new();
        let mut last_send = *self.sent.borrow();
        let mut fast_delay = self.shared.fast_poll.interval;
        // Woken by a send: the canary was accepted a moment ago and cannot
        // be in the folder yet, so the first look waits for the first fast poll.
        let mut just_sent = false;
        loop {
            if std::mem::take(&mut just_sent) {
                tokio::time::sleep(FAST_START.min(self.shared.fast_poll.interval)).await;
            }
            let headers_read = imap.headers_read();
            self.scan_all(&mut imap, &folders, &mut refused, &mut spam_looked).await?;
            if imap.headers_read() != headers_read {
                // The news was real: the next news may skip IDLE again.
                news_skipped = false;
            }
            // Everything there is has been seen; what comes next will wake us.
            self.shared.matcher.inbox_caught_up(self.name());
            self.shared.metrics.set_inbox_up(self.name(), true);
            let fast = &self.shared.fast_poll;
            let sent = *self.sent.borrow_and_update();
            if sent != last_send {
                // A new canary: start polling quickly again.
                last_send = sent;
                fast_delay = FAST_START.min(fast.interval);
            }
            if sent.elapsed() < fast.window && self.shared.matcher.waiting_in(self.name()) > 0 {
                // Local delivery takes milliseconds, a provider's seconds: poll
                // soon, then less often, up to the configured interval.
                self.clean_waiting(&mut imap, false).await;
                tokio::time::sleep(fast_delay).await;
                fast_delay = (fast_delay * 2).min(fast.interval);
                continue;
            }
            // Nothing awaited, but canaries come here often: the next send
            // is likely before IDLE would pay for itself (IDLE and DONE, two
            // round trips a canary). Wait for it, or for the window's end
            // (never past `poll_interval`), and then IDLE: entering IDLE
            // reports what arrived meanwhile. Canaries resolved meanwhile
            // wait for the next ones to be cleaned up with them. A bounce
            // inbox IDLEs at once: its bounces come unannounced.
            let window_left = fast.window.saturating_sub(sent.elapsed()).min(self.config.imap.poll_interval);
            if !window_left.is_zero() && !self.bounces && self.wait_for_send(&mut imap, window_left).await {
                just_sent = true;
                continue;
            }
            // The spam folders are looked at every `poll_interval` (scan.rs).
            let interval = self.config.imap.poll_interval;
            let spam_due = match spam_looked {
                Some(t) if folders.len() > 1 => interval.saturating_sub(t.elapsed()),
                _ => interval,
            };
            just_sent = self.wait_idle(&mut imap, &refused, spam_due, &mut news_skipped).await?;
        }
    }

    /// Waits on the inbox folder, what waits cleaned up first: in IDLE (or
    /// a poll, on a server without it) until the folder changes, a canary
    /// is sent here (true), or `wait` passes. Not at all when a command
    /// since the last look said the folder grew, unless the last wait was
    /// skipped for that already and the look found nothing (`news_skipped`):
    /// a server that says so at every answer costs a look per wait, never
    /// a loop.
    async fn wait_idle(
        &mut self,
        imap: &mut ImapSession,
        refused: &[String],
        wait: Duration,
        news_skipped: &mut bool,
    ) -> Result<bool, ImapError> {
        self.clean_waiting(imap, true).await;
        if wait.is_zero() {
            return Ok(false);
        }
        let interval = wait;
        if imap.selected().map(|(f, _)| f) != Some(self.config.folders.inbox.as_str()) {
            if refused.contains(&self.config.folders.inbox) {
                // Nothing to IDLE on: wait, then look again.
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = next_send(&mut self.sent) => {}
                }
                return Ok(false);
            }
            imap.select(&self.config.folders.inbox).await?;
            self.clean_waiting(imap, true).await;
        }
        if imap.news_pending() && !std::mem::replace(news_skipped, true) {
            // A command since the look (a cleanup, the SELECT) said the
            // folder grew: IDLE would not say it again.
            return Ok(false);
        }
        *news_skipped = false;
        if imap.capabilities.idle {
            return Ok(imap.idle(interval, next_send(&mut self.sent)).await? == Woken::Interrupted);
        }
        let sent = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = next_send(&mut self.sent) => true,
        };
        imap.noop().await?;
        Ok(sent)
    }
}
