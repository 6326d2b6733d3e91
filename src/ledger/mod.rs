//! The ledger: every canary in SQLite, recorded before it is sent and
//! updated on each outcome. Each transition is one conditional UPDATE whose
//! row count says whether it happened, so an outcome is recorded (and
//! counted) exactly once even when two paths race for it.
//!
//! The service reaches SQLite only through [`LedgerThread`]: one thread of
//! its own, behind a channel, so that a ledger file held locked by someone
//! else (a backup, a `report` on a big ledger) never blocks the runtime.

mod history;
mod thread;

pub use history::DayCount;
pub use thread::{LedgerError, LedgerThread};

use crate::canary::Canary;
use crate::health::{State as HealthState, Transition};
use crate::insight::Hop;
use crate::outcome::{Expectation, Observed, Placement, SendReason};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

/// Where a canary is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Recorded, being handed to the provider.
    Sending,
    /// Accepted by the provider, not yet seen.
    Sent,
    /// Not accepted by the provider.
    Failed,
    Delivered,
    Lost,
    /// Seen after it was counted lost.
    Late,
    /// A delivery status notification said it failed.
    Bounced,
    /// An application's email that came in time but failed an expectation.
    Mismatched,
}

impl State {
    /// The name used in the ledger, reports and the status API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Sending => "sending",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Delivered => "delivered",
            State::Lost => "lost",
            State::Late => "late",
            State::Bounced => "bounced",
            State::Mismatched => "mismatched",
        }
    }

    fn parse(s: &str) -> Option<State> {
        Some(match s {
            "sending" => State::Sending,
            "sent" => State::Sent,
            "failed" => State::Failed,
            "delivered" => State::Delivered,
            "lost" => State::Lost,
            "late" => State::Late,
            "bounced" => State::Bounced,
            "mismatched" => State::Mismatched,
            _ => return None,
        })
    }
}

/// One canary as the ledger has it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub probe: String,
    pub provider: String,
    pub inbox: String,
    pub state: State,
    pub created_ms: i64,
    pub accepted_ms: Option<i64>,
    /// When it counts as lost if not seen (acceptance + the route's timeout).
    pub deadline_ms: i64,
    pub provider_id: Option<String>,
    pub failure_reason: Option<String>,
    pub seen_ms: Option<i64>,
    pub latency_ms: Option<i64>,
    pub placement: Option<String>,
    /// The DSN's status code and diagnostic, when one came back (also for a
    /// canary already counted lost).
    pub bounce_status: Option<String>,
    pub bounce_detail: Option<String>,
    /// The `Received` hops of a canary seen (crate::insight::Hop as JSON).
    pub hops: Vec<Hop>,
    /// How its arrival was observed (live, or found after a restart or a gap).
    pub observed: Observed,
    /// The expectation a mismatched application canary failed.
    pub expectation: Option<Expectation>,
}

/// Errors are the database's; callers log them and carry on.
pub type Result<T> = rusqlite::Result<T>;

pub struct Ledger {
    db: Mutex<Connection>,
}

/// The columns `row` reads, in its order.
const COLUMNS: &str = "id, probe, provider, inbox, state, created_ms, accepted_ms, deadline_ms, provider_id, \
                       failure_reason, seen_ms, latency_ms, placement, bounce_status, bounce_detail, hops, observed, \
                       expectation";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS canaries (
    id TEXT PRIMARY KEY,
    probe TEXT NOT NULL,
    provider TEXT NOT NULL,
    inbox TEXT NOT NULL,
    state TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    accepted_ms INTEGER,
    send_ms INTEGER,
    provider_id TEXT,
    failure_reason TEXT,
    failure_detail TEXT,
    seen_ms INTEGER,
    latency_ms INTEGER,
    placement TEXT,
    lost_ms INTEGER,
    bounce_status TEXT,
    bounce_detail TEXT,
    hops TEXT,
    observed TEXT,
    expectation TEXT
);
CREATE INDEX IF NOT EXISTS canaries_pending ON canaries(state) WHERE state IN ('sending', 'sent');
CREATE INDEX IF NOT EXISTS canaries_created ON canaries(created_ms);
-- The status page's reads over weeks (history.rs) use only these columns:
-- they scan this index, never the table.
CREATE INDEX IF NOT EXISTS canaries_history ON canaries(created_ms, probe, provider, state, placement, latency_ms);
CREATE TABLE IF NOT EXISTS provider_transitions (
    provider TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS provider_transitions_at ON provider_transitions(at_ms);
CREATE TABLE IF NOT EXISTS cursors (
    inbox TEXT NOT NULL,
    folder TEXT NOT NULL,
    uid_validity INTEGER NOT NULL,
    next_uid INTEGER NOT NULL,
    PRIMARY KEY (inbox, folder)
);
";

/// Columns added after the first release, with their types.
const ADDED_COLUMNS: [(&str, &str); 5] = [
    ("bounce_status", "TEXT"),
    ("bounce_detail", "TEXT"),
    ("hops", "TEXT"),
    ("observed", "TEXT"),
    ("expectation", "TEXT"),
];

impl Ledger {
    /// Opens (or creates) the ledger in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Ledger> {
        std::fs::create_dir_all(state_dir).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create state_dir {}: {e}", state_dir.display())),
            )
        })?;
        let db = Connection::open(state_dir.join("ledger.sqlite"))?;
        // WAL with FULL sync: every committed transition (above all "sending",
        // written before anything leaves) is on disk before the call returns,
        // across a crash of the process and a loss of power alike.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        // Someone else may hold the file for a while (a backup, a report):
        // wait for them rather than lose a transition. This waits on the
        // ledger's own thread, never on the runtime.
        db.busy_timeout(std::time::Duration::from_secs(60))?;
        Self::init(db)
    }

    /// A ledger that lives only as long as the process (for `check`).
    pub fn in_memory() -> Result<Ledger> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> Result<Ledger> {
        db.execute_batch(SCHEMA)?;
        // Ledgers written by earlier versions lack the newer columns.
        let existing: Vec<String> = db
            .prepare("SELECT name FROM pragma_table_info('canaries')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_>>()?;
        for (column, kind) in ADDED_COLUMNS {
            if !existing.iter().any(|c| c == column) {
                db.execute_batch(&format!("ALTER TABLE canaries ADD COLUMN {column} {kind}"))?;
            }
        }
        Ok(Ledger { db: Mutex::new(db) })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let db = self.db.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&db)
    }

    /// Step 1 of a canary's life: recorded before anything leaves.
    pub fn record_sending(&self, canary: &Canary, deadline_ms: i64) -> Result<()> {
        self.with(|db| {
            db.execute(
                "INSERT INTO canaries (id, probe, provider, inbox, state, created_ms, deadline_ms)
                 VALUES (?1, ?2, ?3, ?4, 'sending', ?5, ?6)",
                params![canary.id, canary.probe, canary.provider, canary.inbox, canary.created_ms, deadline_ms],
            )
            .map(drop)
        })
    }

    /// The provider accepted it.
    pub fn record_sent(
        &self,
        id: &str,
        accepted_ms: i64,
        send_ms: i64,
        provider_id: Option<&str>,
        deadline_ms: i64,
    ) -> Result<bool> {
        self.with(|db| {
            db.execute(
                "UPDATE canaries SET state = 'sent', accepted_ms = ?2, send_ms = ?3, provider_id = ?4, deadline_ms = ?5
                 WHERE id = ?1 AND state = 'sending'",
                params![id, accepted_ms, send_ms, provider_id, deadline_ms],
            )
            .map(|n| n == 1)
        })
    }

    /// The provider refused it.
    pub fn record_failed(&self, id: &str, reason: SendReason, detail: &str) -> Result<bool> {
        self.with(|db| {
            db.execute(
                "UPDATE canaries SET state = 'failed', failure_reason = ?2, failure_detail = ?3
                 WHERE id = ?1 AND state = 'sending'",
                params![id, reason.as_str(), detail],
            )
            .map(|n| n == 1)
        })
    }

    /// Seen in time. True only for the one call that moved it.
    pub fn record_delivered(&self, id: &str, seen: &Seen) -> Result<bool> {
        self.record_seen(id, seen, "delivered", "state IN ('sending', 'sent')")
    }

    /// A canary seen, moved to `state` if it is in a state `from` allows.
    fn record_seen(&self, id: &str, seen: &Seen, state: &str, from: &str) -> Result<bool> {
        self.with(|db| {
            db.execute(
                &format!(
                    "UPDATE canaries SET state = '{state}', seen_ms = ?2, latency_ms = ?3, placement = ?4, hops = ?5,
                     observed = ?6 WHERE id = ?1 AND {from}"
                ),
                params![
                    id,
                    seen.seen_ms,
                    seen.latency_ms,
                    seen.placement.as_str(),
                    hops_json(&seen.hops),
                    observed(seen.observed)
                ],
            )
            .map(|n| n == 1)
        })
    }

    /// An application's email came in time but failed `expectation`.
    pub fn record_mismatched(&self, id: &str, seen: &Seen, expectation: Expectation) -> Result<bool> {
        let moved = self.record_seen(id, seen, "mismatched", "state IN ('sending', 'sent')")?;
        if moved {
            self.with(|db| {
                db.execute("UPDATE canaries SET expectation = ?2 WHERE id = ?1", params![id, expectation.as_str()])
            })?;
        }
        Ok(moved)
    }

    /// A DSN said delivery failed, before the deadline.
    pub fn record_bounced(&self, id: &str, seen_ms: i64, status: &str, detail: Option<&str>) -> Result<bool> {
        self.with(|db| {
            db.execute(
                "UPDATE canaries SET state = 'bounced', seen_ms = ?2, bounce_status = ?3, bounce_detail = ?4
                 WHERE id = ?1 AND state IN ('sending', 'sent')",
                params![id, seen_ms, status, detail],
            )
            .map(|n| n == 1)
        })
    }

    /// A DSN for a canary already counted lost: why it never came. Its
    /// outcome stays `lost` (it was counted so).
    pub fn record_bounce_after_lost(&self, id: &str, status: &str, detail: Option<&str>) -> Result<bool> {
        self.with(|db| {
            db.execute(
                "UPDATE canaries SET bounce_status = ?2, bounce_detail = ?3
                 WHERE id = ?1 AND state = 'lost' AND bounce_status IS NULL",
                params![id, status, detail],
            )
            .map(|n| n == 1)
        })
    }

    /// Not seen by its deadline.
    pub fn record_lost(&self, id: &str, lost_ms: i64) -> Result<bool> {
        self.with(|db| {
            db.execute(
                "UPDATE canaries SET state = 'lost', lost_ms = ?2 WHERE id = ?1 AND state IN ('sending', 'sent')",
                params![id, lost_ms],
            )
            .map(|n| n == 1)
        })
    }

    /// Seen after it was counted lost.
    pub fn record_late(&self, id: &str, seen: &Seen) -> Result<bool> {
        self.record_seen(id, seen, "late", "state = 'lost'")
    }

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

    /// A provider changed state (crate::health).
    pub fn record_transition(&self, t: &Transition) -> Result<()> {
        self.with(|db| {
            db.execute(
                "INSERT INTO provider_transitions (provider, from_state, to_state, at_ms, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.provider, t.from.as_str(), t.to.as_str(), t.at_ms, t.reason],
            )
            .map(drop)
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

    /// Where the watcher of `inbox` stopped reading `folder`.
    pub fn cursor(&self, inbox: &str, folder: &str) -> Result<Option<(u32, u32)>> {
        self.with(|db| {
            db.query_row(
                "SELECT uid_validity, next_uid FROM cursors WHERE inbox = ?1 AND folder = ?2",
                params![inbox, folder],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    pub fn set_cursor(&self, inbox: &str, folder: &str, uid_validity: u32, next_uid: u32) -> Result<()> {
        self.with(|db| {
            db.execute(
                "INSERT INTO cursors (inbox, folder, uid_validity, next_uid) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (inbox, folder) DO UPDATE SET uid_validity = ?3, next_uid = ?4",
                params![inbox, folder, uid_validity, next_uid],
            )
            .map(drop)
        })
    }

    /// Forgets resolved canaries made before `before_ms`.
    pub fn prune(&self, before_ms: i64) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self.prune_batch(before_ms, PRUNE_BATCH)?;
            total += n;
            if n < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Forgets at most `limit` resolved canaries made before `before_ms`:
    /// one short transaction, so that other work waits for it only briefly.
    pub fn prune_batch(&self, before_ms: i64, limit: usize) -> Result<usize> {
        self.with(|db| {
            db.execute(
                "DELETE FROM canaries WHERE rowid IN (SELECT rowid FROM canaries
                 WHERE created_ms < ?1 AND state NOT IN ('sending', 'sent') LIMIT ?2)",
                params![before_ms, limit as i64],
            )
            .and_then(|n| {
                // Keep each provider's last change: it is where it stands.
                db.execute(
                    "DELETE FROM provider_transitions WHERE at_ms < ?1 AND rowid NOT IN
                     (SELECT max(rowid) FROM provider_transitions GROUP BY provider)",
                    params![before_ms],
                )?;
                Ok(n)
            })
        })
    }
}

fn row(r: &rusqlite::Row<'_>) -> Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        probe: r.get(1)?,
        provider: r.get(2)?,
        inbox: r.get(3)?,
        state: State::parse(&r.get::<_, String>(4)?).unwrap_or(State::Failed),
        created_ms: r.get(5)?,
        accepted_ms: r.get(6)?,
        deadline_ms: r.get(7)?,
        provider_id: r.get(8)?,
        failure_reason: r.get(9)?,
        seen_ms: r.get(10)?,
        latency_ms: r.get(11)?,
        placement: r.get(12)?,
        bounce_status: r.get(13)?,
        bounce_detail: r.get(14)?,
        hops: r.get::<_, Option<String>>(15)?.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default(),
        observed: Observed::parse(r.get::<_, Option<String>>(16)?.as_deref()),
        expectation: r.get::<_, Option<String>>(17)?.as_deref().and_then(Expectation::parse),
    })
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

/// What the ledger keeps of a canary seen in a mailbox.
#[derive(Debug, Clone)]
pub struct Seen {
    pub seen_ms: i64,
    pub latency_ms: i64,
    pub placement: Placement,
    pub hops: Vec<Hop>,
    pub observed: Observed,
}

/// Resolved canaries forgotten per prune transaction.
pub const PRUNE_BATCH: usize = 1000;

fn observed(o: Observed) -> Option<&'static str> {
    (o != Observed::Live).then(|| o.as_str())
}

fn hops_json(hops: &[Hop]) -> Option<String> {
    (!hops.is_empty()).then(|| serde_json::to_string(hops).expect("hops serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::{Canary, SigningKey};
    use crate::config::Route;
    use crate::secret::Secret;
    use std::time::Duration;

    fn canary() -> Canary {
        let route = Route {
            name: "r".into(),
            provider: "p".into(),
            inbox: "i".into(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(60),
            jitter: 0.0,
            trigger: None,
        };
        let key = SigningKey::new(Secret::new("0123456789abcdef"));
        Canary::new(&route, "a@x.test", "b@x.test", "inst", None, &key, chrono::Utc::now())
    }

    #[test]
    fn each_outcome_happens_once() {
        let ledger = Ledger::in_memory().unwrap();
        let c = canary();
        ledger.record_sending(&c, 10).unwrap();
        assert!(ledger.record_sent(&c.id, 1, 1, Some("Q1"), 10).unwrap());
        assert!(!ledger.record_sent(&c.id, 1, 1, Some("Q1"), 10).unwrap());
        assert!(ledger.record_lost(&c.id, 11).unwrap());
        let seen =
            Seen { seen_ms: 12, latency_ms: 11, placement: Placement::Inbox, hops: vec![], observed: Observed::Live };
        assert!(!ledger.record_delivered(&c.id, &seen).unwrap(), "a lost canary is never delivered");
        assert!(!ledger.record_bounced(&c.id, 12, "5.1.1", None).unwrap(), "a lost canary is never bounced");
        assert!(ledger.record_late(&c.id, &seen).unwrap());
        assert!(!ledger.record_late(&c.id, &seen).unwrap(), "late only once");
        let row = ledger.get(&c.id).unwrap().unwrap();
        assert_eq!(row.state, State::Late);
        assert_eq!(row.provider_id.as_deref(), Some("Q1"));
        assert!(ledger.pending().unwrap().is_empty());
    }

    #[test]
    fn a_bounce_resolves_once_and_explains_a_loss() {
        let ledger = Ledger::in_memory().unwrap();
        let (bounced, lost) = (canary(), canary());
        for c in [&bounced, &lost] {
            ledger.record_sending(c, 10).unwrap();
            ledger.record_sent(&c.id, 1, 1, None, 10).unwrap();
        }
        assert!(ledger.record_bounced(&bounced.id, 5, "5.1.1", Some("User unknown")).unwrap());
        assert!(!ledger.record_bounced(&bounced.id, 6, "5.1.1", None).unwrap(), "bounced only once");
        assert!(!ledger.record_lost(&bounced.id, 11).unwrap(), "a bounced canary is never lost");
        let row = ledger.get(&bounced.id).unwrap().unwrap();
        assert_eq!((row.state, row.bounce_status.as_deref()), (State::Bounced, Some("5.1.1")));
        assert_eq!(row.bounce_detail.as_deref(), Some("User unknown"));

        assert!(ledger.record_lost(&lost.id, 11).unwrap());
        assert!(ledger.record_bounce_after_lost(&lost.id, "4.4.7", None).unwrap());
        assert!(!ledger.record_bounce_after_lost(&lost.id, "4.4.7", None).unwrap());
        let row = ledger.get(&lost.id).unwrap().unwrap();
        assert_eq!((row.state, row.bounce_status.as_deref()), (State::Lost, Some("4.4.7")));
    }

    #[test]
    fn hops_are_kept_with_the_canary() {
        let ledger = Ledger::in_memory().unwrap();
        let c = canary();
        ledger.record_sending(&c, 10).unwrap();
        ledger.record_sent(&c.id, 1, 1, None, 10).unwrap();
        let hops = vec![Hop { position: 1, by: Some("mx.test".into()), tls: true, delay_seconds: Some(2.0) }];
        let seen = Seen {
            seen_ms: 5,
            latency_ms: 4,
            placement: Placement::Inbox,
            hops: hops.clone(),
            observed: Observed::AfterRestart,
        };
        assert!(ledger.record_delivered(&c.id, &seen).unwrap());
        let row = ledger.get(&c.id).unwrap().unwrap();
        assert_eq!((row.hops, row.observed), (hops, Observed::AfterRestart));
    }

    #[test]
    fn a_ledger_of_an_earlier_version_gains_the_new_columns() {
        let dir = std::env::temp_dir().join(format!("mailcanary-ledger-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let db = Connection::open(dir.join("ledger.sqlite")).unwrap();
            let old = SCHEMA
                .replace(",\n    bounce_status TEXT,\n    bounce_detail TEXT,\n    hops TEXT,\n    observed TEXT", "");
            assert_ne!(old, SCHEMA);
            db.execute_batch(&old).unwrap();
            db.execute(
                "INSERT INTO canaries (id, probe, provider, inbox, state, created_ms, deadline_ms)
                 VALUES ('old', 'r', 'p', 'i', 'sent', 1, 2)",
                [],
            )
            .unwrap();
        }
        let ledger = Ledger::open(&dir).unwrap();
        assert_eq!(ledger.pending().unwrap().len(), 1);
        assert!(ledger.record_bounced("old", 3, "5.1.1", None).unwrap());
        drop(ledger);
        Ledger::open(&dir).expect("opening twice adds nothing twice");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_send_is_never_lost() {
        let ledger = Ledger::in_memory().unwrap();
        let c = canary();
        ledger.record_sending(&c, 10).unwrap();
        assert!(ledger.record_failed(&c.id, SendReason::Auth, "535").unwrap());
        assert!(!ledger.record_lost(&c.id, 11).unwrap());
        assert_eq!(ledger.get(&c.id).unwrap().unwrap().failure_reason.as_deref(), Some("auth"));
    }

    #[test]
    fn prune_forgets_only_old_resolved_canaries() {
        let ledger = Ledger::in_memory().unwrap();
        let (old, old_pending, new) = (canary(), canary(), canary());
        ledger.record_sending(&old, 10).unwrap();
        ledger.record_failed(&old.id, SendReason::Other, "x").unwrap();
        ledger.record_sending(&old_pending, 10).unwrap();
        ledger.record_sending(&new, 10).unwrap();
        ledger.record_failed(&new.id, SendReason::Other, "x").unwrap();
        // Everything was made "now"; prune everything made before the far future.
        let future = chrono::Utc::now().timestamp_millis() + 60_000;
        assert_eq!(ledger.prune(future).unwrap(), 2, "the two resolved canaries");
        assert!(ledger.get(&old_pending.id).unwrap().is_some(), "a canary still in flight is kept");
        assert_eq!(ledger.prune(0).unwrap(), 0);
    }

    #[test]
    fn cursors_are_kept_per_folder() {
        let ledger = Ledger::in_memory().unwrap();
        assert_eq!(ledger.cursor("i", "INBOX").unwrap(), None);
        ledger.set_cursor("i", "INBOX", 7, 100).unwrap();
        ledger.set_cursor("i", "INBOX", 7, 101).unwrap();
        ledger.set_cursor("i", "Junk", 8, 5).unwrap();
        assert_eq!(ledger.cursor("i", "INBOX").unwrap(), Some((7, 101)));
        assert_eq!(ledger.cursor("i", "Junk").unwrap(), Some((8, 5)));
    }
}
