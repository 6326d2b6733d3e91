//! Checks on a decoded config that serde cannot make: names that must be
//! unique and label-safe, references between sections, values in range.
//! Every check pushes a problem and carries on, so one run reports all.

use super::checker::{Checker, Names};
use super::yaml::Document;
use super::{Config, InboxConfig, ProbeEntry, Problem, ProviderConfig, Route};
use std::collections::HashSet;
use std::net::SocketAddr;

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
    let names = Names::written(doc);
    let mut seen = HashSet::new();
    for (i, provider) in providers {
        let name = provider.name();
        c.name(format!("providers[{i}].name"), name, "provider");
        if !seen.insert(name) {
            c.push(format!("providers[{i}].name"), format!("duplicate provider name {name:?}"));
        }
        c.address(format!("providers[{i}].from"), provider.from());
        if let Some(b) = provider.bounce_inbox()
            && !names.inboxes.contains(b)
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
        self::inbox(&mut c, &format!("inboxes[{i}]"), inbox);
    }
    super::routes::expand(&mut c, probes, &config.global.defaults, &names)
}

/// One inbox's own checks, under `path`.
fn inbox(c: &mut Checker<'_>, path: &str, inbox: &InboxConfig) {
    c.address(format!("{path}.address"), &inbox.address);
    if inbox.imap.host.trim().is_empty() {
        c.push(format!("{path}.imap.host"), "host must not be empty");
    }
    if inbox.imap.port == Some(0) {
        c.push(format!("{path}.imap.port"), "port must be 1-65535");
    }
    if inbox.imap.timeout.is_zero() {
        c.push(format!("{path}.imap.timeout"), "timeout must be more than 0s");
    }
    if inbox.imap.poll_interval.is_zero() {
        c.push(format!("{path}.imap.poll_interval"), "poll_interval must be more than 0s");
    }
    c.ca_file(format!("{path}.imap.ca_file"), &inbox.imap.ca_file);
    match (&inbox.imap.password, &inbox.imap.oauth2) {
        (Some(_), Some(_)) => c.push(format!("{path}.imap.oauth2"), "set password or oauth2, not both"),
        (None, None) => c.push(
            format!("{path}.imap"),
            "needs a password, or oauth2 (token_url, client_id, refresh_token) for XOAUTH2 or OAUTHBEARER",
        ),
        (Some(password), None) => c.secret(format!("{path}.imap.password"), password),
        (None, Some(oauth2)) => c.all(&format!("{path}.imap.oauth2"), oauth2.problems()),
    }
    if inbox.folders.spam.contains(&inbox.folders.inbox) {
        c.push(format!("{path}.folders.spam"), format!("{:?} is the inbox folder too", inbox.folders.inbox));
    }
    if let super::Cleanup::Move(folder) = &inbox.cleanup
        && (folder == &inbox.folders.inbox || inbox.folders.spam.contains(folder))
    {
        c.push(format!("{path}.cleanup"), format!("cannot move canaries into the watched folder {folder:?}"));
    }
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
