//! Who sees what of the status page, over HTTP against the real binary:
//! one instance serves the internal page on `global.listen` and the public
//! one on `status_page.listen` side by side, and `hide_inboxes` hides inbox
//! names from every surface of either (health reasons included), with feed
//! ids keyed by the signing key.
//!
//! A provider pointed at a closed loopback port refuses every canary, so an
//! incident and a provider spell exist within seconds, with no change to
//! the shared mail stack.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
/// Inbox names no page may show when they are hidden.
const HIDDEN: [&str; 2] = ["zqhidden-alpha", "zqhidden-beta"];

/// GET `path`: (status, headers, body).
fn get(port: u16, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head.to_ascii_lowercase(), body.to_string())
}

fn json(port: u16, path: &str) -> serde_json::Value {
    let (code, _, body) = get(port, path);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Provider `good` (the stack's Postfix) and `dead` (nothing listens) into
/// two inboxes, every second; `page` is the `status_page` block.
fn config(instance: &str, port: u16, dir: &Path, page: &str, key: &str) -> String {
    format!(
        "{}  signing_key: \"{key}\"\n  health: {{ down_after: 1, up_after: 1 }}\n  status_page: {page}\n\
         providers:\n{}  - {{ name: dead, type: smtp, host: 127.0.0.1, port: {}, tls: none, from: canary@mailcanary.test, timeout: 2s }}\n\
         inboxes:\n{}{}probes:\n  - matrix: {{ providers: [good, dead], inboxes: [{}, {}] }}\n",
        global(instance, port, dir, "1s", "5s"),
        relay("good"),
        free_port(),
        inbox(HIDDEN[0], &format!("{instance}-a")),
        inbox(HIDDEN[1], &format!("{instance}-b")),
        HIDDEN[0],
        HIDDEN[1],
    )
}

/// Waits until the page on `port` shows an incident of `dead` with its spell.
fn wait_for_incident(port: u16) {
    until("an incident of the dead provider with its health spell", || {
        json(port, "/api/v1/incidents")["incidents"].as_array().unwrap().iter().any(|i| {
            i["providers"].as_array().unwrap().iter().any(|p| p == "dead")
                && !i["provider_changes"].as_array().unwrap().is_empty()
        })
    });
}

/// Every surface of the page on `port`, by path.
fn surfaces(port: u16) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in ["/status", "/api/v1/incidents", "/feed.atom", "/badge/dead.svg", "/badge/good.svg"] {
        let (code, _, body) = get(port, path);
        assert_eq!(code, 200, "{path}: {body}");
        out.push((path.to_string(), body));
    }
    for inbox in HIDDEN {
        let (code, _, body) = get(port, &format!("/badge/dead-to-{inbox}.svg"));
        assert_eq!(code, 404, "a route badge confirms an inbox name: {body}");
    }
    out
}

fn assert_hidden(port: u16, which: &str) {
    for (path, body) in surfaces(port) {
        for name in HIDDEN {
            assert!(!body.contains(name), "{which} {path} shows {name}:\n{body}");
        }
    }
}

/// The feed's own id and its entries' ids.
fn feed_ids(port: u16) -> Vec<String> {
    let (_, _, feed) = get(port, "/feed.atom");
    feed.split("<id>").skip(1).map(|s| s[..s.find("</id>").unwrap()].to_string()).collect()
}

#[test]
fn the_internal_and_the_public_page_are_served_side_by_side() {
    let dir = temp_dir("page-side-by-side");
    let (port, public) = (free_port(), free_port());
    let page = format!("{{ public: true, listen: \"127.0.0.1:{public}\", refresh: 1s }}");
    let mc = Mailcanary::start(&dir, port, &config("t-sides", port, &dir, &page, "side-by-side-key-0123456789"));
    wait_for_incident(port);

    let (code, head, internal) = get(port, "/status");
    assert_eq!(code, 200);
    assert!(head.contains("cache-control: private"), "{head}");
    assert!(internal.contains(&format!("data-route=\"good-to-{}\"", HIDDEN[0])), "the route table: {internal}");
    let api = json(port, "/api/v1/incidents");
    assert_eq!(api["visibility"], serde_json::json!({ "inboxes": true, "reasons": true, "public": false }));
    assert!(
        api["incidents"].as_array().unwrap().iter().any(|i| i["provider_changes"][0]["reason"].is_string()),
        "reasons on the internal page: {api:#}"
    );

    let (code, head, outside) = get(public, "/status");
    assert_eq!(code, 200);
    assert!(head.contains("cache-control: public"), "{head}");
    assert!(outside.contains("Not delivering"), "plain sentences: {outside}");
    assert_hidden(public, "the public page");
    let api = json(public, "/api/v1/incidents");
    assert_eq!(api["visibility"], serde_json::json!({ "inboxes": false, "reasons": false, "public": true }));
    assert_eq!(get(public, "/metrics").0, 404, "the public listener serves the page only");
    drop(mc);
}

#[test]
fn hide_inboxes_hides_inbox_names_everywhere_in_both_modes_and_feed_ids_are_keyed() {
    let dir = temp_dir("page-hide-inboxes");
    let port = free_port();
    let key = "hide-inboxes-key-0123456789";
    let internal = "{ hide_inboxes: true, refresh: 1s }";
    let mut mc = Mailcanary::start(&dir, port, &config("t-hide", port, &dir, internal, key));
    wait_for_incident(port);
    // What is hidden is there to hide: the internal APIs name the inboxes in the reason.
    let providers = json(port, "/api/v1/providers");
    let dead = providers["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "dead").unwrap().clone();
    assert!(HIDDEN.iter().any(|n| dead["reason"].as_str().unwrap().contains(n)), "{dead:#}");
    assert_hidden(port, "internal mode");
    let (_, _, page) = get(port, "/status");
    assert!(page.contains("mailbox 1") || page.contains("mailbox 2"), "the reason, with a neutral word: {page}");
    let ids = feed_ids(port);
    assert!(ids.len() >= 2, "the feed and an entry: {ids:?}");
    mc.stop();

    // Public mode, the same ledger: both listeners hide them.
    let public = free_port();
    let page = format!("{{ hide_inboxes: true, public: true, listen: \"127.0.0.1:{public}\", refresh: 1s }}");
    let mut mc = Mailcanary::start(&dir, port, &config("t-hide", port, &dir, &page, key));
    wait_for_incident(public);
    assert_hidden(port, "public mode, main listener");
    assert_hidden(public, "public mode, page listener");
    let same_key = feed_ids(port);
    assert_eq!(same_key[..2], ids[..2], "the same key gives the same ids");
    mc.stop();

    // Another key: no id is the same, so an id says nothing of the instance name.
    let mc = Mailcanary::start(&dir, port, &config("t-hide", port, &dir, internal, "another-key-0123456789abc"));
    wait_for_incident(port);
    let other = feed_ids(port);
    for id in &other {
        assert!(!ids.contains(id), "{id} does not depend on the key: {ids:?} {other:?}");
    }
    drop(mc);
}
