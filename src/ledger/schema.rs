//! The ledger's tables and how a ledger file is opened: durable (WAL,
//! FULL sync), patient with someone else holding the file, and brought up
//! to date when an earlier version wrote it.

use super::{Ledger, Result};
use rusqlite::Connection;
use std::path::Path;
use std::sync::Mutex;

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
-- Real traffic (ledger/traffic.rs): one row per message and recipient, and
-- every event once by its source's id.
CREATE TABLE IF NOT EXISTS traffic_messages (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    message_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    source TEXT NOT NULL,
    sent_ms INTEGER,
    first_ms INTEGER NOT NULL,
    deferred_ms INTEGER,
    deferrals INTEGER NOT NULL DEFAULT 0,
    settled TEXT,
    settled_ms INTEGER,
    bounce_kind TEXT,
    complained_ms INTEGER,
    delay_ms INTEGER,
    last_kind TEXT NOT NULL,
    last_ms INTEGER NOT NULL,
    last_detail TEXT,
    smtp_id TEXT,
    UNIQUE (provider, message_id, recipient)
);
CREATE INDEX IF NOT EXISTS traffic_messages_first ON traffic_messages(provider, first_ms);
CREATE INDEX IF NOT EXISTS traffic_messages_age ON traffic_messages(first_ms);
CREATE TABLE IF NOT EXISTS traffic_events (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    message INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    detail TEXT,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX IF NOT EXISTS traffic_events_message ON traffic_events(message);
CREATE INDEX IF NOT EXISTS traffic_events_received ON traffic_events(received_ms);
CREATE TABLE IF NOT EXISTS traffic_nonces (
    source TEXT NOT NULL,
    nonce TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (source, nonce)
);
CREATE INDEX IF NOT EXISTS traffic_nonces_received ON traffic_nonces(received_ms);
CREATE TABLE IF NOT EXISTS traffic_cursors (
    source TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
";

/// Indexes on added columns, made once those columns are there. Canaries
/// found after their inbox was not watched: the page's monitoring gaps.
const LATER_INDEXES: &str =
    "CREATE INDEX IF NOT EXISTS canaries_after_gap ON canaries(created_ms) WHERE observed = 'after_gap';";

/// Changes to rows written by earlier versions, in order: the ledger's
/// `user_version` says how many it has had. 1: a refused canary is
/// spelled as its outcome is everywhere else (crate::outcome::OutcomeKind).
const MIGRATIONS: [&str; 1] = ["UPDATE canaries SET state = 'refused' WHERE state = 'failed'"];

/// Columns added after the first release, with their types.
const ADDED_COLUMNS: [(&str, &str); 6] = [
    ("bounce_status", "TEXT"),
    ("bounce_detail", "TEXT"),
    ("hops", "TEXT"),
    ("observed", "TEXT"),
    ("expectation", "TEXT"),
    // 1 for a confirmation canary (sent at once on a suspicion), else NULL.
    ("confirmation", "INTEGER"),
];

impl Ledger {
    /// Opens (or creates) the ledger in `state_dir`, which is made private
    /// to its owner first (super::private).
    pub fn open(state_dir: &Path) -> Result<Ledger> {
        super::private::make_private(state_dir).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create state_dir {}: {e}", state_dir.display())),
            )
        })?;
        let db = Connection::open(state_dir.join(super::private::LEDGER))?;
        // WAL with FULL sync: every committed transition (above all "sending",
        // written before anything leaves) is on disk before the call returns,
        // across a crash of the process and a loss of power alike (the few
        // writes that need not be are the ledger thread's `write_behind`).
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
        // Room for every statement written per canary (super::run), and the reads.
        db.set_prepared_statement_cache_capacity(64);
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
        db.execute_batch(LATER_INDEXES)?;
        let done: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (n, migration) in (1..).zip(MIGRATIONS).skip(done.max(0) as usize) {
            let tx = db.unchecked_transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", n as i64)?;
            tx.commit()?;
        }
        Ok(Ledger { db: Mutex::new(db), synced_commits: std::sync::atomic::AtomicBool::new(true) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                 VALUES ('old', 'r', 'p', 'i', 'sent', 1, 2), ('refused', 'r', 'p', 'i', 'failed', 1, 2)",
                [],
            )
            .unwrap();
        }
        let ledger = Ledger::open(&dir).unwrap();
        assert_eq!(ledger.pending().unwrap().len(), 1);
        let refused = ledger.since(0).unwrap().into_iter().find(|r| r.id == "refused").unwrap();
        assert_eq!(refused.state, super::super::State::Settled(crate::outcome::OutcomeKind::Refused));
        let spelled: String = ledger
            .db
            .lock()
            .unwrap()
            .query_row("SELECT state FROM canaries WHERE id = 'refused'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(spelled, "refused", "the row itself is migrated, not only read as refused");
        assert!(ledger.record_bounced("old", 3, "5.1.1", None).unwrap());
        drop(ledger);
        Ledger::open(&dir).expect("opening twice adds nothing twice");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
