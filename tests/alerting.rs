//! The whole paging path on real servers: mailcanary → Prometheus (the
//! shipped rules) → Alertmanager (the shipped routing) → a webhook receiver
//! owned by the test; and every query of the shipped dashboard answered by
//! that Prometheus. Its own binary: it holds and releases the stack's mail.

mod common;

use common::prometheus::query;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Collects what Alertmanager posts.
struct Webhook {
    port: u16,
    received: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                if let Ok(json) = serde_json::from_slice(&body) {
                    sink.lock().unwrap().push((Instant::now(), json));
                }
                let mut stream = stream;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Webhook { port, received }
    }

    /// (alertname, status, probe) of every alert notified so far.
    fn alerts(&self) -> Vec<(String, String, String)> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .flat_map(|(_, body)| body["alerts"].as_array().cloned().unwrap_or_default())
            .map(|a| {
                let s = |v: &Value| v.as_str().unwrap_or("").to_string();
                (s(&a["labels"]["alertname"]), s(&a["status"]), s(&a["labels"]["probe"]))
            })
            .collect()
    }

    fn wait_for(&self, what: &str, limit: Duration, cond: impl Fn(&[(String, String, String)]) -> bool) -> Instant {
        let start = Instant::now();
        loop {
            if cond(&self.alerts()) {
                return Instant::now();
            }
            assert!(start.elapsed() < limit, "no {what} within {limit:?}; received: {:?}", self.alerts());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(port: u16, path: &str) {
    let start = Instant::now();
    while http(port, "GET", path).is_none_or(|(code, _)| code != 200) {
        assert!(start.elapsed() < Duration::from_secs(30), "127.0.0.1:{port}{path} never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The shipped rules with time compressed (windows, `for`, objectives), so the
/// whole path can be shown in a minute: the same expressions and routing.
fn compressed_rules() -> String {
    let mut rules = std::fs::read_to_string(root().join("alerts/mailcanary.rules.yml")).unwrap();
    for (from, to) in [
        ("[15m]", "[20s]"),
        ("[30m]", "[30s]"),
        ("[1h]", "[1m]"),
        ("[5m]", "[10s]"),
        ("> bool 90", "> bool 8"),
        ("_seconds) > 90", "_seconds) > 8"),
        ("_seconds) > 300", "_seconds) > 30"),
    ] {
        rules = rules.replace(from, to);
    }
    // A threshold the list above missed would make the test wait minutes.
    for threshold in ["> 90\n", "> 300\n", "> bool 90"] {
        assert!(!rules.contains(threshold), "compress the rules' {threshold:?} too");
    }
    // Every `for:` becomes 2 s: long enough that a sample caught in the
    // moment of a reload (watchers restart, inbox_up is 0 for well under a
    // second) does not page, as the real `for: 5m` would not.
    rules
        .lines()
        .map(|l| match l.split_once("for:") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: 2s"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prometheus and Alertmanager on loopback, from their Debian packages.
fn monitoring(
    dir: &Path,
    rules: &str,
    scrape: &str,
    mailcanary: u16,
    webhook: u16,
    fast_groups: bool,
) -> (u16, Vec<Server>) {
    let rules_path = dir.join("rules.yml");
    std::fs::write(&rules_path, rules).unwrap();
    let am_port = free_port();
    let mut am_config = std::fs::read_to_string(root().join("deploy/alertmanager/alertmanager.yml")).unwrap();
    for receiver in ["team", "pager"] {
        am_config = am_config.replace(
            &format!("  - name: {receiver}\n"),
            &format!("  - name: {receiver}\n    webhook_configs: [{{ url: \"http://127.0.0.1:{webhook}/\", send_resolved: true }}]\n"),
        );
    }
    if fast_groups {
        am_config =
            am_config.replace("group_wait: 10s", "group_wait: 1s").replace("group_interval: 1m", "group_interval: 2s");
    }
    std::fs::write(dir.join("alertmanager.yml"), am_config).unwrap();
    let am = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", dir.join("alertmanager.yml").display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("alertmanager.log")).unwrap())
        .spawn()
        .expect("prometheus-alertmanager (Debian package) is installed");
    let am = Server(am);
    let prom_port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global: {{ scrape_interval: {scrape}, evaluation_interval: {scrape} }}\n\
             rule_files: [\"{}\"]\n\
             alerting: {{ alertmanagers: [{{ static_configs: [{{ targets: [\"127.0.0.1:{am_port}\"] }}] }}] }}\n\
             scrape_configs:\n  - job_name: mailcanary\n    static_configs: [{{ targets: [\"127.0.0.1:{mailcanary}\"] }}]\n",
            rules_path.display()
        ),
    )
    .unwrap();
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (Debian package) is installed");
    let prom = Server(prom);
    wait_ready(am_port, "/-/ready");
    wait_ready(prom_port, "/-/ready");
    (prom_port, vec![prom, am])
}

fn config(head: &str, routes: &str) -> String {
    format!("{head}probes:\n{routes}")
}

#[test]
fn a_broken_route_pages_and_resolves_and_a_healthy_stack_stays_silent() {
    let s = stack();
    let dir = temp_dir("alerting");
    let webhook = Webhook::start();
    let port = free_port();
    let head = format!(
        "{}providers:\n{}  - {{ name: submission, type: smtp, host: localhost, port: {}, tls: starttls, username: t-alert@mailcanary.test, password: \"{}\", ca_file: \"{}\", from: t-alert@mailcanary.test }}\ninboxes:\n{}{}{}",
        global("t-alerting", port, &dir, "2s", "5m"),
        relay("relay"),
        s.submission,
        s.password,
        s.ca,
        inbox("a", "t-alert-a"),
        inbox("b", "t-alert-b"),
        inbox("nobody", "nobody").replace(&user("nobody"), "nobody"),
    );
    // An application canary route too: the dashboard's mismatched series are its.
    let app = App::start();
    let healthy = &format!(
        "  - {{ name: relay-to-a, provider: relay, inbox: a }}\n  - {{ name: relay-to-b, provider: relay, inbox: b }}\n  \
         - {{ name: submission-to-b, provider: submission, inbox: b }}\n  - {{ name: reset-to-b, inbox: b, trigger: {} }}\n",
        app.trigger("shop", "ok", "test-app-key", ", expect: { subject: '^Reset your password$' }")
    );
    let mc = Mailcanary::start(&dir, port, &config(&head, healthy));
    let (prom, _servers) = monitoring(&dir, &compressed_rules(), "1s", port, webhook.port, true);

    // 1. Healthy: canaries flow, nothing pages.
    mc.wait_until("deliveries on every route", Duration::from_secs(30), |m| {
        ["relay-to-a", "relay-to-b", "submission-to-b", "reset-to-b"]
            .iter()
            .all(|p| m.value("mailcanary_canaries_delivered_total", &[("probe", p), ("placement", "inbox")]) >= 3.0)
    });
    std::thread::sleep(Duration::from_secs(25));
    assert!(webhook.alerts().is_empty(), "a healthy stack paged: {:?}", webhook.alerts());
    assert!(query(prom, "ALERTS{alertstate=\"firing\"}").is_empty(), "firing on a healthy stack");

    // 3. Every query of the dashboard returns data from this Prometheus.
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("dashboards/mailcanary.json")).unwrap()).unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let concrete = expr
                .replace("$instance", ".*")
                .replace("$provider", ".*")
                .replace("$inbox", ".*")
                .replace("$__rate_interval", "10s");
            assert!(!query(prom, &concrete).is_empty(), "panel {:?}: no data for {concrete}", panel["title"]);
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} dashboard queries");

    // 2. Break delivery: relay-to-a silently held in the queue (a black hole),
    // and a route whose recipient the server rejects.
    let broken_at = Instant::now();
    mailstack(&["hold", "^t-alert-a-"]);
    mc.rewrite_config(&config(
        &head,
        &format!("{healthy}  - {{ name: relay-to-nobody, provider: relay, inbox: nobody }}\n"),
    ));
    mc.signal("HUP");
    let overdue_at = webhook.wait_for("overdue page", Duration::from_secs(60), |a| {
        a.iter().any(|(n, st, p)| n == "MailcanaryCanaryOverdue" && st == "firing" && p == "relay-to-a")
    });
    let failing_at = webhook.wait_for("failure page", Duration::from_secs(60), |a| {
        a.iter().any(|(n, st, p)| n == "MailcanaryRouteFailing" && st == "firing" && p == "relay-to-nobody")
    });
    println!(
        "compressed rules: overdue paged {:.1} s and failure paged {:.1} s after the break",
        (overdue_at - broken_at).as_secs_f64(),
        (failing_at - broken_at).as_secs_f64()
    );
    // Only the broken routes page; no provider or mailbox-wide alert for one route each.
    for (name, status, probe) in webhook.alerts() {
        assert!(
            status != "firing" || ["relay-to-a", "relay-to-nobody"].contains(&probe.as_str()),
            "{name} for {probe}"
        );
        assert!(!["MailcanaryProviderOutage", "MailcanaryMailboxProviderProblem"].contains(&name.as_str()), "{name}");
    }

    // Fix both: the queue is released and the bad route removed; both resolve.
    mailstack(&["unhold"]);
    mailstack(&["release"]);
    mc.rewrite_config(&config(&head, healthy));
    mc.signal("HUP");
    webhook.wait_for("both resolved", Duration::from_secs(90), |a| {
        ["MailcanaryCanaryOverdue", "MailcanaryRouteFailing"]
            .iter()
            .all(|name| a.iter().any(|(n, st, _)| n == name && st == "resolved"))
    });
}

/// The time from a silent black hole to the page with the shipped defaults:
/// 30 s probes, the shipped rules unchanged, Prometheus scraping and
/// evaluating every 15 s, the shipped Alertmanager routing. A measurement,
/// not a test: `cargo test --test alerting -- --ignored --nocapture`.
#[test]
#[ignore]
fn time_to_page_with_shipped_defaults() {
    let dir = temp_dir("time-to-page");
    let webhook = Webhook::start();
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}{}probes:\n  - {{ name: black-hole, provider: relay, inbox: a }}\n  - {{ name: healthy, provider: relay, inbox: b }}\n",
        global("t-page", port, &dir, "30s", "10m").replace("jitter: 0%", "jitter: 10%"),
        relay("relay"),
        inbox("a", "t-page-a"),
        inbox("b", "t-page-b"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let rules = std::fs::read_to_string(root().join("alerts/mailcanary.rules.yml")).unwrap();
    let (_prom, _servers) = monitoring(&dir, &rules, "15s", port, webhook.port, false);
    mc.wait_until("a first delivery", Duration::from_secs(60), |m| {
        m.value("mailcanary_canaries_delivered_total", &[("probe", "black-hole"), ("placement", "inbox")]) >= 1.0
    });
    // The route learns its overdue bound from its first 20 deliveries (10
    // minutes at 30 s); the black hole opens on a route that has.
    mc.wait_until("the route's bound learned", Duration::from_secs(900), |m| {
        m.value("mailcanary_overdue_bound_seconds", &[("probe", "black-hole")]) < 90.0
    });
    std::thread::sleep(Duration::from_secs(45));
    assert!(webhook.alerts().is_empty(), "a healthy stack paged: {:?}", webhook.alerts());
    let broken_at = Instant::now();
    mailstack(&["hold", "^t-page-a-"]);
    let paged_at = webhook.wait_for("a page", Duration::from_secs(600), |a| a.iter().any(|(_, st, _)| st == "firing"));
    let alerts = webhook.alerts();
    println!(
        "shipped defaults: paged {:.0} s after the black hole opened: {alerts:?}",
        (paged_at - broken_at).as_secs_f64()
    );
    mailstack(&["unhold"]);
    mailstack(&["release"]);
}
