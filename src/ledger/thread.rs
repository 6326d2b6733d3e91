//! The ledger's own thread: SQLite calls block (on the disk, on a lock
//! someone else holds), so the service never makes them on the runtime.
//! Work is queued in order and done one job at a time; a job queued after
//! another always sees what the earlier one wrote, which is what lets the
//! matcher queue an outcome and then ask about the same canary.
//!
//! Jobs that queued up while the thread was busy are done together in one
//! transaction (a group commit): one sync to disk for all of them instead
//! of one each. No caller hears of its result before that transaction is
//! committed, so what a caller is told was written is on disk as before.
//!
//! A few writes are not worth a sync of their own (a watcher's cursor, a
//! canary's acceptance): lost in a power cut, they cost a folder read again
//! or a canary restored as `sending`, which the service handles anyway.
//! They wait up to [`HOLD_BEHIND`] for a write that must be synced, and
//! are done in its transaction (at a canary a few milliseconds apart, one
//! commit does for several): else they are committed on their own without
//! a sync, synced with the next write that is, or at SQLite's next
//! checkpoint. Nothing queued after them is done before them. A crash of
//! the process while they wait costs what a power cut would.

use super::Ledger;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A ledger call that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    /// The ledger's thread has ended (the process is stopping).
    #[error("the ledger is closed")]
    Closed,
    /// The job ran, but the transaction it was done in was not committed.
    #[error("the ledger could not commit: {0}")]
    Commit(String),
}

/// A job runs, then hears whether what it did was committed (`None`) or
/// not (why), and only then answers its caller.
struct Job {
    run: Box<dyn FnOnce(&Ledger) -> Reply + Send>,
    /// Its commit must be on disk before its caller hears of it.
    synced: bool,
}
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;

/// At most this many jobs share a transaction.
const BATCH: usize = 256;
/// How long writes behind wait for a write that must be synced, to share
/// its transaction (and its sync) rather than have one of their own.
const HOLD_BEHIND: Duration = Duration::from_millis(200);

/// The service's way to the ledger: a queue to the thread that owns it.
#[derive(Clone)]
pub struct LedgerThread {
    jobs: mpsc::Sender<Job>,
}

impl LedgerThread {
    /// Moves `ledger` to a thread of its own; it ends once every handle is dropped.
    pub fn spawn(ledger: Ledger) -> LedgerThread {
        Self::spawn_holding(ledger, HOLD_BEHIND)
    }

    /// [`LedgerThread::spawn`], writes behind waiting up to `hold_behind`.
    fn spawn_holding(ledger: Ledger, hold_behind: Duration) -> LedgerThread {
        let ledger = Arc::new(ledger);
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                for first in queue.iter() {
                    let mut batch: Vec<Job> = std::iter::once(first).chain(queue.try_iter().take(BATCH - 1)).collect();
                    // Writes behind alone wait for one that must be synced.
                    let until = Instant::now() + hold_behind;
                    while batch.len() < BATCH && !batch.iter().any(|job| job.synced) {
                        match queue.recv_timeout(until.saturating_duration_since(Instant::now())) {
                            Ok(job) => {
                                batch.push(job);
                                batch.extend(queue.try_iter().take(BATCH - batch.len()));
                            }
                            // Their time is up, or every handle is gone.
                            Err(_) => break,
                        }
                    }
                    ledger.batch(batch);
                }
            })
            .expect("spawn the ledger thread");
        LedgerThread { jobs }
    }

    /// Queues `f` now (before the returned future is first polled, so that
    /// anything queued after this call sees its effect) and resolves to its
    /// result once it is committed.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Ledger) -> rusqlite::Result<T> + Send + 'static,
    ) -> impl Future<Output = Result<T, LedgerError>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run = Box::new(move |ledger: &Ledger| -> Reply {
            let result = f(ledger);
            Box::new(move |uncommitted: Option<&str>| {
                let _ = tx.send(match uncommitted {
                    None => result.map_err(LedgerError::Db),
                    Some(why) => Err(LedgerError::Commit(why.to_string())),
                });
            })
        });
        let queued = self.jobs.send(Job { run, synced: true });
        async move {
            if queued.is_err() {
                return Err(LedgerError::Closed);
            }
            rx.await.unwrap_or(Err(LedgerError::Closed))
        }
    }

    /// Resolves once everything queued before it, written behind or not,
    /// is committed and on disk.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        // A checkpoint syncs the log first, with whatever it holds. It
        // cannot run inside a batch's transaction (SQLite says "locked"):
        // then once more, alone (at a stop, nothing else is queued).
        let checkpoint = |l: &Ledger| {
            l.with(|db| {
                // (busy, frames in the log, frames checkpointed): busy when
                // a reader (a `report`, a backup) holds the log back.
                let busy: i64 = db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(0))?;
                match busy {
                    0 => Ok(()),
                    _ => Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("another reader holds the ledger's log".into()),
                    )),
                }
            })
        };
        match self.call(checkpoint).await {
            Ok(()) => Ok(()),
            Err(_) => self.call(checkpoint).await,
        }
    }

    /// Queues a write nobody waits for, whose loss in a power cut costs
    /// nothing lasting: committed, but synced to disk only with the next
    /// write that must be (see the module's documentation). Anything
    /// queued after it sees it; its failure is logged here, as `what`.
    /// `failed` runs (on the ledger's thread) when it was not written.
    pub fn write_behind(
        &self,
        what: &'static str,
        f: impl FnOnce(&Ledger) -> rusqlite::Result<()> + Send + 'static,
        failed: impl FnOnce() + Send + 'static,
    ) {
        let run = Box::new(move |ledger: &Ledger| -> Reply {
            let result = f(ledger);
            Box::new(move |uncommitted: Option<&str>| match (result, uncommitted) {
                (Err(e), _) => {
                    tracing::error!(error = %e, what, "ledger write failed");
                    failed();
                }
                (Ok(()), Some(why)) => {
                    tracing::error!(error = why, what, "ledger write not committed");
                    failed();
                }
                (Ok(()), None) => {}
            })
        });
        if self.jobs.send(Job { run, synced: false }).is_err() {
            tracing::warn!(what, "ledger write dropped: the ledger is closed");
        }
    }
}

impl Ledger {
    /// Does `jobs` in order; more than one, in one transaction. A job that
    /// fails leaves the others be (a failing statement undoes only itself;
    /// jobs of several statements are `atomically`); a transaction that
    /// cannot commit fails every job of it.
    fn batch(&self, jobs: Vec<Job>) {
        self.sync_commits(jobs.iter().any(|job| job.synced));
        let grouped = jobs.len() > 1 && self.with(|db| super::run(db, "BEGIN IMMEDIATE", [])).is_ok();
        let replies: Vec<Reply> = jobs.into_iter().map(|job| (job.run)(self)).collect();
        let uncommitted = grouped.then(|| self.commit()).flatten();
        for reply in replies {
            reply(uncommitted.as_deref());
        }
    }

    /// Whether the commits that follow wait for the disk: with the ledger's
    /// write-ahead log, `NORMAL` leaves the sync to the next `FULL` commit
    /// (or checkpoint), which syncs the log with everything before it.
    fn sync_commits(&self, synced: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.synced_commits.load(Relaxed) == synced {
            return;
        }
        let level = if synced { "FULL" } else { "NORMAL" };
        // Never through the statement cache: SQLite may apply a pragma when
        // it compiles the statement, not when it runs it again.
        match self.with(|db| db.pragma_update(None, "synchronous", level)) {
            Ok(()) => self.synced_commits.store(synced, Relaxed),
            // Tried again at the next batch that asks for a change.
            Err(e) => tracing::error!(error = %e, level, "ledger: cannot set how commits sync"),
        }
    }

    /// Commits the open transaction, or says why it is not.
    fn commit(&self) -> Option<String> {
        self.with(|db| {
            if db.is_autocommit() {
                // SQLite rolled it back itself (the disk is full, say).
                return Ok(Some("the transaction was rolled back".to_string()));
            }
            Ok(match super::run(db, "COMMIT", []) {
                Ok(_) => None,
                Err(e) => {
                    let _ = db.execute_batch("ROLLBACK");
                    Some(e.to_string())
                }
            })
        })
        .unwrap_or_else(|e: rusqlite::Error| Some(e.to_string()))
    }
}

impl LedgerThread {
    /// Forgets what is older than `before_ms` with `batch` (rows older than
    /// a time, at most a number of them, in one short transaction), batch
    /// after batch so that other work waits only briefly; how many in all.
    pub async fn prune(
        &self,
        before_ms: i64,
        batch: fn(&Ledger, i64, usize) -> rusqlite::Result<usize>,
    ) -> Result<usize, LedgerError> {
        let mut pruned = 0;
        loop {
            let n = self.call(move |l| batch(l, before_ms, super::PRUNE_BATCH)).await?;
            pruned += n;
            if n < super::PRUNE_BATCH {
                return Ok(pruned);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_run_in_the_order_they_were_queued() {
        let thread = LedgerThread::spawn(Ledger::in_memory().unwrap());
        let first = thread.call(|l| l.set_cursor("i", "INBOX", 1, 10));
        let second = thread.call(|l| l.cursor("i", "INBOX"));
        // Awaited in the opposite order: the second still sees the first.
        assert_eq!(second.await.unwrap(), Some((1, 10)));
        first.await.unwrap();
    }

    /// Holds the ledger's thread (returns once it is held) until the
    /// returned sender is dropped: what is queued meanwhile is waiting when
    /// the thread is free again, and is done as one batch.
    fn hold(thread: &LedgerThread) -> std::sync::mpsc::Sender<()> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (holding, started) = std::sync::mpsc::channel::<()>();
        drop(thread.call(move |_| {
            let _ = holding.send(());
            let _ = held.recv();
            Ok(())
        }));
        started.recv().expect("the ledger's thread takes the hold");
        release
    }

    #[tokio::test]
    async fn jobs_queued_together_share_one_transaction_and_fail_alone() {
        let thread = LedgerThread::spawn(Ledger::in_memory().unwrap());
        // Alone: no transaction of its own around it.
        assert!(thread.call(|l| l.with(|db| Ok(db.is_autocommit()))).await.unwrap());
        let release = hold(&thread);
        let first = thread.call(|l| l.set_cursor("i", "INBOX", 1, 10));
        let broken = thread.call(|l| l.with(|db| db.execute_batch("INSERT INTO no_such_table VALUES (1)")));
        let inside = thread.call(|l| l.with(|db| Ok(db.is_autocommit())));
        let second = thread.call(|l| l.set_cursor("i", "Junk", 2, 20));
        drop(release);
        first.await.unwrap();
        assert!(matches!(broken.await, Err(LedgerError::Db(_))), "the failing job fails");
        assert!(!inside.await.unwrap(), "queued behind others: inside their transaction");
        second.await.unwrap();
        let cursors = thread.call(|l| Ok((l.cursor("i", "INBOX")?, l.cursor("i", "Junk")?))).await.unwrap();
        assert_eq!(cursors, (Some((1, 10)), Some((2, 20))), "the others are committed");
    }

    #[tokio::test]
    async fn a_write_behind_alone_waits_for_no_sync_and_shares_one_when_batched_with_a_synced_one() {
        let thread = LedgerThread::spawn(Ledger::in_memory().unwrap());
        // PRAGMA synchronous: 1 is NORMAL (no sync at commit), 2 is FULL.
        let level = |l: &Ledger| l.with(|db| db.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0)));
        let (tx, levels) = std::sync::mpsc::channel();
        let behind = |tx: std::sync::mpsc::Sender<i64>| {
            move |l: &Ledger| {
                tx.send(level(l)?).unwrap();
                Ok(())
            }
        };
        // Alone in the queue (nothing is queued until it has run).
        thread.write_behind("test", behind(tx.clone()), || {});
        assert_eq!(levels.recv(), Ok(1), "alone, it commits with no sync");
        assert_eq!(thread.call(level).await.unwrap(), 2);
        thread.write_behind("test", behind(tx.clone()), || {});
        assert_eq!(levels.recv(), Ok(1), "and again after a synced one");
        let release = hold(&thread);
        thread.write_behind("test", behind(tx), || {});
        let synced = thread.call(level);
        drop(release);
        assert_eq!(synced.await.unwrap(), 2);
        assert_eq!(levels.try_recv(), Ok(2), "committed with the synced write of its batch");
    }

    #[tokio::test]
    async fn writes_behind_wait_for_a_synced_write_and_share_its_transaction() {
        // However slow this test runs, they wait for it.
        let thread = LedgerThread::spawn_holding(Ledger::in_memory().unwrap(), Duration::from_secs(3600));
        let (tx, seen) = std::sync::mpsc::channel();
        let behind = move |l: &Ledger| {
            let level = l.with(|db| db.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0)))?;
            tx.send((level, l.with(|db| Ok(db.is_autocommit()))?)).unwrap();
            Ok(())
        };
        thread.write_behind("test", |l| l.set_cursor("i", "INBOX", 1, 10), || {});
        thread.write_behind("test", behind, || {});
        assert!(seen.try_recv().is_err(), "not done yet: nothing synced came");
        let cursor = thread.call(|l| l.cursor("i", "INBOX")).await.unwrap();
        assert_eq!(cursor, Some((1, 10)), "done first, in order");
        assert_eq!(seen.try_recv(), Ok((2, false)), "inside the synced write's transaction, synced with it");
    }

    #[tokio::test]
    async fn a_write_behind_that_fails_says_so() {
        let thread = LedgerThread::spawn(Ledger::in_memory().unwrap());
        let (tx, failed) = std::sync::mpsc::channel();
        let broken = |l: &Ledger| l.with(|db| db.execute_batch("INSERT INTO no_such_table VALUES (1)"));
        thread.write_behind("test", broken, move || tx.send(()).unwrap());
        assert_eq!(failed.recv(), Ok(()));
    }

    #[tokio::test]
    async fn a_flush_checkpoints_what_was_written_behind_even_when_batched() {
        let dir = std::env::temp_dir().join(format!("mailcanary-ledger-flush-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let thread = LedgerThread::spawn(Ledger::open(&dir).unwrap());
        thread.write_behind("test", |l| l.set_cursor("i", "INBOX", 1, 10), || {});
        thread.flush().await.expect("alone");
        // Queued behind a held job with another one: inside their transaction.
        let release = hold(&thread);
        thread.write_behind("test", |l| l.set_cursor("i", "INBOX", 1, 11), || {});
        let flushed = thread.flush();
        drop(release);
        flushed.await.expect("tried again alone");
        let cursor = thread.call(|l| l.cursor("i", "INBOX")).await.unwrap();
        assert_eq!(cursor, Some((1, 11)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_batch_that_is_not_committed_fails_every_job_of_it() {
        let thread = LedgerThread::spawn(Ledger::in_memory().unwrap());
        let release = hold(&thread);
        let written = thread.call(|l| l.set_cursor("i", "INBOX", 1, 10));
        // What SQLite does to a transaction on a full disk, say.
        let rollback = thread.call(|l| l.with(|db| db.execute_batch("ROLLBACK")));
        drop(release);
        assert!(matches!(written.await, Err(LedgerError::Commit(_))), "not told it was written");
        assert!(matches!(rollback.await, Err(LedgerError::Commit(_))));
        assert_eq!(thread.call(|l| l.cursor("i", "INBOX")).await.unwrap(), None, "and it was not");
    }
}
