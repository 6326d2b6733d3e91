//! What moved since the last decision, and so what the next one looks at.

use super::*;

/// What moved since the last decision. A decision assesses again only the
/// providers these can move (most routes have no canary in flight, or
/// nothing new, at a given second): those of the routes that learned
/// something, of the inboxes whose suspicion flipped, and those real
/// traffic speaks of (its window moves with the clock). A reload or a
/// restore moves everything. `decide_everything` in the tests is the oracle
/// every decision is held to.
#[derive(Debug, Default)]
pub(super) struct Changed {
    pub everything: bool,
    /// Routes, by probe, whose evidence or bound moved.
    pub probes: HashSet<String>,
    /// Inboxes whose watcher started or stopped seeing them.
    pub inboxes: HashSet<String>,
}

impl Board {
    /// The providers the next decision assesses, sorted, and the routes
    /// (by probe) whose overdue run it reads; the inboxes' suspicion brought
    /// up to date on the way.
    pub(super) fn moved(&mut self) -> (Vec<String>, Vec<String>) {
        let changed = std::mem::take(&mut self.changed);
        let mut providers: HashSet<String> = HashSet::new();
        let probes: Vec<String> = if changed.everything {
            self.suspect = self.suspect_everywhere();
            providers.extend(self.states.keys().cloned());
            self.routes.keys().cloned().collect()
        } else {
            let mut inboxes = changed.inboxes;
            for r in changed.probes.iter().filter_map(|p| self.routes.get(p)) {
                inboxes.insert(r.inbox.clone());
                providers.insert(r.provider.clone());
            }
            // An inbox suspected or cleared moves every provider sending into it.
            for inbox in inboxes {
                let now = self.suspect_now(&inbox);
                if now == self.suspect.contains(&inbox) {
                    continue;
                }
                if now {
                    self.suspect.insert(inbox.clone());
                } else {
                    self.suspect.remove(&inbox);
                }
                let probes = self.probes_into.get(&inbox).map_or(&[][..], Vec::as_slice);
                providers.extend(probes.iter().filter_map(|p| Some(self.routes.get(p)?.provider.clone())));
            }
            // Real traffic's window moves with the clock.
            providers.extend(self.traffic.providers().cloned());
            changed.probes.into_iter().collect()
        };
        let mut providers: Vec<String> = providers.into_iter().filter(|p| self.states.contains_key(p)).collect();
        providers.sort_unstable();
        (providers, probes)
    }
}
