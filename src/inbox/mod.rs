//! The inbox watcher: one task and one IMAP session per inbox, serving every
//! route that ends there. It learns new messages by UID from a cursor kept
//! in the ledger (never a full-mailbox scan per tick), verifies tokens, hands
//! genuine canaries to the matcher, and cleans up only what the matcher
//! resolved. In a provider's bounce inbox it also reads delivery status
//! notifications (crate::bounce) that return a canary. It waits in IDLE,
//! polls fast for a short window after a send (servers may hold IDLE
//! notifications back), and reconnects with capped exponential backoff.

pub mod imap;
mod tagged;

use crate::canary::{ConflictingTokens, Rejection, SigningKey, TOKEN_HEADER, Token, check_instance, extract_token};
use crate::config::{Cleanup, FastPoll, InboxConfig};
use crate::ledger::LedgerThread;
use crate::matcher::{Disposition, Matcher, Sight, Sighting};
use crate::metrics::Metrics;
use crate::oauth2::TokenSource;
use crate::outcome::{Placement, Unmatched};
use imap::{Fetched, ImapError, ImapSession};
use std::sync::Arc;
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
/// How much of a bounce is read: the report and the returned headers come
/// first, and a returned body beyond this is not needed.
const BOUNCE_LIMIT: usize = 256 * 1024;
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
}

impl InboxHandle {
    /// A canary was just accepted for this inbox: poll fast for a while.
    pub fn canary_sent(&self) {
        self.sent.send_replace(Instant::now());
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
    Ok(Prepared { watcher: Watcher { config, bounces, tls, tokens, shared, sent: sent_rx, logged_in: None }, sent })
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
        (InboxHandle { sent: Arc::new(sent) }, task)
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
}

/// Resolves when a canary is sent into this inbox. Once no route can send
/// here any more (its handle is gone), never: a bounce inbox, or one kept
/// for canaries of a removed route, waits in IDLE like any other.
async fn next_send(sent: &mut watch::Receiver<Instant>) {
    if sent.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What a fetched message turned out to be.
enum Kind {
    /// A canary the matcher resolved: clean it up.
    Resolved,
    /// Someone else's mail, or one of ours not counted now: left alone.
    LeftAlone,
    /// A delivery status report: read the whole of it.
    Report,
    /// An application canary in flight whose body must be read for its link.
    Tagged(String, Arc<crate::trigger::Expect>),
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
            let result = tokio::select! {
                result = self.session() => result,
                _ = crate::scheduler::stopped(&mut shutdown) => break,
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
                _ = crate::scheduler::stopped(&mut shutdown) => break,
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
        // Spam folders first, so the inbox folder stays selected for IDLE.
        let mut folders: Vec<(String, Placement)> =
            self.config.folders.spam.iter().map(|f| (f.clone(), Placement::Spam)).collect();
        folders.push((self.config.folders.inbox.clone(), Placement::Inbox));
        // Folders the server refuses (deleted, renamed): counted, skipped, retried.
        let mut refused: Vec<String> = Vec::new();
        let mut last_send = *self.sent.borrow();
        let mut fast_delay = self.shared.fast_poll.interval;
        loop {
            for (folder, placement) in &folders {
                match self.scan(&mut imap, folder, *placement).await {
                    Ok(()) => refused.retain(|f| f != folder),
                    Err(e) if e.refused => {
                        // Counted once when it starts, not at every poll.
                        if !refused.contains(folder) {
                            self.shared.metrics.inbox_error(self.name(), e.reason);
                            tracing::warn!(inbox = %self.name(), folder, error = %e.detail, "the server refuses a watched folder; skipping it until it is back");
                            refused.push(folder.clone());
                        }
                    }
                    Err(e) => return Err(e),
                }
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
                tokio::time::sleep(fast_delay).await;
                fast_delay = (fast_delay * 2).min(fast.interval);
                continue;
            }
            if imap.selected().map(|(f, _)| f) != Some(self.config.folders.inbox.as_str()) {
                if refused.contains(&self.config.folders.inbox) {
                    // Nothing to IDLE on: wait, then look again.
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.imap.poll_interval) => {}
                        _ = next_send(&mut self.sent) => {}
                    }
                    continue;
                }
                imap.select(&self.config.folders.inbox).await?;
            }
            if imap.capabilities.idle {
                imap.idle(self.config.imap.poll_interval, next_send(&mut self.sent)).await?;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.imap.poll_interval) => {}
                    _ = next_send(&mut self.sent) => {}
                }
                imap.noop().await?;
            }
        }
    }

    /// Reads every message of `folder` that arrived since the cursor.
    async fn scan(&self, imap: &mut ImapSession, folder: &str, placement: Placement) -> Result<(), ImapError> {
        // STATUS on the selected folder may answer from the session's stale
        // view (Dovecot does): there, NOOP to sync and read from the cursor.
        let (uid_validity, uid_next) = match imap.selected() {
            Some((selected, state)) if selected == folder => {
                imap.noop().await?;
                (state.uid_validity, None)
            }
            _ => {
                let state = imap.status(folder).await?;
                (state.uid_validity, Some(state.uid_next))
            }
        };
        let (inbox, f) = (self.name().to_string(), folder.to_string());
        let cursor = self.shared.ledger.call(move |l| l.cursor(&inbox, &f)).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "ledger read failed");
            None
        });
        let from = match cursor {
            Some((validity, next)) if validity == uid_validity => {
                if uid_next.is_some_and(|uid_next| next >= uid_next) {
                    return Ok(());
                }
                if uid_next.is_some() {
                    imap.select(folder).await?;
                }
                next
            }
            _ => return self.first_scan(imap, folder, placement).await,
        };
        self.read(imap, folder, placement, uid_validity, &format!("{from}:*"), from).await
    }

    /// Reads the messages of the UID `set` from UID `from` on, a batch at a
    /// time, moving the cursor after each: past a message whose headers are
    /// larger than a canary's could be (the session ends with a `protocol`
    /// error, counted once, and that message is never fetched again), and
    /// onto a bounce that could not be read (read again next time).
    async fn read(
        &self,
        imap: &mut ImapSession,
        folder: &str,
        placement: Placement,
        uid_validity: u32,
        set: &str,
        mut from: u32,
    ) -> Result<(), ImapError> {
        loop {
            let batch = imap.fetch_headers(set, from, self.fields()).await?;
            // First sight of these messages: whatever is read of them next
            // (a body, a link followed) is not their latency.
            let at = self.shared.matcher.sight();
            tracing::debug!(inbox = %self.name(), folder, from, fetched = batch.messages.len(), "new messages");
            if let Err((uid, e)) = self.process(imap, folder, placement, &batch.messages, at).await {
                self.save_cursor(folder, uid_validity, uid).await;
                return Err(e);
            }
            if let Some(next) = batch.next_uid() {
                self.save_cursor(folder, uid_validity, next).await;
                from = next;
            }
            if let Some(oversized) = batch.oversized {
                return Err(oversized.error);
            }
            if !batch.more {
                return Ok(());
            }
        }
    }

    /// First sight of a folder (or it was recreated): the server finds the
    /// canaries of the last day (by their token, or by the tags of the
    /// application canaries in flight), so those sent before we connected
    /// are seen, and only they are fetched, however much other mail the
    /// folder holds.
    async fn first_scan(&self, imap: &mut ImapSession, folder: &str, placement: Placement) -> Result<(), ImapError> {
        let state = imap.select(folder).await?;
        let since = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
        let since = since.format("%-d-%b-%Y");
        let mut wanted = vec![format!("HEADER {TOKEN_HEADER} \"\"")];
        if self.bounces {
            wanted.push("HEADER Content-Type \"report\"".to_string());
        }
        // Application canaries carry no token: their tags in flight are looked for.
        wanted.extend(tagged::searches(&self.shared.matcher.tags_in(self.name())));
        let mut uids = Vec::new();
        for criteria in wanted {
            uids.extend(imap.search(&format!("SINCE {since} {criteria}")).await?);
        }
        if !uids.is_empty() {
            tracing::debug!(inbox = %self.name(), folder, found = uids.len(), "canaries of the last day");
            self.read(imap, folder, placement, state.uid_validity, &imap::uid_set(&uids), 0).await?;
        }
        // What arrived after the SELECT is read from the cursor next time.
        let (inbox, f) = (self.name().to_string(), folder.to_string());
        let cursor = self.shared.ledger.call(move |l| l.cursor(&inbox, &f)).await.ok().flatten();
        let next = cursor.filter(|(v, _)| *v == state.uid_validity).map_or(0, |(_, n)| n).max(state.uid_next);
        self.save_cursor(folder, state.uid_validity, next).await;
        Ok(())
    }

    /// Classifies fetched messages and cleans up the ones the matcher
    /// resolved. If a bounce cannot be read, stops there with its UID, so
    /// that the cursor stays on it and it is read again.
    async fn process(
        &self,
        imap: &mut ImapSession,
        folder: &str,
        placement: Placement,
        messages: &[Fetched],
        at: Sight,
    ) -> Result<(), (u32, ImapError)> {
        let mut resolved = Vec::new();
        let mut result = Ok(());
        for message in messages {
            let uid = message.uid;
            let kind = match self.classify(message, placement, at).await {
                Kind::Report => match imap.message(uid, BOUNCE_LIMIT).await {
                    Ok(Some(raw)) => self.classify_report(uid, &raw).await,
                    Ok(None) => Kind::LeftAlone,
                    Err(e) => {
                        // A bounce too large to read is skipped; any other
                        // failure leaves the cursor on it, to read it again.
                        result = Err((if e.too_large() { uid + 1 } else { uid }, e));
                        break;
                    }
                },
                Kind::Tagged(tag, expect) => match imap.message(uid, crate::trigger::expect::BODY_LIMIT).await {
                    Ok(Some(raw)) => {
                        self.check_body(uid, tag, expect, &raw, self.sighting(message, placement, None, at)).await
                    }
                    Ok(None) => Kind::LeftAlone,
                    Err(e) => {
                        result = Err((if e.too_large() { uid + 1 } else { uid }, e));
                        break;
                    }
                },
                kind => kind,
            };
            if matches!(kind, Kind::Resolved) {
                resolved.push(uid);
            }
        }
        // After a refused FETCH the session still works. After a broken or
        // silent one, the canaries resolved before it stay in the mailbox,
        // as after any failed cleanup; they are counted already.
        if result.as_ref().err().is_none_or(|(_, e)| e.refused) {
            self.cleanup(imap, &resolved, folder).await;
        }
        result
    }

    /// Verifies one message's token and hands a genuine canary to the matcher.
    async fn classify(&self, message: &Fetched, placement: Placement, at: Sight) -> Kind {
        let (uid, headers) = (message.uid, &message.headers);
        let token = match extract_token(headers) {
            Ok(None) if self.bounces && crate::bounce::is_report(headers) => return Kind::Report,
            Ok(None) => return self.classify_tagged(message, placement, at).await,
            token => token,
        };
        match self.verify(token) {
            Ok(token) => {
                let sighting = self.sighting(message, placement, None, at);
                match self.shared.matcher.seen(&token, sighting).await {
                    Disposition::Resolved => Kind::Resolved,
                    Disposition::Unmatched(reason) => self.left_alone(uid, reason),
                }
            }
            Err(reason) => self.left_alone(uid, reason),
        }
    }

    fn sighting(
        &self,
        message: &Fetched,
        placement: Placement,
        mismatch: Option<crate::outcome::Expectation>,
        at: Sight,
    ) -> Sighting {
        Sighting {
            at,
            placement,
            insight: crate::insight::read(&message.headers),
            received_ms: message.received_ms,
            mismatch,
        }
    }

    /// Hands a bounce that returns a genuine canary to the matcher. Bounces
    /// of other mail are none of our business and are not counted.
    async fn classify_report(&self, uid: u32, raw: &[u8]) -> Kind {
        let Some(report) = crate::bounce::read(raw) else { return Kind::LeftAlone };
        if matches!(report.token, Ok(None)) {
            return Kind::LeftAlone;
        }
        let token = match self.verify(report.token) {
            Ok(token) => token,
            Err(reason) => return self.left_alone(uid, reason),
        };
        match report.bounce {
            Some(bounce) if bounce.failed() => match self.shared.matcher.bounced(&token, bounce).await {
                Disposition::Resolved => Kind::Resolved,
                Disposition::Unmatched(reason) => self.left_alone(uid, reason),
            },
            Some(bounce) => {
                // A warning that delivery is delayed: the canary may still arrive.
                tracing::info!(inbox = %self.name(), canary = %token.canary_id, action = %bounce.action, status = %bounce.status, "delivery status notice for a canary; still waiting for it");
                Kind::LeftAlone
            }
            None => self.left_alone(uid, Unmatched::Malformed),
        }
    }

    /// The token of a message, verified; the reason to leave it alone if
    /// not (None: a canary of this instance's own `mailcanary check`, which
    /// that check resolves).
    fn verify(&self, token: Result<Option<String>, ConflictingTokens>) -> Result<Token, Option<Unmatched>> {
        let (instance, keys) = (&self.shared.instance, &self.shared.keys);
        match token {
            Ok(Some(text)) => match Token::verify(&text, instance, keys) {
                Ok(token) => Ok(token),
                Err(Rejection::Foreign { instance: other }) if other == check_instance(instance) => {
                    // Signed with our own key, or it is forged.
                    Err(Token::verify(&text, &other, keys).err().map(|_| Unmatched::Forged))
                }
                Err(Rejection::Forged) => Err(Some(Unmatched::Forged)),
                Err(Rejection::Foreign { .. }) => Err(Some(Unmatched::Foreign)),
            },
            // Two different tokens, or none where one was expected.
            Err(ConflictingTokens) | Ok(None) => Err(Some(Unmatched::Forged)),
        }
    }

    /// Leaves message `uid` alone: counted, and said once (the cursor
    /// passes it), unless it is a canary of this instance's own `check`.
    fn left_alone(&self, uid: u32, reason: impl Into<Option<Unmatched>>) -> Kind {
        match reason.into() {
            Some(reason) => {
                tracing::info!(inbox = %self.name(), uid, reason = reason.as_str(), "a message with a canary token left alone");
                self.shared.metrics.unmatched(self.name(), reason);
            }
            None => tracing::debug!(inbox = %self.name(), uid, "a canary of mailcanary check left to it"),
        }
        Kind::LeftAlone
    }

    async fn cleanup(&self, imap: &mut ImapSession, uids: &[u32], folder: &str) {
        let result = match &self.config.cleanup {
            Cleanup::Keep => Ok(()),
            Cleanup::Delete => imap.delete(uids).await,
            Cleanup::Move(to) => imap.move_to(uids, to).await,
        };
        if let Err(e) = result {
            tracing::warn!(inbox = %self.name(), folder, error = %e, "cleanup of seen canaries failed; they stay in the mailbox");
        }
    }

    async fn save_cursor(&self, folder: &str, uid_validity: u32, next_uid: u32) {
        let (inbox, folder) = (self.name().to_string(), folder.to_string());
        let write = self.shared.ledger.call(move |l| l.set_cursor(&inbox, &folder, uid_validity, next_uid));
        if let Err(e) = write.await {
            tracing::error!(error = %e, "ledger write failed");
        }
    }
}
