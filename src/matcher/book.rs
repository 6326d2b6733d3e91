//! The book of canaries in flight, and of how well each inbox is watched.
//! Taking a canary out of the book is the claim on its fate: whoever takes
//! it settles it, and nobody else can.

use crate::bounce::Bounce;
use crate::metrics::RouteLabels;
use crate::outcome::Observed;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A canary sent (or being sent) and not yet settled.
pub struct InFlight {
    pub labels: RouteLabels,
    pub timeout: Duration,
    /// Acceptance (or creation, until accepted) on the monotonic clock…
    pub since: Instant,
    /// …and on the wall clock, as the ledger has it.
    pub since_ms: i64,
    pub deadline: Instant,
    pub deadline_ms: i64,
    /// Past its deadline, it is judged lost only once its inbox has been
    /// seen whole since the deadline, or at the latest at this time.
    pub hold_until: Instant,
    pub accepted: bool,
    /// Picked up from the ledger after a restart: nobody was looking when
    /// it may have arrived.
    pub resumed: bool,
    /// Its inbox could not be watched for a while since it was sent.
    pub gap: bool,
    /// Seen (or bounced) before the provider's answer arrived.
    pub early: Option<Early>,
    /// Seen, and being checked away from the watcher (crate::trigger's
    /// link) under a [`super::Claim`]: how it was observed when it was seen.
    pub claimed: Option<Observed>,
}

impl InFlight {
    /// A canary about to be sent at `now` / `now_ms`.
    pub fn new(labels: RouteLabels, timeout: Duration, now: Instant, now_ms: i64) -> Self {
        InFlight {
            labels,
            timeout,
            since: now,
            since_ms: now_ms,
            deadline: now + timeout,
            deadline_ms: now_ms + timeout.as_millis() as i64,
            hold_until: now + timeout * 2,
            accepted: false,
            resumed: false,
            gap: false,
            early: None,
            claimed: None,
        }
    }

    /// A canary the ledger still had in flight, picked up at `now` / `now_ms`:
    /// its times come from the ledger's wall clock, once, and run on the
    /// monotonic clock from here on.
    pub fn resumed(labels: RouteLabels, since_ms: i64, deadline_ms: i64, now: Instant, now_ms: i64) -> Self {
        let timeout = Duration::from_millis((deadline_ms - since_ms).max(0) as u64);
        let age = Duration::from_millis((now_ms - since_ms).max(0) as u64);
        let left = Duration::from_millis((deadline_ms - now_ms).max(0) as u64);
        let deadline = now + left;
        InFlight {
            labels,
            timeout,
            since: now.checked_sub(age).unwrap_or(now),
            since_ms,
            deadline,
            deadline_ms,
            // However long we were down, its inbox gets a whole timeout to be seen.
            hold_until: deadline.max(now) + timeout,
            // Whether or not the provider answered before the stop, it may
            // have taken it: wait for it until its deadline.
            accepted: true,
            resumed: true,
            gap: false,
            early: None,
            claimed: None,
        }
    }

    /// How a sighting at `at` observed it: as it happened, or (nobody was
    /// looking for a while, or its deadline had passed) after the fact.
    pub fn observed(&self, at: Instant) -> Observed {
        if self.resumed {
            Observed::AfterRestart
        } else if self.gap || at > self.deadline {
            Observed::AfterGap
        } else {
            Observed::Live
        }
    }

    /// The provider took it at `now` / `now_ms`: its latency and deadline run from here.
    pub fn accept(&mut self, now: Instant, now_ms: i64) {
        self.accepted = true;
        self.since = now;
        self.since_ms = now_ms;
        self.deadline = now + self.timeout;
        self.deadline_ms = now_ms + self.timeout.as_millis() as i64;
        self.hold_until = self.deadline + self.timeout;
    }
}

/// What came back for a canary before its provider's answer did.
pub enum Early {
    Seen(super::Sighting),
    Bounced(Bounce),
}

/// How well an inbox is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Its watcher has seen everything up to now and will hear of what comes.
    Live,
    /// Nobody is looking; everything up to `seen_up_to` was seen.
    Behind { seen_up_to: Option<Instant> },
}

#[derive(Default)]
pub struct Book {
    pub in_flight: HashMap<String, InFlight>,
    inboxes: HashMap<String, Watch>,
}

impl Book {
    /// The inbox's watcher has looked at every folder and waits for news:
    /// canaries of that inbox still in flight were not there, and whatever
    /// comes of them now is seen as it happens.
    pub fn caught_up(&mut self, inbox: &str) {
        if self.inboxes.insert(inbox.to_string(), Watch::Live) != Some(Watch::Live) {
            for c in self.in_flight.values_mut().filter(|c| c.labels.inbox() == inbox) {
                c.resumed = false;
                c.gap = false;
            }
        }
    }

    /// The inbox's watcher stopped looking at `now` (its session failed, or
    /// it was stopped): canaries in flight there may arrive unseen.
    pub fn behind(&mut self, inbox: &str, now: Instant) {
        let seen_up_to = match self.inboxes.get(inbox) {
            Some(Watch::Live) => Some(now),
            Some(Watch::Behind { seen_up_to }) => *seen_up_to,
            None => None,
        };
        self.inboxes.insert(inbox.to_string(), Watch::Behind { seen_up_to });
        for c in self.in_flight.values_mut().filter(|c| c.labels.inbox() == inbox) {
            c.gap = true;
        }
    }

    /// Until when everything that arrived in `inbox` has been seen.
    fn seen_up_to(&self, inbox: &str, now: Instant) -> Option<Instant> {
        match self.inboxes.get(inbox) {
            Some(Watch::Live) => Some(now),
            Some(Watch::Behind { seen_up_to }) => *seen_up_to,
            None => None,
        }
    }

    /// The canaries to count lost at `now`: accepted, not seen (claimed),
    /// past their deadline, and either their inbox was seen whole since
    /// then, or they were held as long as they may be.
    pub fn due(&self, now: Instant) -> Vec<String> {
        self.in_flight
            .iter()
            .filter(|(_, c)| c.accepted && c.claimed.is_none() && c.deadline <= now)
            .filter(|(_, c)| {
                self.seen_up_to(c.labels.inbox(), now).is_some_and(|seen| seen >= c.deadline) || c.hold_until <= now
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// How many canaries in flight could be seen as they arrive: their
    /// inbox is being watched.
    pub fn watched(&self) -> usize {
        self.in_flight.values().filter(|c| self.inboxes.get(&**c.labels.inbox()) == Some(&Watch::Live)).count()
    }

    /// The inboxes being watched now.
    pub fn live_inboxes(&self) -> Vec<String> {
        self.inboxes.iter().filter(|(_, w)| **w == Watch::Live).map(|(i, _)| i.clone()).collect()
    }

    /// How many canaries sent into `inbox` are waiting to be seen.
    pub fn waiting_in(&self, inbox: &str) -> usize {
        self.in_flight.values().filter(|c| c.labels.inbox() == inbox && c.claimed.is_none()).count()
    }

    /// The ids of the canaries in flight into `inbox`.
    pub fn ids_in(&self, inbox: &str) -> Vec<String> {
        self.in_flight.iter().filter(|(_, c)| c.labels.inbox() == inbox).map(|(id, _)| id.clone()).collect()
    }
}
