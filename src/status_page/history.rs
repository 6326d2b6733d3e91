//! The page's history, read from the ledger without reading it all each
//! time. Canaries sent more than `settle` ago (the longest route timeout,
//! and some) no longer change in any way that matters here: they are read
//! once, six hours at a time (each its own ledger job, so the probes'
//! writes go between them), and kept as incident trackers and day counts.
//! Each refresh reads only what came since: one ledger job.

use super::Settings;
use crate::health::Transition;
use crate::incident::{self, Trackers};
use crate::ledger::{DayCount, LedgerError, LedgerThread};
use std::collections::BTreeMap;
use std::time::Duration;

pub const DAY_MS: i64 = 86_400_000;

/// What one refresh hands the view.
pub struct Data {
    pub trackers: Trackers,
    /// Per provider and day (days since the epoch): (resolved, delivered).
    pub days: BTreeMap<(String, i64), (i64, i64)>,
    pub transitions: Vec<Transition>,
    /// The first day shown.
    pub first_day: i64,
}

/// The settled part, kept between refreshes.
pub struct History {
    slow: Duration,
    /// Canaries sent before this are in `trackers` and `days`.
    until_ms: i64,
    first_day: i64,
    trackers: Trackers,
    days: BTreeMap<(String, i64), (i64, i64)>,
}

fn add(days: &mut BTreeMap<(String, i64), (i64, i64)>, counts: Vec<DayCount>) {
    for c in counts {
        let e = days.entry((c.provider, c.day)).or_default();
        e.0 += c.resolved;
        e.1 += c.delivered;
    }
}

impl History {
    pub fn new(settings: &Settings, now_ms: i64) -> History {
        let first_day = now_ms.div_euclid(DAY_MS) - (settings.days - 1);
        History {
            slow: settings.page.slow,
            until_ms: first_day * DAY_MS,
            first_day,
            trackers: Trackers::new(),
            days: BTreeMap::new(),
        }
    }

    /// Brings the settled part up to date, then reads what is newer.
    pub async fn read(&mut self, ledger: &LedgerThread, settings: &Settings, now_ms: i64) -> Result<Data, LedgerError> {
        let slow_ms = self.slow.as_millis() as i64;
        let settle_ms = settings.settle.as_millis() as i64;
        // A new day: the oldest drops off.
        let first_day = now_ms.div_euclid(DAY_MS) - (settings.days - 1);
        if first_day > self.first_day {
            self.first_day = first_day;
            self.days.retain(|(_, day), _| *day >= first_day);
            for t in self.trackers.values_mut() {
                t.windows.retain(|w| w.closed_ms.is_none_or(|c| c >= first_day * DAY_MS));
            }
        }
        // Settle in steps of at most six hours, once the unsettled part is twice `settle`.
        while now_ms - self.until_ms > 2 * settle_ms {
            let from = self.until_ms;
            let to = (from + DAY_MS / 4).min(now_ms - settle_ms);
            let (rows, counts) =
                ledger.call(move |l| Ok((l.window_rows(from, to, slow_ms)?, l.day_counts(from, to)?))).await?;
            incident::track(&mut self.trackers, &rows, self.slow);
            add(&mut self.days, counts);
            self.until_ms = to;
        }
        let from = self.until_ms;
        let since = self.first_day * DAY_MS;
        let (rows, counts, transitions) = ledger
            .call(move |l| {
                Ok((
                    l.window_rows(from, i64::MAX, slow_ms)?,
                    l.day_counts(from, i64::MAX)?,
                    l.transitions_since(since)?,
                ))
            })
            .await?;
        let mut trackers = self.trackers.clone();
        incident::track(&mut trackers, &rows, self.slow);
        let mut days = self.days.clone();
        add(&mut days, counts);
        Ok(Data { trackers, days, transitions, first_day: self.first_day })
    }
}
