//! Which window `impact` looks at: an incident's, found the way the status
//! page finds them (crate::incident, with the page's settings) and named
//! by the page's id or its start time, or a provider's and a time span.

use crate::config::Config;
use crate::ledger::Ledger;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

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

/// What was asked for.
pub enum Spec<'a> {
    Incident(&'a str),
    Provider { name: &'a str, since: &'a str, until: Option<&'a str> },
}

/// The status page's id of the incident of `instance` that started at
/// `from_ms` (an RFC 4122-shaped URN of a hash, stable across reads).
pub fn incident_id(instance: &str, from_ms: i64) -> String {
    let d = Sha256::digest(format!("mailcanary\0{instance}\0incident/{from_ms}").as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("urn:uuid:{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The window `spec` names, at `now_ms`.
pub fn resolve(config: &Config, ledger: &Ledger, spec: Spec<'_>, now_ms: i64) -> Result<Window, String> {
    match spec {
        Spec::Provider { name, since, until } => provider(name, since, until, now_ms),
        Spec::Incident(id) => incident(config, ledger, id.trim(), now_ms),
    }
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

/// An incident by the status page's id, its start (RFC 3339) or its start in Unix ms.
fn incident(config: &Config, ledger: &Ledger, id: &str, now_ms: i64) -> Result<Window, String> {
    let settings = crate::status_page::Settings::from_config(config);
    let slow_ms = settings.page.slow.as_millis() as i64;
    let rows = ledger.window_rows(0, i64::MAX, slow_ms).map_err(|e| format!("ledger: {e}"))?;
    let mut trackers = crate::incident::Trackers::new();
    crate::incident::track(&mut trackers, &rows, settings.page.slow);
    let transitions = ledger.transitions_since(0).map_err(|e| format!("ledger: {e}"))?;
    let spells = crate::incident::spells(&transitions);
    let all = crate::incident::incidents(&trackers, &spells, settings.merge_gap, settings.min_canaries);
    let instance = config.instance();
    let start = time(id, now_ms).ok();
    let found = all.iter().find(|i| incident_id(&instance, i.from_ms) == id || Some(i.from_ms) == start);
    let Some(i) = found else {
        let known: Vec<String> = all
            .iter()
            .take(10)
            .map(|i| {
                format!(
                    "  {}  started {}  {}",
                    incident_id(&instance, i.from_ms),
                    rfc3339(i.from_ms),
                    join(&i.providers)
                )
            })
            .collect();
        return Err(if known.is_empty() {
            format!("no incident {id:?}: the ledger holds no incident")
        } else {
            format!("no incident {id:?}; the latest are:\n{}", known.join("\n"))
        });
    };
    Ok(Window {
        from_ms: i.from_ms,
        to_ms: i.to_ms.unwrap_or(now_ms),
        providers: i.providers.iter().cloned().collect(),
        incident: Some(incident_id(&instance, i.from_ms)),
        ongoing: i.to_ms.is_none(),
    })
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
    crate::config::duration::parse_duration(text)
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

    #[test]
    fn ids_are_the_status_pages() {
        let id = incident_id("eu-prober-1", 1_796_428_800_000);
        assert!(id.starts_with("urn:uuid:") && id.len() == 45, "{id}");
        assert_eq!(id, incident_id("eu-prober-1", 1_796_428_800_000));
        assert_ne!(id, incident_id("eu-prober-2", 1_796_428_800_000));
    }
}
