//! The one place real-traffic events are recorded: ledger first, then the
//! metrics and provider health hear of what changed, then the caller (a
//! webhook answers 2xx only now, a log source moves on). Writes queued
//! while the ledger is busy go together in one transaction (one sync to
//! disk for many deliveries), which is what lets ingestion keep up with
//! thousands of events a second on a durable ledger.

use crate::ledger::{LedgerError, LedgerThread, TrafficRecorded, TrafficWrite};
use crate::metrics::Metrics;
use crate::traffic_event::{Effects, SourceError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Events recorded in one transaction at most (about a second of a busy source).
const MAX_BATCH_EVENTS: usize = 5_000;
/// Writes waiting at most; past it callers wait (a webhook's request holds
/// its connection, within the listener's caps).
const QUEUE: usize = 1_024;

/// Who else hears of what a write changed: provider health.
pub type Listener = Arc<dyn Fn(&str, &[Effects], i64) + Send + Sync>;

struct Job {
    write: TrafficWrite,
    reply: oneshot::Sender<Result<TrafficRecorded, String>>,
}

/// The writer's handle; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer; it ends when every handle is dropped.
    pub fn spawn(ledger: LedgerThread, metrics: Arc<Metrics>, listener: Option<Listener>) -> Writer {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(queue, ledger, metrics, listener));
        Writer { jobs }
    }

    /// Records `write`; resolves once it is on disk (or could not be).
    pub async fn record(&self, write: TrafficWrite) -> Result<TrafficRecorded, String> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { write, reply }).await.map_err(|_| LedgerError::Closed.to_string())?;
        answer.await.map_err(|_| LedgerError::Closed.to_string())?
    }
}

async fn run(mut queue: mpsc::Receiver<Job>, ledger: LedgerThread, metrics: Arc<Metrics>, listener: Option<Listener>) {
    while let Some(first) = queue.recv().await {
        let mut events = first.write.events.len();
        let mut jobs = vec![first];
        while events < MAX_BATCH_EVENTS {
            match queue.try_recv() {
                Ok(job) => {
                    events += job.write.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let writes: Vec<TrafficWrite> = jobs.iter().map(|j| j.write.clone()).collect();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let result = ledger.call(move |l| l.record_traffic(&writes, now_ms)).await;
        match result {
            Ok(recorded) => {
                for (job, done) in jobs.into_iter().zip(recorded) {
                    let w = &job.write;
                    metrics.traffic.recorded(&w.source, &w.provider, done.recorded, &done.effects);
                    if done.duplicates > 0 {
                        metrics.traffic.refused(&w.source, SourceError::Duplicate, done.duplicates as u64);
                    }
                    if let Some(listener) = &listener {
                        listener(&w.provider, &done.effects, now_ms);
                    }
                    let _ = job.reply.send(Ok(done));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = jobs.len(), "cannot record real-traffic events");
                for job in jobs {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
