//! Provider health: each provider's state decided from the outcomes its
//! routes' canaries settle to, with the evidence attributed across the
//! matrix, for machines to act on (load balancers, Postfix, applications).
//!
//! - A route's evidence is its latest canaries: delivered in time (good);
//!   refused, bounced or lost (bad); and a canary in flight past
//!   `overdue_after` counts as one more bad while it is.
//! - An inbox is *suspect*, and its routes' evidence set aside, while its
//!   watcher cannot see it, or while every one of at least two providers
//!   fails into it: then the fault is the inbox's, not the providers'.
//! - A provider is `down` when every usable route has failed `down_after`
//!   times in a row, `degraded` when some have, `healthy` otherwise, and
//!   `unknown` without usable evidence (fail open: no evidence never drains
//!   traffic). It leaves `down` after `up_after` canaries in a row
//!   delivered in time.

use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

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
    pub overdue_after: Duration,
    pub down_after: u32,
    pub up_after: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { overdue_after: Duration::from_secs(90), down_after: 2, up_after: 2 }
    }
}

/// One canary's verdict, as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Delivered in time (to any folder: the provider did its part).
    Good,
    /// Refused by the provider.
    Refused,
    /// Bounced.
    Bounced,
    /// Not seen within its timeout.
    Lost,
    /// An application's email that came but failed an expectation.
    Mismatched,
}

/// What one route has shown lately.
#[derive(Debug, Clone, Default)]
struct RouteEvidence {
    provider: String,
    inbox: String,
    /// Bad canaries in a row, and the last bad one's kind.
    bad_run: u32,
    last_bad: Option<Evidence>,
    /// The age of its oldest canary in flight, when past `overdue_after`.
    overdue: Option<Duration>,
    /// Whether anything was seen at all.
    seen: bool,
    /// Latencies of recent deliveries (seconds), newest last.
    latencies: Vec<f64>,
}

const LATENCIES_KEPT: usize = 20;

impl RouteEvidence {
    fn failing(&self, t: &Thresholds) -> bool {
        self.bad_run + u32::from(self.overdue.is_some()) >= t.down_after
    }

    fn failing_at_all(&self) -> bool {
        self.bad_run > 0 || self.overdue.is_some()
    }

    fn has_evidence(&self) -> bool {
        self.seen || self.overdue.is_some()
    }

    /// One sentence on why this route counts against its provider.
    fn why(&self) -> String {
        match (self.overdue, self.last_bad) {
            (Some(age), _) => format!("a canary to {} is {:.0} s overdue", self.inbox, age.as_secs_f64()),
            (None, Some(Evidence::Refused)) => format!("{} canaries in a row to {} refused", self.bad_run, self.inbox),
            (None, Some(Evidence::Bounced)) => format!("{} canaries in a row to {} bounced", self.bad_run, self.inbox),
            (None, Some(Evidence::Mismatched)) => {
                format!("{} canaries in a row to {} failed an expectation", self.bad_run, self.inbox)
            }
            (None, _) => format!("{} canaries in a row to {} lost", self.bad_run, self.inbox),
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
    pub routes: Vec<RouteHealth>,
    /// Postfix's next hop for this provider, when it is SMTP-reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nexthop: Option<String>,
}

/// One route's evidence, as the providers API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RouteHealth {
    pub probe: String,
    pub inbox: String,
    /// Its inbox's evidence is set aside (the inbox is at fault or unseen).
    pub inbox_suspect: bool,
    pub failing: bool,
    pub bad_in_a_row: u32,
    pub overdue_seconds: Option<f64>,
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

/// Every provider's health, fed by settled outcomes and in-flight ages.
#[derive(Debug, Default)]
pub struct Board {
    thresholds: HashMap<String, Thresholds>,
    nexthops: HashMap<String, String>,
    routes: HashMap<String, RouteEvidence>,
    states: HashMap<String, (State, i64, String)>,
    /// In-time deliveries in a row, per provider (across its usable routes).
    good_run: HashMap<String, u32>,
    /// Inboxes whose watcher cannot see them now.
    unseen: Vec<String>,
}

impl Board {
    /// Sets the providers and routes a config runs; keeps what is known of
    /// those that stay.
    pub fn configure(
        &mut self,
        providers: &[(String, Thresholds, Option<String>)],
        routes: &[(String, String, String)],
        now_ms: i64,
    ) {
        self.thresholds = providers.iter().map(|(p, t, _)| (p.clone(), *t)).collect();
        self.nexthops = providers.iter().filter_map(|(p, _, n)| Some((p.clone(), n.clone()?))).collect();
        self.routes.retain(|probe, r| routes.iter().any(|(n, p, i)| n == probe && *p == r.provider && *i == r.inbox));
        for (probe, provider, inbox) in routes {
            self.routes.entry(probe.clone()).or_insert_with(|| RouteEvidence {
                provider: provider.clone(),
                inbox: inbox.clone(),
                ..Default::default()
            });
        }
        self.states.retain(|p, _| providers.iter().any(|(n, _, _)| n == p));
        for (p, _, _) in providers {
            self.states.entry(p.clone()).or_insert((State::Unknown, now_ms, "no canary settled yet".into()));
        }
    }

    /// A canary of `probe` settled.
    pub fn record(&mut self, probe: &str, evidence: Evidence, latency_seconds: Option<f64>) {
        let Some(r) = self.routes.get_mut(probe) else { return };
        r.seen = true;
        let provider = r.provider.clone();
        if evidence == Evidence::Good {
            r.bad_run = 0;
            r.last_bad = None;
            if let Some(l) = latency_seconds {
                r.latencies.push(l);
                if r.latencies.len() > LATENCIES_KEPT {
                    r.latencies.remove(0);
                }
            }
            *self.good_run.entry(provider).or_default() += 1;
        } else {
            r.bad_run += 1;
            r.last_bad = Some(evidence);
            self.good_run.insert(provider, 0);
        }
    }

    /// The age of each route's oldest canary in flight, and the inboxes a
    /// watcher sees now (the others' evidence is set aside).
    pub fn observe(&mut self, oldest: &HashMap<String, Duration>, live: &[String]) {
        let mut unseen: Vec<String> =
            self.routes.values().map(|r| r.inbox.clone()).filter(|i| !live.contains(i)).collect();
        unseen.sort_unstable();
        unseen.dedup();
        for (probe, r) in self.routes.iter_mut() {
            let t = self.thresholds.get(&r.provider).copied().unwrap_or_default();
            r.overdue = oldest.get(probe).copied().filter(|age| *age >= t.overdue_after);
            if r.overdue.is_some() {
                self.good_run.insert(r.provider.clone(), 0);
            }
        }
        self.unseen = unseen;
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
            if providers.len() >= 2 && routes.iter().all(|r| r.failing_at_all()) {
                suspect.push(inbox.to_string());
            }
        }
        suspect
    }

    /// Decides every provider's state at `now_ms`; returns the changes.
    pub fn decide(&mut self, now_ms: i64) -> Vec<Transition> {
        let suspect = self.suspect();
        let mut changes = Vec::new();
        let providers: Vec<String> = self.states.keys().cloned().collect();
        for provider in providers {
            let t = self.thresholds.get(&provider).copied().unwrap_or_default();
            let usable: Vec<&RouteEvidence> = self
                .routes
                .values()
                .filter(|r| r.provider == provider && r.has_evidence() && !suspect.contains(&r.inbox))
                .collect();
            let failing: Vec<&&RouteEvidence> = usable.iter().filter(|r| r.failing(&t)).collect();
            let (mut state, mut reason) = if usable.is_empty() {
                let why = if self.routes.values().any(|r| r.provider == provider && r.has_evidence()) {
                    "every inbox it sends to is suspect (unreachable, or failing for every provider): no usable evidence"
                } else {
                    "no canary settled yet"
                };
                (State::Unknown, why.to_string())
            } else if failing.len() == usable.len() {
                let why: Vec<String> = failing.iter().map(|r| r.why()).collect();
                (State::Down, format!("every route fails: {}; fail over", why.join("; ")))
            } else if !failing.is_empty() {
                let why: Vec<String> = failing.iter().map(|r| r.why()).collect();
                (State::Degraded, format!("{} of {} routes fail: {}", failing.len(), usable.len(), why.join("; ")))
            } else {
                (State::Healthy, format!("its latest canaries into {} inboxes arrived in time", usable.len()))
            };
            let (current, since, _) = self.states[&provider].clone();
            // Hysteresis: once down, only `up_after` in-time deliveries in a row bring it back.
            let good_run = self.good_run.get(&provider).copied().unwrap_or(0);
            // No evidence (an unseen inbox, a restart) does not bring it back either.
            if current == State::Down && state != State::Down && good_run < t.up_after {
                state = State::Down;
                reason = format!("recovering: {good_run} of {} canaries in a row delivered in time", t.up_after);
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
        changes
    }

    /// Puts back a provider that was down before a restart: it must earn
    /// its way back up like any other (the other states start afresh).
    pub fn restore_down(&mut self, provider: &str, since_ms: i64, reason: String) {
        if let Some(s) = self.states.get_mut(provider) {
            *s = (State::Down, since_ms, reason);
            self.good_run.insert(provider.to_string(), 0);
        }
    }

    /// Every provider's current state.
    pub fn states(&self) -> Vec<(String, State)> {
        self.states.iter().map(|(p, (s, _, _))| (p.clone(), *s)).collect()
    }

    /// Every provider, best first: by state, then recent p95 latency.
    pub fn providers(&self) -> Vec<ProviderHealth> {
        let suspect = self.suspect();
        let mut out: Vec<ProviderHealth> = self
            .states
            .iter()
            .map(|(provider, (state, since_ms, reason))| {
                let t = self.thresholds.get(provider).copied().unwrap_or_default();
                let mut routes: Vec<RouteHealth> = self
                    .routes
                    .iter()
                    .filter(|(_, r)| &r.provider == provider)
                    .map(|(probe, r)| RouteHealth {
                        probe: probe.clone(),
                        inbox: r.inbox.clone(),
                        inbox_suspect: suspect.contains(&r.inbox),
                        failing: r.failing(&t),
                        bad_in_a_row: r.bad_run,
                        overdue_seconds: r.overdue.map(|d| d.as_secs_f64()),
                    })
                    .collect();
                routes.sort_by(|a, b| a.probe.cmp(&b.probe));
                let mut latencies: Vec<f64> = self
                    .routes
                    .values()
                    .filter(|r| &r.provider == provider && !suspect.contains(&r.inbox))
                    .flat_map(|r| r.latencies.iter().copied())
                    .collect();
                latencies.sort_by(f64::total_cmp);
                let p95 = (!latencies.is_empty())
                    .then(|| latencies[((latencies.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)]);
                ProviderHealth {
                    provider: provider.clone(),
                    state: *state,
                    since_ms: *since_ms,
                    reason: reason.clone(),
                    p95_latency_seconds: p95,
                    routes,
                    nexthop: self.nexthops.get(provider).cloned(),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            a.state
                .rank()
                .cmp(&b.state.rank())
                .then(a.p95_latency_seconds.unwrap_or(f64::MAX).total_cmp(&b.p95_latency_seconds.unwrap_or(f64::MAX)))
                .then(a.provider.cmp(&b.provider))
        });
        out
    }

    /// The next hop of the best usable provider that has one (healthy,
    /// unknown or degraded; never down).
    pub fn nexthop(&self) -> Option<String> {
        self.providers().into_iter().filter(|p| p.state != State::Down).find_map(|p| p.nexthop)
    }
}

#[cfg(test)]
mod tests;
