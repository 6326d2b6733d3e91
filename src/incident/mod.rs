//! What an incident is, decided in one place for `report`, its HTML
//! review, the status page, its JSON and its feed.
//!
//! - A canary *went wrong* when it was refused, lost, bounced, came late,
//!   failed an expectation, landed in spam, or was *delayed*: delivered
//!   slower than the one threshold (`status_page.slow`, `report --slow`).
//!   A canary still in flight longer than that threshold is *overdue*, and
//!   went wrong too: held mail is part of an outage before its verdict.
//! - A route's *window* is a run of its canaries that went wrong, from the
//!   first one's sending to the moment the first canary after them that
//!   was delivered in time was *seen* ([`window`]). A canary held 80 s and
//!   delivered when the hold ended closes the window only then.
//! - An *incident* is the windows of every route, and the spells in which a
//!   provider was down or degraded ([`spell`]), that overlap in time,
//!   merged: with its start, its end (none while it lasts) and the
//!   providers and inboxes it touched.
//! - A *gap* is a stretch without measurement ([`gap`]): shown as such,
//!   never as health.

pub mod gap;
pub mod spell;
pub mod window;

#[cfg(test)]
mod tests;

pub use gap::{Activity, Gap};
pub use spell::{Spell, spells};
pub use window::{Judge, Tracker, Trackers, WentWrong, Window, track, went_wrong};

use crate::health::Transition;
use crate::ledger::Row;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The rule every rendering states, in one sentence.
pub fn delayed_rule(slow: Duration) -> String {
    let w = crate::words::threshold(slow);
    format!("A delivery slower than {w} counts as delayed, and a canary in flight for longer than {w} as overdue.")
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
                    *canaries.entry(c.kind.to_string()).or_default() += 1;
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

/// The post-incident review of a period: what `report` prints, its JSON
/// and its HTML file show, decided here once.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    /// Newest first; every window counts, even of one canary.
    pub incidents: Vec<Incident>,
    /// Oldest first.
    pub gaps: Vec<Gap>,
}

/// The review of `rows` (every canary of the period, oldest first) and the
/// providers' `transitions` in it, judged at `judge.now_ms`.
pub fn review(rows: &[Row], transitions: &[Transition], judge: Judge) -> Review {
    let mut trackers = Trackers::new();
    track(&mut trackers, rows, judge);
    let intervals = gap::intervals(rows);
    let longest = intervals.values().copied().max().unwrap_or_default();
    let incidents = incidents(&trackers, &spells(transitions), merge_gap(longest), 1);
    let mut activity = Activity::new(&intervals);
    for r in rows {
        activity.saw(&r.probe, r.created_ms);
    }
    let mut gaps = std::mem::take(&mut activity.gaps);
    gaps.extend(activity.ongoing(judge.now_ms));
    gaps.extend(gap::unwatched(rows, &intervals));
    gaps.sort_by_key(|g| g.from_ms);
    Review { incidents, gaps }
}
