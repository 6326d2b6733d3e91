//! Numbers and durations in words for people, the same in every rendering.

use std::time::Duration;

/// `n` and the noun for it: `1 inbox`, `2 inboxes`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A threshold in words, exactly as configured: `90 s`, `100 s`, `15 min`.
pub fn threshold(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if !ms.is_multiple_of(1000) {
        format!("{ms} ms")
    } else if s < 600 {
        format!("{s} s")
    } else if s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// A duration for people, to the second under ten minutes: `45 s`,
/// `2 min 16 s`, `12 min`, `3 h 5 min`.
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..600 if s % 60 != 0 => format!("{} min {} s", s / 60, s % 60),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// Formats a duration the way it would be written in the config.
pub fn as_configured(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_for_numbers_and_durations() {
        assert_eq!(
            (count(1, "inbox", "inboxes"), count(2, "inbox", "inboxes")),
            ("1 inbox".into(), "2 inboxes".into())
        );
        assert_eq!(threshold(Duration::from_secs(90)), "90 s");
        assert_eq!(threshold(Duration::from_secs(100)), "100 s");
        assert_eq!(threshold(Duration::from_secs(900)), "15 min");
        assert_eq!(threshold(Duration::from_millis(2500)), "2500 ms");
        assert_eq!((span(45_000), span(136_000), span(720_000)), ("45 s".into(), "2 min 16 s".into(), "12 min".into()));
    }
}
