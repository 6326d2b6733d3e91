//! What the API, the status page and the steering signals read of the
//! board: every provider's health and its routes', as of the last
//! decision, best first.

use super::*;

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

impl Board {
    /// Every provider as of the last decision, best first.
    pub(super) fn ranked(&self) -> Vec<Arc<ProviderHealth>> {
        let mut out: Vec<Arc<ProviderHealth>> = self.healths.values().cloned().collect();
        out.sort_by(|a, b| {
            let (ka, kb) = (a.rank_key(), b.rank_key());
            (ka.0, ka.1, ka.2).cmp(&(kb.0, kb.1, kb.2)).then(ka.3.total_cmp(&kb.3)).then(a.provider.cmp(&b.provider))
        });
        out
    }

    /// `provider`'s health now, from its decided state and its routes.
    pub(super) fn health(&self, provider: &str) -> ProviderHealth {
        let (state, since_ms, reason) = &self.states[provider];
        let t = self.thresholds(provider);
        let routes: Vec<RouteHealth> = self
            .routes_of(provider)
            .map(|(probe, r)| RouteHealth {
                probe: probe.clone(),
                inbox: r.inbox.clone(),
                inbox_suspect: self.suspect.contains(&r.inbox),
                failing: r.failing(t.down_after),
                bad_in_a_row: r.bad_run().0,
                overdue_seconds: r.overdue().map(|d| d.as_secs_f64()),
                overdue_bound_seconds: r.learned.bound().as_secs_f64(),
                bound: r.learned.source(),
            })
            .collect();
        let usable = self.usable(provider);
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
