//! Nothing dies silently: a route's, an inbox's or the ticker's task that panics is
//! logged with its name, counted (`mailcanary_task_restarts_total{task}`),
//! and started again after a backoff, until it is told to stop.

use crate::metrics::Metrics;
use crate::shutdown::stopped;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Runs what `start` makes, again after each panic, until it ends by itself
/// (which it does when `stop` says so) or `stop` says so while it waits to
/// be started again.
pub fn spawn<F, Fut>(
    task: String,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    mut start: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    metrics.task_started(&task);
    tokio::spawn(async move {
        let mut backoff = BACKOFF_START;
        loop {
            let panic = match tokio::spawn(start()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => e.into_panic(),
                Err(_) => return,
            };
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            metrics.task_restarted(&task);
            tracing::error!(task = %task, panic = %what, restart_in_seconds = backoff.as_secs_f64(), "task panicked; restarting it");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped(&mut stop) => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_counted_and_restarted_until_it_ends() {
        let metrics = Arc::new(Metrics::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let stop = watch::channel(false);
        let counter = runs.clone();
        let task = spawn("route:r".into(), metrics.clone(), stop.1, move || {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if run < 2 {
                    panic!("boom {run}");
                }
            }
        });
        task.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3, "two panics, then a run that ends");
        let text = metrics.encode_text();
        assert!(text.contains("mailcanary_task_restarts_total{task=\"route:r\"} 2\n"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_is_counted_at_0_from_its_start() {
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = watch::channel(false);
        let task = spawn("inbox:i".into(), metrics.clone(), rx, || async {});
        let text = metrics.encode_text();
        assert!(text.contains("mailcanary_task_restarts_total{task=\"inbox:i\"} 0\n"), "{text}");
        tx.send_replace(true);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_while_waiting_to_restart_ends_it() {
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = watch::channel(false);
        let task = spawn("inbox:i".into(), metrics, rx, || async { panic!("always") });
        tokio::task::yield_now().await;
        tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("ends on stop").unwrap();
    }
}
