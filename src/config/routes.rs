//! Probes expanded into routes: a matrix into one route per provider and
//! inbox (`<provider>-to-<inbox>`), a single probe into its own; each
//! checked against the providers and inboxes written, each name once.

use super::checker::{Checker, Names};
use super::{Defaults, Matrix, ProbeEntry, Route, TriggerConfig};

/// A route to be: its name, provider (or trigger's name), inbox, trigger.
type Pair = (String, String, String, Option<Box<TriggerConfig>>);

/// Every route `probes` make.
pub(super) fn expand(
    c: &mut Checker<'_>,
    probes: &[(usize, ProbeEntry)],
    defaults: &Defaults,
    names: &Names<'_>,
) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    let mut route_paths: Vec<String> = Vec::new();
    for (i, probe) in probes {
        let path = format!("probes[{i}]");
        let interval = probe.interval.unwrap_or(defaults.interval);
        let timeout = probe.timeout.unwrap_or(defaults.timeout);
        let jitter = probe.jitter.unwrap_or(defaults.jitter).0;
        if interval.is_zero() {
            c.push(format!("{path}.interval"), "interval must be more than 0s");
        }
        if timeout.is_zero() {
            c.push(format!("{path}.timeout"), "timeout must be more than 0s");
        }
        if !(0.0..=1.0).contains(&jitter) {
            c.push(format!("{path}.jitter"), "jitter must be between 0% and 100%");
        }
        let pairs = match (&probe.matrix, &probe.provider, &probe.inbox) {
            (Some(matrix), None, None) => matrix_pairs(c, &path, probe, matrix, names),
            (Some(_), ..) => {
                c.push(path.clone(), "a probe has either matrix or provider and inbox, not both");
                Vec::new()
            }
            (None, ..) => single(c, &path, probe, names).into_iter().collect(),
        };
        for (name, provider, inbox, trigger) in pairs {
            if let Some(k) = routes.iter().position(|r| r.name == name) {
                c.push(path.clone(), format!("route {name:?} is defined twice (also by {})", route_paths[k]));
                continue;
            }
            routes.push(Route { name, provider, inbox, interval, timeout, jitter, trigger });
            route_paths.push(path.clone());
        }
    }
    routes
}

/// A matrix's routes: every provider to every inbox.
fn matrix_pairs(c: &mut Checker<'_>, path: &str, probe: &ProbeEntry, matrix: &Matrix, names: &Names<'_>) -> Vec<Pair> {
    if probe.trigger.is_some() {
        c.push(format!("{path}.trigger"), "a matrix has no trigger: write one probe per inbox with it");
    }
    if probe.name.is_some() {
        c.push(format!("{path}.name"), "a matrix names its routes <provider>-to-<inbox>; remove name");
    }
    if matrix.providers.is_empty() || matrix.inboxes.is_empty() {
        c.push(format!("{path}.matrix"), "matrix needs at least one provider and one inbox");
    }
    for (j, p) in matrix.providers.iter().enumerate() {
        if !names.providers.contains(p.as_str()) {
            c.push(format!("{path}.matrix.providers[{j}]"), format!("unknown provider {p:?}"));
        }
    }
    for (j, b) in matrix.inboxes.iter().enumerate() {
        if !names.inboxes.contains(b.as_str()) {
            c.push(format!("{path}.matrix.inboxes[{j}]"), format!("unknown inbox {b:?}"));
        }
    }
    let mut pairs = Vec::new();
    for p in &matrix.providers {
        for b in &matrix.inboxes {
            pairs.push((format!("{p}-to-{b}"), p.clone(), b.clone(), None));
        }
    }
    pairs
}

/// A single probe's route: a name, a provider or a trigger, an inbox.
fn single(c: &mut Checker<'_>, path: &str, probe: &ProbeEntry, names: &Names<'_>) -> Option<Pair> {
    let name = match &probe.name {
        Some(name) => {
            c.name(format!("{path}.name"), name, "probe");
            name.clone()
        }
        None => {
            c.push(path.to_string(), "probe needs a name (or use matrix)");
            String::new()
        }
    };
    let (provider, inbox) = (&probe.provider, &probe.inbox);
    match (provider, &probe.trigger) {
        (Some(_), Some(_)) => c.push(format!("{path}.trigger"), "a probe has either provider or trigger, not both"),
        (Some(p), None) if !names.providers.contains(p.as_str()) => {
            c.push(format!("{path}.provider"), format!("unknown provider {p:?}"));
        }
        (None, None) => c.push(path.to_string(), "probe needs a provider"),
        (None, Some(t)) => trigger(c, &format!("{path}.trigger"), t, names),
        _ => {}
    }
    match inbox {
        Some(b) if !names.inboxes.contains(b.as_str()) => {
            c.push(format!("{path}.inbox"), format!("unknown inbox {b:?}"));
        }
        None => c.push(path.to_string(), "probe needs an inbox"),
        _ => {}
    }
    match (provider, &probe.trigger, inbox) {
        (Some(p), None, Some(b)) => Some((name, p.clone(), b.clone(), None)),
        (None, Some(t), Some(b)) => Some((name, t.name.clone(), b.clone(), Some(Box::new(t.clone())))),
        _ => None,
    }
}

/// A probe's `trigger:` (crate::trigger): its own checks, and a name that
/// is not also a provider's (both become the `provider` label).
fn trigger(c: &mut Checker<'_>, path: &str, t: &TriggerConfig, names: &Names<'_>) {
    c.name(format!("{path}.name"), &t.name, "trigger");
    if names.providers.contains(t.name.as_str()) {
        c.push(format!("{path}.name"), format!("{:?} is a provider's name too: name the trigger apart", t.name));
    }
    for (key, message) in t.problems() {
        c.push(format!("{path}.{key}"), message);
    }
    c.ca_file(format!("{path}.ca_file"), &t.ca_file);
}
