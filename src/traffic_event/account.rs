//! How one real message's account changes with each new event: the rules,
//! with no I/O, so that the ledger (which keeps the account) and the tests
//! share them. Providers send events late, out of order and more than
//! once; the ledger drops an event it already has (by event id) before it
//! gets here, and these rules make the order of the rest matter as little
//! as it can:
//!
//! - The first settling event (delivered, bounced, rejected, dropped)
//!   settles the message; a later one of another kind is kept in its
//!   history but changes neither its outcome nor any count. A message is
//!   counted once under its outcome.
//! - A deferral from before the message settled counts it as deferred,
//!   once, in whatever order the two arrive; later ones only add to its
//!   deferrals.
//! - The send time is the earliest one any event tells; the delivery delay
//!   is observed once, as soon as both the send and the delivery are known.

use super::{BounceKind, Event, Kind, Outcome};

/// One message's account, as the ledger keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Account {
    pub sent_ms: Option<i64>,
    pub first_ms: i64,
    pub deferred_ms: Option<i64>,
    pub deferrals: i64,
    pub settled: Option<Outcome>,
    pub settled_ms: Option<i64>,
    pub bounce_kind: Option<BounceKind>,
    pub complained_ms: Option<i64>,
    /// The delivery delay, once both ends are known (ms).
    pub delay_ms: Option<i64>,
    pub last_kind: String,
    pub last_ms: i64,
    pub last_detail: Option<String>,
    pub smtp_id: Option<String>,
}

/// What an event changed that others count: each happens once per message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Outcomes reached now (`traffic_messages_total`).
    pub outcomes: Vec<Outcome>,
    /// The bounce's kind, when it settled the message now.
    pub bounce: Option<BounceKind>,
    /// The delivery delay, when it became known now (seconds).
    pub delay_seconds: Option<f64>,
    /// When the outcomes were reached: the event's own time (not when it
    /// arrived, which for a retried backlog may be hours later); none
    /// when no outcome was.
    pub at_ms: Option<i64>,
}

impl Account {
    /// The account of a message whose first event is `e`.
    pub fn new(e: &Event) -> (Account, Effects) {
        let mut a = Account { first_ms: e.at_ms, last_ms: i64::MIN, ..Default::default() };
        let effects = a.apply(e);
        (a, effects)
    }

    /// Takes in a new event; returns what it changed that is counted.
    pub fn apply(&mut self, e: &Event) -> Effects {
        let mut fx = Effects::default();
        self.first_ms = self.first_ms.min(e.at_ms);
        if self.smtp_id.is_none() {
            self.smtp_id.clone_from(&e.smtp_id);
        }
        let sent = match e.kind {
            Kind::Sent => Some(e.sent_ms.map_or(e.at_ms, |s| s.min(e.at_ms))),
            _ => e.sent_ms,
        };
        if let Some(sent) = sent {
            self.sent_ms = Some(self.sent_ms.map_or(sent, |s| s.min(sent)));
            self.first_ms = self.first_ms.min(sent);
        }
        match e.kind.outcome() {
            None => {}
            Some(Outcome::Deferred) => {
                self.deferrals += 1;
                // Deferred before it settled, whatever order the news came in.
                let before = self.settled_ms.is_none_or(|settled| e.at_ms <= settled);
                if before && self.deferred_ms.is_none_or(|d| e.at_ms < d) {
                    if self.deferred_ms.is_none() {
                        fx.outcomes.push(Outcome::Deferred);
                    }
                    self.deferred_ms = Some(e.at_ms);
                }
            }
            Some(Outcome::Complained) if self.complained_ms.is_none() => {
                self.complained_ms = Some(e.at_ms);
                fx.outcomes.push(Outcome::Complained);
            }
            Some(Outcome::Complained) => {}
            Some(outcome) if self.settled.is_none() => {
                self.settled = Some(outcome);
                self.settled_ms = Some(e.at_ms);
                if let Kind::Bounced(kind) = e.kind {
                    self.bounce_kind = Some(kind);
                    fx.bounce = Some(kind);
                }
                fx.outcomes.push(outcome);
            }
            // Settled already: kept in its history, counted nowhere.
            Some(_) => {}
        }
        if self.delay_ms.is_none()
            && self.settled == Some(Outcome::Delivered)
            && let (Some(sent), Some(delivered)) = (self.sent_ms, self.settled_ms)
        {
            let delay = (delivered - sent).max(0);
            self.delay_ms = Some(delay);
            fx.delay_seconds = Some(delay as f64 / 1000.0);
        }
        if e.at_ms >= self.last_ms {
            self.last_ms = e.at_ms;
            self.last_kind = e.kind.as_str().to_string();
            self.last_detail.clone_from(&e.detail);
        }
        if !fx.outcomes.is_empty() {
            fx.at_ms = Some(e.at_ms);
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: Kind, at_ms: i64) -> Event {
        Event {
            event_id: format!("{at_ms}"),
            message_id: "m".into(),
            recipient: None,
            kind,
            at_ms,
            sent_ms: None,
            smtp_id: None,
            detail: Some(format!("at {at_ms}")),
        }
    }

    #[test]
    fn a_deferred_message_delivered_later_counts_deferred_then_delivered_with_its_delay() {
        let (mut a, fx) = Account::new(&ev(Kind::Sent, 1_000));
        assert!(fx.outcomes.is_empty());
        let fx = a.apply(&ev(Kind::Deferred, 2_000));
        assert_eq!((fx.outcomes, fx.at_ms), (vec![Outcome::Deferred], Some(2_000)), "at the event's own time");
        assert_eq!(a.apply(&ev(Kind::Deferred, 3_000)), Effects::default(), "deferred once");
        let fx = a.apply(&ev(Kind::Delivered, 61_000));
        assert_eq!((fx.outcomes, fx.delay_seconds), (vec![Outcome::Delivered], Some(60.0)));
        assert_eq!((a.deferrals, a.settled, a.last_kind.as_str()), (2, Some(Outcome::Delivered), "delivered"));
    }

    #[test]
    fn the_first_settling_event_wins_and_later_ones_change_no_count() {
        let (mut a, _) = Account::new(&ev(Kind::Bounced(BounceKind::Permanent), 5_000));
        assert_eq!(a.settled, Some(Outcome::Bounced));
        assert_eq!(a.apply(&ev(Kind::Delivered, 6_000)), Effects::default());
        assert_eq!(a.apply(&ev(Kind::Deferred, 7_000)), Effects::default(), "a deferral after it settled is no news");
        assert_eq!(a.deferred_ms, None);
        assert_eq!(
            (a.settled, a.bounce_kind, a.last_kind.as_str()),
            (Some(Outcome::Bounced), Some(BounceKind::Permanent), "deferred")
        );
    }

    #[test]
    fn a_delivery_before_its_send_event_gets_its_delay_when_the_send_arrives() {
        let (mut a, fx) = Account::new(&ev(Kind::Delivered, 10_000));
        assert_eq!((fx.outcomes, fx.delay_seconds), (vec![Outcome::Delivered], None));
        let fx = a.apply(&ev(Kind::Sent, 4_000));
        assert_eq!((fx.outcomes.len(), fx.delay_seconds), (0, Some(6.0)));
        assert_eq!(
            (a.first_ms, a.last_ms, a.last_kind.as_str()),
            (4_000, 10_000, "delivered"),
            "the last is the newest"
        );
    }

    #[test]
    fn every_arrival_order_of_the_same_events_makes_the_same_account_and_counts() {
        let mut sent = ev(Kind::Sent, 1_000);
        sent.smtp_id = Some("<a@b>".into());
        let events = [sent, ev(Kind::Deferred, 2_000), ev(Kind::Deferred, 3_000), ev(Kind::Delivered, 9_000)];
        let mut seen = Vec::new();
        for order in permutations(4) {
            let (mut a, mut fx) = Account::new(&events[order[0]]);
            let mut all = vec![fx.clone()];
            for &i in &order[1..] {
                fx = a.apply(&events[i]);
                all.push(fx.clone());
            }
            let mut outcomes: Vec<&str> = all.iter().flat_map(|f| f.outcomes.iter().map(|o| o.as_str())).collect();
            outcomes.sort_unstable();
            let delays: Vec<f64> = all.iter().filter_map(|f| f.delay_seconds).collect();
            seen.push((a, outcomes, delays));
        }
        let first = &seen[0];
        assert_eq!(first.1, ["deferred", "delivered"]);
        assert_eq!(first.2, [8.0]);
        assert_eq!(
            (first.0.deferred_ms, first.0.deferrals, first.0.smtp_id.as_deref()),
            (Some(2_000), 2, Some("<a@b>"))
        );
        for s in &seen {
            assert_eq!(s, first);
        }
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for at in 0..=p.len() {
                let mut q = p.clone();
                q.insert(at, n - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn a_complaint_counts_once_beside_the_delivery() {
        let mut delivered = ev(Kind::Delivered, 2_000);
        delivered.sent_ms = Some(1_500);
        let (mut a, fx) = Account::new(&delivered);
        assert_eq!(fx.delay_seconds, Some(0.5));
        assert_eq!(a.apply(&ev(Kind::Complained, 9_000)).outcomes, [Outcome::Complained]);
        assert_eq!(a.apply(&ev(Kind::Complained, 9_500)), Effects::default());
        assert_eq!(a.settled, Some(Outcome::Delivered));
    }
}
