//! A webhook delivery refused, with the status it is answered with, and
//! the small checks
//! every signed source shares (constant-time comparison, the timestamp's
//! freshness).

use http::StatusCode;
use std::time::Duration;

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
    fn same_compares_whole_values() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }
}
