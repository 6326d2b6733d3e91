//! What an incident is, decided in one place for `report`, the status page,
//! its JSON and its feed.
//!
//! - A canary *went wrong* when it was refused, lost, bounced, came late,
//!   was slower than the objective or landed in spam ([`went_wrong`]).
//! - A route's *window* is a run of its canaries that went wrong; the next
//!   canary that went right closes it. A canary still in flight neither
//!   opens nor closes one: in the middle of an outage the newest canaries
//!   are in flight, and the window is not over because of them.
//! - An *incident* is the windows of every route, and the spells in which a
//!   provider was down or degraded (crate::health), that overlap in time,
//!   merged: with its start, its end (none while it lasts) and the
//!   providers and inboxes it touched.

use crate::health::{State as HealthState, Transition};
use crate::ledger::{Row, State};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One canary that went wrong, and how.
#[derive(Debug, Clone, Serialize)]
pub struct Canary {
    pub canary: String,
    pub sent_ms: i64,
    pub provider_id: Option<String>,
    /// `failed (reason)`, `lost`, `lost (bounced 4.4.7)`, `bounced (5.1.1)`, `mismatched (subject)`, `late`, `slow`, `spam`.
    pub outcome: String,
    /// What the bounce said, for a bounced canary.
    pub bounce_detail: Option<String>,
    pub latency_seconds: Option<f64>,
}

impl Canary {
    /// The outcome's first word: `failed`, `lost`, `bounced`, `late`, `slow`, `spam`.
    pub fn kind(&self) -> &str {
        self.outcome.split(' ').next().unwrap_or("")
    }
}

/// A run of consecutive canaries of one route that went wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub from_ms: i64,
    /// When the last canary of the run was sent.
    pub to_ms: i64,
    /// When the canary that closed it was sent; none while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_ms: Option<i64>,
    pub canaries: Vec<Canary>,
}

/// How `row` went wrong, if it did; `slow` is the latency objective.
pub fn went_wrong(row: &Row, slow: Duration) -> Option<Canary> {
    let latency = row.latency_ms.map(|ms| ms as f64 / 1000.0);
    let outcome = match row.state {
        State::Failed => format!("failed ({})", row.failure_reason.as_deref().unwrap_or("other")),
        State::Lost => match &row.bounce_status {
            Some(status) => format!("lost (bounced {status})"),
            None => "lost".into(),
        },
        State::Bounced => format!("bounced ({})", row.bounce_status.as_deref().unwrap_or("unknown")),
        State::Mismatched => format!("mismatched ({})", row.expectation.map_or("unknown", |e| e.as_str())),
        State::Late => "late".into(),
        State::Delivered if latency.is_some_and(|l| l > slow.as_secs_f64()) => "slow".into(),
        State::Delivered if row.placement.as_deref() == Some("spam") => "spam".into(),
        _ => return None,
    };
    Some(Canary {
        canary: row.id.clone(),
        sent_ms: row.created_ms,
        provider_id: row.provider_id.clone(),
        outcome,
        bounce_detail: row.bounce_detail.clone(),
        latency_seconds: latency,
    })
}

/// One route's windows, fed its canaries oldest first.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    pub provider: String,
    pub inbox: String,
    pub windows: Vec<Window>,
}

impl Tracker {
    /// Takes in the next canary of the route.
    pub fn push(&mut self, row: &Row, slow: Duration) {
        if matches!(row.state, State::Sending | State::Sent) {
            return;
        }
        let open = self.windows.last_mut().filter(|w| w.closed_ms.is_none());
        match (went_wrong(row, slow), open) {
            (Some(c), Some(w)) => {
                w.to_ms = row.created_ms;
                w.canaries.push(c);
            }
            (Some(c), None) => self.windows.push(Window {
                from_ms: row.created_ms,
                to_ms: row.created_ms,
                closed_ms: None,
                canaries: vec![c],
            }),
            (None, Some(w)) => w.closed_ms = Some(row.created_ms),
            (None, None) => {}
        }
    }
}

/// Every route's tracker, by route name.
pub type Trackers = BTreeMap<String, Tracker>;

/// Feeds `rows` (oldest first) into the trackers of their routes.
pub fn track(trackers: &mut Trackers, rows: &[Row], slow: Duration) {
    for row in rows {
        trackers
            .entry(row.probe.clone())
            .or_insert_with(|| Tracker {
                provider: row.provider.clone(),
                inbox: row.inbox.clone(),
                ..Default::default()
            })
            .push(row, slow);
    }
}

/// A spell in which a provider was down or degraded.
#[derive(Debug, Clone, Serialize)]
pub struct Spell {
    pub provider: String,
    pub state: HealthState,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    /// The health decision's sentence (may name inboxes: internal).
    pub reason: String,
}

/// The spells of `transitions` (oldest first): each change into `down` or
/// `degraded` lasts until the provider's next change.
pub fn spells(transitions: &[Transition]) -> Vec<Spell> {
    let mut open: BTreeMap<&str, Spell> = BTreeMap::new();
    let mut done = Vec::new();
    for t in transitions {
        if let Some(mut s) = open.remove(t.provider.as_str()) {
            s.to_ms = Some(t.at_ms);
            done.push(s);
        }
        if matches!(t.to, HealthState::Down | HealthState::Degraded) {
            let spell = Spell {
                provider: t.provider.clone(),
                state: t.to,
                from_ms: t.at_ms,
                to_ms: None,
                reason: t.reason.clone(),
            };
            open.insert(&t.provider, spell);
        }
    }
    done.extend(open.into_values());
    done.sort_by_key(|s| s.from_ms);
    done
}

/// One route's part in an incident.
#[derive(Debug, Clone, Serialize)]
pub struct Affected {
    pub probe: String,
    pub provider: String,
    pub inbox: String,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    /// Canaries that went wrong, by kind (`lost`, `failed`, ...).
    pub canaries: BTreeMap<String, usize>,
}

/// Overlapping windows and spells, merged.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub from_ms: i64,
    /// None while it lasts.
    pub to_ms: Option<i64>,
    pub providers: BTreeSet<String>,
    pub inboxes: BTreeSet<String>,
    pub routes: Vec<Affected>,
    pub spells: Vec<Spell>,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.to_ms.is_none()
    }

    /// Canaries that went wrong in it, by kind, over every route.
    pub fn canaries(&self) -> BTreeMap<String, usize> {
        let mut all = BTreeMap::new();
        for r in &self.routes {
            for (k, n) in &r.canaries {
                *all.entry(k.clone()).or_default() += n;
            }
        }
        all
    }
}

/// How close two parts must be to make one incident: two intervals of the
/// slowest route. A route must deliver for that long before an incident is
/// over; a provider's health changes only after its canaries are overdue,
/// so its spell may begin a little after the windows that caused it closed.
pub fn merge_gap(longest_interval: Duration) -> Duration {
    2 * longest_interval
}

/// The longest typical interval between a route's canaries in `rows` (the
/// median spacing), for `report`, which has the ledger but not the config.
pub fn typical_interval(rows: &[Row]) -> Duration {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    let mut gaps: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for r in rows {
        if let Some(prev) = last.insert(&r.probe, r.created_ms) {
            gaps.entry(&r.probe).or_default().push(r.created_ms - prev);
        }
    }
    let longest = gaps
        .into_values()
        .map(|mut g| {
            g.sort_unstable();
            g[g.len() / 2]
        })
        .max()
        .unwrap_or(0);
    Duration::from_millis(longest.max(0) as u64)
}

/// The incidents of `trackers` and `spells`, newest first. Two parts belong
/// to one incident when one starts before the other ends, or within `gap`.
/// A window of fewer than `min_canaries` is no part of one: at 1,000 routes
/// a canary somewhere is always late, and single ones would glue every
/// incident into one (the status page asks for `health.down_after`, what
/// makes a route fail; `report` for 1).
pub fn incidents(trackers: &Trackers, spells: &[Spell], gap: Duration, min_canaries: usize) -> Vec<Incident> {
    let gap = gap.as_millis() as i64;
    enum Part<'a> {
        Route(&'a str, &'a Tracker, &'a Window),
        Spell(&'a Spell),
    }
    let mut parts: Vec<(i64, Option<i64>, Part<'_>)> = Vec::new();
    for (probe, t) in trackers {
        for w in t.windows.iter().filter(|w| w.canaries.len() >= min_canaries) {
            parts.push((w.from_ms, w.closed_ms, Part::Route(probe, t, w)));
        }
    }
    for s in spells {
        parts.push((s.from_ms, s.to_ms, Part::Spell(s)));
    }
    parts.sort_by_key(|(from, _, _)| *from);
    let mut out: Vec<Incident> = Vec::new();
    for (from, to, part) in parts {
        let joins = out.last().is_some_and(|i| i.to_ms.is_none_or(|end| from <= end + gap));
        if !joins {
            out.push(Incident {
                from_ms: from,
                to_ms: to,
                providers: BTreeSet::new(),
                inboxes: BTreeSet::new(),
                routes: Vec::new(),
                spells: Vec::new(),
            });
        }
        let i = out.last_mut().expect("pushed above");
        i.to_ms = match (i.to_ms, to) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        match part {
            Part::Route(probe, t, w) => {
                i.providers.insert(t.provider.clone());
                i.inboxes.insert(t.inbox.clone());
                let mut canaries = BTreeMap::new();
                for c in &w.canaries {
                    *canaries.entry(c.kind().to_string()).or_default() += 1;
                }
                i.routes.push(Affected {
                    probe: probe.to_string(),
                    provider: t.provider.clone(),
                    inbox: t.inbox.clone(),
                    from_ms: w.from_ms,
                    to_ms: w.closed_ms,
                    canaries,
                });
            }
            Part::Spell(s) => {
                i.providers.insert(s.provider.clone());
                i.spells.push(s.clone());
            }
        }
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(probe: &str, inbox: &str, t: i64, state: State) -> Row {
        Row {
            id: format!("{probe}{t}"),
            probe: probe.into(),
            provider: "p".into(),
            inbox: inbox.into(),
            state,
            created_ms: t,
            accepted_ms: Some(t),
            deadline_ms: t + 1000,
            provider_id: None,
            failure_reason: None,
            seen_ms: None,
            latency_ms: (state == State::Delivered).then_some(10),
            placement: (state == State::Delivered).then(|| "inbox".into()),
            bounce_status: None,
            bounce_detail: None,
            hops: Vec::new(),
            observed: Default::default(),
            expectation: None,
        }
    }

    #[test]
    fn a_canary_in_flight_neither_opens_nor_closes_a_window() {
        let slow = Duration::from_secs(90);
        let mut t = Trackers::new();
        let rows = [
            row("a", "i", 0, State::Lost),
            row("a", "i", 10, State::Sent),
            row("a", "i", 20, State::Lost),
            row("a", "i", 30, State::Sending),
        ];
        track(&mut t, &rows, slow);
        let w = &t["a"].windows;
        assert_eq!((w.len(), w[0].from_ms, w[0].to_ms, w[0].closed_ms), (1, 0, 20, None));
        track(&mut t, &[row("a", "i", 40, State::Delivered)], slow);
        assert_eq!(t["a"].windows[0].closed_ms, Some(40));
    }

    #[test]
    fn overlapping_windows_and_spells_are_one_incident_and_apart_are_two() {
        let slow = Duration::from_secs(90);
        let mut t = Trackers::new();
        let rows = [
            row("a", "x", 0, State::Lost),
            row("b", "y", 5, State::Failed),
            row("a", "x", 10, State::Delivered),
            row("b", "y", 15, State::Delivered),
            row("a", "x", 100, State::Late),
        ];
        track(&mut t, &rows, slow);
        let spell =
            Spell { provider: "q".into(), state: HealthState::Down, from_ms: 12, to_ms: Some(20), reason: "".into() };
        let all = incidents(&t, &[spell], Duration::from_millis(40), 1);
        assert_eq!(all.len(), 2);
        assert!(all[0].is_open() && all[0].from_ms == 100);
        let past = &all[1];
        assert_eq!((past.from_ms, past.to_ms), (0, Some(20)));
        assert_eq!(past.providers.iter().collect::<Vec<_>>(), ["p", "q"]);
        assert_eq!(past.inboxes.iter().collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(past.canaries().get("lost"), Some(&1));
        let spell =
            Spell { provider: "q".into(), state: HealthState::Down, from_ms: 12, to_ms: Some(20), reason: "".into() };
        assert_eq!(
            incidents(&t, std::slice::from_ref(&spell), Duration::from_millis(80), 1).len(),
            1,
            "within the gap: one incident"
        );
        let without_singles = incidents(&t, &[spell], Duration::from_millis(40), 2);
        assert_eq!(without_singles.len(), 1, "single canaries are no incident, the spell is: {without_singles:?}");
        assert_eq!(without_singles[0].providers.iter().collect::<Vec<_>>(), ["q"]);
    }

    #[test]
    fn spells_run_from_a_change_into_down_or_degraded_to_the_next_change() {
        let t = |to, at_ms| Transition {
            provider: "p".into(),
            from: HealthState::Unknown,
            to,
            at_ms,
            reason: "why".into(),
        };
        let s = spells(&[
            t(HealthState::Healthy, 0),
            t(HealthState::Down, 10),
            t(HealthState::Healthy, 20),
            t(HealthState::Degraded, 30),
        ]);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].from_ms, s[0].to_ms, s[1].from_ms, s[1].to_ms), (10, Some(20), 30, None));
    }
}
