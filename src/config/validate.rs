//! Checks on a decoded config that serde cannot make: names that must be
//! unique and label-safe, references between sections, values in range.
//! Every check pushes a problem and carries on, so one run reports all.

use super::yaml::Document;
use super::{Config, InboxConfig, ProbeEntry, Problem, ProviderConfig, Route};
use std::collections::HashSet;
use std::net::SocketAddr;

struct Checker<'a> {
    doc: &'a Document,
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn push(&mut self, path: String, message: impl Into<String>) {
        let line = self.doc.line(&path);
        self.problems.push(Problem { path, line, message: message.into() });
    }

    /// Names become label values and parts of route names: keep them plain.
    fn name(&mut self, path: String, name: &str, what: &str) {
        if name.is_empty() {
            self.push(path, format!("{what} name must not be empty"));
        } else if name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            self.push(
                path,
                format!("{what} name {name:?} may use only letters, digits, '-', '_' and '.' (at most 64)"),
            );
        }
    }

    /// As the send path parses it: lettre's `Address` (a bare `user@domain`).
    fn address(&mut self, path: String, address: &str) {
        if address.parse::<lettre::Address>().is_err() {
            self.push(path, format!("{address:?} is not an email address (user@domain)"));
        }
    }

    fn secret(&mut self, path: String, secret: &crate::secret::Secret) {
        if let Some(message) = crate::valid::secret(secret) {
            self.push(path, message);
        }
    }

    /// The problems a part found in itself, under `path`.
    fn all(&mut self, path: &str, problems: Vec<(String, String)>) {
        for (key, message) in crate::valid::under(path, problems) {
            self.push(key, message);
        }
    }

    /// `down_after` and `up_after` count canaries: at least one.
    fn health(&mut self, path: &str, t: crate::health::Thresholds) {
        for (key, n) in [("down_after", t.down_after), ("up_after", t.up_after)] {
            if let Some(message) = crate::valid::in_a_row(key, n) {
                self.push(format!("{path}.{key}"), message);
            }
        }
    }

    fn ca_file(&mut self, path: String, ca_file: &Option<std::path::PathBuf>) {
        if let Some(message) = ca_file.as_deref().and_then(crate::valid::ca_file) {
            self.push(path, message);
        }
    }
}

/// Validates `config` and expands its probes into routes.
pub(super) fn validate(
    config: &Config,
    providers: &[(usize, ProviderConfig)],
    inboxes: &[(usize, InboxConfig)],
    probes: &[(usize, ProbeEntry)],
    doc: &Document,
    problems: &mut Vec<Problem>,
) -> Vec<Route> {
    let mut c = Checker { doc, problems };
    global(&mut c, config);
    // Names as written, so that a provider that failed to decode is not
    // reported a second time as unknown wherever it is used.
    let provider_names: HashSet<&str> =
        (0..doc.len("providers")).filter_map(|i| doc.scalar(&format!("providers[{i}].name"))).collect();
    let inbox_names: HashSet<&str> =
        (0..doc.len("inboxes")).filter_map(|i| doc.scalar(&format!("inboxes[{i}].name"))).collect();

    let mut seen = HashSet::new();
    for (i, provider) in providers {
        let name = provider.name();
        c.name(format!("providers[{i}].name"), name, "provider");
        if !seen.insert(name) {
            c.push(format!("providers[{i}].name"), format!("duplicate provider name {name:?}"));
        }
        c.address(format!("providers[{i}].from"), provider.from());
        if let Some(b) = provider.bounce_inbox()
            && !inbox_names.contains(b)
        {
            c.push(format!("providers[{i}].bounce_inbox"), format!("unknown inbox {b:?}"));
        }
        c.all(&format!("providers[{i}]"), provider.problems());
    }

    let mut seen = HashSet::new();
    for (i, inbox) in inboxes {
        c.name(format!("inboxes[{i}].name"), &inbox.name, "inbox");
        if !seen.insert(inbox.name.as_str()) {
            c.push(format!("inboxes[{i}].name"), format!("duplicate inbox name {:?}", inbox.name));
        }
        c.address(format!("inboxes[{i}].address"), &inbox.address);
        if inbox.imap.host.trim().is_empty() {
            c.push(format!("inboxes[{i}].imap.host"), "host must not be empty");
        }
        if inbox.imap.port == Some(0) {
            c.push(format!("inboxes[{i}].imap.port"), "port must be 1-65535");
        }
        if inbox.imap.timeout.is_zero() {
            c.push(format!("inboxes[{i}].imap.timeout"), "timeout must be more than 0s");
        }
        if inbox.imap.poll_interval.is_zero() {
            c.push(format!("inboxes[{i}].imap.poll_interval"), "poll_interval must be more than 0s");
        }
        c.ca_file(format!("inboxes[{i}].imap.ca_file"), &inbox.imap.ca_file);
        match (&inbox.imap.password, &inbox.imap.oauth2) {
            (Some(_), Some(_)) => c.push(format!("inboxes[{i}].imap.oauth2"), "set password or oauth2, not both"),
            (None, None) => c.push(
                format!("inboxes[{i}].imap"),
                "needs a password, or oauth2 (token_url, client_id, refresh_token) for XOAUTH2 or OAUTHBEARER",
            ),
            (Some(password), None) => c.secret(format!("inboxes[{i}].imap.password"), password),
            (None, Some(oauth2)) => c.all(&format!("inboxes[{i}].imap.oauth2"), oauth2.problems()),
        }
        if inbox.folders.spam.contains(&inbox.folders.inbox) {
            c.push(format!("inboxes[{i}].folders.spam"), format!("{:?} is the inbox folder too", inbox.folders.inbox));
        }
        if let super::Cleanup::Move(folder) = &inbox.cleanup
            && (folder == &inbox.folders.inbox || inbox.folders.spam.contains(folder))
        {
            c.push(format!("inboxes[{i}].cleanup"), format!("cannot move canaries into the watched folder {folder:?}"));
        }
    }

    let defaults = &config.global.defaults;
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
        let mut pairs: Vec<(String, String, String, Option<Box<super::TriggerConfig>>)> = Vec::new();
        match (&probe.matrix, &probe.provider, &probe.inbox) {
            (Some(matrix), None, None) => {
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
                    if !provider_names.contains(p.as_str()) {
                        c.push(format!("{path}.matrix.providers[{j}]"), format!("unknown provider {p:?}"));
                    }
                }
                for (j, b) in matrix.inboxes.iter().enumerate() {
                    if !inbox_names.contains(b.as_str()) {
                        c.push(format!("{path}.matrix.inboxes[{j}]"), format!("unknown inbox {b:?}"));
                    }
                }
                for p in &matrix.providers {
                    for b in &matrix.inboxes {
                        pairs.push((format!("{p}-to-{b}"), p.clone(), b.clone(), None));
                    }
                }
            }
            (Some(_), ..) => c.push(path.clone(), "a probe has either matrix or provider and inbox, not both"),
            (None, provider, inbox) => {
                let name = match &probe.name {
                    Some(name) => {
                        c.name(format!("{path}.name"), name, "probe");
                        name.clone()
                    }
                    None => {
                        c.push(path.clone(), "probe needs a name (or use matrix)");
                        String::new()
                    }
                };
                match (provider, &probe.trigger) {
                    (Some(_), Some(_)) => {
                        c.push(format!("{path}.trigger"), "a probe has either provider or trigger, not both");
                    }
                    (Some(p), None) if !provider_names.contains(p.as_str()) => {
                        c.push(format!("{path}.provider"), format!("unknown provider {p:?}"));
                    }
                    (None, None) => c.push(path.clone(), "probe needs a provider"),
                    (None, Some(t)) => trigger(&mut c, &format!("{path}.trigger"), t, &provider_names),
                    _ => {}
                }
                match inbox {
                    Some(b) if !inbox_names.contains(b.as_str()) => {
                        c.push(format!("{path}.inbox"), format!("unknown inbox {b:?}"));
                    }
                    None => c.push(path.clone(), "probe needs an inbox"),
                    _ => {}
                }
                match (provider, &probe.trigger, inbox) {
                    (Some(p), None, Some(b)) => pairs.push((name, p.clone(), b.clone(), None)),
                    (None, Some(t), Some(b)) => {
                        pairs.push((name, t.name.clone(), b.clone(), Some(Box::new(t.clone()))))
                    }
                    _ => {}
                }
            }
        }
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

/// A probe's `trigger:` (crate::trigger): its own checks, and a name that
/// is not also a provider's (both become the `provider` label).
fn trigger(
    c: &mut Checker<'_>,
    path: &str,
    t: &super::TriggerConfig,
    provider_names: &std::collections::HashSet<&str>,
) {
    c.name(format!("{path}.name"), &t.name, "trigger");
    if provider_names.contains(t.name.as_str()) {
        c.push(format!("{path}.name"), format!("{:?} is a provider's name too: name the trigger apart", t.name));
    }
    for (key, message) in t.problems() {
        c.push(format!("{path}.{key}"), message);
    }
    c.ca_file(format!("{path}.ca_file"), &t.ca_file);
}

/// Every address this config listens on, with its key.
fn listeners(config: &Config) -> Vec<(&'static str, &String)> {
    let g = &config.global;
    let f = g.failover.as_ref();
    [
        ("global.listen", Some(&g.listen)),
        ("global.status_page.listen", g.status_page.listen.as_ref()),
        ("global.failover.agent", f.and_then(|f| f.agent.as_ref())),
        ("global.failover.socketmap", f.and_then(|f| f.socketmap.as_ref())),
    ]
    .into_iter()
    .filter_map(|(k, l)| Some((k, l?)))
    .collect()
}

fn failover(c: &mut Checker<'_>, config: &Config) {
    let Some(f) = &config.global.failover else { return };
    let all = listeners(config);
    for (key, listen, example) in [
        ("global.failover.agent", &f.agent, "127.0.0.1:9929"),
        ("global.failover.socketmap", &f.socketmap, "127.0.0.1:9926"),
    ] {
        let Some(listen) = listen else { continue };
        if listen.parse::<SocketAddr>().is_err() {
            c.push(key.into(), format!("{listen:?} is not an address:port such as {example}"));
        } else if let Some((other, _)) = all.iter().find(|(k, l)| *l == listen && *k != key) {
            c.push(key.into(), format!("{listen} is already used by {other}"));
        }
    }
    if let Some(map) = &f.postfix_map {
        if map.extension().is_some_and(|e| e == "cdb") {
            c.push(
                "global.failover.postfix_map".into(),
                format!("name the table without its .cdb suffix (Postfix adds it): {:?}", map.with_extension("")),
            );
        }
        if map.file_name().is_none() {
            c.push("global.failover.postfix_map".into(), "must name a file, such as /var/lib/mailcanary/relay");
        }
        if !config.providers.iter().any(|p| p.nexthop().is_some()) {
            c.push(
                "global.failover.postfix_map".into(),
                "no provider has a failover.nexthop to write: add one to each provider Postfix may relay through",
            );
        }
    }
}

fn web(c: &mut Checker<'_>, web: &super::WebConfig) {
    if web.first_request_timeout.is_zero() {
        c.push("global.web.first_request_timeout".into(), "must be more than 0s");
    }
    if web.idle_timeout.is_zero() {
        c.push("global.web.idle_timeout".into(), "must be more than 0s");
    }
    if web.max_connections == 0 {
        c.push("global.web.max_connections".into(), "must be at least 1");
    }
    if let Some(path) = &web.config_file
        && let Err(e) = crate::listener::web::Web::load(path)
    {
        c.push("global.web.config_file".into(), e);
    }
}

fn global(c: &mut Checker<'_>, config: &Config) {
    let g = &config.global;
    if g.listen.parse::<SocketAddr>().is_err() {
        c.push("global.listen".into(), format!("{:?} is not an address:port such as 0.0.0.0:9925", g.listen));
    }
    if let Some(instance) = &g.instance {
        c.name("global.instance".into(), instance, "instance");
    }
    c.health("global.health", g.health.with(None));
    failover(c, config);
    web(c, &g.web);
    let page = &g.status_page;
    if let Some(listen) = &page.listen {
        if listen.parse::<SocketAddr>().is_err() {
            c.push(
                "global.status_page.listen".into(),
                format!("{listen:?} is not an address:port such as 0.0.0.0:9927"),
            );
        } else if listeners(config).iter().filter(|(_, l)| *l == listen).count() > 1 {
            c.push("global.status_page.listen".into(), format!("{listen} is already in use by this config"));
        }
    }
    if page.public && page.listen.is_none() {
        c.push(
            "global.status_page.public".into(),
            "a public page needs a listener of its own: set global.status_page.listen (global.listen always serves the internal page, beside /metrics and /-/reload)",
        );
    }
    if page.refresh.is_zero() {
        c.push("global.status_page.refresh".into(), "refresh must be more than 0s");
    }
    if page.title.trim().is_empty() {
        c.push("global.status_page.title".into(), "title must not be empty");
    }
    if g.signing_key.is_some() && g.signing_key_file.is_some() {
        c.push("global.signing_key".into(), "set signing_key or signing_key_file, not both");
    }
    if let Some(key) = &g.signing_key
        && key.expose().len() < 16
    {
        c.push("global.signing_key".into(), "signing key must be at least 16 characters");
    }
    for (i, key) in g.retired_signing_keys.iter().enumerate() {
        if key.expose().len() < 16 {
            c.push(format!("global.retired_signing_keys[{i}]"), "signing key must be at least 16 characters");
        }
    }
    if g.max_concurrent_sends == 0 {
        c.push("global.max_concurrent_sends".into(), "must be at least 1");
    }
    if g.fast_poll.interval.is_zero() {
        c.push("global.fast_poll.interval".into(), "interval must be more than 0s");
    }
}
