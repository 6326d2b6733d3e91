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

    /// Outcomes `provider`'s messages reached at `now_ms`.
    pub fn observe(&mut self, provider: &str, outcomes: impl IntoIterator<Item = Outcome>, now_ms: i64) {
        let keep = self.thresholds.window.as_millis() as i64 / BUCKET_MS + 1;
        let start = now_ms - now_ms.rem_euclid(BUCKET_MS);
        let ring = self.buckets.entry(provider.to_string()).or_default();
        if ring.back().is_none_or(|b| b.start_ms != start) {
            ring.push_back(Counts { start_ms: start, ..Default::default() });
        }
        while ring.len() as i64 > keep {
            ring.pop_front();
        }
        let b = ring.back_mut().expect("pushed above");
        for o in outcomes {
            match o {
                Outcome::Deferred => b.deferred += 1,
                Outcome::Bounced => b.bounced += 1,
                Outcome::Complained => continue,
                _ => {}
            }
            // A message deferred and then delivered in the window counts twice
            // here, which only makes the ratio less eager.
            b.messages += 1;
        }
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
        let window = crate::config::duration::format_duration(t.window);
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

    fn input() -> TrafficInput {
        let mut i = TrafficInput::default();
        i.configure(TrafficThresholds::default());
        i
    }

    #[test]
    fn a_deferral_spike_past_the_minimum_volume_is_a_reason_and_passes_with_the_window() {
        let mut i = input();
        let t0 = 1_000_000;
        i.observe("ses", vec![Outcome::Delivered; 15], t0);
        i.observe("ses", vec![Outcome::Deferred; 4], t0);
        assert_eq!(i.spike("ses", t0), None, "19 messages: below the minimum volume");
        i.observe("ses", [Outcome::Deferred], t0 + 1_000);
        let why = i.spike("ses", t0 + 1_000).unwrap();
        assert_eq!(why, "real traffic: 5 of 20 messages deferred in the last 1m (25 %, threshold 20 %)");
        assert_eq!(i.spike("ses", t0 + 75_000), None, "out of the window");
        assert_eq!(i.spike("other", t0), None);
    }

    #[test]
    fn bounces_spike_too_and_complaints_are_no_volume() {
        let mut i = input();
        i.observe("sg", vec![Outcome::Delivered; 17], 0);
        i.observe("sg", vec![Outcome::Bounced; 3], 0);
        i.observe("sg", vec![Outcome::Complained; 50], 0);
        assert!(i.spike("sg", 0).unwrap().contains("3 of 20 messages bounced"));
        let mut healthy = input();
        healthy.observe("sg", vec![Outcome::Delivered; 1000], 0);
        healthy.observe("sg", vec![Outcome::Deferred; 10], 0);
        assert_eq!(healthy.spike("sg", 0), None, "1 % deferred is a normal day");
    }

    #[test]
    fn memory_is_a_few_buckets_whatever_the_rate() {
        let mut i = input();
        for s in 0..3_600 {
            i.observe("ses", vec![Outcome::Delivered; 100], s * 1000);
        }
        assert!(i.buckets["ses"].len() <= 7);
    }
}
