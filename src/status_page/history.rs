//! The page's history, read from the ledger without reading it all each
//! time. Canaries sent more than `settle` ago (the longest route timeout,
//! and some) no longer change in any way that matters here: they are read
//! once, six hours at a time (each its own ledger job, so the probes'
//! writes go between them), and kept as incident trackers, day counts and
//! monitoring gaps. Each refresh reads only what came since: one ledger job.

use super::Settings;
use crate::health::Transition;
use crate::incident::{self, Activity, Gap, Judge, Trackers};
use crate::ledger::{DayCount, LedgerError, LedgerThread, Row};
use std::collections::BTreeMap;
use std::time::Duration;

pub const DAY_MS: i64 = 86_400_000;

/// What one refresh hands the view.
pub struct Data {
    pub trackers: Trackers,
    /// Per provider and day (days since the epoch): (resolved, delivered).
    pub days: BTreeMap<(String, i64), (i64, i64)>,
    pub transitions: Vec<Transition>,
    /// Stretches without measurement, oldest first.
    pub gaps: Vec<Gap>,
    /// The first day shown.
    pub first_day: i64,
}

/// The settled part, kept between refreshes.
pub struct History {
    slow: Duration,
    /// Canaries sent before this are in `trackers`, `days` and `activity`.
    until_ms: i64,
    first_day: i64,
    trackers: Trackers,
    days: BTreeMap<(String, i64), (i64, i64)>,
    activity: Activity,
    /// Canaries found after their inbox was not watched.
    unwatched: Vec<Row>,
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
            activity: Activity::new(&settings.intervals),
            unwatched: Vec::new(),
        }
    }

    /// Brings the settled part up to date, then reads what is newer.
    pub async fn read(&mut self, ledger: &LedgerThread, settings: &Settings, now_ms: i64) -> Result<Data, LedgerError> {
        let slow_ms = self.slow.as_millis() as i64;
        let settle_ms = settings.settle.as_millis() as i64;
        self.activity.set_intervals(&settings.intervals);
        // A new day: the oldest drops off.
        let first_day = now_ms.div_euclid(DAY_MS) - (settings.days - 1);
        if first_day > self.first_day {
            let since = first_day * DAY_MS;
            self.first_day = first_day;
            self.days.retain(|(_, day), _| *day >= first_day);
            for t in self.trackers.values_mut() {
                t.windows.retain(|w| w.closed_ms.is_none_or(|c| c >= since));
            }
            self.activity.gaps.retain(|g| g.to_ms.is_none_or(|t| t >= since));
            self.unwatched.retain(|r| r.seen_ms.is_none_or(|t| t >= since));
        }
        // Settled canaries are judged as they finally are, whenever that is.
        let settled = Judge { slow: self.slow, now_ms: i64::MAX };
        // Settle in steps of at most six hours, once the unsettled part is twice `settle`.
        while now_ms - self.until_ms > 2 * settle_ms {
            let from = self.until_ms;
            let to = (from + DAY_MS / 4).min(now_ms - settle_ms);
            let mut activity = std::mem::take(&mut self.activity);
            let (rows, counts, unwatched, activity) = ledger
                .call(move |l| {
                    let rows = l.window_rows(from, to, slow_ms, None, |route, at| activity.saw(route, at))?;
                    Ok((rows, l.day_counts(from, to)?, l.found_after_gap(from, to)?, activity))
                })
                .await?;
            self.activity = activity;
            incident::track(&mut self.trackers, &rows, settled);
            add(&mut self.days, counts);
            self.unwatched.extend(unwatched);
            self.until_ms = to;
        }
        let from = self.until_ms;
        let since = self.first_day * DAY_MS;
        let mut activity = self.activity.clone();
        let overdue_before = Some(now_ms - slow_ms);
        let (rows, counts, transitions, unwatched, mut activity) = ledger
            .call(move |l| {
                let rows =
                    l.window_rows(from, i64::MAX, slow_ms, overdue_before, |route, at| activity.saw(route, at))?;
                Ok((
                    rows,
                    l.day_counts(from, i64::MAX)?,
                    l.transitions_since(since)?,
                    l.found_after_gap(from, i64::MAX)?,
                    activity,
                ))
            })
            .await?;
        let mut trackers = self.trackers.clone();
        incident::track(&mut trackers, &rows, Judge { slow: self.slow, now_ms });
        let mut days = self.days.clone();
        add(&mut days, counts);
        let mut gaps = std::mem::take(&mut activity.gaps);
        gaps.extend(activity.ongoing(now_ms));
        let unwatched: Vec<Row> = self.unwatched.iter().cloned().chain(unwatched).collect();
        gaps.extend(incident::gap::unwatched(&unwatched, &settings.intervals));
        gaps.sort_by_key(|g| g.from_ms);
        Ok(Data { trackers, days, transitions, gaps, first_day: self.first_day })
    }
}
