//! Runs each route on its interval, with jitter, until it is stopped: the
//! first canary soon after start (spread over up to 10 s so a thousand
//! routes do not fire at once), then one per interval, on a cadence that
//! does not drift with how long a send takes. A confirmation canary asked
//! for (crate::probe::Confirm) goes at once, beside the schedule, which it
//! does not move. Submissions are bounded by the probes' shared semaphore.

use crate::probe::{Probe, ProbeContext, run_once};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The longest wait before a route's first canary.
const FIRST_SPREAD: Duration = Duration::from_secs(10);

/// `interval` moved by up to ±`jitter` of itself.
pub fn jittered(interval: Duration, jitter: f64) -> Duration {
    interval.mul_f64((1.0 + jitter * (2.0 * crate::random::unit() - 1.0)).max(0.0))
}

/// How a route task is told to stop.
#[derive(Clone)]
pub struct Stop {
    /// No new canaries from now on.
    pub schedule: watch::Receiver<bool>,
    /// Give up the canary in hand too (it stays in the ledger, in flight).
    pub abort: watch::Receiver<bool>,
}

use crate::shutdown::stopped;

/// Starts `probe`'s schedule; the task ends when told to (see [`Stop`]).
pub fn spawn(probe: Arc<Probe>, ctx: Arc<ProbeContext>, stop: Stop) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(probe, ctx, stop))
}

/// `probe`'s schedule, until told to stop.
pub async fn run(probe: Arc<Probe>, ctx: Arc<ProbeContext>, mut stop: Stop) {
    // Started again after a panic in a confirmation's send: that request
    // is over, and a route whose request stood for ever would never be
    // asked for a confirmation again.
    probe.confirm.done();
    let mut next = Instant::now() + probe.route.interval.min(FIRST_SPREAD).mul_f64(crate::random::unit());
    loop {
        let confirmation = tokio::select! {
            _ = tokio::time::sleep_until(next) => false,
            _ = probe.confirm.asked() => true,
            _ = stopped(&mut stop.schedule) => return,
        };
        tokio::select! {
            _ = run_once(&probe, &ctx, confirmation) => {}
            _ = stopped(&mut stop.abort) => { probe.confirm.done(); return }
        }
        if confirmation {
            probe.confirm.done();
            continue;
        }
        // The next canary is due an interval after this one was, however
        // long this one took; if it took longer, the next goes at once.
        next = (next + jittered(probe.route.interval, probe.route.jitter)).max(Instant::now());
    }
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
