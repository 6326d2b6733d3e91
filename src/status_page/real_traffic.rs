//! An incident's real mail on the page: counts of the messages sent
//! through its providers while it lasted, judged as `impact` judges them
//! (crate::ledger::TrafficCounts). Never a message, a recipient or an id:
//! the public page gets the counts, the internal one also the command that
//! lists the messages.

use crate::ledger::TrafficCounts;
use serde::Serialize;
use std::collections::BTreeMap;

/// An incident's real mail, counted.
#[derive(Debug, Serialize)]
pub struct TrafficView {
    pub messages: u64,
    pub affected: u64,
    /// `late`, `deferred`, `no_final_event`, `bounced`, `rejected`, `dropped`.
    pub counts: BTreeMap<&'static str, u64>,
    /// How to list the messages (the internal page only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl TrafficView {
    pub(super) fn new(c: &TrafficCounts, command: Option<String>) -> TrafficView {
        let counts = [
            ("late", c.late),
            ("deferred", c.deferred),
            ("no_final_event", c.no_final_event),
            ("bounced", c.bounced),
            ("rejected", c.rejected),
            ("dropped", c.dropped),
        ];
        TrafficView { messages: c.messages, affected: c.affected(), counts: counts.into_iter().collect(), command }
    }

    /// One sentence for people.
    pub fn sentence(&self) -> String {
        let c = |k: &str| self.counts.get(k).copied().unwrap_or(0);
        let mut parts = Vec::new();
        if c("late") > 0 {
            parts.push(format!("{} delivered late", c("late")));
        }
        if c("deferred") + c("no_final_event") > 0 {
            parts.push(format!("{} not delivered yet", c("deferred") + c("no_final_event")));
        }
        if c("bounced") + c("rejected") + c("dropped") > 0 {
            parts.push(format!("{} could not be delivered", c("bounced") + c("rejected") + c("dropped")));
        }
        let n = crate::words::count(self.messages as usize, "real message", "real messages");
        if parts.is_empty() {
            format!("{n} sent in it, none affected")
        } else {
            format!("{n} sent in it: {}", parts.join(", "))
        }
    }
}
