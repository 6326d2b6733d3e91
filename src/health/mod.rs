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
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod changed;
mod evidence;
mod learn;
mod learn_config;
mod route;
mod snapshot;
pub mod traffic;
use changed::Changed;
pub use evidence::{Confirmation, OverdueRun};
pub use learn::{BoundSource, Learned, Learning};
pub use learn_config::LearnConfig;
pub use route::Evidence;
use route::RouteEvidence;
pub use snapshot::{ProviderHealth, RouteHealth};

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

/// A change of a provider's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub provider: String,
    pub from: State,
    pub to: State,
    pub at_ms: i64,
    pub reason: String,
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
    /// Each inbox's probes, sorted: where a suspicion's confirmations go.
    probes_into: HashMap<String, Vec<String>>,
    states: HashMap<String, (State, i64, String)>,
    /// Inboxes whose watcher cannot see them now, sorted.
    unseen: Vec<String>,
    /// Inboxes whose evidence is set aside, as of the last decision.
    suspect: HashSet<String>,
    /// Routes whose last look found canaries in flight: the next look
    /// visits them even when none are left (`observe`).
    busy: HashSet<String>,
    /// What moved since the last decision.
    changed: Changed,
    /// Each provider's health as of the last decision.
    healths: HashMap<String, Arc<ProviderHealth>>,
    /// Every provider as of the last decision, best first: what the API,
    /// the page and the steering signals read, so that a state, its reason
    /// and its routes always describe the same instant.
    snapshot: Arc<Vec<Arc<ProviderHealth>>>,
    /// Real traffic's evidence, beside the canaries' (traffic.rs).
    pub traffic: traffic::TrafficInput,
    /// Routes whose overdue run changed at the last decision (`take_overdue_runs`).
    overdue_runs: Vec<OverdueRun>,
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
        self.probes_into.clear();
        for (probe, r) in &self.routes {
            self.probes_of.entry(r.provider.clone()).or_default().push(probe.clone());
            self.probes_into.entry(r.inbox.clone()).or_default().push(probe.clone());
        }
        self.probes_of.values_mut().chain(self.probes_into.values_mut()).for_each(|probes| probes.sort_unstable());
        self.states.retain(|p, _| providers.iter().any(|j| j.name == *p));
        for p in providers {
            self.states.entry(p.name.clone()).or_insert((State::Unknown, now_ms, "no canary settled yet".into()));
        }
        self.busy.retain(|probe| self.routes.contains_key(probe));
        self.show_everything();
    }

    /// Everything moved (a reload, a restore): the snapshot is made anew
    /// from every provider, and the next decision assesses every one.
    fn show_everything(&mut self) {
        self.changed.everything = true;
        self.suspect = self.suspect_everywhere();
        self.healths = self.states.keys().map(|p| (p.clone(), Arc::new(self.health(p)))).collect();
        self.snapshot = Arc::new(self.ranked());
    }

    fn thresholds(&self, provider: &str) -> Thresholds {
        self.thresholds.get(provider).copied().unwrap_or_default()
    }

    /// Every inbox whose evidence is set aside now.
    fn suspect_everywhere(&self) -> HashSet<String> {
        self.probes_into.keys().filter(|inbox| self.suspect_now(inbox)).cloned().collect()
    }

    /// Whether `inbox`'s evidence is set aside now: its watcher cannot see
    /// it, or every one of at least two providers fails into it.
    fn suspect_now(&self, inbox: &str) -> bool {
        if self.unseen.binary_search_by(|i| i.as_str().cmp(inbox)).is_ok() {
            return true;
        }
        let probes = self.probes_into.get(inbox).map_or(&[][..], Vec::as_slice);
        let routes: Vec<&RouteEvidence> =
            probes.iter().filter_map(|p| self.routes.get(p)).filter(|r| r.has_evidence()).collect();
        let mut providers: Vec<&str> = routes.iter().map(|r| r.provider.as_str()).collect();
        providers.sort_unstable();
        providers.dedup();
        providers.len() >= 2 && routes.iter().all(|r| r.newest_bad_past_the_provider())
    }

    /// The routes of `provider` whose evidence counts, by probe name.
    fn usable<'a>(&'a self, provider: &str) -> Vec<(&'a String, &'a RouteEvidence)> {
        self.routes_of(provider).filter(|(_, r)| r.has_evidence() && !self.suspect.contains(&r.inbox)).collect()
    }

    /// The routes of `provider`, by probe name.
    fn routes_of<'a>(&'a self, provider: &str) -> impl Iterator<Item = (&'a String, &'a RouteEvidence)> {
        let probes = self.probes_of.get(provider).map_or(&[][..], Vec::as_slice);
        probes.iter().filter_map(|probe| Some((probe, self.routes.get(probe)?)))
    }

    /// The state the evidence alone says, and why.
    fn assess(&self, provider: &str) -> (State, String) {
        let t = self.thresholds(provider);
        let usable = self.usable(provider);
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
    /// Only the providers what moved since the last decision can move are
    /// assessed (`Changed`): the others' evidence says what it said then.
    pub fn decide(&mut self, now_ms: i64) -> Vec<Transition> {
        let (providers, probes) = self.moved();
        let mut changes = Vec::new();
        for provider in &providers {
            let provider = provider.clone();
            let (mut state, mut reason) = self.assess(&provider);
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
            let good_run = self.usable(&provider).iter().map(|(_, r)| r.good_run()).max().unwrap_or(0);
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
        for probe in probes {
            let Some(r) = self.routes.get_mut(&probe) else { continue };
            let run = r.overdue_run();
            if run != r.shown_overdue_run {
                r.shown_overdue_run = run;
                let (provider, inbox) = (r.provider.clone(), r.inbox.clone());
                self.overdue_runs.push(OverdueRun { probe, provider, inbox, run });
            }
        }
        for provider in providers {
            let health = Arc::new(self.health(&provider));
            self.healths.insert(provider, health);
        }
        self.snapshot = Arc::new(self.ranked());
        changes
    }

    /// Puts back a provider that was down before a restart: it must earn
    /// its way back up like any other (the other states start afresh).
    pub fn restore_down(&mut self, provider: &str, since_ms: i64, reason: String) {
        if let Some(s) = self.states.get_mut(provider) {
            *s = (State::Down, since_ms, reason);
        }
        self.show_everything();
    }

    /// Every provider's current state.
    pub fn states(&self) -> Vec<(String, State)> {
        self.states.iter().map(|(p, (s, _, _))| (p.clone(), *s)).collect()
    }

    /// Every provider and application send path as of the last decision,
    /// best first (see [`ProviderHealth::rank_key`]).
    pub fn providers(&self) -> Arc<Vec<Arc<ProviderHealth>>> {
        self.snapshot.clone()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod detection_tests;

#[cfg(test)]
mod incremental_tests;
