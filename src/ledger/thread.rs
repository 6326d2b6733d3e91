//! The ledger's own thread: SQLite calls block (on the disk, on a lock
//! someone else holds), so the service never makes them on the runtime.
//! Work is queued in order and done one job at a time; a job queued after
//! another always sees what the earlier one wrote, which is what lets the
//! matcher queue an outcome and then ask about the same canary.

use super::Ledger;
use std::sync::Arc;
use std::sync::mpsc;

/// A ledger call that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    /// The ledger's thread has ended (the process is stopping).
    #[error("the ledger is closed")]
    Closed,
}

type Job = Box<dyn FnOnce(&Ledger) + Send>;

/// The service's way to the ledger: a queue to the thread that owns it.
#[derive(Clone)]
pub struct LedgerThread {
    jobs: mpsc::Sender<Job>,
}

impl LedgerThread {
    /// Moves `ledger` to a thread of its own; it ends once every handle is dropped.
    pub fn spawn(ledger: Ledger) -> LedgerThread {
        let ledger = Arc::new(ledger);
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                for job in queue {
                    job(&ledger);
                }
            })
            .expect("spawn the ledger thread");
        LedgerThread { jobs }
    }

    /// Queues `f` now (before the returned future is first polled, so that
    /// anything queued after this call sees its effect) and resolves to its
    /// result.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Ledger) -> rusqlite::Result<T> + Send + 'static,
    ) -> impl Future<Output = Result<T, LedgerError>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self.jobs.send(Box::new(move |ledger: &Ledger| {
            let _ = tx.send(f(ledger));
        }));
        async move {
            if queued.is_err() {
                return Err(LedgerError::Closed);
            }
            match rx.await {
                Ok(result) => result.map_err(LedgerError::Db),
                Err(_) => Err(LedgerError::Closed),
            }
        }
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
}
