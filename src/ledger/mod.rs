//! The ledger: every canary in SQLite, recorded before it is sent and
//! updated on each outcome. Each transition is one conditional UPDATE whose
//! row count says whether it happened, so an outcome is recorded (and
//! counted) exactly once even when two paths race for it.
//!
//! The service reaches SQLite only through [`LedgerThread`]: one thread of
//! its own, behind a channel, so that a ledger file held locked by someone
//! else (a backup, a `report` on a big ledger) never blocks the runtime.
//!
//! This file holds what a canary's row is and the upkeep (watchers' cursors,
//! pruning); the tables and opening a file are in schema.rs, the writes of a
//! canary's life in record.rs, the reads in read.rs and history.rs.

mod history;
mod private;
mod read;
mod record;
mod schema;
mod thread;
mod traffic;
mod traffic_counts;

pub use history::DayCount;
pub use record::Seen;
pub use thread::{LedgerError, LedgerThread};
pub use traffic::{TrafficRecorded, TrafficRow, TrafficWrite};
pub use traffic_counts::TrafficCounts;

use crate::insight::Hop;
use crate::outcome::{Expectation, Observed, OutcomeKind};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Mutex;

/// Where a canary is in its life: on its way, or settled with one of the
/// outcomes (crate::outcome::OutcomeKind, whose spelling the ledger keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Recorded, being handed to the provider.
    Sending,
    /// Accepted by the provider, not yet seen.
    Sent,
    /// Its one outcome (or `late`, after `lost`).
    Settled(OutcomeKind),
}

impl State {
    /// The name used in the ledger, reports and the status API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Sending => "sending",
            State::Sent => "sent",
            State::Settled(kind) => kind.as_str(),
        }
    }

    fn parse(s: &str) -> Option<State> {
        match s {
            "sending" => Some(State::Sending),
            "sent" => Some(State::Sent),
            // Earlier versions' spelling of a refusal; the ledger migrates
            // it at open (schema.rs), but one of them may still be writing.
            "failed" => Some(State::Settled(OutcomeKind::Refused)),
            s => OutcomeKind::parse(s).map(State::Settled),
        }
    }

    /// Still on its way: sending, or sent and not yet settled.
    pub fn in_flight(self) -> bool {
        matches!(self, State::Sending | State::Sent)
    }

    /// What it was settled with, if it was.
    pub fn outcome(self) -> Option<OutcomeKind> {
        match self {
            State::Settled(kind) => Some(kind),
            _ => None,
        }
    }
}

/// Runs `sql` through the connection's statement cache: a canary's
/// transitions and the inboxes' cursors, written for every canary, and the
/// statements around them (a batch's BEGIN and COMMIT, a savepoint) are compiled once rather than at every write.
fn run(db: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    db.prepare_cached(sql)?.execute(params)
}

/// Runs `f` all or nothing. A savepoint rather than a transaction: it
/// nests in the batch the ledger's thread commits (thread.rs), and stands
/// alone (committing when it ends) anywhere else.
fn atomically<T>(db: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    run(db, "SAVEPOINT atomically", [])?;
    match f(db) {
        Ok(value) => {
            run(db, "RELEASE atomically", [])?;
            Ok(value)
        }
        Err(e) => {
            let _ = db.execute_batch("ROLLBACK TO atomically; RELEASE atomically");
            Err(e)
        }
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
    /// Whether commits wait for the disk now (`PRAGMA synchronous`; the
    /// ledger's thread switches it, see thread.rs).
    synced_commits: std::sync::atomic::AtomicBool,
}

/// The columns `row` reads, in its order.
const COLUMNS: &str = "id, probe, provider, inbox, state, created_ms, accepted_ms, deadline_ms, provider_id, \
                       failure_reason, seen_ms, latency_ms, placement, bounce_status, bounce_detail, hops, observed, \
                       expectation";

impl Ledger {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let db = self.db.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&db)
    }

    /// Where the watcher of `inbox` stopped reading `folder`.
    pub fn cursor(&self, inbox: &str, folder: &str) -> Result<Option<(u32, u32)>> {
        self.with(|db| {
            db.prepare_cached("SELECT uid_validity, next_uid FROM cursors WHERE inbox = ?1 AND folder = ?2")?
                .query_row(params![inbox, folder], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
    }

    pub fn set_cursor(&self, inbox: &str, folder: &str, uid_validity: u32, next_uid: u32) -> Result<()> {
        self.with(|db| {
            run(
                db,
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
            atomically(db, |db| {
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
        })
    }
}

fn row(r: &rusqlite::Row<'_>) -> Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        probe: r.get(1)?,
        provider: r.get(2)?,
        inbox: r.get(3)?,
        state: State::parse(&r.get::<_, String>(4)?).unwrap_or(State::Settled(OutcomeKind::Refused)),
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

/// Resolved canaries forgotten per prune transaction.
pub const PRUNE_BATCH: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::{Canary, SigningKey};
    use crate::config::Route;
    use crate::outcome::{Placement, SendReason};
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
        assert_eq!(row.state, State::Settled(OutcomeKind::Late));
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
        assert_eq!((row.state, row.bounce_status.as_deref()), (State::Settled(OutcomeKind::Bounced), Some("5.1.1")));
        assert_eq!(row.bounce_detail.as_deref(), Some("User unknown"));

        assert!(ledger.record_lost(&lost.id, 11).unwrap());
        assert!(ledger.record_bounce_after_lost(&lost.id, "4.4.7", None).unwrap());
        assert!(!ledger.record_bounce_after_lost(&lost.id, "4.4.7", None).unwrap());
        let row = ledger.get(&lost.id).unwrap().unwrap();
        assert_eq!((row.state, row.bounce_status.as_deref()), (State::Settled(OutcomeKind::Lost), Some("4.4.7")));
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
    fn a_failed_send_is_never_lost() {
        let ledger = Ledger::in_memory().unwrap();
        let c = canary();
        ledger.record_sending(&c, 10).unwrap();
        assert!(ledger.record_refused(&c.id, SendReason::Auth, "535").unwrap());
        assert!(!ledger.record_lost(&c.id, 11).unwrap());
        assert_eq!(ledger.get(&c.id).unwrap().unwrap().failure_reason.as_deref(), Some("auth"));
    }

    #[test]
    fn prune_forgets_only_old_resolved_canaries() {
        let ledger = Ledger::in_memory().unwrap();
        let (old, old_pending, new) = (canary(), canary(), canary());
        ledger.record_sending(&old, 10).unwrap();
        ledger.record_refused(&old.id, SendReason::Other, "x").unwrap();
        ledger.record_sending(&old_pending, 10).unwrap();
        ledger.record_sending(&new, 10).unwrap();
        ledger.record_refused(&new.id, SendReason::Other, "x").unwrap();
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
