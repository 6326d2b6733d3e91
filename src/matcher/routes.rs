//! The routes the matcher tracks: added and kept by each config, their
//! series, their application expectations and their status.

use super::{Matcher, RouteStatus, labels};
use crate::config::Route;
use std::sync::Arc;

impl Matcher {
    /// Exports the opt-in series `detail` names, for the routes tracked now
    /// and those added later.
    pub fn configure_metrics(&self, detail: crate::metrics::Detail) {
        let routes: Vec<_> = self.routes().values().map(|s| s.labels.clone()).collect();
        self.metrics.set_detail(detail, &routes);
    }

    /// Starts tracking a route: its series exist at 0 from now on.
    pub fn add_route(&self, route: &Route) {
        let l = labels(&route.name, &route.provider, &route.inbox);
        self.metrics.init_route(&l);
        if let Some(t) = &route.trigger {
            self.metrics.init_expectations(&l, &t.expect.expectations());
            match crate::trigger::Expect::new(&t.expect, t.ca_file.as_deref(), t.timeout) {
                Ok(Some(expect)) => {
                    self.expectations().insert(route.name.clone(), Arc::new(expect));
                }
                Ok(None) => {
                    self.expectations().remove(&route.name);
                }
                Err(e) => tracing::error!(probe = %route.name, error = %e, "cannot check this route's expectations"),
            }
        } else {
            self.expectations().remove(&route.name);
        }
        self.routes().entry(route.name.clone()).or_insert_with(|| RouteStatus {
            probe: route.name.clone(),
            provider: route.provider.clone(),
            inbox: route.inbox.clone(),
            labels: l.clone(),
            ..Default::default()
        });
    }

    /// Keeps only `routes`: the others' series and status are forgotten,
    /// except while canaries of theirs are in flight (they are forgotten
    /// at a later reload, once settled).
    pub fn retain_routes(&self, routes: &[Route]) {
        let busy: Vec<String> = self.book().in_flight.values().map(|c| c.labels.probe().to_string()).collect();
        self.routes().retain(|name, status| {
            let keep =
                routes.iter().any(|r| &r.name == name && r.provider == status.provider && r.inbox == status.inbox)
                    || busy.contains(name);
            if !keep {
                self.metrics.remove_route(&status.labels);
            }
            keep
        });
    }

    /// Every route's status, by probe name.
    pub fn status(&self) -> Vec<RouteStatus> {
        let mut routes: Vec<RouteStatus> = self.routes().values().cloned().collect();
        routes.sort_by(|a, b| a.probe.cmp(&b.probe));
        routes
    }
}
