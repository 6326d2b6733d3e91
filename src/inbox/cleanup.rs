//! What becomes of a canary once the matcher resolved it (`cleanup`:
//! deleted, moved or kept), and when.
//!
//! At once, unless canaries come to this inbox close together: then those
//! resolved in the inbox folder wait for the ones after them, at most
//! [`WAIT_AT_MOST`] and [`AT_MOST`] of them, and are cleaned up together,
//! a STORE and an EXPUNGE (or a MOVE) for the lot rather than for each.
//! Whatever waits is cleaned up before the watcher waits itself (IDLE, or
//! for the next send), and before another folder is selected; a stop
//! waits for them (`InboxHandle::cleanups`, crate::service's drain). A
//! session that fails keeps them for the next one, which cleans them up
//! once it selects the same folder with the same UIDVALIDITY; if the
//! process dies meanwhile they stay in the mailbox, as after a cleanup
//! that failed: seen and counted already, never counted again (the
//! folder's cursor is past them). The second is looked at when the
//! watcher polls or resolves a canary: at most a fast poll late.

use super::Watcher;
use super::imap::ImapSession;
use crate::config::Cleanup;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest a resolved canary waits for its cleanup.
const WAIT_AT_MOST: Duration = Duration::from_secs(1);
/// The most resolved canaries that wait together.
const AT_MOST: usize = 64;

/// Counts `n` canaries cleaned up (or given up on) when dropped: also when
/// a stop cancels the cleanup midway.
struct Done<'a>(&'a AtomicUsize, usize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

/// Canaries resolved in the inbox folder whose cleanup waits.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    uids: Vec<u32>,
    /// The folder's UIDVALIDITY when they were seen: under another, those
    /// UIDs name other messages, never ours to touch.
    validity: u32,
    since: Option<Instant>,
}

impl Watcher {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.cleanup_waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cleans up `uids`, resolved in `folder` (the one selected): at once,
    /// or with the next ones when more canaries are on their way here.
    pub(super) async fn resolved(&self, imap: &mut ImapSession, uids: &[u32], folder: &str) {
        if uids.is_empty() || matches!(self.config.cleanup, Cleanup::Keep) {
            return;
        }
        let validity = imap.selected().map(|(_, s)| s.uid_validity);
        self.cleanups.fetch_add(uids.len(), Ordering::Relaxed);
        if folder != self.config.folders.inbox || validity.is_none() {
            let _done = Done(&self.cleanups, uids.len());
            return self.cleanup(imap, uids, folder).await;
        }
        {
            let mut waiting = self.waiting();
            if Some(waiting.validity) != validity {
                if !waiting.uids.is_empty() {
                    tracing::debug!(inbox = %self.name(), dropped = waiting.uids.len(), "the folder's UIDVALIDITY changed: canaries waiting for cleanup are not ours to touch now");
                }
                let _dropped = Done(&self.cleanups, waiting.uids.len());
                *waiting = Waiting { validity: validity.unwrap_or_default(), ..Waiting::default() };
            }
            waiting.uids.extend_from_slice(uids);
            if !waiting.uids.is_empty() {
                waiting.since.get_or_insert_with(Instant::now);
            }
        }
        let more_coming = self.shared.matcher.waiting_in(self.name()) > 0;
        self.clean_waiting(imap, !more_coming).await;
    }

    /// Cleans up the canaries that wait, if the inbox folder is selected
    /// (under the UIDVALIDITY they were seen with) and `now`, or they have
    /// waited long enough or are many enough.
    pub(super) async fn clean_waiting(&self, imap: &mut ImapSession, now: bool) {
        let Some((folder, state)) = imap.selected() else { return };
        if folder != self.config.folders.inbox {
            return;
        }
        let uids = {
            let mut waiting = self.waiting();
            let due =
                now || waiting.uids.len() >= AT_MOST || waiting.since.is_some_and(|t| t.elapsed() >= WAIT_AT_MOST);
            if waiting.uids.is_empty() || !due || waiting.validity != state.uid_validity {
                return;
            }
            waiting.since = None;
            std::mem::take(&mut waiting.uids)
        };
        let folder = folder.to_string();
        let _done = Done(&self.cleanups, uids.len());
        self.cleanup(imap, &uids, &folder).await;
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
