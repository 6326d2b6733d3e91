//! Which window `impact` looks at: an incident's, as the status page finds
//! and names them (crate::status_page::page_incidents: the same reading of the
//! ledger, the same keyed ids), by its id or its start time; or a
//! provider's and a time span.

use crate::incident::Incident;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The messages `impact` looks at.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Unix ms, inclusive.
    pub from_ms: i64,
    /// Unix ms, exclusive (now, while an incident lasts).
    pub to_ms: i64,
    pub providers: Vec<String>,
    /// The incident's id, when the window is an incident's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// The incident is not over.
    pub ongoing: bool,
}

/// The incident named `id` (the page's id, its start as RFC 3339, or its
/// start in Unix ms) among the page's `incidents` and their ids, at `now_ms`.
pub fn resolve(incidents: &[(String, Incident)], id: &str, now_ms: i64) -> Result<Window, String> {
    let id = id.trim();
    let start = time(id, now_ms).ok();
    let found = incidents.iter().find(|(known, i)| known == id || Some(i.from_ms) == start);
    let Some((known, i)) = found else {
        let latest: Vec<String> = incidents
            .iter()
            .take(10)
            .map(|(known, i)| format!("  {known}  started {}  {}", rfc3339(i.from_ms), join(&i.providers)))
            .collect();
        let id = crate::quote::quote(id);
        return Err(if latest.is_empty() {
            format!("no incident {id}: the status page shows none")
        } else {
            format!("no incident {id}; the latest are:\n{}", latest.join("\n"))
        });
    };
    Ok(Window {
        from_ms: i.from_ms,
        to_ms: i.to_ms.unwrap_or(now_ms),
        providers: i.providers.iter().cloned().collect(),
        incident: Some(known.clone()),
        ongoing: i.to_ms.is_none(),
    })
}

/// `name`'s messages from `since` to `until` (or now).
pub fn provider(name: &str, since: &str, until: Option<&str>, now_ms: i64) -> Result<Window, String> {
    let from_ms = time(since, now_ms).map_err(|e| format!("--since: {e}"))?;
    let to_ms = match until {
        Some(u) => time(u, now_ms).map_err(|e| format!("--until: {e}"))?,
        None => now_ms,
    };
    if to_ms <= from_ms {
        return Err("--until must be after --since".into());
    }
    Ok(Window { from_ms, to_ms, providers: vec![name.to_string()], incident: None, ongoing: false })
}

fn join(set: &std::collections::BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// An RFC 3339 time, Unix ms, or a duration back from now (`2h`).
pub fn time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    crate::duration::parse_duration(text)
        .map(|d| now_ms - d.as_millis() as i64)
        .map_err(|_| format!("{text:?} is neither a time (2026-12-05T14:00:00Z) nor a duration back from now (2h)"))
}

/// Unix ms as RFC 3339, UTC, to the second.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_unix_ms_or_back_from_now() {
        assert_eq!(time("2026-12-05T00:00:00Z", 0), Ok(1_796_428_800_000));
        assert_eq!(time("1796428800000", 0), Ok(1_796_428_800_000));
        assert_eq!(time("2h", 10_000_000), Ok(10_000_000 - 7_200_000));
        assert!(time("yesterday", 0).is_err());
        assert_eq!(rfc3339(1_796_428_800_000), "2026-12-05T00:00:00Z");
    }
}
