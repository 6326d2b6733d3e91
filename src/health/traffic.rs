//! Real traffic as evidence of a provider's health, beside its canaries: a
//! spike of deferrals or bounces in the provider's own events, over a
//! short window and past a minimum volume, makes a provider the canaries
//! call healthy (or cannot judge yet) `degraded`, with a reason that says
//! so, so that failover can act before the next canary is overdue. It
//! never makes a provider `down`: that stays the canaries' word. Counts are
//! kept in ten-second buckets, so memory does not grow with the rate.

use crate::traffic_event::Outcome;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// `traffic.health`: when real traffic says a provider is in trouble.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficThresholds {
    /// How far back events count.
    pub window: Duration,
    /// Messages settled or deferred in the window below which nothing is concluded.
    pub min_messages: u64,
    /// Deferred messages, of those, that make a spike.
    pub deferred: f64,
    /// Bounced messages, of those, that make a spike.
    pub bounced: f64,
}

impl Default for TrafficThresholds {
    fn default() -> Self {
        TrafficThresholds { window: Duration::from_secs(60), min_messages: 20, deferred: 0.2, bounced: 0.1 }
    }
}

const BUCKET_MS: i64 = 10_000;

/// One bucket's counts.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    start_ms: i64,
    messages: u64,
    deferred: u64,
    bounced: u64,
}

/// Every provider's recent real-traffic outcomes.
#[derive(Debug, Default)]
pub struct TrafficInput {
    thresholds: TrafficThresholds,
    buckets: HashMap<String, VecDeque<Counts>>,
}

impl TrafficInput {
    pub fn configure(&mut self, thresholds: TrafficThresholds) {
        self.thresholds = thresholds;
    }

    /// Outcomes `provider`'s messages reached, each at its event's time,
    /// told at `now_ms`. They count at their own time, not at their
    /// arrival (a time ahead of `now_ms` counts as now), and not at all
    /// when older than the window: a provider's retried backlog, or a log
    /// read from its start, tells of the past and makes no spike now.
    pub fn observe(&mut self, provider: &str, outcomes: impl IntoIterator<Item = (Outcome, i64)>, now_ms: i64) {
        let since = now_ms - self.thresholds.window.as_millis() as i64;
        let ring = self.buckets.entry(provider.to_string()).or_default();
        // Buckets, oldest first, that still overlap the window.
        while ring.front().is_some_and(|b| b.start_ms + BUCKET_MS <= since) {
            ring.pop_front();
        }
        for (o, at_ms) in outcomes {
            let at_ms = at_ms.min(now_ms);
            if at_ms < since || o == Outcome::Complained {
                continue;
            }
            let start = at_ms - at_ms.rem_euclid(BUCKET_MS);
            let b = match ring.binary_search_by_key(&start, |b| b.start_ms) {
                Ok(i) => &mut ring[i],
                Err(i) => {
                    ring.insert(i, Counts { start_ms: start, ..Default::default() });
                    &mut ring[i]
                }
            };
            match o {
                Outcome::Deferred => b.deferred += 1,
                Outcome::Bounced => b.bounced += 1,
                _ => {}
            }
            // A message deferred and then delivered in the window counts twice
            // here, which only makes the ratio less eager.
            b.messages += 1;
        }
    }

    /// The providers real traffic was ever told of.
    pub(super) fn providers(&self) -> impl Iterator<Item = &String> {
        self.buckets.keys()
    }

    /// Why `provider`'s real traffic says it is in trouble at `now_ms`, if it does.
    pub fn spike(&self, provider: &str, now_ms: i64) -> Option<String> {
        let t = &self.thresholds;
        let since = now_ms - t.window.as_millis() as i64;
        let mut sum = Counts::default();
        for b in self.buckets.get(provider)?.iter().filter(|b| b.start_ms + BUCKET_MS > since) {
            sum.messages += b.messages;
            sum.deferred += b.deferred;
            sum.bounced += b.bounced;
        }
        if sum.messages < t.min_messages.max(1) {
            return None;
        }
        let share = |n: u64| n as f64 / sum.messages as f64;
        let window = crate::words::as_configured(t.window);
        let said = |n: u64, what: &str, threshold: f64| {
            format!(
                "real traffic: {n} of {} messages {what} in the last {window} ({:.0} %, threshold {:.0} %)",
                sum.messages,
                share(n) * 100.0,
                threshold * 100.0
            )
        };
        if share(sum.deferred) >= t.deferred {
            Some(said(sum.deferred, "deferred", t.deferred))
        } else if share(sum.bounced) >= t.bounced {
            Some(said(sum.bounced, "bounced", t.bounced))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `outcomes`, each at `at_ms`.
    fn at(outcomes: Vec<Outcome>, at_ms: i64) -> Vec<(Outcome, i64)> {
        outcomes.into_iter().map(|o| (o, at_ms)).collect()
    }

    fn input() -> TrafficInput {
        let mut i = TrafficInput::default();
        i.configure(TrafficThresholds::default());
        i
    }

    #[test]
    fn a_deferral_spike_past_the_minimum_volume_is_a_reason_and_passes_with_the_window() {
        let mut i = input();
        let t0 = 1_000_000;
        i.observe("ses", at(vec![Outcome::Delivered; 15], t0), t0);
        i.observe("ses", at(vec![Outcome::Deferred; 4], t0), t0);
        assert_eq!(i.spike("ses", t0), None, "19 messages: below the minimum volume");
        i.observe("ses", at(vec![Outcome::Deferred], t0 + 1_000), t0 + 1_000);
        let why = i.spike("ses", t0 + 1_000).unwrap();
        assert_eq!(why, "real traffic: 5 of 20 messages deferred in the last 1m (25 %, threshold 20 %)");
        assert_eq!(i.spike("ses", t0 + 75_000), None, "out of the window");
        assert_eq!(i.spike("other", t0), None);
    }

    #[test]
    fn bounces_spike_too_and_complaints_are_no_volume() {
        let mut i = input();
        i.observe("sg", at(vec![Outcome::Delivered; 17], 0), 0);
        i.observe("sg", at(vec![Outcome::Bounced; 3], 0), 0);
        i.observe("sg", at(vec![Outcome::Complained; 50], 0), 0);
        assert!(i.spike("sg", 0).unwrap().contains("3 of 20 messages bounced"));
        let mut healthy = input();
        healthy.observe("sg", at(vec![Outcome::Delivered; 1000], 0), 0);
        healthy.observe("sg", at(vec![Outcome::Deferred; 10], 0), 0);
        assert_eq!(healthy.spike("sg", 0), None, "1 % deferred is a normal day");
    }

    /// SES's events about `messages` messages a second for `seconds`, a
    /// share `deferred` of them delayed (and delivered five minutes later),
    /// the rest delivered, each accounted as the ledger does; the outcomes
    /// they reach, by second.
    fn replay(start_s: i64, seconds: i64, per_second: i64, deferred: f64) -> Vec<(i64, Vec<Outcome>)> {
        use crate::traffic_event::{Account, Event, Kind};
        let mut by_second: std::collections::BTreeMap<i64, Vec<Outcome>> = Default::default();
        let mut n = 0u64;
        for s in start_s..start_s + seconds {
            for i in 0..per_second {
                n += 1;
                let ev = |kind, at_s: i64| Event {
                    event_id: format!("{n}-{at_s}"),
                    message_id: format!("m{s}-{i}"),
                    recipient: None,
                    kind,
                    at_ms: at_s * 1000,
                    sent_ms: Some(s * 1000),
                    smtp_id: None,
                    detail: None,
                };
                // Deferred ones spread evenly: the first `deferred` share of each hundred.
                let delayed = ((n % 100) as f64) < deferred * 100.0;
                let events = if delayed {
                    vec![ev(Kind::Sent, s), ev(Kind::Deferred, s + 1), ev(Kind::Delivered, s + 300)]
                } else {
                    vec![ev(Kind::Sent, s), ev(Kind::Delivered, s + 2)]
                };
                let (mut account, _) = Account::new(&events[0]);
                for e in &events[1..] {
                    let at = e.at_ms / 1000;
                    by_second.entry(at).or_default().extend(account.apply(e).outcomes);
                }
            }
        }
        by_second.into_iter().collect()
    }

    /// A board whose one provider, ses, the canaries call healthy.
    fn healthy_board() -> super::super::Board {
        use super::super::{Board, Evidence, Judged, State, Thresholds};
        let mut b = Board::default();
        let judged =
            Judged { name: "ses".into(), thresholds: Thresholds::default(), nexthop: None, application: false };
        b.configure(&[judged], &[("ses-to-box".into(), "ses".into(), "box".into())], 0);
        b.observe(&HashMap::new(), &["box".to_string()]);
        b.traffic.configure(TrafficThresholds::default());
        let start = std::time::Instant::now();
        for n in 0..3 {
            b.record("ses-to-box", start + Duration::from_secs(n), Evidence::Good, Some(1.0));
        }
        assert_eq!(b.decide(0)[0].to, State::Healthy);
        b
    }

    /// A provider the canaries call healthy, and what real traffic makes of
    /// it over a replay: the times (s) of its changes of state.
    fn changes(replays: &[Vec<(i64, Vec<Outcome>)>], until_s: i64) -> Vec<(i64, super::super::State)> {
        let mut b = healthy_board();
        let mut events: Vec<(i64, Vec<Outcome>)> = replays.concat();
        events.sort_by_key(|(s, _)| *s);
        let mut feed = events.into_iter().peekable();
        let mut out = Vec::new();
        for s in 1..until_s {
            while let Some((_, outcomes)) = feed.next_if(|(at, _)| *at <= s) {
                b.traffic.observe("ses", at(outcomes, s * 1000), s * 1000);
            }
            out.extend(b.decide(s * 1000).into_iter().map(|t| (s, t.to)));
        }
        out
    }

    #[test]
    fn a_replayed_outage_leaves_healthy_within_a_minute_and_a_healthy_hour_changes_nothing() {
        use super::super::State;
        // 10,000 messages' events: 1 % deferred for 10 minutes, then 40 % from 600 s.
        let before = replay(0, 600, 8, 0.01);
        let spike = replay(600, 650, 8, 0.40);
        let messages: usize = 600 * 8 + 650 * 8;
        assert!(messages >= 10_000);
        let got = changes(&[before, spike], 1_300);
        let (at, state) = got[0];
        assert_eq!(state, State::Degraded);
        assert!((600..=660).contains(&at), "left healthy {} s after the spike began", at - 600);

        // An hour of 1 % deferrals: no change at all.
        assert_eq!(changes(&[replay(0, 3_600, 8, 0.01)], 3_900), []);
    }

    #[test]
    fn a_spike_that_ends_gives_the_state_back_with_time_alone() {
        use super::super::State;
        let mut b = healthy_board();
        b.traffic.observe("ses", at(vec![Outcome::Deferred; 100], 1_000), 1_000);
        assert_eq!(b.decide(1_000)[0].to, State::Degraded);
        // No canary, no event: the board is woken by the clock only.
        let window = TrafficThresholds::default().window.as_millis() as i64;
        assert_eq!(b.decide(window / 2), []);
        let back = (1..=(window + 30_000) / 1_000)
            .map(|s| (1_000 + s * 1_000, b.decide(1_000 + s * 1_000)))
            .find(|(_, t)| !t.is_empty());
        let (at_ms, changes) = back.expect("healthy again once the spike left the window");
        assert_eq!(changes[0].to, State::Healthy);
        assert!(at_ms <= 1_000 + window + BUCKET_MS, "healthy again {at_ms} ms after the spike");
    }

    #[test]
    fn memory_is_a_few_buckets_whatever_the_rate() {
        let mut i = input();
        for s in 0..3_600 {
            i.observe("ses", at(vec![Outcome::Delivered; 100], s * 1000), s * 1000);
        }
        assert!(i.buckets["ses"].len() <= 7);
    }

    #[test]
    fn outcomes_count_at_their_own_time_so_a_backlog_or_an_old_log_makes_no_spike() {
        let t0 = 10_000_000;
        // An hour-old backlog of deferrals, retried now: outside the window.
        let mut i = input();
        i.observe("ses", at(vec![Outcome::Deferred; 500], t0 - 3_600_000), t0);
        i.observe("ses", at(vec![Outcome::Delivered; 100], t0), t0);
        assert_eq!(i.spike("ses", t0), None, "the past is no spike now");
        // Deferrals of 50 s ago count, and leave the window with their time, not their arrival.
        let mut i = input();
        i.observe("ses", at(vec![Outcome::Deferred; 30], t0 - 50_000), t0);
        i.observe("ses", at(vec![Outcome::Delivered; 30], t0), t0);
        assert!(i.spike("ses", t0).is_some());
        assert_eq!(i.spike("ses", t0 + 20_000), None, "60 s after they happened, not after they arrived");
        // A time ahead of the clock counts as now.
        let mut i = input();
        i.observe("ses", at(vec![Outcome::Deferred; 30], t0 + 3_600_000), t0);
        assert!(i.spike("ses", t0).is_some() && i.spike("ses", t0 + 70_000).is_none());
    }
}
