//! The real traffic of a window counted by how it was hurt, in SQL: what
//! the status page shows beside an incident, and the check of `impact`'s
//! counts. The rules are crate::traffic::impact::harm's, said once more in
//! SQL (impact's tests hold the two to the same answers).

use super::{Ledger, Result};
use rusqlite::params;
use serde::Serialize;

/// Real messages first known in a window, by how they were hurt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TrafficCounts {
    pub messages: u64,
    /// Delivered later than `slow` after they were sent.
    pub late: u64,
    /// Deferred and not delivered (so far).
    pub deferred: u64,
    /// No final event `slow` after they were sent.
    pub no_final_event: u64,
    pub bounced: u64,
    pub rejected: u64,
    pub dropped: u64,
}

impl TrafficCounts {
    /// Messages hurt in any way.
    pub fn affected(&self) -> u64 {
        self.late + self.deferred + self.no_final_event + self.bounced + self.rejected + self.dropped
    }
}

impl Ledger {
    /// The messages of `providers` first known in `[from_ms, to_ms)`,
    /// counted as `impact` judges them with `slow_ms` at `now_ms`.
    pub fn traffic_counts(
        &self,
        providers: &[String],
        from_ms: i64,
        to_ms: i64,
        slow_ms: i64,
        now_ms: i64,
    ) -> Result<TrafficCounts> {
        self.with(|db| {
            let mut stmt = db.prepare_cached(
                "SELECT count(*),
                        coalesce(sum(settled = 'delivered' AND coalesce(delay_ms, settled_ms - first_ms, 0) > ?4), 0),
                        coalesce(sum(settled IS NULL AND deferred_ms IS NOT NULL), 0),
                        coalesce(sum(settled IS NULL AND deferred_ms IS NULL AND ?5 - first_ms > ?4), 0),
                        coalesce(sum(settled = 'bounced'), 0),
                        coalesce(sum(settled = 'rejected'), 0),
                        coalesce(sum(settled = 'dropped'), 0)
                 FROM traffic_messages WHERE provider = ?1 AND first_ms >= ?2 AND first_ms < ?3",
            )?;
            let mut all = TrafficCounts::default();
            for p in providers {
                let c = stmt.query_row(params![p, from_ms, to_ms, slow_ms, now_ms], |r| {
                    let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                    Ok(TrafficCounts {
                        messages: n(0)?,
                        late: n(1)?,
                        deferred: n(2)?,
                        no_final_event: n(3)?,
                        bounced: n(4)?,
                        rejected: n(5)?,
                        dropped: n(6)?,
                    })
                })?;
                all.messages += c.messages;
                all.late += c.late;
                all.deferred += c.deferred;
                all.no_final_event += c.no_final_event;
                all.bounced += c.bounced;
                all.rejected += c.rejected;
                all.dropped += c.dropped;
            }
            Ok(all)
        })
    }

    /// Every provider's messages first known in `[from_ms, to_ms)`, per
    /// minute (its start, Unix ms) and by what happened to them, judged as
    /// [`traffic_counts`](Self::traffic_counts) does: `delivered`, `late`,
    /// `deferred`, `no final event`, `bounced`, `rejected`, `dropped`, or
    /// `in flight`. What `report --html` charts.
    pub fn traffic_per_minute(
        &self,
        from_ms: i64,
        to_ms: i64,
        slow_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<(i64, String, u64)>> {
        self.with(|db| {
            let mut stmt = db.prepare_cached(
                "SELECT (first_ms / 60000) * 60000 AS minute,
                        CASE
                          WHEN settled = 'delivered' AND coalesce(delay_ms, settled_ms - first_ms, 0) > ?3 THEN 'late'
                          WHEN settled = 'delivered' THEN 'delivered'
                          WHEN settled IN ('bounced', 'rejected', 'dropped') THEN settled
                          WHEN deferred_ms IS NOT NULL THEN 'deferred'
                          WHEN ?4 - first_ms > ?3 THEN 'no final event'
                          ELSE 'in flight'
                        END AS kind,
                        count(*)
                 FROM traffic_messages INDEXED BY traffic_messages_age
                 WHERE first_ms >= ?1 AND first_ms < ?2
                 GROUP BY minute, kind ORDER BY minute",
            )?;
            stmt.query_map(params![from_ms, to_ms, slow_ms, now_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })?
            .collect()
        })
    }
}
