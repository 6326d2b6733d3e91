//! The status page in a real browser (Debian's headless Chromium): relay A
//! of the local stack turns into a black hole for a while, and the page,
//! its JSON, feed and badges say so, then say it is over; `report --html`
//! draws it. Public mode shows nothing the operator hid.
//!
//! Screenshots go to `$MC_SCREENSHOTS` when set (to look at them), to the
//! test's temporary directory otherwise.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// Relay A is one for the whole stack: one test at a time holds it.
static RELAY_A: Mutex<()> = Mutex::new(());

fn until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Headless Chromium with a fresh profile, as root on a closed network;
/// killed if it takes more than a minute.
fn chromium(dir: &Path, args: &[String]) -> String {
    let profile = dir.join(format!("chromium-profile-{}", rand_suffix()));
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium (Debian package chromium) runs");
    let start = Instant::now();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("chromium {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&profile);
    reader.join().unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The DOM Chromium built from `url`, serialized.
fn dom(dir: &Path, url: &str) -> String {
    let dom = chromium(dir, &["--dump-dom".into(), url.into()]);
    assert!(dom.contains("</html>"), "chromium gave no DOM for {url}: {dom:?}");
    dom
}

/// Where screenshots go.
fn shots(dir: &Path) -> PathBuf {
    let d = std::env::var_os("MC_SCREENSHOTS").map_or_else(|| dir.join("screenshots"), PathBuf::from);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A screenshot of `url` at `width` × `height`; checks it is a PNG that wide.
fn screenshot(dir: &Path, url: &str, name: &str, width: u32, height: u32) -> PathBuf {
    let file = shots(dir).join(name);
    let _ = std::fs::remove_file(&file);
    chromium(dir, &[format!("--screenshot={}", file.display()), format!("--window-size={width},{height}"), url.into()]);
    let png = std::fs::read(&file).unwrap_or_else(|e| panic!("no screenshot {}: {e}", file.display()));
    assert_eq!(&png[1..4], b"PNG", "{name} is a PNG");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(w, width, "{name} is {width} px wide");
    file
}

/// The `<article>` of provider `name` in a DOM.
fn provider_article<'a>(dom: &'a str, name: &str) -> &'a str {
    let start = dom.find(&format!("data-provider=\"{name}\"")).unwrap_or_else(|| panic!("no provider {name}: {dom}"));
    let end = dom[start..].find("</article>").unwrap() + start;
    &dom[start..end]
}

fn incidents(port: u16) -> serde_json::Value {
    let (code, body) = http(port, "GET", "/api/v1/incidents").expect("incidents API answers");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn state(m: &Metrics, provider: &str, state: &str) -> f64 {
    m.value("mailcanary_provider_state", &[("provider", provider), ("state", state)])
}

/// Relay A and B into two inboxes, interval 1 s, timeout 4 s.
fn config(instance: &str, port: u16, dir: &Path, page: &str) -> String {
    let s = stack();
    format!(
        "{}  health: {{ overdue_after: 3s, down_after: 1, up_after: 2 }}\n  status_page: {page}\nproviders:\n  - {{ name: relay-a, type: smtp, host: 127.0.0.1, port: {}, tls: none, from: canary@mailcanary.test }}\n  - {{ name: relay-b, type: smtp, host: 127.0.0.1, port: {}, tls: none, from: canary@mailcanary.test }}\ninboxes:\n{}{}probes:\n  - matrix: {{ providers: [relay-a, relay-b], inboxes: [x, y] }}\n",
        global(instance, port, dir, "1s", "4s"),
        s.relay_a,
        s.relay_b,
        inbox("x", &format!("{instance}-x")),
        inbox("y", &format!("{instance}-y")),
    )
}

struct Unhold;
impl Drop for Unhold {
    fn drop(&mut self) {
        mailstack(&["unhold-relay", "a"]);
        mailstack(&["release"]);
    }
}

#[test]
fn the_page_shows_a_black_hole_relay_and_its_incident_in_a_real_browser() {
    let _a = RELAY_A.lock().unwrap_or_else(|p| p.into_inner());
    let dir = temp_dir("status-browser");
    let port = free_port();
    let page = "{ title: \"Acme <mail> & co\", refresh: 1s }";
    let mc = Mailcanary::start(&dir, port, &config("t-status", port, &dir, page));
    let url = format!("http://127.0.0.1:{port}/status");
    mc.wait_until("both relays healthy", WAIT, |m| {
        state(m, "relay-a", "healthy") == 1.0 && state(m, "relay-b", "healthy") == 1.0
    });

    // Relay A accepts and never delivers.
    let unhold = Unhold;
    mailstack(&["hold-relay", "a"]);
    mc.wait_until("relay A down", WAIT, |m| state(m, "relay-a", "down") == 1.0);
    until("an open incident on relay-a with lost canaries", || {
        let api = incidents(port);
        api["incidents"].as_array().unwrap().iter().any(|i| {
            i["ended"].is_null()
                && i["providers"] == serde_json::json!(["relay-a"])
                && i["canaries"]["lost"].as_u64() >= Some(1)
        })
    });
    // Relay A goes down on overdue canaries; the routes' own verdicts come
    // at their timeouts, one route before the other.
    until("both of relay A's routes last lost, on the page", || {
        let (_, page) = http(port, "GET", "/status").expect("the page answers");
        ["relay-a-to-x", "relay-a-to-y"]
            .iter()
            .all(|r| page.contains(&format!("data-route=\"{r}\" data-outcome=\"lost\"")))
    });
    let during = dom(&dir, &url);
    let a = provider_article(&during, "relay-a");
    assert!(a.contains("data-state=\"down\"") && a.contains(">Down<"), "{a}");
    assert!(provider_article(&during, "relay-b").contains("data-state=\"healthy\""), "{during}");
    assert!(during.contains("<title>Acme &lt;mail&gt; &amp; co</title>"), "the title is text, escaped");
    assert!(
        during.contains("id=\"overall\"") && during.contains("Email through relay-a is not being delivered"),
        "{during}"
    );
    let open = during
        .find("data-open=\"true\" data-providers=\"relay-a\"")
        .unwrap_or_else(|| panic!("no open incident: {during}"));
    assert!(during[open..].contains("still going on"), "{during}");
    assert!(during.contains("data-route=\"relay-a-to-x\" data-outcome=\"lost\""), "{during}");
    assert!(during.contains("<meta http-equiv=\"refresh\" content=\"1\">"), "the page reloads itself");
    for outside in ["<script", "<link", "src=", "url(http", "@import"] {
        assert!(!during.contains(outside), "nothing fetched, nothing run: {outside} in {during}");
    }
    screenshot(&dir, &url, "status-outage-desktop.png", 1280, 1400);
    screenshot(&dir, &url, "status-outage-phone.png", 390, 1600);
    // The README's picture (docs/status-page.png) is this one, optimised.
    screenshot(&dir, &url, "status-page.png", 960, 1000);

    // Badges and the feed say the same.
    let (code, svg) = http(port, "GET", "/badge/relay-a.svg").unwrap();
    assert_eq!(code, 200);
    assert!(
        svg.contains("role=\"img\" aria-label=\"relay-a: down\"") && svg.contains("<title>relay-a: down</title>"),
        "{svg}"
    );
    assert_eq!(http(port, "GET", "/badge/relay-a-to-x.svg").unwrap().0, 200, "routes have badges in internal mode");
    assert_eq!(http(port, "GET", "/badge/nope.svg").unwrap().0, 404);
    let (_, feed) = http(port, "GET", "/feed.atom").unwrap();
    assert!(feed.starts_with("<?xml") && feed.contains("<feed xmlns=\"http://www.w3.org/2005/Atom\">"), "{feed}");
    assert!(
        feed.contains("<entry>")
            && feed.contains("<id>urn:uuid:")
            && feed.contains("Ongoing: delivery through relay-a"),
        "{feed}"
    );
    let xml = dom(&dir, &format!("http://127.0.0.1:{port}/feed.atom"));
    assert!(!xml.contains("parsererror"), "Chromium parses the feed as XML: {xml}");

    // Repaired: relay A delivers again, the incident ends.
    drop(unhold);
    mc.wait_until("relay A healthy again", WAIT, |m| state(m, "relay-a", "healthy") == 1.0);
    until("the incident ended", || {
        let api = incidents(port);
        let all = api["incidents"].as_array().unwrap().clone();
        !all.is_empty() && all.iter().all(|i| !i["ended"].is_null())
    });
    let after = dom(&dir, &url);
    assert!(provider_article(&after, "relay-a").contains("data-state=\"healthy\""), "{after}");
    assert!(after.contains("data-open=\"false\" data-providers=\"relay-a\""), "{after}");
    assert!(after.contains("All email providers are delivering normally"), "{after}");
    // 30 days of bars (the default retention); today's of relay A is below 100%.
    let a = provider_article(&after, "relay-a");
    assert_eq!(a.matches("data-date=").count(), 30, "{a}");
    let today = a.rsplit("data-share=\"").next().unwrap();
    let share: f64 = today[..today.find('"').unwrap()].parse().unwrap();
    assert!(share < 1.0 && share > 0.0, "relay A lost some today: {share}");
    assert!(a.contains("role=\"img\" aria-label=\"relay-a: 30 days"), "bars have a text alternative: {a}");
    let b = provider_article(&after, "relay-b");
    assert!(b.contains("data-share=\"1.0000\""), "{b}");
    screenshot(&dir, &url, "status-after-desktop.png", 1280, 1400);
    screenshot(&dir, &url, "status-after-phone.png", 390, 1600);

    // The review: one file, charts drawn by mailcanary, no script.
    let mut mc = mc;
    mc.stop();
    let file = dir.join("review.html");
    let out = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["report", "--since", "1h", "--slow", "2s", "--html"])
        .arg(&file)
        .arg("--config")
        .arg(dir.join("probes.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="), "self-contained");
    let url = format!("file://{}", file.display());
    let review = dom(&dir, &url);
    for id in ["id=\"latency\"", "id=\"outcomes\"", "id=\"hop-chart\""] {
        assert!(review.contains(id), "{id} in {review}");
    }
    assert!(review.contains("class=\"window\""), "the incident is shaded in the latency chart: {review}");
    assert!(review.contains("data-route=\"relay-a-to-x\""), "{review}");
    // Relay A's held canaries were released with it: lost, then late.
    assert!(
        review.contains(" late</title>") || review.contains(" lost</title>"),
        "the outcome chart shows them: {review}"
    );
    screenshot(&dir, &url, "review-desktop.png", 1280, 1800);
    screenshot(&dir, &url, "review-phone.png", 390, 1600);
}

#[test]
fn public_mode_shows_nothing_the_operator_hid() {
    let _a = RELAY_A.lock().unwrap_or_else(|p| p.into_inner());
    let s = stack();
    let dir = temp_dir("status-public");
    let (port, public) = (free_port(), free_port());
    let page = format!("{{ title: Acme, public: true, listen: \"127.0.0.1:{public}\", refresh: 1s }}");
    let config = config("t-public", port, &dir, &page);
    let mc = Mailcanary::start(&dir, port, &config);
    mc.wait_until("both relays healthy", WAIT, |m| {
        state(m, "relay-a", "healthy") == 1.0 && state(m, "relay-b", "healthy") == 1.0
    });
    let unhold = Unhold;
    mailstack(&["hold-relay", "a"]);
    mc.wait_until("relay A down", WAIT, |m| state(m, "relay-a", "down") == 1.0);
    until("an incident with lost canaries", || {
        incidents(public)["incidents"].as_array().unwrap().iter().any(|i| i["canaries"]["lost"].as_u64() >= Some(1))
    });
    drop(unhold);

    // What the config holds that must never show: inbox names (and the
    // route names made of them), addresses, users, the password, hosts.
    let mut hidden: Vec<String> =
        vec![s.password.clone(), "mailcanary.test".into(), "localhost".into(), "127.0.0.1".into()];
    for i in ["x", "y"] {
        hidden.push(user(&format!("t-public-{i}")));
        hidden.push(format!("-to-{i}"));
    }
    let mut pages = Vec::new();
    for path in ["/status", "/api/v1/incidents", "/feed.atom", "/badge/relay-a.svg", "/badge/relay-b.svg"] {
        let (code, body) = http(public, "GET", path).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        pages.push((path.to_string(), body));
    }
    pages.push(("/status in Chromium".into(), dom(&dir, &format!("http://127.0.0.1:{public}/status"))));
    for (path, body) in &pages {
        for h in &hidden {
            assert!(!body.contains(h.as_str()), "{path} shows {h:?}:\n{body}");
        }
        // Inbox names x and y, as whole words in the JSON.
        assert!(!body.contains("\"x\"") && !body.contains("\"y\""), "{path}:\n{body}");
    }
    let api = &pages[1].1;
    assert!(api.contains("\"inboxes\": false") && api.contains("\"reasons\": false"), "{api}");
    assert!(api.contains("\"routes\": []"), "no route list: {api}");
    assert!(
        pages[0].1.contains("Not delivering") || pages[0].1.contains("Delivering normally"),
        "plain sentences: {}",
        pages[0].1
    );
    // Route badges would confirm inbox names; the internal APIs stay off the public listener.
    assert_eq!(http(public, "GET", "/badge/relay-a-to-x.svg").unwrap().0, 404);
    for path in ["/metrics", "/api/v1/status", "/api/v1/providers", "/-/reload"] {
        assert_eq!(http(public, "GET", path).unwrap().0, 404, "{path} is not on the page's listener");
    }
    assert_eq!(http(port, "GET", "/metrics").unwrap().0, 200, "the main listener keeps /metrics");
    screenshot(&dir, &format!("http://127.0.0.1:{public}/status"), "status-public-desktop.png", 1280, 1200);
}
