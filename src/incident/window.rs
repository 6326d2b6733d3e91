//! A route's windows: runs of its canaries that went wrong, each closed by
//! the first canary after it that was delivered in time.

use crate::ledger::{Row, State};
use crate::outcome::OutcomeKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How canaries are judged: the one threshold that makes a delivery
/// delayed (`status_page.slow`, `report --slow`), and the moment of
/// judging, which makes a canary still in flight past it overdue.
#[derive(Debug, Clone, Copy)]
pub struct Judge {
    pub slow: Duration,
    pub now_ms: i64,
}

/// One canary that went wrong, and how.
#[derive(Debug, Clone, Serialize)]
pub struct WentWrong {
    pub canary: String,
    pub sent_ms: i64,
    pub provider_id: Option<String>,
    /// `refused (reason)`, `lost`, `lost (bounced 4.4.7)`, `bounced (5.1.1)`,
    /// `mismatched (subject)`, `late`, `delayed`, `spam`, `overdue`.
    pub outcome: String,
    /// The outcome's first word, given apart: `refused`, `lost`, `bounced`,
    /// `mismatched`, `late` (the settled ones, crate::outcome::OutcomeKind),
    /// or `delayed`, `spam`, `overdue`.
    #[serde(skip)]
    pub kind: &'static str,
    /// What the bounce said, for a bounced canary.
    pub bounce_detail: Option<String>,
    pub latency_seconds: Option<f64>,
}

/// A run of consecutive canaries of one route that went wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// When its first canary was sent.
    pub from_ms: i64,
    /// When its last canary was sent.
    pub to_ms: i64,
    /// When the canary that closed it was seen: the first evidence that
    /// mail got through in time again. None while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_ms: Option<i64>,
    pub canaries: Vec<WentWrong>,
}

/// How `row` went wrong, if it did, as `judge` sees it. A canary in flight
/// longer than the threshold is overdue: held mail is part of an outage
/// before its verdict comes.
pub fn went_wrong(row: &Row, judge: Judge) -> Option<WentWrong> {
    let latency = row.latency_ms.map(|ms| ms as f64 / 1000.0);
    let slow = judge.slow.as_secs_f64();
    let kind = match row.state {
        State::Sending | State::Sent => {
            let age_ms = judge.now_ms.saturating_sub(row.accepted_ms.unwrap_or(row.created_ms));
            if age_ms as f64 / 1000.0 <= slow {
                return None;
            }
            "overdue"
        }
        State::Settled(OutcomeKind::Delivered) if latency.is_some_and(|l| l > slow) => "delayed",
        State::Settled(OutcomeKind::Delivered) if row.placement.as_deref() == Some("spam") => "spam",
        State::Settled(OutcomeKind::Delivered) => return None,
        State::Settled(kind) => kind.as_str(),
    };
    let detail = match row.state.outcome() {
        Some(OutcomeKind::Refused) => Some(row.failure_reason.as_deref().unwrap_or("other").to_string()),
        Some(OutcomeKind::Lost) => row.bounce_status.as_ref().map(|status| format!("bounced {status}")),
        Some(OutcomeKind::Bounced) => Some(row.bounce_status.as_deref().unwrap_or("unknown").to_string()),
        Some(OutcomeKind::Mismatched) => Some(row.expectation.map_or("unknown", |e| e.as_str()).to_string()),
        _ => None,
    };
    let outcome = match detail {
        Some(detail) => format!("{kind} ({detail})"),
        None => kind.to_string(),
    };
    Some(WentWrong {
        canary: row.id.clone(),
        sent_ms: row.created_ms,
        provider_id: row.provider_id.clone(),
        outcome,
        kind,
        bounce_detail: row.bounce_detail.clone(),
        latency_seconds: latency,
    })
}

/// When a canary delivered in time was seen.
fn seen_ms(row: &Row) -> i64 {
    row.seen_ms.unwrap_or_else(|| row.accepted_ms.unwrap_or(row.created_ms) + row.latency_ms.unwrap_or(0))
}

/// One route's windows, fed its canaries oldest first.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    pub provider: String,
    pub inbox: String,
    pub windows: Vec<Window>,
}

impl Tracker {
    /// Takes in the next canary of the route. A canary in flight and not
    /// yet overdue neither opens nor closes a window. One that went wrong,
    /// sent before the last window's closing canary was seen, belongs to
    /// that window: the recovery had not been seen when it was sent.
    pub fn push(&mut self, row: &Row, judge: Judge) {
        let wrong = went_wrong(row, judge);
        if wrong.is_none() && row.state.in_flight() {
            return;
        }
        let last = self.windows.last_mut();
        let open = last.filter(|w| w.closed_ms.is_none_or(|closed| row.created_ms < closed));
        match (wrong, open) {
            (Some(c), Some(w)) => {
                w.closed_ms = None;
                w.to_ms = w.to_ms.max(row.created_ms);
                w.canaries.push(c);
            }
            (Some(c), None) => self.windows.push(Window {
                from_ms: row.created_ms,
                to_ms: row.created_ms,
                closed_ms: None,
                canaries: vec![c],
            }),
            (None, Some(w)) => {
                if w.closed_ms.is_none() {
                    w.closed_ms = Some(seen_ms(row));
                }
            }
            (None, None) => {}
        }
    }
}

/// Every route's tracker, by route name.
pub type Trackers = BTreeMap<String, Tracker>;

/// Feeds `rows` (oldest first) into the trackers of their routes.
pub fn track(trackers: &mut Trackers, rows: &[Row], judge: Judge) {
    for row in rows {
        trackers
            .entry(row.probe.clone())
            .or_insert_with(|| Tracker {
                provider: row.provider.clone(),
                inbox: row.inbox.clone(),
                ..Default::default()
            })
            .push(row, judge);
    }
}
