//! The spells in which a provider was down or degraded (crate::health),
//! from its changes of state in the ledger.

use crate::health::{State as HealthState, Transition};
use serde::Serialize;
use std::collections::BTreeMap;

/// A spell in which a provider was down or degraded.
#[derive(Debug, Clone, Serialize)]
pub struct Spell {
    pub provider: String,
    pub state: HealthState,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    /// The health decision's sentence (may name inboxes: internal).
    pub reason: String,
}

/// The spells of `transitions` (oldest first): each change into `down` or
/// `degraded` lasts until the provider's next change.
pub fn spells(transitions: &[Transition]) -> Vec<Spell> {
    let mut open: BTreeMap<&str, Spell> = BTreeMap::new();
    let mut done = Vec::new();
    for t in transitions {
        if let Some(mut s) = open.remove(t.provider.as_str()) {
            s.to_ms = Some(t.at_ms);
            done.push(s);
        }
        if matches!(t.to, HealthState::Down | HealthState::Degraded) {
            let spell = Spell {
                provider: t.provider.clone(),
                state: t.to,
                from_ms: t.at_ms,
                to_ms: None,
                reason: t.reason.clone(),
            };
            open.insert(&t.provider, spell);
        }
    }
    done.extend(open.into_values());
    done.sort_by_key(|s| s.from_ms);
    done
}
