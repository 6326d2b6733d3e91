//! What the page, its JSON, feed and badges show: built once per refresh
//! from the ledger's history and the matcher's live state, with the
//! operator's choices applied here, once, so no renderer can show what was
//! hidden. The view has no field for an address, a hop host, a bounce's
//! diagnostic or a failure's detail: none can leak. Inbox names (and route
//! names, which contain them) and health reasons are kept only when allowed.

use super::Settings;
use super::history::{DAY_MS, Data};
use crate::health::{ProviderHealth, State as HealthState};
use crate::incident;
use crate::matcher::RouteStatus;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// What the operator chose to show.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Visibility {
    /// Inbox and route names.
    pub inboxes: bool,
    /// Health reasons (they name inboxes and counts an operator acts on).
    pub reasons: bool,
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub title: String,
    /// RFC 3339.
    pub generated: String,
    #[serde(skip)]
    pub generated_ms: i64,
    #[serde(skip)]
    pub refresh_seconds: u64,
    pub visibility: Visibility,
    pub providers: Vec<ProviderView>,
    /// Empty when inbox names are hidden.
    pub routes: Vec<RouteView>,
    /// Newest first; open ones have no `ended`.
    pub incidents: Vec<IncidentView>,
    /// The feed's id (an opaque digest of the instance name).
    #[serde(skip)]
    pub feed_id: String,
    #[serde(skip)]
    html: OnceLock<String>,
}

impl Snapshot {
    /// The page, rendered once per snapshot.
    pub fn html(&self) -> String {
        self.html.get_or_init(|| super::page::render(self)).clone()
    }
}

#[derive(Debug, Serialize)]
pub struct ProviderView {
    pub name: String,
    pub state: HealthState,
    pub since: String,
    /// The health reason, or (in public mode) a plain sentence for the state.
    pub summary: String,
    pub routes: usize,
    pub failing_routes: usize,
    /// Oldest first, one per day shown.
    pub days: Vec<DayView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayView {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub resolved: i64,
    pub delivered: i64,
    /// delivered / resolved; none on a day without canaries.
    pub share: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct RouteView {
    pub name: String,
    pub provider: String,
    pub inbox: String,
    /// `delivered`, `lost`, `late`, `bounced` or `refused`.
    pub last_outcome: Option<&'static str>,
    pub last_outcome_at: Option<String>,
    pub last_latency_seconds: Option<f64>,
    pub in_flight: usize,
}

#[derive(Debug, Serialize)]
pub struct IncidentView {
    /// A stable, opaque id (the feed's entry id).
    pub id: String,
    pub started: String,
    pub ended: Option<String>,
    #[serde(skip)]
    pub from_ms: i64,
    #[serde(skip)]
    pub to_ms: Option<i64>,
    pub providers: Vec<String>,
    /// Empty when inbox names are hidden.
    pub inboxes: Vec<String>,
    /// Empty when inbox names are hidden.
    pub routes: Vec<AffectedView>,
    /// Canaries that went wrong, by kind: `lost`, `failed`, `bounced`, `late`, `slow`, `spam`.
    pub canaries: BTreeMap<String, usize>,
    pub provider_changes: Vec<ChangeView>,
}

impl IncidentView {
    pub fn is_open(&self) -> bool {
        self.to_ms.is_none()
    }

    /// One line: "Open: relay-a affected" / "relay-a affected for 12 min".
    pub fn headline(&self) -> String {
        let who = self.providers.join(", ");
        match self.to_ms {
            None => format!("Ongoing: delivery through {who} affected"),
            Some(to) => format!("Delivery through {who} affected for {}", span(to - self.from_ms)),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AffectedView {
    pub route: String,
    pub provider: String,
    pub inbox: String,
    pub started: String,
    pub ended: Option<String>,
    pub canaries: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize)]
pub struct ChangeView {
    pub provider: String,
    pub state: HealthState,
    pub started: String,
    pub ended: Option<String>,
    /// Only when reasons are shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

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

/// A duration for people: `45 s`, `12 min`, `3 h 5 min`.
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// A plain sentence per state, for public pages.
fn public_summary(state: HealthState) -> &'static str {
    match state {
        HealthState::Healthy => "Delivering normally",
        HealthState::Degraded => "Some deliveries are failing or delayed",
        HealthState::Down => "Not delivering",
        HealthState::Unknown => "Not enough recent data",
    }
}

/// A stable id from the instance and a start time, as an RFC 4122-shaped URN.
fn urn(instance: &str, what: &str) -> String {
    let d = Sha256::digest(format!("mailcanary\0{instance}\0{what}").as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("urn:uuid:{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The snapshot of `data` and the live state, as `settings` allow.
pub fn build(
    instance: &str,
    settings: &Settings,
    data: Data,
    providers: Vec<ProviderHealth>,
    routes: Vec<RouteStatus>,
    now_ms: i64,
) -> Snapshot {
    let page = &settings.page;
    let visibility = Visibility { inboxes: !page.hides_inboxes(), reasons: !page.public };
    let today = now_ms.div_euclid(DAY_MS);
    let mut provider_views: Vec<ProviderView> = providers
        .into_iter()
        .map(|p| {
            let days = (data.first_day..=today)
                .map(|day| {
                    let (resolved, delivered) = data.days.get(&(p.provider.clone(), day)).copied().unwrap_or_default();
                    DayView {
                        date: human(day * DAY_MS)[..10].to_string(),
                        resolved,
                        delivered,
                        share: (resolved > 0).then(|| delivered as f64 / resolved as f64),
                    }
                })
                .collect();
            ProviderView {
                summary: if visibility.reasons { p.reason.clone() } else { public_summary(p.state).into() },
                since: rfc3339(p.since_ms),
                routes: p.routes.len(),
                failing_routes: p.routes.iter().filter(|r| r.failing).count(),
                name: p.provider,
                state: p.state,
                days,
            }
        })
        .collect();
    provider_views.sort_by(|a, b| a.name.cmp(&b.name));
    let route_views = if visibility.inboxes {
        routes
            .into_iter()
            .map(|r| RouteView {
                last_outcome_at: r.last_outcome_ms.map(rfc3339),
                last_outcome: r.last_outcome,
                // The latency of the last canary seen, only when it is the last outcome.
                last_latency_seconds: r
                    .last_latency_seconds
                    .filter(|_| matches!(r.last_outcome, Some("delivered" | "late"))),
                in_flight: r.in_flight,
                name: r.probe,
                provider: r.provider,
                inbox: r.inbox,
            })
            .collect()
    } else {
        Vec::new()
    };
    let spells = incident::spells(&data.transitions);
    let since_ms = data.first_day * DAY_MS;
    let incidents = incident::incidents(&data.trackers, &spells, settings.merge_gap, settings.min_canaries)
        .into_iter()
        .filter(|i| i.to_ms.is_none_or(|t| t >= since_ms))
        .map(|i| IncidentView {
            id: urn(instance, &format!("incident/{}", i.from_ms)),
            started: rfc3339(i.from_ms),
            ended: i.to_ms.map(rfc3339),
            canaries: i.canaries(),
            providers: i.providers.iter().cloned().collect(),
            inboxes: if visibility.inboxes { i.inboxes.iter().cloned().collect() } else { Vec::new() },
            routes: if visibility.inboxes {
                i.routes
                    .iter()
                    .map(|a| AffectedView {
                        route: a.probe.clone(),
                        provider: a.provider.clone(),
                        inbox: a.inbox.clone(),
                        started: rfc3339(a.from_ms),
                        ended: a.to_ms.map(rfc3339),
                        canaries: a.canaries.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            provider_changes: i
                .spells
                .iter()
                .map(|s| ChangeView {
                    provider: s.provider.clone(),
                    state: s.state,
                    started: rfc3339(s.from_ms),
                    ended: s.to_ms.map(rfc3339),
                    reason: visibility.reasons.then(|| s.reason.clone()),
                })
                .collect(),
            from_ms: i.from_ms,
            to_ms: i.to_ms,
        })
        .collect();
    Snapshot {
        title: page.title.clone(),
        generated: rfc3339(now_ms),
        generated_ms: now_ms,
        refresh_seconds: page.refresh.as_secs().max(1),
        visibility,
        providers: provider_views,
        routes: route_views,
        incidents,
        feed_id: urn(instance, "feed"),
        html: OnceLock::new(),
    }
}
