//! `mailcanary impact`: after an outage, every real message it hurt, from
//! the ledger, and a summary an operator can paste into the message to
//! customers. The window is an incident's (as the status page finds and
//! names them: crate::status_page::page_incidents) or a provider's and a time
//! span. A message is in the window when the earliest time known for it
//! (its send time, when an event told it) is, and it is affected when it
//! was delivered later than `slow` after that, bounced, was rejected or
//! dropped by the provider, was deferred and never delivered, or has had no
//! final event for longer than `slow`.

mod command;
mod render;
mod window;

pub use command::{Args, Format, command};
pub use render::{csv, json, text};
pub use window::{Window, resolve};

use crate::ledger::TrafficRow;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How a message was hurt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Harm {
    /// Delivered, later than `slow` after it was sent.
    Late,
    /// Deferred, and never delivered (so far).
    Deferred,
    /// No final event, `slow` after it was sent (a black hole, or events lost).
    NoFinalEvent,
    Bounced,
    Rejected,
    Dropped,
}

impl Harm {
    pub const ALL: [Harm; 6] =
        [Harm::Late, Harm::Deferred, Harm::NoFinalEvent, Harm::Bounced, Harm::Rejected, Harm::Dropped];

    pub fn as_str(self) -> &'static str {
        match self {
            Harm::Late => "late",
            Harm::Deferred => "deferred",
            Harm::NoFinalEvent => "no_final_event",
            Harm::Bounced => "bounced",
            Harm::Rejected => "rejected",
            Harm::Dropped => "dropped",
        }
    }

    /// As an operator reads it.
    pub fn words(self) -> &'static str {
        match self {
            Harm::Late => "delivered late",
            Harm::Deferred => "deferred, never delivered",
            Harm::NoFinalEvent => "no final event",
            Harm::Bounced => "bounced",
            Harm::Rejected => "rejected by the provider",
            Harm::Dropped => "dropped by the provider",
        }
    }
}

/// One real message an outage hurt.
#[derive(Debug, Clone, Serialize)]
pub struct Affected {
    pub harm: Harm,
    #[serde(flatten)]
    pub row: TrafficRow,
    /// Sent to delivered, for a late message.
    pub delay_seconds: Option<f64>,
}

/// The damage in one window.
#[derive(Debug, Serialize)]
pub struct Impact {
    pub window: Window,
    /// Real messages in the window.
    pub messages: usize,
    /// Of those, still in flight within `slow` (not judged).
    pub in_flight: usize,
    pub counts: BTreeMap<Harm, usize>,
    /// Delays of the late ones: median, 95th percentile, longest (seconds).
    pub delay_p50_seconds: Option<f64>,
    pub delay_p95_seconds: Option<f64>,
    pub delay_max_seconds: Option<f64>,
    pub affected: Vec<Affected>,
}

impl Impact {
    pub fn affected_count(&self) -> usize {
        self.affected.len()
    }
}

/// How `row` was hurt, judged at `now_ms`, if it was.
pub fn harm(row: &TrafficRow, slow: Duration, now_ms: i64) -> Option<(Harm, Option<f64>)> {
    let slow_ms = slow.as_millis() as i64;
    match row.settled.as_deref() {
        Some("delivered") => {
            let delay = row.delay_ms.or(row.settled_ms.map(|s| s - row.first_ms)).unwrap_or(0);
            (delay > slow_ms).then_some((Harm::Late, Some(delay as f64 / 1000.0)))
        }
        Some("bounced") => Some((Harm::Bounced, None)),
        Some("rejected") => Some((Harm::Rejected, None)),
        Some("dropped") => Some((Harm::Dropped, None)),
        _ if row.deferred_ms.is_some() => Some((Harm::Deferred, None)),
        _ if now_ms - row.first_ms > slow_ms => Some((Harm::NoFinalEvent, None)),
        _ => None,
    }
}

/// The impact of `rows` (a window's messages, oldest first).
pub fn build(window: Window, rows: Vec<TrafficRow>, slow: Duration, now_ms: i64) -> Impact {
    let messages = rows.len();
    let mut counts: BTreeMap<Harm, usize> = Harm::ALL.iter().map(|h| (*h, 0)).collect();
    let mut affected = Vec::new();
    let mut in_flight = 0;
    for row in rows {
        match harm(&row, slow, now_ms) {
            Some((harm, delay_seconds)) => {
                *counts.entry(harm).or_default() += 1;
                affected.push(Affected { harm, row, delay_seconds });
            }
            None if row.settled.is_none() && row.deferred_ms.is_none() => in_flight += 1,
            None => {}
        }
    }
    let mut delays: Vec<f64> = affected.iter().filter_map(|a| a.delay_seconds).collect();
    delays.sort_by(f64::total_cmp);
    let q = |q: f64| {
        (!delays.is_empty()).then(|| delays[((q * delays.len() as f64).ceil() as usize).clamp(1, delays.len()) - 1])
    };
    Impact {
        window,
        messages,
        in_flight,
        counts,
        delay_p50_seconds: q(0.5),
        delay_p95_seconds: q(0.95),
        delay_max_seconds: delays.last().copied(),
        affected,
    }
}

#[cfg(test)]
mod tests;
