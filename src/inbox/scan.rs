//! How a watcher reads its folders: each in turn, from its cursor (a
//! folder seen for the first time, or recreated, is searched for the
//! canaries of the last day), a batch of headers at a time, each batch
//! handed to classify.rs and the cursor moved past it.

use super::imap::{self, ImapError, ImapSession};
use super::{TOKEN_HEADER, Watcher, tagged};
use crate::outcome::Placement;
use std::time::Instant;

impl Watcher {
    /// Scans every watched folder; a folder the server refuses is counted
    /// once, skipped, and looked at again at the next round. The spam
    /// folders are looked at while a canary is awaited here (after the
    /// inbox folder: a poll that finds the last one there asks no more),
    /// and at least every `poll_interval` (`spam_looked`: when they were
    /// last; the watcher's IDLE ends in time for it), so that a late
    /// canary there is never left unseen longer.
    pub(super) async fn scan_all(
        &self,
        imap: &mut ImapSession,
        folders: &[(String, Placement)],
        refused: &mut Vec<String>,
        spam_looked: &mut Option<Instant>,
    ) -> Result<(), ImapError> {
        let spam_due = |looked: &Option<Instant>| {
            looked.is_none_or(|t| t.elapsed() >= self.config.imap.poll_interval)
                || self.shared.matcher.waiting_in(self.name()) > 0
        };
        let mut spam = None;
        for (folder, placement) in folders {
            if *placement == Placement::Spam && !*spam.get_or_insert_with(|| spam_due(spam_looked)) {
                continue;
            }
            match self.scan(imap, folder, *placement).await {
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
        if spam == Some(true) {
            *spam_looked = Some(Instant::now());
        }
        Ok(())
    }

    /// Reads every message of `folder` that arrived since the cursor.
    async fn scan(&self, imap: &mut ImapSession, folder: &str, placement: Placement) -> Result<(), ImapError> {
        // STATUS on the selected folder may answer from the session's stale
        // view (Dovecot does): there, NOOP to sync and read from the cursor
        // when the server says the folder grew (or has not for a while).
        let (uid_validity, uid_next) = match imap.selected() {
            Some((selected, state)) if selected == folder => {
                imap.noop().await?;
                if !imap.news() {
                    return Ok(());
                }
                (state.uid_validity, None)
            }
            _ => {
                let state = imap.status(folder).await?;
                (state.uid_validity, Some(state.uid_next))
            }
        };
        let from = match self.cursor(folder).await {
            Some((validity, next)) if validity == uid_validity => {
                if uid_next.is_some_and(|uid_next| next >= uid_next) {
                    return Ok(());
                }
                if uid_next.is_some() {
                    self.clean_waiting(imap, true).await;
                    imap.select(folder).await?;
                    // Read from the cursor now: the selection is no news.
                    imap.news();
                }
                next
            }
            _ => return self.first_scan(imap, folder, placement).await,
        };
        self.read(imap, folder, placement, uid_validity, &format!("{from}:*"), from).await?;
        // STATUS said UIDNEXT: every message below it is read now, or gone
        // before it was (removed by someone else). Else the cursor stays
        // below it, and every look selects the folder for nothing.
        if let Some(uid_next) = uid_next
            && self.cursor(folder).await.is_some_and(|(v, next)| v == uid_validity && next < uid_next)
        {
            self.save_cursor(folder, uid_validity, uid_next);
        }
        Ok(())
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
                self.save_cursor(folder, uid_validity, uid);
                return Err(e);
            }
            if let Some(next) = batch.next_uid() {
                self.save_cursor(folder, uid_validity, next);
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
        self.clean_waiting(imap, true).await;
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
        let next = self
            .cursor(folder)
            .await
            .filter(|(v, _)| *v == state.uid_validity)
            .map_or(0, |(_, n)| n)
            .max(state.uid_next);
        self.save_cursor(folder, state.uid_validity, next);
        Ok(())
    }
}
