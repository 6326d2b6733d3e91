//! The real traffic's part of the ledger: one row per real message (per
//! provider, message id and recipient as kept), its account, and every
//! event it was told, each once by its source's event id. A batch of
//! writes is one transaction: what a webhook is answered 2xx for is on
//! disk, and a duplicate changes nothing (crate::traffic_event::account
//! holds the rules).

use super::{Ledger, Result};
use crate::traffic_event::{Account, BounceKind, Effects, Event, Outcome};
use rusqlite::{Connection, OptionalExtension, params};

/// Events from one source, to record together; `recipient` of each is
/// already what the ledger keeps (crate::traffic::recipient).
#[derive(Debug, Clone)]
pub struct TrafficWrite {
    pub source: String,
    pub provider: String,
    pub events: Vec<Event>,
    /// Where a log source has read up to, saved with what it read.
    pub cursor: Option<String>,
    /// A single-use value the delivery's signature covers when it does not
    /// cover the body (Mailgun's token): seen again with an event the
    /// ledger does not have, the write is a tampered replay and is refused.
    pub nonce: Option<String>,
}

/// What one write changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficRecorded {
    pub recorded: usize,
    /// Events the ledger already had (a provider's retry, a replay).
    pub duplicates: usize,
    pub effects: Vec<Effects>,
    /// Its nonce was used before, for other events: nothing was recorded.
    pub replayed: bool,
}

/// One real message as the ledger has it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrafficRow {
    pub provider: String,
    pub message_id: String,
    /// As kept: a keyed hash (`h:…`), the address, or empty.
    pub recipient: String,
    pub source: String,
    pub smtp_id: Option<String>,
    /// The earliest time known for it (its send time when an event told it).
    pub first_ms: i64,
    pub sent_ms: Option<i64>,
    pub deferred_ms: Option<i64>,
    pub deferrals: i64,
    /// `delivered`, `bounced`, `rejected`, `dropped`, or none yet.
    pub settled: Option<String>,
    pub settled_ms: Option<i64>,
    pub bounce_kind: Option<String>,
    pub delay_ms: Option<i64>,
    pub last_kind: String,
    pub last_ms: i64,
    pub last_detail: Option<String>,
}

const ACCOUNT: &str = "sent_ms, first_ms, deferred_ms, deferrals, settled, settled_ms, bounce_kind, complained_ms, \
                       delay_ms, last_kind, last_ms, last_detail, smtp_id";

impl Ledger {
    /// Records `writes` in one transaction (and the log cursors with them).
    pub fn record_traffic(&self, writes: &[TrafficWrite], now_ms: i64) -> Result<Vec<TrafficRecorded>> {
        self.with(|db| {
            super::atomically(db, |tx| {
                let mut out = Vec::with_capacity(writes.len());
                for w in writes {
                    let mut done = TrafficRecorded::default();
                    if let Some(nonce) = &w.nonce
                        && !fresh_nonce(tx, w, nonce, now_ms)?
                    {
                        done.replayed = true;
                        out.push(done);
                        continue;
                    }
                    for e in &w.events {
                        match record_event(tx, w, e, now_ms)? {
                            Some(fx) => {
                                done.recorded += 1;
                                done.effects.push(fx);
                            }
                            None => done.duplicates += 1,
                        }
                    }
                    if let Some(cursor) = &w.cursor {
                        tx.prepare_cached(
                            "INSERT INTO traffic_cursors (source, state) VALUES (?1, ?2)
                         ON CONFLICT (source) DO UPDATE SET state = ?2",
                        )?
                        .execute(params![w.source, cursor])?;
                    }
                    out.push(done);
                }
                Ok(out)
            })
        })
    }

    /// Where the log source `source` read up to, as it saved it.
    pub fn traffic_cursor(&self, source: &str) -> Result<Option<String>> {
        self.with(|db| {
            db.query_row("SELECT state FROM traffic_cursors WHERE source = ?1", params![source], |r| r.get(0))
                .optional()
        })
    }

    /// The messages of `providers` (all when empty) first known in
    /// `[from_ms, to_ms)`, oldest first.
    pub fn traffic_window(&self, providers: &[String], from_ms: i64, to_ms: i64) -> Result<Vec<TrafficRow>> {
        self.with(|db| {
            let mut stmt = db.prepare_cached(
                "SELECT provider, message_id, recipient, source, smtp_id, first_ms, sent_ms, deferred_ms, deferrals,
                        settled, settled_ms, bounce_kind, delay_ms, last_kind, last_ms, last_detail
                 FROM traffic_messages WHERE provider = ?1 AND first_ms >= ?2 AND first_ms < ?3 ORDER BY first_ms",
            )?;
            let all: Vec<String>;
            let providers = if providers.is_empty() {
                all = db
                    .prepare("SELECT DISTINCT provider FROM traffic_messages")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_>>()?;
                &all
            } else {
                providers
            };
            let mut rows = Vec::new();
            for p in providers {
                rows.extend(stmt.query_map(params![p, from_ms, to_ms], traffic_row)?.collect::<Result<Vec<_>>>()?);
            }
            rows.sort_by(|a, b| a.first_ms.cmp(&b.first_ms).then_with(|| a.provider.cmp(&b.provider)));
            Ok(rows)
        })
    }

    /// The events recorded for one message, oldest first: (kind, at, detail).
    pub fn traffic_events(&self, provider: &str, message_id: &str) -> Result<Vec<(String, i64, Option<String>)>> {
        self.with(|db| {
            let mut stmt = db.prepare_cached(
                "SELECT e.kind, e.at_ms, e.detail FROM traffic_events e JOIN traffic_messages m ON m.id = e.message
                 WHERE m.provider = ?1 AND m.message_id = ?2 ORDER BY e.at_ms, e.rowid",
            )?;
            stmt.query_map(params![provider, message_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
        })
    }

    /// Forgets at most `limit` messages first known before `before_ms`, and
    /// at most `limit` events received before it (the ids a replay is
    /// recognised by are kept exactly that long).
    pub fn prune_traffic_batch(&self, before_ms: i64, limit: usize) -> Result<usize> {
        self.with(|db| {
            let events = db.execute(
                "DELETE FROM traffic_events WHERE rowid IN
                 (SELECT rowid FROM traffic_events WHERE received_ms < ?1 LIMIT ?2)",
                params![before_ms, limit as i64],
            )?;
            let messages = db.execute(
                "DELETE FROM traffic_messages WHERE id IN
                 (SELECT id FROM traffic_messages WHERE first_ms < ?1 LIMIT ?2)",
                params![before_ms, limit as i64],
            )?;
            let nonces = db.execute(
                "DELETE FROM traffic_nonces WHERE rowid IN
                 (SELECT rowid FROM traffic_nonces WHERE received_ms < ?1 LIMIT ?2)",
                params![before_ms, limit as i64],
            )?;
            Ok(events.max(messages).max(nonces))
        })
    }
}

/// Whether `nonce` is new (and now kept), or was seen with exactly these
/// events (a retry whose answer was lost): not a replay with other events.
fn fresh_nonce(tx: &Connection, w: &TrafficWrite, nonce: &str, now_ms: i64) -> Result<bool> {
    let seen = tx
        .prepare_cached("SELECT 1 FROM traffic_nonces WHERE source = ?1 AND nonce = ?2")?
        .query_row(params![w.source, nonce], |_| Ok(()))
        .optional()?;
    if seen.is_none() {
        tx.prepare_cached("INSERT INTO traffic_nonces (source, nonce, received_ms) VALUES (?1, ?2, ?3)")?
            .execute(params![w.source, nonce, now_ms])?;
        return Ok(true);
    }
    let mut known = tx.prepare_cached("SELECT 1 FROM traffic_events WHERE source = ?1 AND event_id = ?2")?;
    for e in &w.events {
        if known.query_row(params![w.source, e.event_id], |_| Ok(())).optional()?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Records one event: None when the source already sent it.
fn record_event(tx: &Connection, w: &TrafficWrite, e: &Event, now_ms: i64) -> Result<Option<Effects>> {
    let seen = tx
        .prepare_cached("SELECT 1 FROM traffic_events WHERE source = ?1 AND event_id = ?2")?
        .query_row(params![w.source, e.event_id], |_| Ok(()))
        .optional()?;
    if seen.is_some() {
        return Ok(None);
    }
    let recipient = e.recipient.as_deref().unwrap_or("");
    let found = tx
        .prepare_cached(&format!(
            "SELECT id, {ACCOUNT} FROM traffic_messages WHERE provider = ?1 AND message_id = ?2 AND recipient = ?3"
        ))?
        .query_row(params![w.provider, e.message_id, recipient], |r| Ok((r.get::<_, i64>(0)?, account(r)?)))
        .optional()?;
    let (id, fx) = match found {
        Some((id, mut a)) => {
            let fx = a.apply(e);
            tx.prepare_cached(&format!(
                "UPDATE traffic_messages SET ({ACCOUNT}) = (?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 WHERE id = ?1"
            ))?
            .execute(rusqlite::params_from_iter(
                std::iter::once(rusqlite::types::Value::Integer(id)).chain(values(&a)),
            ))?;
            (id, fx)
        }
        None => {
            let (a, fx) = Account::new(e);
            tx.prepare_cached(&format!(
                "INSERT INTO traffic_messages (provider, message_id, recipient, source, {ACCOUNT})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
            ))?
            .execute(rusqlite::params_from_iter(
                [&w.provider, &e.message_id, &recipient.to_string(), &w.source]
                    .into_iter()
                    .map(|s| rusqlite::types::Value::Text(s.clone()))
                    .chain(values(&a)),
            ))?;
            (tx.last_insert_rowid(), fx)
        }
    };
    tx.prepare_cached(
        "INSERT INTO traffic_events (source, event_id, message, kind, at_ms, detail, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![w.source, e.event_id, id, e.kind.as_str(), e.at_ms, e.detail, now_ms])?;
    Ok(Some(fx))
}

/// An account's columns, in the order of [`ACCOUNT`].
fn values(a: &Account) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value;
    let int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
    let text = |v: Option<&str>| v.map_or(Value::Null, |s| Value::Text(s.to_string()));
    vec![
        int(a.sent_ms),
        Value::Integer(a.first_ms),
        int(a.deferred_ms),
        Value::Integer(a.deferrals),
        text(a.settled.map(Outcome::as_str)),
        int(a.settled_ms),
        text(a.bounce_kind.map(BounceKind::as_str)),
        int(a.complained_ms),
        int(a.delay_ms),
        Value::Text(a.last_kind.clone()),
        Value::Integer(a.last_ms),
        text(a.last_detail.as_deref()),
        text(a.smtp_id.as_deref()),
    ]
}

/// An account read in the order of [`ACCOUNT`], after the row's id.
fn account(r: &rusqlite::Row<'_>) -> Result<Account> {
    Ok(Account {
        sent_ms: r.get(1)?,
        first_ms: r.get(2)?,
        deferred_ms: r.get(3)?,
        deferrals: r.get(4)?,
        settled: r.get::<_, Option<String>>(5)?.as_deref().and_then(Outcome::parse),
        settled_ms: r.get(6)?,
        bounce_kind: r.get::<_, Option<String>>(7)?.as_deref().and_then(BounceKind::parse),
        complained_ms: r.get(8)?,
        delay_ms: r.get(9)?,
        last_kind: r.get(10)?,
        last_ms: r.get(11)?,
        last_detail: r.get(12)?,
        smtp_id: r.get(13)?,
    })
}

fn traffic_row(r: &rusqlite::Row<'_>) -> Result<TrafficRow> {
    Ok(TrafficRow {
        provider: r.get(0)?,
        message_id: r.get(1)?,
        recipient: r.get(2)?,
        source: r.get(3)?,
        smtp_id: r.get(4)?,
        first_ms: r.get(5)?,
        sent_ms: r.get(6)?,
        deferred_ms: r.get(7)?,
        deferrals: r.get(8)?,
        settled: r.get(9)?,
        settled_ms: r.get(10)?,
        bounce_kind: r.get(11)?,
        delay_ms: r.get(12)?,
        last_kind: r.get(13)?,
        last_ms: r.get(14)?,
        last_detail: r.get(15)?,
    })
}

#[cfg(test)]
mod tests;
