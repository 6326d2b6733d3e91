//! Fail-safe steering: what other machines act on (HAProxy's agent check,
//! a Postfix lookup table, the socketmap), decided once per tick from the
//! providers' ranked health, under three rules:
//!
//! - mailcanary gone means no change: every signal is built so that its
//!   consumer keeps the last decision when mailcanary cannot be asked
//!   (HAProxy ignores an agent it cannot reach; Postfix keeps reading the
//!   table file last written). See docs/failover.md.
//! - The last provider is never drained: when every sending provider is
//!   `down` at once the prober itself is the likelier fault (its network,
//!   its credentials), so nothing is drained and every provider is used.
//! - The newest evidence rules: a provider whose newest canaries failed
//!   (overdue, refused, lost) is never preferred over one whose newest
//!   arrived, and is given a token share of an agent-balanced pool until
//!   it is `down` or recovers.

pub mod agent;
pub mod postfix_map;

use crate::health::{ProviderHealth, State};

/// The share of its configured weight an agent-checked server keeps while
/// its provider's newest canaries fail and another provider's arrive.
pub const SUSPECT_WEIGHT_PERCENT: u8 = 1;

/// What one sending provider is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steer {
    pub provider: String,
    /// No new traffic (HAProxy `drain`).
    pub drain: bool,
    /// Percent of its configured weight (0 when drained).
    pub weight_percent: u8,
}

/// Every signal's decision at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Steering {
    pub providers: Vec<Steer>,
    /// Postfix's next hop: that of the best provider not drained that has one.
    pub nexthop: Option<String>,
    /// Whether the decision rests on evidence: false while no sending
    /// provider has any (a fresh start), when a consumer that keeps state
    /// (the Postfix table) should keep the last decision.
    pub informed: bool,
}

impl Steering {
    /// The decision for `provider`, if it is a sending provider.
    pub fn get(&self, provider: &str) -> Option<&Steer> {
        self.providers.iter().find(|s| s.provider == provider)
    }
}

/// The ranked class of a provider: equal classes are equally good, and the
/// Postfix next hop stays where it is while its provider is in the best
/// class (no flapping between equals on latency noise).
fn class(p: &ProviderHealth) -> (bool, bool, u8) {
    let k = p.rank_key();
    (k.0, k.1, k.2)
}

/// Decides every signal from `ranked` (best first, as
/// [`crate::health::Board::providers`] orders them), keeping `previous`'s
/// next hop while it is as good as the best.
pub fn decide(ranked: &[std::sync::Arc<ProviderHealth>], previous: Option<&Steering>) -> Steering {
    let sending: Vec<&ProviderHealth> = ranked.iter().map(|p| &**p).filter(|p| !p.application).collect();
    let all_down = !sending.is_empty() && sending.iter().all(|p| p.state == State::Down);
    let drained = |p: &ProviderHealth| p.state == State::Down && !all_down;
    let someone_arrives = sending.iter().any(|p| !drained(p) && p.newest_failing_routes == 0);
    let providers = sending
        .iter()
        .map(|p| {
            let drain = drained(p);
            let weight_percent = match (drain, p.newest_failing_routes > 0 && someone_arrives) {
                (true, _) => 0,
                (false, true) => SUSPECT_WEIGHT_PERCENT,
                (false, false) => 100,
            };
            Steer { provider: p.provider.clone(), drain, weight_percent }
        })
        .collect();
    let usable: Vec<&&ProviderHealth> = sending.iter().filter(|p| !drained(p) && p.nexthop.is_some()).collect();
    let best = usable.first().map(|p| class(p));
    let kept = previous
        .and_then(|prev| prev.nexthop.as_deref())
        .and_then(|hop| usable.iter().find(|p| p.nexthop.as_deref() == Some(hop) && Some(class(p)) == best));
    let nexthop = kept.or(usable.first()).and_then(|p| p.nexthop.clone());
    let informed = sending.iter().any(|p| p.state != State::Unknown || p.routes.iter().any(|r| r.bad_in_a_row > 0));
    Steering { providers, nexthop, informed }
}

#[cfg(test)]
mod tests;
