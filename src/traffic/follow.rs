//! Following a log file the way `tail -F` does, and surviving what
//! logrotate and operators do to it: a rotation (the name now points at a
//! new file: the old one is read to its end first, then the new one from
//! its start), a truncation (the file is shorter than what was read: read
//! again from its start), a file that is not there yet. Only whole lines
//! are taken. Where it stands (the file's inode and the offset after the
//! last whole line) is saved in the ledger with the events of those
//! lines, so a restart neither skips nor repeats a line; one rotated away
//! while it was stopped is finished from `<file>.1` when that is it.

use super::postfix_log::Joiner;
use super::recipient::Recipients;
use super::writer::Writer;
use crate::config::{PostfixLogSource, StartAt};
use crate::ledger::{LedgerThread, TrafficWrite};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Bytes read per poll at most: a backlog is taken in steps.
const CHUNK: usize = 1024 * 1024;
/// A line longer than this is cut (Postfix's own limit is far below).
const MAX_LINE: usize = 64 * 1024;
/// Bytes before a saved position read again (not recorded) on a restart,
/// so the messages in the queue then keep the keys they were recorded under.
const REREAD: u64 = 4 * 1024 * 1024;

/// Where a follower stands in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub inode: u64,
    pub offset: u64,
}

/// A file followed by name.
pub struct Tail {
    path: PathBuf,
    file: Option<(File, u64)>,
    /// After the last whole line taken.
    offset: u64,
    /// The line being read (at most [`MAX_LINE`] bytes of it kept)...
    partial: Vec<u8>,
    /// ...and how long it really is so far.
    partial_bytes: u64,
}

impl Tail {
    /// Follows `path` from `resume`, or (with no position saved) from its
    /// start or its end.
    pub fn new(path: &Path, resume: Option<Position>, start_at: StartAt) -> Tail {
        let mut tail = Tail { path: path.to_path_buf(), file: None, offset: 0, partial: Vec::new(), partial_bytes: 0 };
        let current = std::fs::metadata(path).ok();
        match (resume, current) {
            (Some(p), Some(m)) if m.ino() == p.inode => tail.open_at(path, p.offset),
            (Some(p), _) => {
                // Rotated while stopped: finish the old file if it is `<path>.1`.
                let rotated = PathBuf::from(format!("{}.1", path.display()));
                if std::fs::metadata(&rotated).is_ok_and(|m| m.ino() == p.inode) {
                    tail.open_at(&rotated, p.offset);
                }
            }
            (None, Some(m)) if start_at == StartAt::End => tail.open_at(path, m.len()),
            (None, _) => {}
        }
        tail
    }

    fn open_at(&mut self, path: &Path, offset: u64) {
        if let Ok(mut f) = File::open(path)
            && let Ok(m) = f.metadata()
        {
            let offset = if offset > m.len() { 0 } else { offset };
            if f.seek(SeekFrom::Start(offset)).is_ok() {
                self.file = Some((f, m.ino()));
                self.offset = offset;
                self.partial.clear();
                self.partial_bytes = 0;
            }
        }
    }

    /// The whole lines in the `max` bytes before where it stands (none at
    /// the file's start): what was read before a restart.
    pub fn before(&self, max: u64) -> Vec<String> {
        let Some((file, _)) = &self.file else { return Vec::new() };
        let start = self.offset.saturating_sub(max);
        // Read at a position: the file's own cursor stays where it stands.
        let mut buf = vec![0u8; (self.offset - start) as usize];
        if file.read_exact_at(&mut buf, start).is_err() {
            return Vec::new();
        }
        let text = String::from_utf8_lossy(&buf);
        let mut lines = text.lines();
        if start > 0 {
            lines.next(); // cut
        }
        lines.map(|l| l.chars().take(MAX_LINE).collect()).collect()
    }

    /// Where the next line starts.
    pub fn position(&self) -> Option<Position> {
        self.file.as_ref().map(|(_, inode)| Position { inode: *inode, offset: self.offset })
    }

    /// The whole lines appended since the last call (at most about
    /// [`CHUNK`] bytes of them).
    pub fn poll(&mut self) -> std::io::Result<Vec<String>> {
        if self.file.is_none() {
            self.open_at(&self.path.clone(), 0);
        }
        let Some((file, inode)) = self.file.as_mut() else { return Ok(Vec::new()) };
        let inode = *inode;
        let mut buf = vec![0u8; CHUNK];
        let n = file.read(&mut buf)?;
        let len = file.metadata()?.len();
        let mut lines = self.take(&buf[..n]);
        if n > 0 {
            return Ok(lines);
        }
        // At the end: has the name moved on to a new file, or was this one cut?
        match std::fs::metadata(&self.path) {
            Ok(m) if m.ino() != inode => {
                // The old file's last line, if it had no newline, is whole now.
                if self.partial_bytes > 0 {
                    lines.push(String::from_utf8_lossy(&self.partial).into_owned());
                }
                self.open_at(&self.path.clone(), 0);
            }
            _ if len < self.offset + self.partial_bytes => self.open_at(&self.path.clone(), 0),
            _ => {}
        }
        Ok(lines)
    }

    /// Splits `data` into whole lines, keeping a trailing part for later.
    fn take(&mut self, data: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for piece in data.split_inclusive(|b| *b == b'\n') {
            let (text, whole) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            let room = MAX_LINE.saturating_sub(self.partial.len());
            self.partial.extend_from_slice(&text[..text.len().min(room)]);
            self.partial_bytes += piece.len() as u64;
            if whole {
                lines.push(String::from_utf8_lossy(&self.partial).into_owned());
                self.offset += self.partial_bytes;
                self.partial.clear();
                self.partial_bytes = 0;
            }
        }
        lines
    }
}

/// A `postfix_log` source: its file followed, its lines joined into
/// events, each poll's events recorded with the position after them.
pub struct Follower {
    config: PostfixLogSource,
    recipients: Recipients,
    writer: Writer,
    ledger: LedgerThread,
}

impl Follower {
    pub fn new(config: PostfixLogSource, recipients: Recipients, writer: Writer, ledger: LedgerThread) -> Follower {
        Follower { config, recipients, writer, ledger }
    }

    /// Follows until `stop`.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let name = self.config.name.clone();
        let resume = match self
            .ledger
            .call({
                let n = name.clone();
                move |l| l.traffic_cursor(&n)
            })
            .await
        {
            Ok(saved) => saved.and_then(|s| serde_json::from_str::<Position>(&s).ok()),
            Err(e) => {
                tracing::error!(source = %name, error = %e, "cannot read where the log source stood; starting afresh");
                None
            }
        };
        let mut tail = Tail::new(&self.config.file, resume, self.config.start_at);
        let mut joiner = Joiner::default();
        if resume.is_some() {
            let now_ms = chrono::Utc::now().timestamp_millis();
            for line in tail.before(REREAD) {
                let _ = joiner.line(&line, now_ms);
            }
        }
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(source = %name, file = %self.config.file.display(), "following the Postfix log");
        // A write the ledger could not take yet: tried again before reading on.
        let mut pending: Option<TrafficWrite> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = crate::shutdown::stopped(&mut stop) => return,
            }
            // Read until caught up, recording each chunk before the next.
            loop {
                let write = match pending.take() {
                    Some(write) => write,
                    None => match tail.poll() {
                        Ok(lines) if lines.is_empty() => break,
                        Ok(lines) => self.write(&name, &mut joiner, &lines, tail.position()),
                        Err(e) => {
                            tracing::warn!(source = %name, error = %e, "cannot read the log");
                            break;
                        }
                    },
                };
                if let Err(e) = self.writer.record(write.clone()).await {
                    tracing::error!(source = %name, error = %e, "cannot record the log's events; trying again");
                    pending = Some(write);
                    break;
                }
            }
        }
    }

    /// The write of `lines`' events and of the position after them.
    fn write(&self, name: &str, joiner: &mut Joiner, lines: &[String], position: Option<Position>) -> TrafficWrite {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut events: Vec<_> = lines.iter().flat_map(|l| joiner.line(l, now_ms)).collect();
        for e in &mut events {
            e.recipient = Some(self.recipients.keep(&e.message_id, e.recipient.as_deref()));
        }
        TrafficWrite {
            source: name.to_string(),
            provider: self.config.provider.clone(),
            events,
            cursor: position.and_then(|p| serde_json::to_string(&p).ok()),
            nonce: None,
        }
    }
}

#[cfg(test)]
mod tests;
