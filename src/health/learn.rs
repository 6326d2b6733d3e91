//! A route's overdue bound, learned from its own recent deliveries.
//!
//! A canary is overdue when its age passes the route's bound. A fixed bound
//! is a number nobody chose from data: on a path that delivers in 50 ms it
//! waits minutes for a black hole, and on a path a mailbox provider
//! greylists it cries wolf. So by default each route learns its bound: a
//! high quantile of the latencies of its last deliveries (slow ones too, so
//! that the bound takes the route's tail into account and moves with it),
//! times a margin, between a floor and a ceiling. Until a route has
//! delivered enough canaries to say, the fixed `overdue_after` holds, and
//! an `overdue_after` written in the config pins the bound for good.
//!
//! The ceiling (by default the fixed bound itself) keeps what an outage
//! teaches from blinding detection: when a provider releases mail it held
//! for minutes, those latencies enter the window, but the bound never grows
//! past the ceiling, so detection is never slower than with the fixed bound.
//!
//! # Why these defaults, and what a spike costs
//!
//! The bound is only a suspicion. A route fails on canaries overdue by it
//! only when the suspected canary *and* the confirmation sent at once
//! after it are both overdue (crate::health::route): two in a row, never
//! fewer whatever `down_after` says. Model a route whose mail is held now
//! and then for 5 to 20 s (greylisting, a queue backlog), 3 s apart.
//!
//! - Held one canary at a time, independently with probability `p`: both
//!   held is `p²` per canary, and only while the bound is below a hold.
//! - Held for a while (an episode: the confirmation a second later is held
//!   too): the first episode on a route that has never been held fails it
//!   for that episode, since nothing outside can yet tell a 20 s hold from
//!   a black hole's first 20 s. Its latencies then enter the window, and
//!   with two holds in it the 0.999 quantile is at least the smaller and
//!   the bound twice that: the next episodes stay suspicions.
//! - A failing route makes its provider `degraded`; `down` needs every
//!   usable route of the provider failing at once, which is what an outage
//!   looks like. A suspicion alone moves no steering signal.
//!
//! `spikes_in_a_healthy_hour` (tests/detection.rs) measures it on the
//! local stack; docs/failover.md has the figures.
//!
//! The price is honest: a route that held mail for 20 s in its last 1,000
//! deliveries waits up to 40 s before it suspects, since a shorter wait
//! could not tell a hold from a black hole; a route without holds suspects
//! after its 1 s floor.

use serde::Serialize;
use std::collections::VecDeque;
use std::time::Duration;

/// How a route learns its bound (`health.learn`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learning {
    /// The quantile of recent latencies the bound starts from.
    pub quantile: f64,
    /// What that quantile is multiplied by.
    pub margin: f64,
    /// The shortest bound: noise on a fast path is no evidence.
    pub floor: Duration,
    /// The longest bound, whatever the route's history.
    pub ceiling: Duration,
    /// How many recent deliveries are learned from.
    pub window: usize,
    /// How many deliveries a route needs before its own bound holds.
    pub min_deliveries: usize,
}

impl Default for Learning {
    fn default() -> Self {
        Learning {
            quantile: 0.999,
            margin: 2.0,
            floor: Duration::from_secs(1),
            ceiling: Duration::from_secs(90),
            window: 1000,
            min_deliveries: 20,
        }
    }
}

/// Where a route's bound in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundSource {
    /// `overdue_after` written in the config: pinned.
    Configured,
    /// Learned from the route's own deliveries.
    Learned,
    /// The fixed `overdue_after`, until the route has delivered enough.
    Default,
}

impl BoundSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BoundSource::Configured => "configured",
            BoundSource::Learned => "learned",
            BoundSource::Default => "default",
        }
    }
}

/// One route's recent latencies and the bound they give.
#[derive(Debug, Clone, Default)]
pub struct Learned {
    /// Latencies of the last deliveries (seconds), newest last.
    latencies: VecDeque<f32>,
    /// The fixed bound, and how to learn, as configured for the route's provider.
    fixed: Duration,
    learning: Option<Learning>,
    bound: Duration,
    source: Option<BoundSource>,
}

impl Learned {
    /// The bound of a route whose provider has `fixed` and `learning`.
    pub fn new(fixed: Duration, learning: Option<Learning>) -> Learned {
        let mut l = Learned { fixed, learning, ..Default::default() };
        l.recompute();
        l
    }

    /// The config changed: the same history, judged by the new settings.
    pub fn configure(&mut self, fixed: Duration, learning: Option<Learning>) {
        if (fixed, learning) != (self.fixed, self.learning) {
            self.fixed = fixed;
            self.learning = learning;
            self.recompute();
        }
    }

    /// A canary of the route was delivered after `latency_seconds`.
    pub fn learn(&mut self, latency_seconds: f64) {
        let Some(learning) = self.learning else { return };
        if !latency_seconds.is_finite() || latency_seconds < 0.0 {
            return;
        }
        self.latencies.push_back(latency_seconds as f32);
        while self.latencies.len() > learning.window.max(1) {
            self.latencies.pop_front();
        }
        self.recompute();
    }

    /// What the route delivered before a restart, oldest first: learned at
    /// once, the bound worked out once.
    /// They come before whatever it learned since the start.
    pub fn learn_history(&mut self, latencies: &[f64]) {
        let Some(learning) = self.learning else { return };
        let ok = latencies.iter().filter(|l| l.is_finite() && **l >= 0.0).map(|l| *l as f32);
        let since_start = std::mem::take(&mut self.latencies);
        self.latencies = ok.chain(since_start).collect();
        while self.latencies.len() > learning.window.max(1) {
            self.latencies.pop_front();
        }
        self.recompute();
    }

    /// The bound in force.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// The fixed `overdue_after`: the bound while nothing is learned, and
    /// past which a canary is late whatever was learned.
    pub fn fixed(&self) -> Duration {
        self.fixed
    }

    pub fn source(&self) -> BoundSource {
        self.source.unwrap_or(BoundSource::Default)
    }

    /// How many deliveries it learns from, if it learns.
    pub fn window(&self) -> Option<usize> {
        self.learning.map(|l| l.window.max(1))
    }

    /// How many deliveries it has learned from.
    pub fn deliveries(&self) -> usize {
        self.latencies.len()
    }

    fn recompute(&mut self) {
        let (bound, source) = match self.learning {
            None => (self.fixed, BoundSource::Configured),
            Some(l) if self.latencies.len() < l.min_deliveries.max(1) => (self.fixed, BoundSource::Default),
            Some(l) => {
                let q = quantile(&self.latencies, l.quantile);
                let learned = Duration::try_from_secs_f64(q * l.margin).unwrap_or(l.ceiling);
                (learned.clamp(l.floor, l.ceiling.max(l.floor)), BoundSource::Learned)
            }
        };
        self.bound = bound;
        self.source = Some(source);
    }
}

/// The `q` quantile of `values`, interpolated between the two nearest ranks.
/// A selection, not a sort: the two ranks are all it needs, and a route
/// learns from up to 1,000 deliveries at each one.
fn quantile(values: &VecDeque<f32>, q: f64) -> f64 {
    let mut v: Vec<f32> = values.iter().copied().collect();
    let Some(last) = v.len().checked_sub(1) else { return 0.0 };
    let rank = q.clamp(0.0, 1.0) * last as f64;
    let lo = (rank.floor() as usize).min(last);
    let (_, a, above) = v.select_nth_unstable_by(lo, f32::total_cmp);
    let a = f64::from(*a);
    // The next rank up is the smallest of those above it.
    let b = above.iter().copied().min_by(f32::total_cmp).map_or(a, f64::from);
    if rank > lo as f64 { a + (b - a) * (rank - lo as f64) } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learned(latencies: impl IntoIterator<Item = f64>) -> Learned {
        let mut l = Learned::new(Duration::from_secs(90), Some(Learning::default()));
        for x in latencies {
            l.learn(x);
        }
        l
    }

    #[test]
    fn the_fixed_bound_holds_until_enough_deliveries() {
        let l = learned(std::iter::repeat_n(0.05, 19));
        assert_eq!((l.bound(), l.source()), (Duration::from_secs(90), BoundSource::Default));
        let l = learned(std::iter::repeat_n(0.05, 20));
        assert_eq!((l.bound(), l.source()), (Duration::from_secs(1), BoundSource::Learned), "the floor");
    }

    #[test]
    fn history_learned_at_once_is_what_learning_one_by_one_gives() {
        let history: Vec<f64> = (0..1500).map(|i| 0.05 + (i % 37) as f64 / 10.0).collect();
        let mut at_once = Learned::new(Duration::from_secs(90), Some(Learning::default()));
        at_once.learn_history(&history);
        let one_by_one = learned(history.iter().copied());
        assert_eq!((at_once.bound(), at_once.deliveries()), (one_by_one.bound(), 1000));
        let mut pinned = Learned::new(Duration::from_secs(8), None);
        pinned.learn_history(&history);
        assert_eq!((pinned.deliveries(), pinned.bound()), (0, Duration::from_secs(8)));
    }

    #[test]
    fn a_configured_bound_is_pinned() {
        let mut l = Learned::new(Duration::from_secs(8), None);
        for _ in 0..200 {
            l.learn(0.05);
        }
        assert_eq!((l.bound(), l.source()), (Duration::from_secs(8), BoundSource::Configured));
    }

    #[test]
    fn the_bound_takes_the_tail_into_account_and_moves_with_it() {
        // One delivery in four held 5 to 20 s, as greylisting and backlogs do.
        let spiky: Vec<f64> = (0..100).map(|i| if i % 4 == 0 { 5.0 + (i % 16) as f64 } else { 0.05 }).collect();
        let l = learned(spiky.iter().copied());
        let worst = spiky.iter().copied().fold(0.0, f64::max);
        assert!(l.bound().as_secs_f64() > worst, "{:?} covers the tail {worst}", l.bound());
        // The spikes stop: as they leave the window, the bound comes down.
        let l = learned(spiky.into_iter().chain(std::iter::repeat_n(0.05, 1000)));
        assert_eq!(l.bound(), Duration::from_secs(1));
    }

    #[test]
    fn two_rare_holds_in_the_window_lift_the_bound_over_a_hold() {
        // 1,000 fast deliveries with one hold: the quantile sits on a fast
        // one (the floor); a second hold lifts it to twice the smaller.
        let mut v: Vec<f64> = vec![0.05; 998];
        v.push(12.0);
        let l = learned(v.iter().copied().chain([0.05]));
        assert_eq!(l.bound(), Duration::from_secs(1));
        let l = learned(v.iter().copied().chain([15.0]));
        assert!(l.bound() >= Duration::from_secs(24), "{:?}", l.bound());
    }

    #[test]
    fn an_outage_released_late_teaches_no_bound_past_the_ceiling() {
        let l = learned(std::iter::repeat_n(0.05, 50).chain((0..30).map(|i| 600.0 - i as f64 * 20.0)));
        assert_eq!(l.bound(), Duration::from_secs(90));
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let v: VecDeque<f32> = [1.0, 2.0, 3.0, 4.0, 5.0].into_iter().collect();
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert!((quantile(&v, 0.99) - 4.96).abs() < 1e-6);
        assert_eq!(quantile(&VecDeque::new(), 0.99), 0.0);
        // Unsorted, with ties, as a window holds them: the same as sorting.
        let mut x: u32 = 7;
        let w: VecDeque<f32> = (0..1000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as f32 % 97.0 / 10.0
            })
            .collect();
        let mut sorted: Vec<f32> = w.iter().copied().collect();
        sorted.sort_by(f32::total_cmp);
        for q in [0.0f64, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let rank = q * 999.0;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            let want = f64::from(sorted[lo]) + (f64::from(sorted[hi]) - f64::from(sorted[lo])) * (rank - lo as f64);
            assert!((quantile(&w, q) - want).abs() < 1e-9, "q {q}");
        }
    }
}
