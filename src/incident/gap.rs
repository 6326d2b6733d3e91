//! Monitoring gaps: stretches in which mailcanary measured nothing. They
//! are shown as gaps, never as health: nobody knows how delivery went then.
//!
//! - *Not running*: no canary was sent, by any route, for longer than two
//!   intervals of a route that was sending just before (the process was
//!   stopped, or could not send at all). Seen in the ledger as a silence.
//! - *Inbox not watched*: a canary was found only once its inbox could be
//!   watched again (`observed: after_gap`), longer than two of its route's
//!   intervals after it arrived: the inbox was not watched in between.

use crate::ledger::Row;
use crate::outcome::Observed;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// A stretch without measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub from_ms: i64,
    /// None while it lasts.
    pub to_ms: Option<i64>,
    /// The inbox that was not watched; none when no canary was sent at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox: Option<String>,
}

/// Watches the canaries of every route, oldest first, for silences.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// Each route's interval, in ms.
    intervals: HashMap<String, i64>,
    shortest: Option<i64>,
    last_ms: Option<i64>,
    last_by_route: HashMap<String, i64>,
    /// The silences found so far, oldest first.
    pub gaps: Vec<Gap>,
}

impl Activity {
    pub fn new(intervals: &HashMap<String, Duration>) -> Activity {
        let mut a = Activity::default();
        a.set_intervals(intervals);
        a
    }

    /// The routes' intervals from now on (after a reload).
    pub fn set_intervals(&mut self, intervals: &HashMap<String, Duration>) {
        self.intervals =
            intervals.iter().map(|(r, i)| (r.clone(), i.as_millis() as i64)).filter(|(_, i)| *i > 0).collect();
        self.shortest = self.intervals.values().copied().min();
    }

    /// Takes in a canary of `route` made at `created_ms`.
    pub fn saw(&mut self, route: &str, created_ms: i64) {
        if let (Some(last), Some(shortest)) = (self.last_ms, self.shortest)
            && created_ms - last > 2 * shortest
            && self.silent(last, created_ms)
        {
            self.gaps.push(Gap { from_ms: last, to_ms: Some(created_ms), inbox: None });
        }
        self.last_ms = Some(self.last_ms.map_or(created_ms, |l| l.max(created_ms)));
        // Told of every canary of weeks: no allocation but for a new route.
        match self.last_by_route.get_mut(route) {
            Some(last) => *last = (*last).max(created_ms),
            None => {
                self.last_by_route.insert(route.to_string(), created_ms);
            }
        }
    }

    /// The silence since the last canary, when it is one by `now_ms`.
    pub fn ongoing(&self, now_ms: i64) -> Option<Gap> {
        let last = self.last_ms?;
        self.silent(last, now_ms).then_some(Gap { from_ms: last, to_ms: None, inbox: None })
    }

    /// Whether nothing sent between `from_ms` (the last canary) and `to_ms`
    /// is a gap: some route that was sending up to `from_ms` missed two turns.
    fn silent(&self, from_ms: i64, to_ms: i64) -> bool {
        self.intervals.iter().any(|(route, interval)| {
            to_ms - from_ms > 2 * interval
                && self.last_by_route.get(route).is_some_and(|t| *t >= from_ms - 2 * interval)
        })
    }
}

/// Each route's typical interval in `rows` (oldest first): the median
/// spacing of its canaries, for `report`, which has the ledger but not the config.
pub fn intervals(rows: &[Row]) -> HashMap<String, Duration> {
    let mut last: HashMap<&str, i64> = HashMap::new();
    let mut spacings: HashMap<&str, Vec<i64>> = HashMap::new();
    for r in rows {
        if let Some(prev) = last.insert(&r.probe, r.created_ms) {
            spacings.entry(&r.probe).or_default().push(r.created_ms - prev);
        }
    }
    spacings
        .into_iter()
        .map(|(route, mut s)| {
            s.sort_unstable();
            (route.to_string(), Duration::from_millis(s[s.len() / 2].max(0) as u64))
        })
        .collect()
}

/// The stretches in which an inbox was not watched, from the canaries of
/// `rows` found after a gap, per inbox, merged, oldest first.
pub fn unwatched(rows: &[Row], intervals: &HashMap<String, Duration>) -> Vec<Gap> {
    let mut found: Vec<Gap> = rows
        .iter()
        .filter(|r| r.observed == Observed::AfterGap)
        .filter_map(|r| {
            let seen = r.seen_ms?;
            let arrived = r.accepted_ms.unwrap_or(r.created_ms) + r.latency_ms?;
            let interval = intervals.get(&r.probe).map_or(0, |i| i.as_millis() as i64);
            (seen - arrived > 2 * interval).then(|| Gap {
                from_ms: arrived,
                to_ms: Some(seen),
                inbox: Some(r.inbox.clone()),
            })
        })
        .collect();
    found.sort_by(|a, b| (&a.inbox, a.from_ms).cmp(&(&b.inbox, b.from_ms)));
    let mut merged: Vec<Gap> = Vec::new();
    for g in found {
        match merged.last_mut() {
            Some(m) if m.inbox == g.inbox && g.from_ms <= m.to_ms.unwrap_or(i64::MAX) => {
                m.to_ms = m.to_ms.max(g.to_ms);
            }
            _ => merged.push(g),
        }
    }
    merged.sort_by_key(|g| g.from_ms);
    merged
}
