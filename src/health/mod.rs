//! Provider health: each provider's state decided from the outcomes its
//! routes' canaries settle to, with the evidence attributed across the
//! matrix, for machines to act on (load balancers, Postfix, applications).
//!
//! - A route's evidence is its newest canaries, in the order the provider
//!   took them: delivered in time (good); delivered late, refused, bounced,
//!   lost, or in flight past `overdue_after` (bad). An overdue canary counts
//!   exactly as a settled failure does, so `down_after` overdue canaries in
//!   a row make a route fail (`route.rs`).
//! - An inbox is *suspect*, and its routes' evidence set aside, while its
//!   watcher cannot see it, or while every one of at least two providers
//!   fails into it past the provider (a refusal is the provider's own word
//!   and never blames an inbox): then the fault is the inbox's.
//! - A provider is `down` when every usable route has failed `down_after`
//!   times in a row, `degraded` when some have, `healthy` when its routes
//!   have delivered in time, and `unknown` without usable evidence or
//!   before any canary arrived in time (fail open: no evidence never drains
//!   traffic, and no evidence is never called healthy). It leaves `down`
//!   after `up_after` canaries in a row on one route delivered in time,
//!   counted from the newest: older canaries still in flight from the
//!   outage do not hold a repaired provider down.

use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

mod learn;
mod route;
pub mod traffic;
pub use learn::{BoundSource, Learned, Learning};
pub use route::Evidence;
use route::RouteEvidence;

/// What a provider's canaries say of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Healthy,
    Degraded,
    Down,
    Unknown,
}

impl State {
    pub const ALL: [State; 4] = [State::Healthy, State::Degraded, State::Down, State::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Unknown => "unknown",
        }
    }

    /// Best first: what an application should pick.
    fn rank(self) -> u8 {
        match self {
            State::Healthy => 0,
            State::Unknown => 1,
            State::Degraded => 2,
            State::Down => 3,
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The thresholds of `global.health` and `providers[].health`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The fixed overdue bound: pinned when `learning` is None, else the
    /// bound of a route until it has learned its own, and the age past
    /// which a delivery is late whatever was learned.
    pub overdue_after: Duration,
    /// How each route learns its bound; None when the config pins it.
    pub learning: Option<Learning>,
    pub down_after: u32,
    pub up_after: u32,
    /// Confirmation canaries the provider may be sent per minute.
    pub confirmations_per_minute: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            overdue_after: Duration::from_secs(90),
            learning: Some(Learning::default()),
            down_after: 2,
            up_after: 2,
            confirmations_per_minute: 6,
        }
    }
}

/// A provider's decided state.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderHealth {
    pub provider: String,
    pub state: State,
    /// Unix ms of the last change of state (of the start, before any).
    pub since_ms: i64,
    /// One sentence an operator can act on.
    pub reason: String,
    /// The recent p95 delivery latency over its usable routes, in seconds.
    pub p95_latency_seconds: Option<f64>,
    /// Usable routes whose newest decided canary failed (overdue, late,
    /// refused, bounced, lost): ranked after those whose newest arrived.
    pub newest_failing_routes: usize,
    pub routes: Vec<RouteHealth>,
    /// Postfix's next hop for this provider, when it is SMTP-reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nexthop: Option<String>,
    /// An application's send path (a trigger), not a sending provider:
    /// judged alike, never ranked among providers nor steered to.
    #[serde(skip)]
    pub application: bool,
}

impl ProviderHealth {
    /// Best first: never down before usable, never a provider whose newest
    /// canaries failed before one whose newest arrived, then by state, then
    /// by recent p95 latency.
    pub fn rank_key(&self) -> (bool, bool, u8, f64) {
        (
            self.state == State::Down,
            self.newest_failing_routes > 0,
            self.state.rank(),
            self.p95_latency_seconds.unwrap_or(f64::MAX),
        )
    }
}

/// One route's evidence, as the providers API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RouteHealth {
    pub probe: String,
    pub inbox: String,
    /// Its inbox's evidence is set aside (the inbox is at fault or unseen).
    pub inbox_suspect: bool,
    /// `down_after` bad canaries in a row.
    pub failing: bool,
    /// Bad canaries in a row, counted from the newest decided one.
    pub bad_in_a_row: u32,
    /// The age of its oldest canary in flight past its bound.
    pub overdue_seconds: Option<f64>,
    /// The bound in force: a canary in flight longer is overdue.
    pub overdue_bound_seconds: f64,
    /// Where that bound comes from: `learned`, `default` (not enough
    /// deliveries yet) or `configured`.
    pub bound: BoundSource,
}

/// A change of a provider's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub provider: String,
    pub from: State,
    pub to: State,
    pub at_ms: i64,
    pub reason: String,
}

/// A confirmation canary the board asks for: on which route (by probe),
/// through which provider, and the provider's budget per minute.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    pub probe: String,
    pub provider: String,
    pub per_minute: u32,
}

/// "1 inbox", "2 inboxes".
fn inboxes(n: usize) -> String {
    if n == 1 { "1 inbox".into() } else { format!("{n} inboxes") }
}

/// Every provider's health, fed by settled outcomes and in-flight ages.
#[derive(Debug, Default)]
pub struct Board {
    thresholds: HashMap<String, Thresholds>,
    nexthops: HashMap<String, String>,
    applications: Vec<String>,
    routes: HashMap<String, RouteEvidence>,
    /// Each provider's probes, sorted: a decision reads a provider's
    /// routes, never every route for every provider.
    probes_of: HashMap<String, Vec<String>>,
    states: HashMap<String, (State, i64, String)>,
    /// Inboxes whose watcher cannot see them now.
    unseen: Vec<String>,
    /// Every provider as of the last decision, best first: what the API,
    /// the page and the steering signals read, so that a state, its reason
    /// and its routes always describe the same instant.
    snapshot: std::sync::Arc<Vec<ProviderHealth>>,
    /// Real traffic's evidence, beside the canaries' (traffic.rs).
    pub traffic: traffic::TrafficInput,
}

/// A provider of a config: its name, thresholds, Postfix next hop, and
/// whether it is an application's send path (a trigger).
#[derive(Debug, Clone)]
pub struct Judged {
    pub name: String,
    pub thresholds: Thresholds,
    pub nexthop: Option<String>,
    pub application: bool,
}

impl Board {
    /// Sets the providers and routes (probe, provider, inbox) a config
    /// runs; keeps what is known of those that stay.
    pub fn configure(&mut self, providers: &[Judged], routes: &[(String, String, String)], now_ms: i64) {
        self.thresholds = providers.iter().map(|p| (p.name.clone(), p.thresholds)).collect();
        let thresholds = &self.thresholds;
        self.nexthops = providers.iter().filter_map(|p| Some((p.name.clone(), p.nexthop.clone()?))).collect();
        self.applications = providers.iter().filter(|p| p.application).map(|p| p.name.clone()).collect();
        self.routes.retain(|probe, r| routes.iter().any(|(n, p, i)| n == probe && *p == r.provider && *i == r.inbox));
        for (probe, provider, inbox) in routes {
            let t = thresholds.get(provider).copied().unwrap_or_default();
            let r = self
                .routes
                .entry(probe.clone())
                .or_insert_with(|| RouteEvidence::new(provider, inbox, Learned::new(t.overdue_after, t.learning)));
            r.learned.configure(t.overdue_after, t.learning);
        }
        self.probes_of.clear();
        for (probe, r) in &self.routes {
            self.probes_of.entry(r.provider.clone()).or_default().push(probe.clone());
        }
        self.probes_of.values_mut().for_each(|probes| probes.sort_unstable());
        self.states.retain(|p, _| providers.iter().any(|j| j.name == *p));
        for p in providers {
            self.states.entry(p.name.clone()).or_insert((State::Unknown, now_ms, "no canary settled yet".into()));
        }
        self.snapshot = std::sync::Arc::new(self.rank());
    }

    fn thresholds(&self, provider: &str) -> Thresholds {
        self.thresholds.get(provider).copied().unwrap_or_default()
    }

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
        Some(r.learned.bound()).filter(|b| *b != before)
    }

    /// Each route's bound in force now, by probe.
    pub fn bounds(&self) -> Vec<(String, Duration)> {
        self.routes.iter().map(|(probe, r)| (probe.clone(), r.learned.bound())).collect()
    }

    /// Each route's canaries in flight (acceptance time and age), and the
    /// inboxes a watcher sees now (the others' evidence is set aside).
    /// Returns the routes that raised a suspicion, by probe, sorted: their
    /// newest canary is overdue, and confirmations should go at once.
    pub fn observe(&mut self, in_flight: &HashMap<String, Vec<(Instant, Duration)>>, live: &[String]) -> Vec<String> {
        let live: std::collections::HashSet<&str> = live.iter().map(String::as_str).collect();
        let mut unseen: Vec<String> =
            self.routes.values().filter(|r| !live.contains(r.inbox.as_str())).map(|r| r.inbox.clone()).collect();
        unseen.sort_unstable();
        unseen.dedup();
        let mut suspicions = Vec::new();
        for (probe, r) in self.routes.iter_mut() {
            let down_after = self.thresholds.get(&r.provider).copied().unwrap_or_default().down_after;
            if r.observe(in_flight.get(probe).map_or(&[][..], |v| v.as_slice()), down_after)
                && !unseen.contains(&r.inbox)
            {
                suspicions.push(probe.clone());
            }
        }
        self.unseen = unseen;
        suspicions.sort_unstable();
        suspicions
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
        let mut others: Vec<(&String, &RouteEvidence)> =
            self.routes.iter().filter(|(p, r)| *p != probe && open(r)).collect();
        others.sort_unstable_by_key(|(p, _)| *p);
        let same_inbox = others.iter().find(|(_, r)| r.inbox == suspect.inbox && r.provider != suspect.provider);
        let same_provider = others.iter().find(|(_, r)| r.provider == suspect.provider && r.inbox != suspect.inbox);
        out.extend(same_inbox.into_iter().chain(same_provider).map(|(p, r)| ask(p, r)));
        out
    }

    /// Inboxes whose evidence is set aside.
    fn suspect(&self) -> Vec<String> {
        let mut suspect = self.unseen.clone();
        let mut by_inbox: HashMap<&str, Vec<&RouteEvidence>> = HashMap::new();
        for r in self.routes.values().filter(|r| r.has_evidence()) {
            by_inbox.entry(r.inbox.as_str()).or_default().push(r);
        }
        for (inbox, routes) in by_inbox {
            let mut providers: Vec<&str> = routes.iter().map(|r| r.provider.as_str()).collect();
            providers.sort_unstable();
            providers.dedup();
            if providers.len() >= 2 && routes.iter().all(|r| r.newest_bad_past_the_provider()) {
                suspect.push(inbox.to_string());
            }
        }
        suspect
    }

    /// The routes of `provider` whose evidence counts, by probe name.
    fn usable<'a>(&'a self, provider: &str, suspect: &[String]) -> Vec<(&'a String, &'a RouteEvidence)> {
        self.routes_of(provider).filter(|(_, r)| r.has_evidence() && !suspect.contains(&r.inbox)).collect()
    }

    /// The routes of `provider`, by probe name.
    fn routes_of<'a>(&'a self, provider: &str) -> impl Iterator<Item = (&'a String, &'a RouteEvidence)> {
        let probes = self.probes_of.get(provider).map_or(&[][..], Vec::as_slice);
        probes.iter().filter_map(|probe| Some((probe, self.routes.get(probe)?)))
    }

    /// The state the evidence alone says, and why.
    fn assess(&self, provider: &str, suspect: &[String]) -> (State, String) {
        let t = self.thresholds(provider);
        let usable = self.usable(provider, suspect);
        if usable.is_empty() {
            let why = if self.routes_of(provider).any(|(_, r)| r.has_evidence()) {
                "every inbox it sends to is suspect (unreachable, or failing for every provider): no usable evidence"
            } else {
                "no canary settled yet"
            };
            return (State::Unknown, why.to_string());
        }
        let whys: Vec<String> = usable.iter().filter_map(|(_, r)| r.why(&r.inbox)).collect();
        let failing = usable.iter().filter(|(_, r)| r.failing(t.down_after)).count();
        if failing == usable.len() {
            (State::Down, format!("every route fails: {}; fail over", whys.join("; ")))
        } else if failing > 0 {
            (State::Degraded, format!("{failing} of {} routes fail: {}", usable.len(), whys.join("; ")))
        } else if !usable.iter().any(|(_, r)| r.ever_good()) {
            (State::Unknown, format!("no canary has arrived in time yet: {}", whys.join("; ")))
        } else if whys.is_empty() {
            (State::Healthy, format!("its newest canaries into {} arrived in time", inboxes(usable.len())))
        } else {
            let why = format!("{}; down after {} in a row", whys.join("; "), t.down_after);
            (State::Healthy, format!("delivering, but {why}"))
        }
    }

    /// Decides every provider's state at `now_ms`; returns the changes.
    pub fn decide(&mut self, now_ms: i64) -> Vec<Transition> {
        let suspect = self.suspect();
        let mut changes = Vec::new();
        let mut providers: Vec<String> = self.states.keys().cloned().collect();
        providers.sort_unstable();
        for provider in providers {
            let (mut state, mut reason) = self.assess(&provider, &suspect);
            if matches!(state, State::Healthy | State::Unknown)
                && let Some(why) = self.traffic.spike(&provider, now_ms)
            {
                (state, reason) = (State::Degraded, why);
            }
            let (current, since, _) = self.states[&provider].clone();
            // Hysteresis: once down, only `up_after` in-time deliveries in a
            // row (on one route, counted from the newest) bring it back; no
            // evidence (an unseen inbox, a restart) does not either.
            let up_after = self.thresholds(&provider).up_after;
            let good_run = self.usable(&provider, &suspect).iter().map(|(_, r)| r.good_run()).max().unwrap_or(0);
            if current == State::Down && state != State::Down && good_run < up_after {
                state = State::Down;
                reason = format!(
                    "recovering: {good_run} of {up_after} canaries in a row delivered in time; meanwhile {reason}"
                );
            }
            if state != current {
                changes.push(Transition {
                    provider: provider.clone(),
                    from: current,
                    to: state,
                    at_ms: now_ms,
                    reason: reason.clone(),
                });
                self.states.insert(provider, (state, now_ms, reason));
            } else {
                self.states.insert(provider, (state, since, reason));
            }
        }
        self.snapshot = std::sync::Arc::new(self.rank());
        changes
    }

    /// Puts back a provider that was down before a restart: it must earn
    /// its way back up like any other (the other states start afresh).
    pub fn restore_down(&mut self, provider: &str, since_ms: i64, reason: String) {
        if let Some(s) = self.states.get_mut(provider) {
            *s = (State::Down, since_ms, reason);
        }
        self.snapshot = std::sync::Arc::new(self.rank());
    }

    /// Every provider's current state.
    pub fn states(&self) -> Vec<(String, State)> {
        self.states.iter().map(|(p, (s, _, _))| (p.clone(), *s)).collect()
    }

    /// Every provider and application send path as of the last decision,
    /// best first (see [`ProviderHealth::rank_key`]).
    pub fn providers(&self) -> std::sync::Arc<Vec<ProviderHealth>> {
        self.snapshot.clone()
    }

    /// Every provider now, best first.
    fn rank(&self) -> Vec<ProviderHealth> {
        let suspect = self.suspect();
        let mut out: Vec<ProviderHealth> =
            self.states.iter().map(|(provider, current)| self.health(provider, current, &suspect)).collect();
        out.sort_by(|a, b| {
            let (ka, kb) = (a.rank_key(), b.rank_key());
            (ka.0, ka.1, ka.2).cmp(&(kb.0, kb.1, kb.2)).then(ka.3.total_cmp(&kb.3)).then(a.provider.cmp(&b.provider))
        });
        out
    }

    fn health(
        &self,
        provider: &str,
        (state, since_ms, reason): &(State, i64, String),
        suspect: &[String],
    ) -> ProviderHealth {
        let t = self.thresholds(provider);
        let routes: Vec<RouteHealth> = self
            .routes_of(provider)
            .map(|(probe, r)| RouteHealth {
                probe: probe.clone(),
                inbox: r.inbox.clone(),
                inbox_suspect: suspect.contains(&r.inbox),
                failing: r.failing(t.down_after),
                bad_in_a_row: r.bad_run().0,
                overdue_seconds: r.overdue().map(|d| d.as_secs_f64()),
                overdue_bound_seconds: r.learned.bound().as_secs_f64(),
                bound: r.learned.source(),
            })
            .collect();
        let usable = self.usable(provider, suspect);
        let mut latencies: Vec<f64> = usable.iter().flat_map(|(_, r)| r.latencies.iter().copied()).collect();
        latencies.sort_by(f64::total_cmp);
        let p95 = (!latencies.is_empty())
            .then(|| latencies[((latencies.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)]);
        ProviderHealth {
            provider: provider.to_string(),
            state: *state,
            since_ms: *since_ms,
            reason: reason.clone(),
            p95_latency_seconds: p95,
            newest_failing_routes: usable.iter().filter(|(_, r)| r.newest_bad(t.down_after)).count(),
            routes,
            nexthop: self.nexthops.get(provider).cloned(),
            application: self.applications.iter().any(|a| a == provider),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod detection_tests;
