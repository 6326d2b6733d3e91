//! Reads: canaries one at a time, since a moment, or still in flight, and
//! providers' changes of state, for the matcher after a restart, `check`,
//! `report` and the status API. (The status page's reads over weeks are in
//! history.rs.)

use super::{COLUMNS, Ledger, Result, Row, row};
use crate::health::{State as HealthState, Transition};
use rusqlite::{OptionalExtension, params};

impl Ledger {
    /// One canary as recorded.
    pub fn get(&self, id: &str) -> Result<Option<Row>> {
        self.with(|db| {
            db.query_row(&format!("SELECT {COLUMNS} FROM canaries WHERE id = ?1"), params![id], row).optional()
        })
    }

    /// Canaries resolved or sent since `since_ms`, oldest first.
    pub fn since(&self, since_ms: i64) -> Result<Vec<Row>> {
        self.with(|db| {
            let mut stmt =
                db.prepare(&format!("SELECT {COLUMNS} FROM canaries WHERE created_ms >= ?1 ORDER BY created_ms"))?;
            stmt.query_map(params![since_ms], row)?.collect()
        })
    }

    /// When the last canary of `probe` was made (ms), if it has any: an
    /// application trigger waits its interval from there after a restart.
    pub fn last_created(&self, probe: &str) -> Result<Option<i64>> {
        self.with(|db| {
            db.query_row("SELECT MAX(created_ms) FROM canaries WHERE probe = ?1", params![probe], |r| r.get(0))
        })
    }

    /// Every canary still waiting, to pick up after a restart.
    pub fn pending(&self) -> Result<Vec<Row>> {
        self.with(|db| {
            let mut stmt = db.prepare(&format!(
                "SELECT {COLUMNS} FROM canaries WHERE state IN ('sending', 'sent') ORDER BY created_ms"
            ))?;
            stmt.query_map([], row)?.collect()
        })
    }

    /// Providers' changes of state since `since_ms`, oldest first.
    pub fn transitions_since(&self, since_ms: i64) -> Result<Vec<Transition>> {
        self.with(|db| {
            let mut stmt = db.prepare(
                "SELECT provider, from_state, to_state, at_ms, reason FROM provider_transitions
                 WHERE at_ms >= ?1 ORDER BY at_ms, rowid",
            )?;
            stmt.query_map(params![since_ms], transition)?.collect()
        })
    }

    /// Each provider's last change of state: where it stood at the stop.
    pub fn last_transitions(&self) -> Result<Vec<Transition>> {
        self.with(|db| {
            let mut stmt = db.prepare(
                "SELECT provider, from_state, to_state, at_ms, reason FROM provider_transitions t
                 WHERE rowid = (SELECT max(rowid) FROM provider_transitions WHERE provider = t.provider)",
            )?;
            stmt.query_map([], transition)?.collect()
        })
    }
}

fn transition(r: &rusqlite::Row<'_>) -> Result<Transition> {
    let state = |s: String| HealthState::parse(&s).unwrap_or(HealthState::Unknown);
    Ok(Transition {
        provider: r.get(0)?,
        from: state(r.get(1)?),
        to: state(r.get(2)?),
        at_ms: r.get(3)?,
        reason: r.get(4)?,
    })
}
