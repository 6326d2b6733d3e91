//! Runs each route on its interval, with jitter, until shutdown: the first
//! canary soon after start (spread over up to 10 s so a thousand routes do
//! not fire at once), then one per interval. Submissions are bounded by the
//! probes' shared semaphore.

use crate::probe::{Probe, ProbeContext, run_once};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The longest wait before a route's first canary.
const FIRST_SPREAD: Duration = Duration::from_secs(10);

/// `interval` moved by up to ±`jitter` of itself.
pub fn jittered(interval: Duration, jitter: f64) -> Duration {
    interval.mul_f64((1.0 + jitter * (2.0 * crate::random::unit() - 1.0)).max(0.0))
}

/// Starts `probe`'s schedule; the task ends after the canary in hand (if
/// any) is recorded, once `shutdown` turns true.
pub fn spawn(
    probe: Arc<Probe>,
    ctx: Arc<ProbeContext>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let first = probe.route.interval.min(FIRST_SPREAD).mul_f64(crate::random::unit());
        tokio::select! {
            _ = tokio::time::sleep(first) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        loop {
            run_once(&probe, &ctx).await;
            tokio::select! {
                _ = tokio::time::sleep(jittered(probe.route.interval, probe.route.jitter)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        let base = Duration::from_secs(60);
        for _ in 0..1000 {
            let d = jittered(base, 0.1);
            assert!(d >= Duration::from_secs(54) && d <= Duration::from_secs(66), "{d:?}");
        }
        assert_eq!(jittered(base, 0.0), base);
    }
}
