//! Times and durations as the pages, the feed and the review write them.

use chrono::{DateTime, Utc};

/// RFC 3339, seconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// For people: `2026-03-01 14:05 UTC`.
pub fn human(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// For people, to the second: `2026-03-01 14:05:09 UTC`.
pub fn human_seconds(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// A duration for people (crate::incident::span_words).
pub fn span(ms: i64) -> String {
    crate::words::span(ms)
}
