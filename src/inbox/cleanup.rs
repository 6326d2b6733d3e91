//! What becomes of a canary once the matcher resolved it (`cleanup`:
//! deleted, moved or kept), and when.
//!
//! Canaries resolved in the inbox folder wait for the ones after them
//! while canaries come here close together (the watcher polls fast, or
//! waits for the next send rather than IDLE), at most [`WAIT_AT_MOST`] and
//! [`AT_MOST`] of them, and are cleaned up together: a STORE and an
//! EXPUNGE (or a MOVE) for the lot rather than for each. Those resolved in
//! another folder are cleaned up at once. Whatever waits is cleaned up
//! before the watcher IDLEs, and before another folder is selected; a stop
//! waits for them (`InboxHandle::cleanups`, crate::service's drain)
//! while a session is up to clean them up. A session that fails keeps
//! them for the next one, which cleans them up
//! once it selects the same folder with the same UIDVALIDITY; if the
//! process dies meanwhile they stay in the mailbox, as after a cleanup
//! that failed: seen and counted already, never counted again (the
//! folder's cursor is past them). The second is looked at when the
//! watcher polls or resolves a canary: at most a fast poll late.

use super::Watcher;
use super::imap::ImapSession;
use crate::config::Cleanup;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a resolved canary waits for its cleanup.
const WAIT_AT_MOST: Duration = Duration::from_secs(1);
/// The most resolved canaries that wait together.
const AT_MOST: usize = 64;

/// Resolved canaries not cleaned up yet: those that wait, and those being
/// cleaned up now.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    uids: Vec<u32>,
    /// The folder's UIDVALIDITY when they were seen: under another, those
    /// UIDs name other messages, never ours to touch.
    validity: u32,
    since: Option<Instant>,
    /// How many are being cleaned up now.
    busy: usize,
    /// Whether a session is up that will clean up `uids`: while none is,
    /// a stop has nothing to wait for.
    session_up: bool,
}

impl Waiting {
    /// How many a stop should wait for.
    pub(super) fn pending(&self) -> usize {
        self.busy + if self.session_up { self.uids.len() } else { 0 }
    }

    /// The inbox folder is selected under `validity`: what waits from
    /// under another names other messages now, never ours to touch.
    fn selected(&mut self, validity: u32, inbox: &str) {
        self.session_up = true;
        if self.validity != validity {
            if !self.uids.is_empty() {
                tracing::debug!(
                    inbox,
                    dropped = self.uids.len(),
                    "the folder's UIDVALIDITY changed: canaries waiting for cleanup are not ours to touch now"
                );
            }
            *self = Waiting { validity, busy: self.busy, session_up: true, ..Waiting::default() };
        }
    }
}

fn lock(waiting: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    waiting.lock().unwrap_or_else(|p| p.into_inner())
}

/// `n` canaries being cleaned up, counted in `busy` until dropped: also
/// when a stop cancels the cleanup midway.
pub(super) struct Busy<'a>(&'a Mutex<Waiting>, usize);

impl<'a> Busy<'a> {
    /// Counts `n` in `waiting`, whose lock the caller holds: taken from
    /// `uids` and counted in one step, they are never out of a stop's count.
    fn start(mutex: &'a Mutex<Waiting>, waiting: &mut Waiting, n: usize) -> Busy<'a> {
        waiting.busy += n;
        Busy(mutex, n)
    }
}

/// Whether a session is up to clean up what waits, until dropped (also
/// when a panic unwinds the watcher): while none is, a stop waits for none.
pub(super) struct SessionUp(pub(super) std::sync::Arc<Mutex<Waiting>>);

impl Drop for SessionUp {
    fn drop(&mut self) {
        lock(&self.0).session_up = false;
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        lock(self.0).busy -= self.1;
    }
}

impl Watcher {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        lock(&self.cleanup_waiting)
    }

    /// Counts `n` messages as cleanups to come until dropped: while they
    /// are handed to the matcher, and until those it resolves are counted.
    pub(super) fn cleanup_pending(&self, n: usize) -> Busy<'_> {
        Busy::start(&self.cleanup_waiting, &mut self.waiting(), n)
    }

    /// Cleans up `uids`, resolved in `folder` (the one selected): at once
    /// in another folder; in the inbox folder with the next ones, or before
    /// the watcher IDLEs.
    pub(super) async fn resolved(&self, imap: &mut ImapSession, uids: &[u32], folder: &str) {
        if uids.is_empty() || matches!(self.config.cleanup, Cleanup::Keep) {
            return;
        }
        let validity = imap.selected().map(|(_, s)| s.uid_validity);
        let Some(validity) = validity.filter(|_| folder == self.config.folders.inbox) else {
            let _busy = Busy::start(&self.cleanup_waiting, &mut self.waiting(), uids.len());
            return self.cleanup(imap, uids, folder).await;
        };
        {
            let mut waiting = self.waiting();
            waiting.selected(validity, self.name());
            waiting.uids.extend_from_slice(uids);
            waiting.since.get_or_insert_with(Instant::now);
        }
        // Cleaned up with the next ones, or once the watcher IDLEs.
        self.clean_waiting(imap, false).await;
    }

    /// Cleans up the canaries that wait, if the inbox folder is selected
    /// (under the UIDVALIDITY they were seen with) and `now`, or they have
    /// waited long enough or are many enough.
    pub(super) async fn clean_waiting(&self, imap: &mut ImapSession, now: bool) {
        let Some((folder, state)) = imap.selected() else { return };
        if folder != self.config.folders.inbox {
            return;
        }
        let (uids, _busy) = {
            let mut waiting = self.waiting();
            waiting.selected(state.uid_validity, self.name());
            let due =
                now || waiting.uids.len() >= AT_MOST || waiting.since.is_some_and(|t| t.elapsed() >= WAIT_AT_MOST);
            if waiting.uids.is_empty() || !due {
                return;
            }
            waiting.since = None;
            let uids = std::mem::take(&mut waiting.uids);
            let busy = Busy::start(&self.cleanup_waiting, &mut waiting, uids.len());
            (uids, busy)
        };
        let folder = folder.to_string();
        self.cleanup(imap, &uids, &folder).await;
    }

    /// Waits up to `wait` for the next send into this inbox; whether one
    /// came, or the answer to a cleanup meanwhile said the folder grew.
    /// Resolved canaries wait with it for the ones it brings, and are
    /// cleaned up once they have waited [`WAIT_AT_MOST`].
    pub(super) async fn wait_for_send(&mut self, imap: &mut ImapSession, wait: Duration) -> bool {
        let until = tokio::time::Instant::now() + wait;
        // Once: a cleanup that cannot be done here (another folder is
        // selected) is done before the watcher IDLEs.
        let mut due = self.waiting().since.map(|t| tokio::time::Instant::from_std(t + WAIT_AT_MOST));
        loop {
            let cleanup_at = due.unwrap_or(until);
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return false,
                _ = super::next_send(&mut self.sent) => return true,
                _ = tokio::time::sleep_until(cleanup_at), if due.is_some() => {}
            }
            due = None;
            self.clean_waiting(imap, false).await;
            if imap.news_pending() {
                return true;
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_waits_for_what_a_session_is_up_to_clean_up_and_for_what_is_being_cleaned_up() {
        let waiting = Mutex::new(Waiting { uids: vec![7, 8], session_up: true, ..Waiting::default() });
        assert_eq!(lock(&waiting).pending(), 2);
        {
            let _busy = Busy::start(&waiting, &mut lock(&waiting), 3);
            assert_eq!(lock(&waiting).pending(), 5);
            // The session fails meanwhile: what waits is the next session's,
            // and a stop does not wait for a session that may never come.
            lock(&waiting).session_up = false;
            assert_eq!(lock(&waiting).pending(), 3, "the cleanup under way is still waited for");
        }
        assert_eq!(lock(&waiting).pending(), 0, "a cleanup cancelled midway is no longer waited for");
        assert_eq!(lock(&waiting).uids, [7, 8], "kept for the next session");
    }

    #[test]
    fn what_waits_from_under_another_uidvalidity_is_dropped_when_the_folder_is_selected() {
        let mut waiting = Waiting { uids: vec![7, 8], validity: 1, busy: 1, ..Waiting::default() };
        waiting.selected(1, "box");
        assert_eq!((waiting.uids.len(), waiting.pending()), (2, 3), "the same folder: kept, and waited for");
        waiting.session_up = false;
        waiting.selected(2, "box");
        assert!(waiting.uids.is_empty() && waiting.since.is_none(), "another folder now: not ours to touch");
        assert_eq!((waiting.validity, waiting.pending()), (2, 1), "only the cleanup under way is waited for");
    }
}
