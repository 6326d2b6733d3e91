//! The status page over a ledger filled with synthetic canaries: what the
//! first read of the history costs, what each refresh costs afterwards, and
//! what a viewer costs while the data is fresh (docs/status-page.md).
//!
//!   cargo test --release --test status_page_scale -- --ignored --nocapture
//!
//! Sizes: MC_PAGE_ROUTES (1,000), MC_PAGE_DAYS (1) at one canary a minute per route.

use mailcanary::config;
use mailcanary::ledger::Ledger;
use mailcanary::runtime::Runtime;
use mailcanary::status_page::StatusPage;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MINUTE: i64 = 60_000;

/// `providers` × `inboxes` routes; the page refreshes every second.
fn config_text(dir: &std::path::Path, providers: usize, inboxes: usize) -> String {
    let mut c = format!(
        "global:\n  listen: \"127.0.0.1:0\"\n  state_dir: \"{}\"\n  instance: scale\n  signing_key: \"0123456789abcdef0123\"\n  status_page: {{ refresh: 1s }}\nproviders:\n",
        dir.display()
    );
    for p in 0..providers {
        c += &format!(
            "  - {{ name: p{p}, type: smtp, host: 127.0.0.1, port: 25, tls: none, from: canary@example.test }}\n"
        );
    }
    c += "inboxes:\n";
    for i in 0..inboxes {
        c += &format!(
            "  - {{ name: i{i}, address: i{i}@example.test, imap: {{ host: 127.0.0.1, port: 143, tls: none, username: u, password: p }} }}\n"
        );
    }
    c + "probes:\n  - matrix: { providers: ["
        + &(0..providers).map(|p| format!("p{p}")).collect::<Vec<_>>().join(", ")
        + "], inboxes: ["
        + &(0..inboxes).map(|i| format!("i{i}")).collect::<Vec<_>>().join(", ")
        + "] }\n"
}

/// One canary a minute per route for `days` up to now; provider p3 lost
/// everything for the last 20 minutes but 5 (it is back); a few canaries
/// elsewhere are late or refused.
fn fill(dir: &std::path::Path, routes: &[(String, String, String)], days: i64, now: i64) -> usize {
    drop(Ledger::open(dir).unwrap());
    let mut db = rusqlite::Connection::open(dir.join("ledger.sqlite")).unwrap();
    let tx = db.transaction().unwrap();
    let mut n = 0;
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO canaries (id, probe, provider, inbox, state, created_ms, deadline_ms, accepted_ms, seen_ms, latency_ms, placement, failure_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6 + 600000, ?6, ?7, ?8, ?9, ?10)",
            )
            .unwrap();
        let start = now - days * 1440 * MINUTE;
        for (r, (probe, provider, inbox)) in routes.iter().enumerate() {
            let mut t = start + (r as i64 * 997) % MINUTE;
            while t < now - MINUTE {
                let outage = provider == "p3" && t > now - 20 * MINUTE && t < now - 5 * MINUTE;
                let k = (t / MINUTE + r as i64) % 500;
                let (state, latency, reason) = match () {
                    _ if outage => ("lost", None, None),
                    _ if k == 7 => ("late", Some(700_000), None),
                    _ if k == 11 => ("refused", None, Some("connect")),
                    _ => ("delivered", Some(1_000 + k * 10), None),
                };
                insert
                    .execute(rusqlite::params![
                        format!("c{r}-{t}"),
                        probe,
                        provider,
                        inbox,
                        state,
                        t,
                        latency.map(|l| t + l),
                        latency,
                        latency.map(|_| "inbox"),
                        reason
                    ])
                    .unwrap();
                n += 1;
                t += MINUTE;
            }
        }
    }
    tx.commit().unwrap();
    n
}

fn measure(providers: usize, inboxes: usize, days: i64) {
    let dir =
        std::env::temp_dir().join(format!("mailcanary-page-scale-{}-{}", std::process::id(), providers * inboxes));
    std::fs::create_dir_all(&dir).unwrap();
    let text = config_text(&dir, providers, inboxes);
    let config = config::parse(&text, &HashMap::new()).unwrap_or_else(|p| panic!("{p:?}"));
    let routes: Vec<_> = config.routes.iter().map(|r| (r.name.clone(), r.provider.clone(), r.inbox.clone())).collect();
    let now = chrono::Utc::now().timestamp_millis();
    let t = Instant::now();
    let rows = fill(&dir, &routes, days, now);
    let filled = t.elapsed();
    let file_mb = std::fs::metadata(dir.join("ledger.sqlite")).unwrap().len() as f64 / 1e6;

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let rt = Runtime::with_ledger(&config, Ledger::open(&dir).unwrap()).unwrap();
        for r in &config.routes {
            rt.matcher.add_route(r);
        }
        rt.health.configure(&config);
        let page = Arc::new(StatusPage::new("scale".into(), &rt.key, (rt.matcher.clone(), rt.health.clone()), &config));

        let t = Instant::now();
        let snap = page.snapshot().await.unwrap();
        let html = snap.html();
        let first = t.elapsed();

        // Once the data is a refresh old, the next viewer reads what is new.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let t = Instant::now();
        let snap = page.snapshot().await.unwrap();
        let html2 = snap.html();
        let refresh = t.elapsed();

        // While it is fresh, 100 viewers share it.
        let t = Instant::now();
        for _ in 0..100 {
            let snap = page.snapshot().await.unwrap();
            assert_eq!(snap.html().len(), html2.len());
        }
        let cached = t.elapsed() / 100;

        let p3 = snap.incidents.iter().find(|i| i.providers == ["p3"]).expect("the p3 outage is an incident");
        assert!(p3.to_ms.is_some(), "p3 came back");
        // 15 minutes of one canary a minute into each inbox (14 if one fell on the edge).
        let lost = p3.canaries.get("lost").copied().unwrap_or(0);
        assert!((14 * inboxes..=15 * inboxes).contains(&lost), "{lost}: {p3:?}");
        assert_eq!(snap.providers[0].days.len(), 30, "30 days of bars (the default retention)");
        assert_eq!(snap.routes.len(), providers * inboxes);
        println!(
            "status page at {} routes, {rows} canaries over {days} day(s) ({file_mb:.0} MB ledger, filled in {:.1} s):\n  \
             first page (reads the whole history): {:.0} ms\n  \
             page after the data expired (reads what is new): {:.0} ms\n  \
             page while the data is fresh: {:.3} ms\n  page size: {} kB, {} incidents",
            providers * inboxes,
            filled.as_secs_f64(),
            first.as_secs_f64() * 1000.0,
            refresh.as_secs_f64() * 1000.0,
            cached.as_secs_f64() * 1000.0,
            html.len() / 1000,
            snap.incidents.len()
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_page_reads_a_synthetic_ledger_and_finds_its_outage() {
    measure(5, 4, 1);
}

#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn page_time_at_1000_routes() {
    let routes: usize = std::env::var("MC_PAGE_ROUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let days: i64 = std::env::var("MC_PAGE_DAYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let inboxes = 100.min(routes);
    measure(routes / inboxes, inboxes, days);
}
