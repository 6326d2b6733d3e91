//! One route's evidence: its canaries, ordered by when the provider took
//! them, each settled or, while in flight, overdue. Only the newest decided
//! canaries count: a canary delivered in time after an overdue one proves
//! the path works now, whatever older canaries are still in flight, and a
//! run of bad canaries is counted from the newest backwards.

use super::learn::Learned;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use crate::outcome::Evidence;

/// A decided canary: settled, or in flight and overdue by its age.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Verdict {
    Settled(Evidence),
    /// In flight past its route's bound: its age, and whether it is past
    /// the fixed `overdue_after` too (evidence on its own), or only past a
    /// learned bound (a suspicion, as likely a spike as a fault).
    Overdue(Duration, Strength),
}

/// How much an overdue canary says on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strength {
    /// Past the learned bound only: it counts towards a failing run, but
    /// alone it moves no steering signal.
    Suspicion,
    /// Past the fixed `overdue_after` (or the bound the config pins).
    Evidence,
}

impl Verdict {
    fn good(self) -> bool {
        self == Verdict::Settled(Evidence::Good)
    }

    /// What happened to it, to end "the newest canary to x …".
    fn describe(self) -> String {
        match self {
            Verdict::Overdue(age, Strength::Evidence) => format!("is {:.0} s overdue", age.as_secs_f64()),
            Verdict::Overdue(age, Strength::Suspicion) => {
                format!("is {:.1} s in flight, past its route's learned bound", age.as_secs_f64())
            }
            Verdict::Settled(Evidence::Good) => "arrived in time".into(),
            Verdict::Settled(Evidence::Slow) => "arrived late".into(),
            Verdict::Settled(Evidence::Refused) => "was refused".into(),
            Verdict::Settled(Evidence::Bounced) => "bounced".into(),
            Verdict::Settled(Evidence::Lost) => "was lost".into(),
            Verdict::Settled(Evidence::Mismatched) => "failed an expectation".into(),
        }
    }
}

/// What a look at a route's canaries in flight found.
pub(super) struct Look {
    /// A suspicion was raised (`RouteEvidence::observe`).
    pub suspicion: bool,
    /// Its overdue canaries changed (or aged): it must be decided again.
    pub moved: bool,
}

/// Overdue by the learned bound only.
fn is_suspicion(v: Option<Verdict>) -> bool {
    matches!(v, Some(Verdict::Overdue(_, Strength::Suspicion)))
}

/// The settled canaries kept per route: more than any `down_after` or
/// `up_after` needs.
const HISTORY: usize = 32;
/// Latencies of recent in-time deliveries kept per route, for the p95.
const LATENCIES_KEPT: usize = 20;

/// What one route has shown lately.
#[derive(Debug, Clone, Default)]
pub(super) struct RouteEvidence {
    pub provider: String,
    pub inbox: String,
    /// Settled canaries by acceptance time, oldest first.
    settled: VecDeque<(Instant, Evidence)>,
    /// Canaries in flight past the route's bound: acceptance time, age,
    /// and whether they are past the fixed `overdue_after` too.
    overdue: Vec<(Instant, Duration, Strength)>,
    /// A canary younger than the route's bound is in flight: its verdict is
    /// on its way, and a confirmation would ask the same question again.
    young_in_flight: bool,
    /// The newest canary that raised a suspicion (by acceptance time): each
    /// raises one, however long it stays overdue.
    suspected: Option<Instant>,
    /// The route's overdue bound, learned from its deliveries (learn.rs).
    pub learned: Learned,
    /// Its overdue run as the metrics last showed it (Board::decide).
    pub shown_overdue_run: u32,
    /// Whether any canary of this route ever arrived in time.
    ever_good: bool,
    /// Latencies of recent in-time deliveries (seconds), newest last.
    pub latencies: VecDeque<f64>,
}

impl RouteEvidence {
    pub fn new(provider: &str, inbox: &str, learned: Learned) -> Self {
        RouteEvidence { provider: provider.to_string(), inbox: inbox.to_string(), learned, ..Default::default() }
    }

    /// A canary accepted at `accepted` settled. A delivery, in time or
    /// late, teaches the route's bound.
    pub fn record(&mut self, accepted: Instant, evidence: Evidence, latency_seconds: Option<f64>) {
        self.overdue.retain(|(at, _, _)| *at != accepted);
        if let (Evidence::Good | Evidence::Slow, Some(l)) = (evidence, latency_seconds) {
            self.learned.learn(l);
        }
        let at = self.settled.iter().rposition(|(t, _)| *t <= accepted).map_or(0, |i| i + 1);
        self.settled.insert(at, (accepted, evidence));
        if self.settled.len() > HISTORY {
            self.settled.pop_front();
        }
        if evidence == Evidence::Good {
            self.ever_good = true;
            if let Some(l) = latency_seconds {
                self.latencies.push_back(l);
                if self.latencies.len() > LATENCIES_KEPT {
                    self.latencies.pop_front();
                }
            }
        }
    }

    /// The canaries in flight now, with their ages; those at least the
    /// route's bound old count as bad until they settle. Returns whether a
    /// suspicion was raised: the newest canary in flight became overdue
    /// (none younger is on its way), after the newest that settled, it
    /// raised none before, its inbox is watched (`seen`), and the route is
    /// not failing already (its scheduled canaries say enough then).
    pub fn observe(&mut self, in_flight: &[(Instant, Duration)], down_after: u32, seen: bool) -> Look {
        let (bound, fixed) = (self.learned.bound(), self.learned.fixed());
        let mut overdue: Vec<_> = in_flight
            .iter()
            .filter(|(_, age)| *age >= bound)
            .map(|(at, age)| (*at, *age, if *age >= fixed { Strength::Evidence } else { Strength::Suspicion }))
            .collect();
        overdue.sort_by_key(|(at, _, _)| *at);
        let moved = overdue != self.overdue;
        self.overdue = overdue;
        self.young_in_flight = in_flight.iter().any(|(_, age)| *age < bound);
        let quiet = Look { suspicion: false, moved };
        let Some(&(newest, _, _)) = self.overdue.last() else { return quiet };
        let newer_settled = self.settled.back().is_some_and(|(at, _)| *at > newest);
        if self.young_in_flight || newer_settled || !seen || self.suspected.is_some_and(|s| s >= newest) {
            return quiet;
        }
        // Decided now, asked for or not: a route failing already asks for
        // nothing, and the same canary asks nothing once it recovers.
        self.suspected = Some(newest);
        Look { suspicion: !self.failing(down_after), moved }
    }

    /// It has canaries in flight, overdue or not, as of the last look.
    pub fn busy(&self) -> bool {
        self.young_in_flight || !self.overdue.is_empty()
    }

    /// Of these canaries in flight: whether one has passed the bound since
    /// the last `observe` (a decision is due now), and how long until the
    /// first one not yet past it will.
    pub fn due(&self, in_flight: &[(Instant, Duration)]) -> (bool, Option<Duration>) {
        let bound = self.learned.bound();
        let now = in_flight.iter().any(|(at, age)| *age >= bound && !self.overdue.iter().any(|(o, _, _)| o == at));
        (now, in_flight.iter().filter(|(_, age)| *age < bound).map(|(_, age)| bound - *age).min())
    }

    /// A canary of its own is in flight and not yet overdue.
    pub fn young_in_flight(&self) -> bool {
        self.young_in_flight
    }

    /// Decided canaries, newest first.
    fn decided(&self) -> impl Iterator<Item = Verdict> + '_ {
        // Both are kept in the order their canaries were accepted: merged
        // from the newest, with nothing allocated (asked of every route at
        // every tick).
        let mut settled = self.settled.iter().rev().peekable();
        let mut overdue = self.overdue.iter().rev().peekable();
        std::iter::from_fn(move || {
            let settled_first = match (settled.peek(), overdue.peek()) {
                (Some((s, _)), Some((o, _, _))) => s >= o,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if settled_first {
                settled.next().map(|(_, e)| Verdict::Settled(*e))
            } else {
                overdue.next().map(|(_, age, strength)| Verdict::Overdue(*age, *strength))
            }
        })
    }

    /// Bad canaries in a row from the newest decided one, and the newest.
    pub fn bad_run(&self) -> (u32, Option<Verdict>) {
        let mut decided = self.decided();
        let newest = decided.next();
        let run = match newest {
            Some(v) if !v.good() => 1 + decided.take_while(|v| !v.good()).count() as u32,
            _ => 0,
        };
        (run, newest)
    }

    /// In-time deliveries in a row from the newest decided canary.
    pub fn good_run(&self) -> u32 {
        self.decided().take_while(|v| v.good()).count() as u32
    }

    /// Canaries in flight past the bound, in a row from the newest decided
    /// one: 1 is a suspicion, `down_after` a confirmed one (or a run past
    /// the fixed bound).
    pub fn overdue_run(&self) -> u32 {
        let newest_settled = self.settled.back().map(|(at, _)| *at);
        self.overdue.iter().filter(|(at, _, _)| newest_settled.is_none_or(|s| *at > s)).count() as u32
    }

    /// The age of its oldest overdue canary, if any.
    pub fn overdue(&self) -> Option<Duration> {
        self.overdue.iter().map(|(_, age, _)| *age).max()
    }

    pub fn has_evidence(&self) -> bool {
        !self.settled.is_empty() || !self.overdue.is_empty()
    }

    pub fn ever_good(&self) -> bool {
        self.ever_good
    }

    /// Its newest decided canary failed: a suspicion alone (overdue by the
    /// learned bound only) does not count until the run makes the route
    /// fail, so that a spike whose confirmation arrives moves no traffic.
    pub fn newest_bad(&self, down_after: u32) -> bool {
        let (run, newest) = self.bad_run();
        run > 0 && (!is_suspicion(newest) || self.run_fails(run, newest, down_after))
    }

    /// Its newest decided canary failed in a way that may be its inbox's
    /// fault: anything but a refusal (which the provider said itself), and
    /// no suspicion until its confirmation is overdue too.
    pub fn newest_bad_past_the_provider(&self) -> bool {
        match self.bad_run() {
            (_, Some(Verdict::Overdue(_, Strength::Suspicion))) => self.confirmed(),
            (run, Some(v)) => run > 0 && v != Verdict::Settled(Evidence::Refused),
            (_, None) => false,
        }
    }

    /// `down_after` bad canaries in a row; when the newest is a suspicion
    /// (past the learned bound only), never fewer than two: the suspected
    /// canary and its confirmation, whatever `down_after` says.
    pub fn failing(&self, down_after: u32) -> bool {
        let (run, newest) = self.bad_run();
        self.run_fails(run, newest, down_after)
    }

    /// Whether a bad run of `run` ending in `newest` makes the route fail.
    fn run_fails(&self, run: u32, newest: Option<Verdict>, down_after: u32) -> bool {
        run >= down_after && (!is_suspicion(newest) || self.confirmed())
    }

    /// At least two of its newest decided canaries in a row are overdue.
    fn confirmed(&self) -> bool {
        self.overdue_run() >= 2
    }

    /// One sentence on why this route counts against its provider, or None
    /// while its newest canary arrived in time.
    pub fn why(&self, inbox: &str) -> Option<String> {
        match self.bad_run() {
            (0, _) | (_, None) => None,
            (1, Some(newest)) => Some(format!("its newest canary to {inbox} {}", newest.describe())),
            (n, Some(newest)) => {
                Some(format!("{n} canaries in a row to {inbox} failed; the newest {}", newest.describe()))
            }
        }
    }
}
