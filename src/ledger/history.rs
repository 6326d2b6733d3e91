//! Reads for the status page over long periods: only the canaries that
//! decide incident windows, and delivery counts per provider and day, so
//! a page over weeks of 1,000 routes reads thousands of rows, not millions.

use super::{COLUMNS, Ledger, Result, Row, row};
use rusqlite::params;
use std::collections::HashMap;

/// One provider's canaries resolved on one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayCount {
    pub provider: String,
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    /// Resolved: delivered, refused, lost, late or bounced.
    pub resolved: i64,
    /// Of those, delivered within their timeout.
    pub delivered: i64,
}

const DAY_MS: i64 = 86_400_000;

impl Ledger {
    /// The canaries sent in `[from_ms, to_ms)` that can open or close a
    /// window (crate::incident), oldest first: those that may have gone
    /// wrong (any but a delivery to the inbox within `slow_ms`; with
    /// `overdue_before`, those still in flight that were sent before it),
    /// the one after each of them on the same route, and each route's
    /// first (which closes a window left open before `from_ms`). Which of
    /// them went wrong is decided by crate::incident, not here: fed to a
    /// tracker they make the same windows as every canary would. A canary
    /// in flight sent since `overdue_before` is passed over, as a tracker
    /// passes it over; without `overdue_before`, every one in flight is.
    /// `each` is told of every canary made (route, time made), in time
    /// order, whatever its state: what monitoring gaps are found from.
    ///
    /// The choice is made on the `canaries_history` index alone (a scan in
    /// time order, no sort); only the rows chosen are read from the table.
    pub fn window_rows(
        &self,
        from_ms: i64,
        to_ms: i64,
        slow_ms: i64,
        overdue_before: Option<i64>,
        mut each: impl FnMut(&str, i64),
    ) -> Result<Vec<Row>> {
        self.with(|db| {
            let mut scan = db.prepare_cached(
                "SELECT rowid, probe, (state != 'delivered' OR placement IS NOT 'inbox' OR latency_ms IS NULL OR latency_ms > ?3),
                        created_ms, state IN ('sending', 'sent')
                 FROM canaries INDEXED BY canaries_history
                 WHERE created_ms >= ?1 AND created_ms < ?2
                 ORDER BY created_ms",
            )?;
            // Per route: whether its previous canary may have gone wrong.
            let mut previous: HashMap<String, bool> = HashMap::new();
            let mut chosen = Vec::new();
            let mut rows = scan.query(params![from_ms, to_ms, slow_ms])?;
            while let Some(r) = rows.next()? {
                let probe = r.get_ref(1)?.as_str()?;
                let created_ms: i64 = r.get(3)?;
                each(probe, created_ms);
                let in_flight: bool = r.get(4)?;
                if in_flight && overdue_before.is_none_or(|before| created_ms >= before) {
                    continue;
                }
                let suspect: bool = r.get(2)?;
                let after_suspect = match previous.get_mut(probe) {
                    Some(prev) => std::mem::replace(prev, suspect),
                    None => {
                        previous.insert(probe.to_string(), suspect);
                        true // the route's first
                    }
                };
                if suspect || after_suspect {
                    chosen.push(r.get::<_, i64>(0)?);
                }
            }
            let mut get = db.prepare_cached(&format!("SELECT {COLUMNS} FROM canaries WHERE rowid = ?1"))?;
            chosen.into_iter().map(|rowid| get.query_row(params![rowid], row)).collect()
        })
    }

    /// The canaries sent in `[from_ms, to_ms)` that were found only after
    /// their inbox could not be watched for a while (crate::incident::gap),
    /// oldest first: few, read through an index of their own.
    pub fn found_after_gap(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Row>> {
        self.with(|db| {
            let mut stmt = db.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM canaries INDEXED BY canaries_after_gap
                 WHERE observed = 'after_gap' AND created_ms >= ?1 AND created_ms < ?2 ORDER BY created_ms"
            ))?;
            stmt.query_map(params![from_ms, to_ms], row)?.collect()
        })
    }

    /// Puts `r` in the ledger as it stands, for tests of what reads it.
    #[cfg(test)]
    pub(crate) fn insert(&self, r: &Row) -> Result<()> {
        self.with(|db| {
            db.execute(
                "INSERT INTO canaries (id, probe, provider, inbox, state, created_ms, deadline_ms, accepted_ms,
                                       seen_ms, latency_ms, placement, observed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    r.id,
                    r.probe,
                    r.provider,
                    r.inbox,
                    r.state.as_str(),
                    r.created_ms,
                    r.deadline_ms,
                    r.accepted_ms,
                    r.seen_ms,
                    r.latency_ms,
                    r.placement,
                    (r.observed != crate::outcome::Observed::Live).then(|| r.observed.as_str()),
                ],
            )
            .map(drop)
        })
    }

    /// Canaries resolved per provider and UTC day, of those sent in `[from_ms, to_ms)`.
    pub fn day_counts(&self, from_ms: i64, to_ms: i64) -> Result<Vec<DayCount>> {
        self.with(|db| {
            let mut stmt = db.prepare_cached(
                "SELECT provider, created_ms / ?3, count(*), sum(state = 'delivered') FROM canaries INDEXED BY canaries_history
                 WHERE created_ms >= ?1 AND created_ms < ?2 AND state NOT IN ('sending', 'sent')
                 GROUP BY provider, created_ms / ?3",
            )?;
            stmt.query_map(params![from_ms, to_ms, DAY_MS], |r| {
                Ok(DayCount { provider: r.get(0)?, day: r.get(1)?, resolved: r.get(2)?, delivered: r.get(3)? })
            })?
            .collect()
        })
    }

    /// The delivery latencies (seconds) of each of `routes`' newest
    /// deliveries (within their timeout, as live learning sees them), sent
    /// in `[since_ms, until_ms)`: up to `per_route` each, oldest first, in
    /// the order of `routes` (probe and provider: a name that went through
    /// another provider before learns nothing from then; the inbox is not
    /// in the history index, and reading the table for it at every start
    /// would cost a lookup per row). What a restarted service learns its routes' overdue
    /// bounds from (crate::health::learn). Reads the history index newest
    /// first and stops once every route has its fill or `max_rows` were
    /// read (a dead route never fills: the day is not read whole for it).
    pub fn recent_latencies(
        &self,
        routes: &[(String, String)],
        (since_ms, until_ms): (i64, i64),
        per_route: usize,
        max_rows: usize,
    ) -> Result<Vec<Vec<f64>>> {
        self.with(|db| {
            let mut stmt = db.prepare_cached(
                "SELECT probe, provider, latency_ms FROM canaries INDEXED BY canaries_history
                 WHERE created_ms >= ?1 AND created_ms < ?2 AND state = 'delivered' AND latency_ms IS NOT NULL
                 ORDER BY created_ms DESC",
            )?;
            let mut rows = stmt.query([since_ms, until_ms])?;
            let index: HashMap<(&str, &str), usize> =
                routes.iter().enumerate().map(|(i, (p, s))| ((p.as_str(), s.as_str()), i)).collect();
            let mut out: Vec<Vec<f64>> = vec![Vec::new(); routes.len()];
            let mut unfilled = if per_route == 0 { 0 } else { index.len() };
            let mut read = 0;
            while unfilled > 0
                && read < max_rows
                && let Some(row) = rows.next()?
            {
                read += 1;
                let (probe, provider): (String, String) = (row.get(0)?, row.get(1)?);
                let Some(&i) = index.get(&(probe.as_str(), provider.as_str())) else { continue };
                if out[i].len() < per_route {
                    out[i].push(row.get::<_, i64>(2)?.max(0) as f64 / 1000.0);
                    unfilled -= usize::from(out[i].len() == per_route);
                }
            }
            out.iter_mut().for_each(|v| v.reverse());
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Judge, Trackers, track};
    use std::time::Duration;

    /// A ledger of 3 routes × 300 canaries in a pseudo-random mix of outcomes.
    fn ledger() -> Ledger {
        let ledger = Ledger::in_memory().unwrap();
        let states = ["delivered", "delivered", "delivered", "lost", "refused", "late", "bounced", "sent"];
        let mut x: u64 = 7;
        ledger
            .with(|db| {
                for n in 0..300i64 {
                    for probe in ["a", "b", "c"] {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let state = states[(x >> 33) as usize % states.len()];
                        let latency = if (x >> 20).is_multiple_of(10) { 200_000 } else { 1_000 };
                        let placement = if (x >> 40).is_multiple_of(13) { "spam" } else { "inbox" };
                        db.execute(
                            "INSERT INTO canaries (id, probe, provider, inbox, state, created_ms, deadline_ms, latency_ms, placement)
                             VALUES (?1, ?2, 'p', 'i', ?3, ?4, 0, ?5, ?6)",
                            params![format!("{probe}{n}"), probe, state, n * 60_000, latency, placement],
                        )?;
                    }
                }
                Ok(())
            })
            .unwrap();
        ledger
    }

    #[test]
    fn recent_latencies_are_each_routes_newest_deliveries_oldest_first() {
        let ledger = ledger();
        let route = |probe: &str, provider: &str| (probe.to_string(), provider.to_string());
        // The fixture's canaries all went through p.
        let routes = [route("a", "p"), route("b", "p"), route("gone", "p"), route("a", "q")];
        let since = 100 * 60_000;
        let got = ledger.recent_latencies(&routes, (since, i64::MAX), 50, usize::MAX).unwrap();
        for (i, probe) in ["a", "b"].into_iter().enumerate() {
            let want: Vec<f64> = ledger
                .with(|db| {
                    db.prepare(
                        "SELECT latency_ms FROM canaries WHERE probe = ?1 AND created_ms >= ?2
                         AND state = 'delivered' ORDER BY created_ms DESC LIMIT 50",
                    )?
                    .query_map(params![probe, since], |r| Ok(r.get::<_, i64>(0)? as f64 / 1000.0))?
                    .collect()
                })
                .unwrap();
            let want: Vec<f64> = want.into_iter().rev().collect();
            assert_eq!(want.len(), 50, "the fixture has enough");
            assert_eq!(got[i], want, "{probe}");
        }
        assert!(got[2].is_empty(), "a route without deliveries learns nothing");
        assert!(got[3].is_empty(), "nor a name from what it delivered through another provider");
        assert!(ledger.recent_latencies(&routes, (since, i64::MAX), 0, usize::MAX).unwrap().iter().all(Vec::is_empty));
        // Rows past the cap are not read: the newest 10 of the window, over a and b.
        let capped = ledger.recent_latencies(&routes, (since, i64::MAX), 50, 10).unwrap();
        assert!(capped.iter().map(Vec::len).sum::<usize>() <= 10);
        let until = 250 * 60_000;
        let older = ledger.recent_latencies(&routes, (since, until), 50, usize::MAX).unwrap();
        assert_ne!(older[0], got[0], "only those sent before `until`");
    }

    #[test]
    fn window_rows_read_in_pieces_make_the_windows_every_row_makes() {
        let ledger = ledger();
        let every = ledger.since(0).unwrap();
        // Settled (no canary in flight read), and fresh (those in flight too,
        // judged at a moment when the newest of them are not yet overdue).
        for (overdue_before, now_ms) in [(None, i64::MAX), (Some(300 * 60_000 - 90_000), 300 * 60_000)] {
            let in_flight = overdue_before.is_some();
            let judge = Judge { slow: Duration::from_secs(90), now_ms };
            let counted: Vec<_> =
                every.iter().filter(|r| in_flight || r.state != crate::ledger::State::Sent).cloned().collect();
            let mut all = Trackers::new();
            track(&mut all, &counted, judge);
            let mut told = 0;
            let mut pieces = Trackers::new();
            let mut read = 0;
            for (from, to) in [(0, 4_000_000), (4_000_000, 9_000_001), (9_000_001, i64::MAX)] {
                let slow_ms = judge.slow.as_millis() as i64;
                let rows = ledger.window_rows(from, to, slow_ms, overdue_before, |_, _| told += 1).unwrap();
                read += rows.len();
                track(&mut pieces, &rows, judge);
            }
            assert!(read < 900, "only the rows that matter are read: {read}");
            assert_eq!(told, every.len(), "every canary is told of");
            let windows = |t: &Trackers| -> Vec<(String, i64, i64, Option<i64>, usize)> {
                t.iter()
                    .flat_map(|(p, t)| {
                        t.windows.iter().map(move |w| (p.clone(), w.from_ms, w.to_ms, w.closed_ms, w.canaries.len()))
                    })
                    .collect()
            };
            assert!(!windows(&all).is_empty());
            assert_eq!(windows(&pieces), windows(&all), "in flight read: {in_flight}");
        }
    }

    #[test]
    fn day_counts_count_resolved_and_delivered_per_provider_and_day() {
        let ledger = ledger();
        let counts = ledger.day_counts(0, i64::MAX).unwrap();
        assert_eq!(counts.len(), 1, "300 minutes are one day: {counts:?}");
        let rows = ledger.since(0).unwrap();
        let resolved = rows.iter().filter(|r| !matches!(r.state, crate::ledger::State::Sent)).count() as i64;
        let delivered = rows
            .iter()
            .filter(|r| r.state == crate::ledger::State::Settled(crate::outcome::OutcomeKind::Delivered))
            .count() as i64;
        assert_eq!((counts[0].resolved, counts[0].delivered), (resolved, delivered));
    }
}
