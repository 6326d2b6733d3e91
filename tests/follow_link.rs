//! `follow_link` is no way into the prober's network: whoever gets an email
//! with a live tag into the watched folder chooses the link, so the
//! follower stays on the link's own origin for every hop, sends no
//! `Referer`, refuses loopback, private, link-local and metadata addresses
//! unless the route allows a range, and checks the address it actually
//! connects to (a name is resolved, then judged), not the name.

mod common;
mod hosts;

use hosts::{Host, another_host, ok, redirect};
use mailcanary::outcome::Expectation;
use mailcanary::trigger::{Expect, ExpectConfig};
use std::time::Duration;

/// A route's expectations with `follow_link`, allowing `allow` (YAML list).
fn follower(allow: &str) -> Expect {
    let config: ExpectConfig =
        serde_saphyr::from_str(&format!("{{ link: 'http\\S+', follow_link: true, allow_addresses: {allow} }}"))
            .unwrap();
    Expect::new(&config, None, Duration::from_secs(5)).unwrap().unwrap()
}

const LOOPBACK: &str = "['127.0.0.0/8']";

#[tokio::test]
async fn follow_link_redirect_to_another_origin_is_not_followed() {
    let other = another_host();
    let target = other.url("/reset/token-Qz9x");
    let link = Host::start("127.0.0.1", move |_| redirect(302, &target));
    // Both hosts are allowed: the origin decides, not the address.
    let expect = follower(LOOPBACK);
    assert_eq!(expect.follow_link(&link.url("/r/token-Qz9x")).await, Err(Expectation::LinkDead));
    assert_eq!(link.requests().len(), 1);
    assert_eq!(other.requests(), Vec::<String>::new(), "another origin was asked");
}

#[tokio::test]
async fn follow_link_https_to_http_is_not_followed() {
    let dir = common::temp_dir("follow-https");
    let (tls, ca) = common::tls_server(&dir, "link", &["127.0.0.1"], false);
    let other = another_host();
    let target = other.url("/reset");
    let link = Host::start_tls("127.0.0.1", tls, move |_| redirect(301, &target));
    let config: ExpectConfig =
        serde_saphyr::from_str(&format!("{{ link: 'http\\S+', follow_link: true, allow_addresses: {LOOPBACK} }}"))
            .unwrap();
    let expect = Expect::new(&config, Some(std::path::Path::new(&ca)), Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(expect.follow_link(&link.url("/reset")).await, Err(Expectation::LinkDead));
    assert_eq!(link.requests().len(), 1, "the link was asked over TLS");
    assert_eq!(other.requests(), Vec::<String>::new(), "the redirect to plain HTTP was followed");
}

#[tokio::test]
async fn follow_link_stays_on_its_origin_and_sends_no_referer() {
    let link = Host::start("127.0.0.1", |request| {
        if request.starts_with("GET /r/") { redirect(302, "/reset/token-Qz9x") } else { ok("{}") }
    });
    let expect = follower(LOOPBACK);
    assert_eq!(expect.follow_link(&link.url("/r/token-Qz9x?secret=s3")).await, Ok(()));
    let asked = link.requests();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked[1].starts_with("GET /reset/token-Qz9x "), "{}", asked[1]);
    for request in &asked {
        assert!(!request.to_ascii_lowercase().contains("\r\nreferer:"), "a Referer was sent:\n{request}");
    }
}

#[tokio::test]
async fn follow_link_refuses_loopback_unless_allowed() {
    let link = Host::start("127.0.0.1", |_| ok("{}"));
    for url in [link.url("/reset/t"), format!("http://[::ffff:127.0.0.1]:{}/reset/t", link.addr.port())] {
        assert_eq!(follower("[]").follow_link(&url).await, Err(Expectation::LinkDead), "{url}");
    }
    // Another range allowed does not open loopback.
    assert_eq!(follower("['10.0.0.0/8']").follow_link(&link.url("/reset/t")).await, Err(Expectation::LinkDead));
    assert_eq!(link.requests(), Vec::<String>::new(), "a refused address was connected to");
    assert_eq!(follower(LOOPBACK).follow_link(&link.url("/reset/t")).await, Ok(()));
    assert_eq!(link.requests().len(), 1);
}

#[tokio::test]
async fn follow_link_checks_the_address_a_name_resolves_to() {
    // `localhost` is a name: the follower resolves it and judges the
    // address it would connect to, as it would a name that an attacker's
    // DNS answers with 127.0.0.1 or 169.254.169.254.
    let link = Host::start("127.0.0.1", |_| ok("{}"));
    let url = format!("http://localhost:{}/reset/t", link.addr.port());
    assert_eq!(follower("[]").follow_link(&url).await, Err(Expectation::LinkDead));
    assert_eq!(link.requests(), Vec::<String>::new(), "a name resolving to loopback was connected to");
    assert_eq!(follower(LOOPBACK).follow_link(&url).await, Ok(()));
    assert_eq!(link.requests().len(), 1);
}

#[tokio::test]
async fn follow_link_reads_no_body() {
    // A 2xx announcing a gigabyte and sending none of it: the follower
    // has its answer from the status line and reads no further.
    let link = Host::start("127.0.0.1", |_| {
        "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n".to_string() + &"x".repeat(1024)
    });
    // Reading it would fail: the answer ends after 1 KiB.
    assert_eq!(follower(LOOPBACK).follow_link(&link.url("/reset/t")).await, Ok(()));
}
