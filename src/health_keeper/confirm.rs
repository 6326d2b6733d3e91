//! Confirmation canaries. When a route's newest canary is overdue by its
//! bound (a suspicion: crate::health), canaries go at once on that route
//! and, where the matrix allows, on a route of another provider into the
//! same inbox and one of the same provider into another inbox, so that
//! whether the provider or the mailbox is at fault is answered within
//! seconds rather than at the next intervals.
//!
//! Bounded: one is asked for per route at a time (crate::probe::Confirm)
//! and only while none of the route's own canaries is on its way (the
//! board's choice), at most `confirmations_per_minute` per provider and
//! `confirmations_max_per_minute` over every provider, whatever an outage
//! of many providers or mailboxes at once suspects.

use crate::health::Confirmation as Ask;
use crate::probe::Confirm;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The window the per-minute budgets count over.
const MINUTE: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Confirmer {
    /// Each running route's request, by probe.
    routes: HashMap<String, Arc<Confirm>>,
    /// When each provider's confirmations were asked for, in the last minute.
    by_provider: HashMap<String, VecDeque<Instant>>,
    /// When any was, in the last minute.
    all: VecDeque<Instant>,
    max_per_minute: u32,
}

impl Confirmer {
    /// A route started (or started again): its confirmations go through `confirm`.
    pub fn register(&mut self, probe: &str, confirm: Arc<Confirm>) {
        self.routes.insert(probe.to_string(), confirm);
    }

    /// The routes a config runs, and the budget over every provider.
    pub fn configure(&mut self, probes: &[&str], max_per_minute: u32) {
        self.routes.retain(|p, _| probes.contains(&p.as_str()));
        self.max_per_minute = max_per_minute;
    }

    /// Asks for each of `asks` that the budgets allow at `now`, each route
    /// once; returns the providers of those asked for, one per canary.
    pub fn ask(&mut self, asks: &[Ask], now: Instant) -> Vec<String> {
        let recent = |q: &mut VecDeque<Instant>| {
            while q.front().is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE) {
                q.pop_front();
            }
        };
        recent(&mut self.all);
        let mut asked: Vec<&str> = Vec::new();
        let mut providers = Vec::new();
        for a in asks {
            if asked.contains(&a.probe.as_str()) || self.all.len() >= self.max_per_minute as usize {
                continue;
            }
            let sent = self.by_provider.entry(a.provider.clone()).or_default();
            recent(sent);
            if sent.len() >= a.per_minute as usize {
                continue;
            }
            let Some(confirm) = self.routes.get(&a.probe) else { continue };
            if confirm.ask() {
                sent.push_back(now);
                self.all.push_back(now);
                asked.push(&a.probe);
                providers.push(a.provider.clone());
            }
        }
        self.by_provider.retain(|_, q| !q.is_empty());
        providers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(probe: &str, provider: &str, per_minute: u32) -> Ask {
        Ask { probe: probe.into(), provider: provider.into(), per_minute }
    }

    fn confirmer(probes: &[&str], max: u32) -> (Confirmer, HashMap<String, Arc<Confirm>>) {
        let mut c = Confirmer::default();
        let handles: HashMap<String, Arc<Confirm>> = probes.iter().map(|p| (p.to_string(), Arc::default())).collect();
        for (p, h) in &handles {
            c.register(p, h.clone());
        }
        c.configure(probes, max);
        (c, handles)
    }

    #[test]
    fn one_request_per_route_stands_until_its_canary_is_sent() {
        let (mut c, h) = confirmer(&["a-x"], 100);
        let t0 = Instant::now();
        assert_eq!(c.ask(&[ask("a-x", "a", 10), ask("a-x", "a", 10)], t0), vec!["a".to_string()]);
        // Still wanted: asking again sends nothing more.
        assert!(c.ask(&[ask("a-x", "a", 10)], t0 + Duration::from_secs(1)).is_empty());
        h["a-x"].done();
        assert_eq!(c.ask(&[ask("a-x", "a", 10)], t0 + Duration::from_secs(2)), vec!["a".to_string()]);
    }

    #[test]
    fn budgets_per_provider_and_over_all_hold_for_a_minute() {
        let (mut c, h) = confirmer(&["a-x", "a-y", "b-x", "b-y", "c-x"], 3);
        let t0 = Instant::now();
        let asks = [ask("a-x", "a", 1), ask("a-y", "a", 1), ask("b-x", "b", 5), ask("b-y", "b", 5), ask("c-x", "c", 5)];
        // a's budget is one a minute; three over all.
        assert_eq!(c.ask(&asks, t0), vec!["a".to_string(), "b".into(), "b".into()]);
        h.values().for_each(|x| x.done());
        assert!(c.ask(&asks, t0 + Duration::from_secs(59)).is_empty(), "the minute is not over");
        assert_eq!(c.ask(&asks, t0 + Duration::from_secs(60)), vec!["a".to_string(), "b".into(), "b".into()]);
    }

    #[test]
    fn a_route_that_is_not_running_is_not_asked() {
        let (mut c, _) = confirmer(&["a-x"], 10);
        c.configure(&[], 10);
        assert!(c.ask(&[ask("a-x", "a", 10)], Instant::now()).is_empty());
    }
}
