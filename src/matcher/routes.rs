//! The routes the matcher tracks: added and kept by each config, their
//! series, their application expectations and their status.

use super::{Matcher, RouteStatus, labels};
use crate::config::Route;
use crate::settled::RouteLabels;
use std::collections::HashSet;
use std::sync::Arc;

impl Matcher {
    /// Exports the opt-in series `detail` names, for the routes tracked now
    /// and those added later.
    pub fn configure_metrics(&self, detail: crate::metrics::Detail) {
        let routes: Vec<_> = self.routes().all().map(|s| s.labels.clone()).collect();
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
        let retired = self.routes().add(&l);
        if let Some(retired) = retired {
            self.metrics.retire_route(&retired);
        }
    }

    /// Keeps only `routes`. The others (a route removed, or whose name now
    /// goes through another provider or into another inbox) are retired:
    /// their series and status are forgotten, except while canaries of
    /// theirs are in flight (they are forgotten at a later reload, once
    /// settled; a verdict settled after makes no series again: the metrics
    /// count only routes whose series exist). Runs after `add_route` for
    /// each of `routes`.
    pub fn retain_routes(&self, routes: &[Route]) {
        let busy: HashSet<RouteLabels> = self.book().in_flight.values().map(|c| c.labels.clone()).collect();
        let names: HashSet<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        let retained = self.routes().retain(|name| names.contains(name), &busy);
        // A canary resumed for a route no config has: the route's series
        // count it while it flies (it is judged no more: no overdue gauges).
        for labels in &retained.adopted {
            self.metrics.init_route(labels);
        }
        for labels in retained.retired.iter().chain(&retained.adopted) {
            self.metrics.retire_route(labels);
        }
        for labels in &retained.forgotten {
            self.metrics.remove_route(labels);
            if !names.contains(&**labels.probe()) {
                self.metrics.remove_route_task(labels.probe());
            }
        }
    }

    /// Every route's status, by probe name; a retired route comes after
    /// the current one of its name, which is the one a lookup by name finds.
    pub fn status(&self) -> Vec<RouteStatus> {
        let mut routes: Vec<RouteStatus> = self.routes().all().cloned().collect();
        // Stable: `all` gives the current routes first.
        routes.sort_by(|a, b| a.probe.cmp(&b.probe));
        routes
    }
}
