//! Runs each route on its interval, with jitter, until it is stopped: the
//! first canary soon after start (spread over up to 10 s so a thousand
//! routes do not fire at once), then one per interval, on a cadence that
//! does not drift with how long a send takes. Routes of an interval of
//! [`TICKED_FROM`] or more send on the process's whole seconds
//! ([`on_tick`], less than a second after they are due): the canaries due
//! within a second go together, and share the ledger's sync to disk, the
//! runtime's wakeups and the watchers' reads, while the jitter still
//! spreads them over the interval. A confirmation canary asked for
//! (crate::probe::Confirm) goes at once, beside the schedule, which it
//! does not move. Submissions are bounded by the probes' shared semaphore.

use crate::probe::{Probe, ProbeContext, run_once};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The longest wait before a route's first canary.
const FIRST_SPREAD: Duration = Duration::from_secs(10);

/// The step of the shared send times.
const TICK: Duration = Duration::from_secs(1);
/// Routes of a shorter interval send when they are due: a second is more
/// than a tenth of their interval.
const TICKED_FROM: Duration = Duration::from_secs(10);

/// The first of the shared send times ([`TICK`] apart, counted from the
/// process's first call) at or after `due`.
fn on_tick(due: Instant) -> Instant {
    static FIRST: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let first = Instant::from_std(*FIRST.get_or_init(std::time::Instant::now));
    // Due before the first tick (computed just before it, or on another
    // clock, as in tests): when due.
    let Some(since) = due.checked_duration_since(first) else { return due };
    match (since.as_nanos() % TICK.as_nanos()) as u64 {
        0 => due,
        into => due + (TICK - Duration::from_nanos(into)),
    }
}

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
    let ticked = probe.route.interval >= TICKED_FROM;
    loop {
        let send_at = if ticked { on_tick(next) } else { next };
        let confirmation = tokio::select! {
            _ = tokio::time::sleep_until(send_at) => false,
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
    fn sends_due_within_a_tick_go_at_its_end() {
        let ms = Duration::from_millis;
        // The ticks count from the first call: made before `due`.
        on_tick(Instant::now());
        let due = Instant::now() + ms(100);
        let tick = on_tick(due);
        assert!(tick >= due && tick < due + TICK, "{:?}", tick - due);
        for earlier in [ms(0), ms(1), ms(500), ms(999)] {
            assert_eq!(on_tick(tick - earlier), tick, "due {earlier:?} before the tick");
        }
        assert_eq!(on_tick(tick + ms(1)), tick + TICK);
    }

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
