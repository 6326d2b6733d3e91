//! A fleet of two probers, end to end: two mailcanary processes (their own
//! instance, state and port) sharing the stack's inboxes, scraped by a real
//! Prometheus that evaluates the shipped rules unchanged, each target with
//! its `prober` label. A provider broken as one prober sees it warns and
//! does not page; broken for both, it pages. Its own binary: it holds the
//! stack's relays A and B.

mod common;

use common::prometheus::{Prometheus, value};
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Both relays back to normal, and what they held delivered: on the way
/// out, even a failing one (errors ignored: a panic here would abort).
struct Relays;

impl Relays {
    fn reset() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mailstack.sh");
        for args in [["unhold-relay", "a"], ["unhold-relay", "b"]] {
            let _ = Command::new(&script).args(args).output();
        }
        let _ = Command::new(&script).arg("release").output();
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        Relays::reset();
    }
}

/// One prober: provider `relay` through the stack's relay on `relay_port`
/// (A or B) and provider `direct` (the stack's SMTP), into the shared
/// inboxes a and b. Fast canaries, and a provider down as soon as a canary
/// on each of its routes is 5 s overdue (a black hole loses nothing before
/// the timeout, so only `down_after: 1` lets an overdue canary decide).
fn prober(instance: &str, dir: &Path, port: u16, relay_port: u16) -> String {
    format!(
        "{}  health: {{ overdue_after: 5s, down_after: 1, up_after: 2 }}\nproviders:\n  - {{ name: relay, type: smtp, host: 127.0.0.1, port: {relay_port}, tls: none, from: canary@mailcanary.test }}\n{}inboxes:\n{}{}probes:\n  - matrix: {{ providers: [relay, direct], inboxes: [a, b] }}\n",
        global(instance, port, dir, "2s", "5m"),
        relay("direct"),
        inbox("a", "t-fleet-a"),
        inbox("b", "t-fleet-b"),
    )
}

#[test]
fn a_provider_broken_for_one_prober_warns_and_broken_for_both_pages() {
    let s = stack();
    Relays::reset();
    let _relays = Relays;
    let dir = temp_dir("fleet");
    let (one_dir, two_dir) = (dir.join("one"), dir.join("two"));
    std::fs::create_dir_all(&one_dir).unwrap();
    std::fs::create_dir_all(&two_dir).unwrap();
    let (one_port, two_port) = (free_port(), free_port());
    // The same provider name on both, through different relays: relay A
    // for prober one, relay B for prober two.
    let _one = Mailcanary::start(&one_dir, one_port, &prober("t-fleet-one", &one_dir, one_port, s.relay_a));
    let _two = Mailcanary::start(&two_dir, two_port, &prober("t-fleet-two", &two_dir, two_port, s.relay_b));
    let rules =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/mailcanary.rules.yml")).unwrap();
    let scrape = format!(
        "  - job_name: mailcanary\n    static_configs:\n      - {{ targets: [\"127.0.0.1:{one_port}\"], labels: {{ prober: one }} }}\n      - {{ targets: [\"127.0.0.1:{two_port}\"], labels: {{ prober: two }} }}\n"
    );
    let prom = Prometheus::start(&dir, "1s", &rules, &scrape, None);

    // Healthy: both probers conclusive (a quorum of 2), both find relay healthy.
    let limit = Duration::from_secs(90);
    let quorum = r#"mailcanary:provider_quorum{provider="relay"}"#;
    prom.wait_for("a quorum of two", limit, quorum, |r| r.len() == 1 && value(&r[0]) == 2.0);
    prom.wait_for(
        "relay healthy from both probers",
        limit,
        r#"mailcanary_provider_state{provider="relay",state="healthy"} == 1"#,
        |r| r.len() == 2,
    );

    // 1. Relay A becomes a black hole: relay is down as prober one sees it
    // only. The warning names prober one.
    let broken_at = Instant::now();
    mailstack(&["hold-relay", "a"]);
    let warning = prom.wait_for(
        "the unconfirmed warning",
        limit,
        r#"ALERTS{alertname="MailcanaryProviderOutageUnconfirmed",alertstate="firing",provider="relay"}"#,
        |r| !r.is_empty(),
    );
    assert_eq!(warning.len(), 1, "{warning:?}");
    assert_eq!(warning[0]["metric"]["prober"], "one", "{warning:?}");
    println!("one prober: warned {:.1} s after relay A broke", broken_at.elapsed().as_secs_f64());
    // The page and the warning are evaluated in the same group, at the same
    // time, on the same evidence, and neither waits (`for`): at every
    // evaluation where the warning held, the page's expression was false,
    // and had it been true at any one, ALERTS would show it from that one.
    // So: let the warning hold for 10 evaluations (1 s apart), then no
    // evaluation since the break may have had the page, or any critical alert.
    prom.wait_for(
        "ten evaluations with the warning",
        Duration::from_secs(30),
        r#"count_over_time(ALERTS{alertname="MailcanaryProviderOutageUnconfirmed",alertstate="firing"}[1m])"#,
        |r| r.len() == 1 && value(&r[0]) >= 10.0,
    );
    let since = format!("{}s", broken_at.elapsed().as_secs() + 5);
    let page = prom.query(&format!("count_over_time(ALERTS{{alertname=\"MailcanaryProviderOutage\"}}[{since}])"));
    assert!(page.is_empty(), "the provider page on one prober's evidence: {page:?}");
    let pages = prom.query(&format!("count_over_time(ALERTS{{severity=\"critical\",alertstate=\"firing\"}}[{since}])"));
    assert!(pages.is_empty(), "paged on one prober's evidence: {pages:?}");
    let down = prom.query(r#"mailcanary_provider_state{provider="relay",state="down"} == 1"#);
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(down[0]["metric"]["prober"], "one");
    assert!(prom.query("mailcanary:prober_inconclusive").is_empty(), "a prober counted as inconclusive");
    assert_eq!(prom.query(quorum).first().map(value), Some(2.0), "both probers counted in the quorum");

    // 2. Relay B too: relay is down for both probers, and that pages.
    let broken_at = Instant::now();
    mailstack(&["hold-relay", "b"]);
    prom.wait_for(
        "the provider outage page",
        limit,
        r#"ALERTS{alertname="MailcanaryProviderOutage",alertstate="firing",provider="relay"}"#,
        |r| r.len() == 1,
    );
    println!("both probers: paged {:.1} s after relay B broke", broken_at.elapsed().as_secs_f64());
    prom.wait_for(
        "both probers' verdicts counted",
        Duration::from_secs(5),
        r#"count by (provider) (mailcanary_provider_state{provider="relay",state="down"} == 1)"#,
        |r| r.len() == 1 && value(&r[0]) == 2.0,
    );
    // The page replaces the warning (the evaluation that pages resolves it).
    prom.wait_for(
        "the warning resolved",
        Duration::from_secs(5),
        r#"ALERTS{alertname="MailcanaryProviderOutageUnconfirmed"}"#,
        |r| r.is_empty(),
    );
}
