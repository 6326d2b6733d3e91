//! The two clocks a canary's fate runs on: the monotonic one for every
//! deadline and latency measured inside the process (an NTP step of the
//! wall clock changes no verdict), and the wall clock for what is written
//! down and compared with other machines (the ledger, INTERNALDATE).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

pub trait Clock: Send + Sync + 'static {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Wall-clock now, in Unix milliseconds.
    fn wall_ms(&self) -> i64;
}

/// The machine's clocks.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// Clocks a test moves by hand: both advance together, and the wall clock
/// can also be stepped alone, as NTP does.
pub struct FakeClock {
    base: Instant,
    elapsed_ms: AtomicI64,
    wall_ms: AtomicI64,
}

impl FakeClock {
    pub fn new(wall_ms: i64) -> Self {
        FakeClock { base: Instant::now(), elapsed_ms: AtomicI64::new(0), wall_ms: AtomicI64::new(wall_ms) }
    }

    /// Time passes.
    pub fn advance(&self, by: Duration) {
        let ms = by.as_millis() as i64;
        self.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The wall clock alone jumps by `ms` (negative: backwards).
    pub fn step_wall(&self, ms: i64) {
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.elapsed_ms.load(Ordering::SeqCst) as u64)
    }

    fn wall_ms(&self) -> i64 {
        self.wall_ms.load(Ordering::SeqCst)
    }
}
