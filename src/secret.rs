//! A string that must never be printed: passwords, API keys, signing keys,
//! access tokens. Every secret alive in the process is known here, so that
//! what writes the log can take out any of them, however spelled
//! (crate::redact), whichever crate wrote the line.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Secrets shorter than this are not looked for in the log (crate::redact):
/// they would match everywhere and leave the text unreadable; nor are they
/// kept in the list of live secrets.
pub const MIN_CHARS: usize = 3;

/// Holds a secret value. `Debug` prints a placeholder and there is no
/// `Display`, so a secret cannot reach a log line or an error by accident;
/// reading it takes an explicit [`Secret::expose`]. Clones share the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

/// The secrets alive now (weakly: a dropped secret leaves the list at the
/// next [`live`]), and a count of secrets ever made, to tell when it grew.
static LIVE: Mutex<Vec<Weak<str>>> = Mutex::new(Vec::new());
static MADE: AtomicU64 = AtomicU64::new(0);

impl Secret {
    /// Wraps a value, and makes it known to [`live`].
    pub fn new(value: impl Into<String>) -> Self {
        let value: Arc<str> = Arc::from(value.into());
        if value.chars().count() >= MIN_CHARS {
            let mut all = LIVE.lock().unwrap_or_else(|p| p.into_inner());
            // Secrets come and go (an access token an hour): the dropped
            // ones leave now and then, even if no log line asks.
            if all.len() % 64 == 63 {
                all.retain(|w| w.strong_count() > 0);
            }
            all.push(Arc::downgrade(&value));
            MADE.fetch_add(1, Ordering::SeqCst);
        }
        Secret(value)
    }

    /// The secret itself, for the one place that sends it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every secret alive now.
pub fn live() -> Vec<Arc<str>> {
    let mut all = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|w| w.strong_count() > 0);
    all.iter().filter_map(Weak::upgrade).collect()
}

/// How many secrets were ever made: when it changes, [`live`] may have grown.
pub fn made() -> u64 {
    MADE.load(Ordering::SeqCst)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn live_secrets_are_known_until_dropped() {
        let before = made();
        let s = Secret::new("live-secret-0b5e");
        let copy = s.clone();
        assert!(made() > before);
        assert!(live().iter().any(|l| &**l == "live-secret-0b5e"));
        drop(s);
        assert!(live().iter().any(|l| &**l == "live-secret-0b5e"), "a clone still holds it");
        drop(copy);
        assert!(!live().iter().any(|l| &**l == "live-secret-0b5e"));
    }
}
