//! Writes: each step of a canary's life and each provider's change of
//! state. Every transition of a canary is one conditional UPDATE whose row
//! count says whether this call made it, so that an outcome is recorded
//! (and counted) exactly once even when two paths race for it.

use super::{Ledger, Result};
use crate::canary::Canary;
use crate::health::Transition;
use crate::insight::Hop;
use crate::outcome::{Expectation, Observed, Placement, SendReason};
use rusqlite::params;

impl Ledger {
    /// Step 1 of a canary's life: recorded before anything leaves.
    pub fn record_sending(&self, canary: &Canary, deadline_ms: i64) -> Result<()> {
        self.with(|db| {
            super::run(
                db,
                "INSERT INTO canaries (id, probe, provider, inbox, state, created_ms, deadline_ms, confirmation)
                 VALUES (?1, ?2, ?3, ?4, 'sending', ?5, ?6, ?7)",
                params![
                    canary.id,
                    canary.probe,
                    canary.provider,
                    canary.inbox,
                    canary.created_ms,
                    deadline_ms,
                    canary.confirmation.then_some(1)
                ],
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
            super::run(
                db,
                "UPDATE canaries SET state = 'sent', accepted_ms = ?2, send_ms = ?3, provider_id = ?4, deadline_ms = ?5
                 WHERE id = ?1 AND state = 'sending'",
                params![id, accepted_ms, send_ms, provider_id, deadline_ms],
            )
            .map(|n| n == 1)
        })
    }

    /// The provider refused it.
    pub fn record_refused(&self, id: &str, reason: SendReason, detail: &str) -> Result<bool> {
        self.with(|db| {
            super::run(
                db,
                "UPDATE canaries SET state = 'refused', failure_reason = ?2, failure_detail = ?3
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
            super::run(
                db,
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
                super::run(db, "UPDATE canaries SET expectation = ?2 WHERE id = ?1", params![id, expectation.as_str()])
            })?;
        }
        Ok(moved)
    }

    /// A DSN said delivery failed, before the deadline.
    pub fn record_bounced(&self, id: &str, seen_ms: i64, status: &str, detail: Option<&str>) -> Result<bool> {
        self.with(|db| {
            super::run(
                db,
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
            super::run(
                db,
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
            super::run(
                db,
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

    /// A provider changed state (crate::health).
    pub fn record_transition(&self, t: &Transition) -> Result<()> {
        self.with(|db| {
            super::run(
                db,
                "INSERT INTO provider_transitions (provider, from_state, to_state, at_ms, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.provider, t.from.as_str(), t.to.as_str(), t.at_ms, t.reason],
            )
            .map(drop)
        })
    }
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

fn observed(o: Observed) -> Option<&'static str> {
    (o != Observed::Live).then(|| o.as_str())
}

fn hops_json(hops: &[Hop]) -> Option<String> {
    (!hops.is_empty()).then(|| serde_json::to_string(hops).expect("hops serialize"))
}
