//! A webhook delivery refused, with the status it is answered with, and
//! the small checks
//! every signed source shares (constant-time comparison, the timestamp's
//! freshness).

use http::StatusCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::traffic_event::SourceError as Reason;

/// The answer to a delivery refused for `reason`: 403 for what is not
/// believed to come from the provider, 400 for what cannot be read, 413
/// over the cap, 503 for what the provider should send again later, and
/// 2xx for a duplicate (so that the provider stops sending it).
pub fn status(reason: Reason) -> StatusCode {
    match reason {
        Reason::Forged | Reason::Stale => StatusCode::FORBIDDEN,
        Reason::Malformed => StatusCode::BAD_REQUEST,
        Reason::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Reason::Certificate | Reason::Storage => StatusCode::SERVICE_UNAVAILABLE,
        Reason::Duplicate => StatusCode::OK,
    }
}
/// A delivery refused, and why (for the log: never a secret, never the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub why: String,
}

impl Refusal {
    pub fn forged(why: impl Into<String>) -> Self {
        Refusal { reason: Reason::Forged, why: why.into() }
    }
    pub fn malformed(why: impl Into<String>) -> Self {
        Refusal { reason: Reason::Malformed, why: why.into() }
    }
    pub fn certificate(why: impl Into<String>) -> Self {
        Refusal { reason: Reason::Certificate, why: why.into() }
    }
}

/// Refusals logged per source and minute at most: anyone who can reach the
/// webhook port can make refusals, and the log must not be theirs to
/// flood. The counters still count every one.
pub const LOGGED_PER_MINUTE: u32 = 10;

/// At most so many of something a minute (refusals logged, certificates
/// fetched): a fixed window, restarted by the first one after it ends.
#[derive(Debug)]
pub struct PerMinute {
    max: u32,
    state: Mutex<(Instant, u32, u64)>,
}

impl PerMinute {
    pub fn new(max: u32) -> PerMinute {
        PerMinute { max, state: Mutex::new((Instant::now(), 0, 0)) }
    }

    /// Whether one more may happen at `now`, and how many were refused in
    /// the minute before it (said once, with the first of the next).
    pub fn admit(&self, now: Instant) -> (bool, u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (start, logged, unlogged) = &mut *s;
        let mut said = 0;
        if now.duration_since(*start) >= Duration::from_secs(60) {
            (*start, *logged, said) = (now, 0, std::mem::take(unlogged));
        }
        if *logged < self.max {
            *logged += 1;
            (true, said)
        } else {
            *unlogged += 1;
            (false, said)
        }
    }
}

/// What a delivery said, fit for a log line: control characters escaped,
/// cut to crate::quote::MAX_CHARS.
pub fn for_log(why: &str) -> String {
    crate::quote::quote(why)
}

/// Whether `a` and `b` are equal, in a time that does not depend on where
/// they differ (both are hashed first, so neither does their length).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

/// Refuses a signed timestamp (Unix seconds) further than `tolerance` in
/// the past, or more than five minutes ahead (a clock off, or a forgery).
pub fn fresh(signed_secs: i64, now_ms: i64, tolerance: Duration) -> Result<(), Refusal> {
    let age_ms = now_ms - signed_secs.saturating_mul(1000);
    if age_ms > tolerance.as_millis() as i64 {
        return Err(Refusal {
            reason: Reason::Stale,
            why: format!("signed {} s ago, past the tolerance of {} s", age_ms / 1000, tolerance.as_secs()),
        });
    }
    if age_ms < -300_000 {
        return Err(Refusal { reason: Reason::Stale, why: format!("signed {} s in the future", -age_ms / 1000) });
    }
    Ok(())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_refuses_old_and_far_future_timestamps() {
        let tolerance = Duration::from_secs(300);
        let now_ms = 1_000_000_000;
        assert!(fresh(1_000_000 - 299, now_ms, tolerance).is_ok());
        assert_eq!(fresh(1_000_000 - 301, now_ms, tolerance).unwrap_err().reason, Reason::Stale);
        assert!(fresh(1_000_000 + 299, now_ms, tolerance).is_ok());
        assert_eq!(fresh(1_000_000 + 301, now_ms, tolerance).unwrap_err().reason, Reason::Stale);
    }

    #[test]
    fn refusals_are_logged_ten_a_minute_and_the_rest_said_in_one_number() {
        let t0 = Instant::now();
        let limit = PerMinute::new(LOGGED_PER_MINUTE);
        let logged = (0..25).filter(|_| limit.admit(t0).0).count();
        assert_eq!(logged, LOGGED_PER_MINUTE as usize);
        assert_eq!(limit.admit(t0 + Duration::from_secs(61)), (true, 15), "the next minute says how many were not");
        assert_eq!(limit.admit(t0 + Duration::from_secs(62)), (true, 0));
        let long = "x".repeat(10_000) + "\u{1b}[2J";
        assert!(for_log(&long).chars().count() <= crate::quote::MAX_CHARS + 1);
        assert_eq!(for_log("bad\r\nline"), "bad\\r\\nline");
    }

    #[test]
    fn same_compares_whole_values() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }
}
