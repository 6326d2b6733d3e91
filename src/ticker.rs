//! The ticker: once a second (and when the next canary in flight passes
//! its route's bound) the matcher counts what is lost and provider health
//! decides (crate::health_keeper); with a retention, the ledger is pruned
//! every hour.

use crate::health_keeper::HealthKeeper;
use crate::ledger::{Ledger, LedgerThread};
use crate::matcher::Matcher;
use crate::metrics::Metrics;
use crate::shutdown::stopped;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Counts lost canaries and refreshes gauges every `every`; with a
/// `retention`, prunes the ledger every hour, a batch at a time. Supervised
/// like the routes and the watchers: a panic is counted and it starts again.
pub fn spawn(
    (matcher, health, ledger): (Arc<Matcher>, Arc<HealthKeeper>, LedgerThread),
    metrics: Arc<Metrics>,
    every: Duration,
    retention: Option<Duration>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let each_stop = stop.clone();
    crate::supervise::spawn("ticker".into(), metrics, stop, move || {
        let (matcher, health, ledger, mut stop) = (matcher.clone(), health.clone(), ledger.clone(), each_stop.clone());
        async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_prune: Option<Instant> = None;
            // When the next canary in flight passes its route's bound:
            // looked at then, between ticks (HealthKeeper::look).
            let mut due: Option<Instant> = None;
            loop {
                let deadline = async move {
                    match due {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let regular = tokio::select! {
                    _ = tick.tick() => true,
                    _ = deadline => false,
                    _ = stopped(&mut stop) => return,
                };
                // Ages are measured from here; a millisecond past the bound
                // is past it, however long deciding takes.
                let now = Instant::now();
                let found = matcher.tick().await;
                let next = if regular { health.decide(&found).await } else { health.look(&found).await };
                due = next.map(|d| now + d + Duration::from_millis(1));
                if !regular {
                    continue;
                }
                let Some(retention) = retention else { continue };
                if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                    last_prune = Some(Instant::now());
                    prune(&ledger, retention).await;
                }
            }
        }
    })
}

/// Forgets what is older than `retention`: the canaries, and the real
/// traffic's messages and events (crate::traffic).
async fn prune(ledger: &LedgerThread, retention: Duration) {
    let before = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
    match (ledger.prune(before, Ledger::prune_batch).await, ledger.prune(before, Ledger::prune_traffic_batch).await) {
        (Ok(canaries), Ok(traffic)) if canaries + traffic > 0 => tracing::info!(canaries, traffic, "pruned the ledger"),
        (Ok(_), Ok(_)) => {}
        (Err(e), _) | (_, Err(e)) => tracing::error!(error = %e, "ledger prune failed"),
    }
}
