//! The watcher's cursors: where it stopped reading each folder. This
//! watcher is a cursor's only writer, so it keeps each in memory: a poll
//! that finds nothing new asks nothing of the ledger, and an unmoved
//! cursor is not written.

use super::Watcher;
use std::collections::HashMap;

impl Watcher {
    fn cursors(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, u32)>> {
        self.cursors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `folder`'s cursor (UID validity, next UID): the ledger is read once.
    pub(super) async fn cursor(&self, folder: &str) -> Option<(u32, u32)> {
        if let Some(cursor) = self.cursors().get(folder) {
            return Some(*cursor);
        }
        let (inbox, f) = (self.name().to_string(), folder.to_string());
        match self.shared.ledger.call(move |l| l.cursor(&inbox, &f)).await {
            Ok(cursor) => {
                if let Some(cursor) = cursor {
                    self.cursors().insert(folder.to_string(), cursor);
                }
                cursor
            }
            Err(e) => {
                tracing::error!(error = %e, "ledger read failed");
                None
            }
        }
    }

    /// Moves `folder`'s cursor. Nobody waits for the write (the ledger
    /// syncs it with its next durable one): lost in a power cut, it costs a
    /// few messages read again, which the matcher knows already.
    pub(super) fn save_cursor(&self, folder: &str, uid_validity: u32, next_uid: u32) {
        if self.cursors().insert(folder.to_string(), (uid_validity, next_uid)) == Some((uid_validity, next_uid)) {
            return;
        }
        let (inbox, f) = (self.name().to_string(), folder.to_string());
        // Not written: forgotten here too, so that the next save writes it.
        let (cursors, forget) = (self.cursors.clone(), folder.to_string());
        self.shared.ledger.write_behind(
            "cursor",
            move |l| l.set_cursor(&inbox, &f, uid_validity, next_uid),
            move || {
                cursors.lock().unwrap_or_else(|p| p.into_inner()).remove(&forget);
            },
        );
    }
}
