//! What the board is told, and what it asks for: settled canaries (each
//! teaching its route's bound: learn.rs), the canaries in flight at each
//! tick (past its bound, a suspicion), the deliveries of before a restart;
//! the confirmations a suspicion asks for (crate::health_keeper sends
//! them), and the routes whose overdue run the metrics must show.

use super::*;

/// A confirmation canary the board asks for: on which route (by probe),
/// through which provider, and the provider's budget per minute.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    pub probe: String,
    pub provider: String,
    pub per_minute: u32,
}

/// A route's canaries in flight past its bound, in a row from the newest
/// decided one (`mailcanary_overdue_in_a_row`).
#[derive(Debug, Clone, PartialEq)]
pub struct OverdueRun {
    pub probe: String,
    pub provider: String,
    pub inbox: String,
    pub run: u32,
}

impl Board {
    /// A canary of `probe`, accepted at `accepted`, settled. A delivery
    /// slower than its provider's fixed `overdue_after` is not in time (the
    /// learned bound decides only when a canary in flight is suspect).
    /// Returns the route's bound when this delivery moved it.
    pub fn record(
        &mut self,
        probe: &str,
        accepted: Instant,
        evidence: Evidence,
        latency_seconds: Option<f64>,
    ) -> Option<Duration> {
        let r = self.routes.get_mut(probe)?;
        let late_after = r.learned.fixed().as_secs_f64();
        let evidence = match (evidence, latency_seconds) {
            (Evidence::Good, Some(l)) if l > late_after => Evidence::Slow,
            _ => evidence,
        };
        let before = r.learned.bound();
        r.record(accepted, evidence, latency_seconds);
        self.changed.probes.insert(probe.to_string());
        Some(r.learned.bound()).filter(|b| *b != before)
    }

    /// Whether the route these labels name is one this board judges: a
    /// route a reload retired (its name now through another provider or
    /// into another inbox) is not, and its canaries are no evidence.
    pub fn judges(&self, route: &crate::settled::RouteLabels) -> bool {
        self.routes
            .get(&**route.probe())
            .is_some_and(|r| *r.provider == **route.provider() && *r.inbox == **route.inbox())
    }

    /// Each learning route (probe, provider) and how many deliveries it
    /// learns from.
    pub fn learning_windows(&self) -> Vec<((String, String), usize)> {
        self.routes.iter().filter_map(|(p, r)| Some(((p.clone(), r.provider.clone()), r.learned.window()?))).collect()
    }

    /// `probe` delivered these latencies before a restart, oldest first.
    pub fn learn_history(&mut self, probe: &str, latencies: &[f64]) {
        if let Some(r) = self.routes.get_mut(probe) {
            r.learned.learn_history(latencies);
            self.changed.probes.insert(probe.to_string());
        }
    }

    /// Each route (probe, provider, inbox) and its bound in force now.
    pub fn bounds(&self) -> Vec<(String, String, String, Duration)> {
        self.routes.iter().map(|(p, r)| (p.clone(), r.provider.clone(), r.inbox.clone(), r.learned.bound())).collect()
    }

    /// Each route's canaries in flight (acceptance time and age), and the
    /// inboxes a watcher sees now (the others' evidence is set aside).
    /// Returns the routes that raised a suspicion, by probe, sorted: their
    /// newest canary is overdue, and confirmations should go at once.
    /// Looks at the routes with canaries in flight now or at the last look
    /// only: a route with none has nothing new to show.
    pub fn observe(&mut self, in_flight: &HashMap<String, Vec<(Instant, Duration)>>, live: &[String]) -> Vec<String> {
        let live: HashSet<&str> = live.iter().map(String::as_str).collect();
        let mut unseen: Vec<String> = self.probes_into.keys().filter(|i| !live.contains(i.as_str())).cloned().collect();
        unseen.sort_unstable();
        for inbox in unseen.iter().filter(|i| self.unseen.binary_search(i).is_err()) {
            self.changed.inboxes.insert(inbox.clone());
        }
        for inbox in self.unseen.iter().filter(|i| unseen.binary_search(i).is_err()) {
            self.changed.inboxes.insert(inbox.clone());
        }
        let mut probes: Vec<String> = std::mem::take(&mut self.busy).into_iter().collect();
        probes.extend(in_flight.keys().filter(|p| self.routes.contains_key(*p)).cloned());
        probes.sort_unstable();
        probes.dedup();
        let mut suspicions = Vec::new();
        for probe in probes {
            let Some(r) = self.routes.get_mut(&probe) else { continue };
            let down_after = self.thresholds.get(&r.provider).copied().unwrap_or_default().down_after;
            let seen = unseen.binary_search(&r.inbox).is_err();
            let look = r.observe(in_flight.get(&probe).map_or(&[][..], |v| v.as_slice()), down_after, seen);
            if look.moved {
                self.changed.probes.insert(probe.clone());
            }
            if r.busy() {
                self.busy.insert(probe.clone());
            }
            if look.suspicion {
                suspicions.push(probe);
            }
        }
        self.unseen = unseen;
        suspicions
    }

    /// What the canaries in flight ask of the board between ticks: whether
    /// one has passed its route's bound since the last `observe` (decide
    /// now), and how long until the next one will: the ticker looks again
    /// then, so that a suspicion is seen when it is one, not up to a tick
    /// later. Costs the canaries in flight, not the routes.
    pub fn due(&self, in_flight: &HashMap<String, Vec<(Instant, Duration)>>) -> (bool, Option<Duration>) {
        let (mut now, mut next) = (false, None::<Duration>);
        for (probe, canaries) in in_flight {
            let Some(r) = self.routes.get(probe) else { continue };
            let (passed, until) = r.due(canaries);
            now |= passed;
            next = match (next, until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        (now, next)
    }

    /// Where the confirmations of `probe`'s suspicion go: the route itself,
    /// and where the matrix allows, one route of another provider into the
    /// same inbox (is it the mailbox?) and one of the same provider into
    /// another inbox (is it the provider?), the first by name of each.
    /// Never a route whose own canary is on its way already (one in flight
    /// per route), nor one into an inbox nobody watches.
    pub fn confirmations(&self, probe: &str) -> Vec<Confirmation> {
        let Some(suspect) = self.routes.get(probe) else { return Vec::new() };
        // An application's send path fires on its own turns (crate::trigger): never asked.
        let open = |r: &RouteEvidence| {
            !r.young_in_flight() && !self.unseen.contains(&r.inbox) && !self.applications.contains(&r.provider)
        };
        let ask = |probe: &str, r: &RouteEvidence| Confirmation {
            probe: probe.to_string(),
            provider: r.provider.clone(),
            per_minute: self.thresholds(&r.provider).confirmations_per_minute,
        };
        let mut out = Vec::new();
        if open(suspect) {
            out.push(ask(probe, suspect));
        }
        // The first by name of each, from the indexes: a mailbox outage
        // suspects every route into it at once, and each is asked in O(routes of one inbox).
        let first = |index: &HashMap<String, Vec<String>>, key: &str, differs: &dyn Fn(&RouteEvidence) -> bool| {
            let probes = index.get(key).map_or(&[][..], Vec::as_slice);
            probes.iter().filter(|p| *p != probe).find_map(|p| {
                let r = self.routes.get(p)?;
                (differs(r) && open(r)).then(|| ask(p, r))
            })
        };
        let same_inbox = first(&self.probes_into, &suspect.inbox, &|r| r.provider != suspect.provider);
        let same_provider = first(&self.probes_of, &suspect.provider, &|r| r.inbox != suspect.inbox);
        out.extend(same_inbox.into_iter().chain(same_provider));
        out
    }

    /// The routes whose overdue run changed since last asked.
    pub fn take_overdue_runs(&mut self) -> Vec<OverdueRun> {
        std::mem::take(&mut self.overdue_runs)
    }
}
