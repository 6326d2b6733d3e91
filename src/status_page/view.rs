//! What the page, its JSON, feed and badges show: built once per refresh
//! and audience from the ledger's history and the matcher's live state,
//! with the operator's choices applied here, once, so no renderer can show
//! what was hidden. The view has no field for an address, a hop host, a
//! bounce's diagnostic or a failure's detail: none can leak. Inbox names
//! (and route names, which contain them) are kept only when allowed, and
//! otherwise replaced in every sentence kept (super::mask); health reasons
//! only on the internal page.

use super::Settings;
use super::format::{human, rfc3339, span};
use super::history::{DAY_MS, Data};
use super::mask::Mask;
use super::real_traffic::TrafficView;
use crate::health::{ProviderHealth, State as HealthState};
use crate::incident::{self, Gap};
use crate::ledger::TrafficCounts;
use crate::matcher::RouteStatus;
use crate::outcome::OutcomeKind;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// What the operator chose to show to this page's audience.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Visibility {
    /// Inbox and route names.
    pub inboxes: bool,
    /// Health reasons (they name counts an operator acts on).
    pub reasons: bool,
    /// Facing customers (shared caches may keep it).
    pub public: bool,
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
    /// Stretches without measurement, oldest first: neither health nor incident.
    pub gaps: Vec<GapView>,
    /// The threshold that makes a delivery delayed (`status_page.slow`).
    pub delayed_after_seconds: f64,
    /// The rule, in one sentence.
    pub delayed_rule: String,
    /// The feed's id (keyed with a secret: opaque).
    #[serde(skip)]
    pub feed_id: String,
    /// The page, rendered once per snapshot (super::page).
    #[serde(skip)]
    pub(super) html: OnceLock<String>,
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
    pub last_outcome: Option<OutcomeKind>,
    pub last_outcome_at: Option<String>,
    pub last_latency_seconds: Option<f64>,
    pub in_flight: usize,
    /// A reload gave its name to another provider or inbox (or removed
    /// it): listed while canaries of its own are in flight, beside the
    /// current route of the name (`/api/v1/status` marks it alike).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
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
    /// Canaries that went wrong, by kind: `refused`, `lost`, `bounced`,
    /// `mismatched`, `late`, `delayed`, `spam`, `overdue` (crate::incident).
    pub canaries: BTreeMap<String, usize>,
    pub provider_changes: Vec<ChangeView>,
    /// The real mail sent during it through its providers, as `impact`
    /// counts it; none without real traffic. Counts only: no message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_traffic: Option<TrafficView>,
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

/// A stretch without measurement.
#[derive(Debug, Serialize)]
pub struct GapView {
    pub started: String,
    /// None while it lasts.
    pub ended: Option<String>,
    #[serde(skip)]
    pub from_ms: i64,
    #[serde(skip)]
    pub to_ms: Option<i64>,
    /// `not_running` (no canary sent at all) or `inbox_not_watched`.
    pub kind: &'static str,
    /// The inbox not watched: its name, or a neutral word when names are hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox: Option<String>,
}

impl GapView {
    /// What it means, in a sentence for people.
    pub fn sentence(&self) -> String {
        match &self.inbox {
            Some(inbox) => format!("{inbox} was not watched: canaries that arrived then were found only afterwards"),
            None => "no canaries were sent: mailcanary was not running, or could not send".into(),
        }
    }
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

/// A plain sentence per state, for public pages.
fn public_summary(state: HealthState) -> &'static str {
    match state {
        HealthState::Healthy => "Delivering normally",
        HealthState::Degraded => "Some deliveries are failing or delayed",
        HealthState::Down => "Not delivering",
        HealthState::Unknown => "Not enough recent data",
    }
}

/// A stable id for `what` of `instance`, keyed with `key` (HMAC-SHA256),
/// as an RFC 4122-shaped URN: nobody without the key can tell from it
/// which instance it is of.
pub(super) fn urn(key: &[u8; 32], instance: &str, what: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{instance}\0{what}").as_bytes());
    let d = mac.finalize().into_bytes();
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("urn:uuid:{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The id of the incident of `instance` that started at `from_ms`.
pub(super) fn incident_id(key: &[u8; 32], instance: &str, from_ms: i64) -> String {
    urn(key, instance, &format!("incident/{from_ms}"))
}

/// The incidents the page shows, newest first: those of `data` that had
/// not ended before its first day.
pub(super) fn incidents(data: &Data, settings: &Settings) -> Vec<incident::Incident> {
    let since_ms = data.first_day * DAY_MS;
    let spells = incident::spells(&data.transitions);
    let mut all = incident::incidents(&data.trackers, &spells, settings.merge_gap, settings.min_canaries);
    all.retain(|x| x.to_ms.is_none_or(|t| t >= since_ms));
    all
}

/// What a snapshot is built from.
pub struct Inputs<'a> {
    pub instance: &'a str,
    pub feed_key: &'a [u8; 32],
    pub settings: &'a Settings,
    pub visibility: Visibility,
    pub data: &'a Data,
    /// The real traffic of incidents, by their start.
    pub traffic: &'a std::collections::HashMap<i64, TrafficCounts>,
    pub providers: &'a [std::sync::Arc<ProviderHealth>],
    pub routes: &'a [RouteStatus],
    pub now_ms: i64,
}

/// Every inbox and route name the page could meet: the config's, the live
/// state's and the history's.
fn mask(i: &Inputs<'_>) -> Mask {
    let mut routes = i.settings.routes.clone();
    routes.extend(i.routes.iter().map(|r| (r.probe.clone(), r.inbox.clone())));
    routes.extend(i.providers.iter().flat_map(|p| p.routes.iter().map(|r| (r.probe.clone(), r.inbox.clone()))));
    routes.extend(i.data.trackers.iter().map(|(probe, t)| (probe.clone(), t.inbox.clone())));
    routes.extend(i.data.gaps.iter().filter_map(|g| g.inbox.clone()).map(|inbox| (String::new(), inbox)));
    Mask::new(&i.settings.inboxes, &routes)
}

fn provider_views(i: &Inputs<'_>, hide: &dyn Fn(&str) -> String) -> Vec<ProviderView> {
    let today = i.now_ms.div_euclid(DAY_MS);
    let mut views: Vec<ProviderView> = i
        .providers
        .iter()
        .map(|p| {
            let days = (i.data.first_day..=today)
                .map(|day| {
                    let (resolved, delivered) =
                        i.data.days.get(&(p.provider.clone(), day)).copied().unwrap_or_default();
                    DayView {
                        date: human(day * DAY_MS)[..10].to_string(),
                        resolved,
                        delivered,
                        share: (resolved > 0).then(|| delivered as f64 / resolved as f64),
                    }
                })
                .collect();
            ProviderView {
                summary: if i.visibility.reasons { hide(&p.reason) } else { public_summary(p.state).into() },
                since: rfc3339(p.since_ms),
                routes: p.routes.len(),
                failing_routes: p.routes.iter().filter(|r| r.failing).count(),
                name: p.provider.clone(),
                state: p.state,
                days,
            }
        })
        .collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    views
}

fn route_views(i: &Inputs<'_>) -> Vec<RouteView> {
    if !i.visibility.inboxes {
        return Vec::new();
    }
    i.routes
        .iter()
        .map(|r| RouteView {
            last_outcome_at: r.last_outcome_ms.map(rfc3339),
            last_outcome: r.last_outcome,
            // The latency of the last canary seen, only when it is the last outcome.
            last_latency_seconds: r
                .last_latency_seconds
                .filter(|_| matches!(r.last_outcome, Some(OutcomeKind::Delivered | OutcomeKind::Late))),
            in_flight: r.in_flight,
            retired: r.retired,
            name: r.probe.clone(),
            provider: r.provider.clone(),
            inbox: r.inbox.clone(),
        })
        .collect()
}

fn incident_view(i: &Inputs<'_>, x: &incident::Incident, hide: &dyn Fn(&str) -> String) -> IncidentView {
    let shown = i.visibility.inboxes;
    let id = incident_id(i.feed_key, i.instance, x.from_ms);
    let command = (!i.visibility.public).then(|| format!("mailcanary impact --incident {id}"));
    IncidentView {
        real_traffic: i.traffic.get(&x.from_ms).filter(|c| c.messages > 0).map(|c| TrafficView::new(c, command)),
        id,
        started: rfc3339(x.from_ms),
        ended: x.to_ms.map(rfc3339),
        canaries: x.canaries(),
        providers: x.providers.iter().cloned().collect(),
        inboxes: if shown { x.inboxes.iter().cloned().collect() } else { Vec::new() },
        routes: if !shown {
            Vec::new()
        } else {
            x.routes
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
        },
        provider_changes: x
            .spells
            .iter()
            .map(|s| ChangeView {
                provider: s.provider.clone(),
                state: s.state,
                started: rfc3339(s.from_ms),
                ended: s.to_ms.map(rfc3339),
                reason: i.visibility.reasons.then(|| hide(&s.reason)),
            })
            .collect(),
        from_ms: x.from_ms,
        to_ms: x.to_ms,
    }
}

fn gap_view(g: &Gap, hidden: Option<&Mask>) -> GapView {
    GapView {
        started: rfc3339(g.from_ms),
        ended: g.to_ms.map(rfc3339),
        from_ms: g.from_ms,
        to_ms: g.to_ms,
        kind: if g.inbox.is_some() { "inbox_not_watched" } else { "not_running" },
        inbox: g.inbox.as_deref().map(|inbox| hidden.map_or_else(|| inbox.to_string(), |m| m.inbox(inbox))),
    }
}

/// The snapshot of `i`, as its visibility allows.
pub fn build(i: &Inputs<'_>) -> Snapshot {
    let page = &i.settings.page;
    let mask = (!i.visibility.inboxes).then(|| mask(i));
    let hide = |text: &str| mask.as_ref().map_or_else(|| text.to_string(), |m| m.apply(text));
    let since_ms = i.data.first_day * DAY_MS;
    let incidents = incidents(i.data, i.settings).iter().map(|x| incident_view(i, x, &hide)).collect();
    let gaps = i
        .data
        .gaps
        .iter()
        .filter(|g| g.to_ms.is_none_or(|t| t >= since_ms))
        .map(|g| gap_view(g, mask.as_ref()))
        .collect();
    Snapshot {
        title: page.title.clone(),
        generated: rfc3339(i.now_ms),
        generated_ms: i.now_ms,
        refresh_seconds: page.refresh.as_secs().max(1),
        visibility: i.visibility,
        providers: provider_views(i, &hide),
        routes: route_views(i),
        incidents,
        gaps,
        delayed_after_seconds: page.slow.as_secs_f64(),
        delayed_rule: incident::delayed_rule(page.slow),
        feed_id: urn(i.feed_key, i.instance, "feed"),
        html: OnceLock::new(),
    }
}
