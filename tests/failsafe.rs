//! mailcanary's own trouble never stops the mail it steers. HAProxy (through
//! the agent check) and the application's Postfix (through the table file)
//! carry an application's mail, one message every 200 ms each, while
//! mailcanary is killed, stopped for 30 s, restarted, upgraded, flooded
//! under a 1024-descriptor limit, and while every provider is down at once;
//! then a black hole that is never released is drained and, once repaired,
//! taken back while its swallowed canaries are still in flight. The old
//! recipes (an HTTP check HAProxy tracks, Postfix asking the socketmap) are
//! pinned too: they stop the mail when mailcanary is gone.

mod common;

use common::steering::*;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn state(m: &Metrics, provider: &str, state: &str) -> f64 {
    m.value("mailcanary_provider_state", &[("provider", provider), ("state", state)])
}

/// Two relays into two inboxes, every 3 s; HAProxy's agent and Postfix's
/// table; the shipped defaults' `down_after`.
fn config(name: &str, port: u16, agent: u16, dir: &std::path::Path, map: &std::path::Path, extra: &str) -> String {
    let s = stack();
    format!(
        "{}  health: {{ overdue_after: 8s, up_after: 2 }}\n  failover: {{ agent: \"127.0.0.1:{agent}\", postfix_map: \"{}\"{extra} }}\nproviders:\n  - {{ name: relay-a, type: smtp, host: 127.0.0.1, port: {a}, tls: none, from: canary@mailcanary.test, failover: {{ nexthop: \"[127.0.0.1]:{a}\" }} }}\n  - {{ name: relay-b, type: smtp, host: 127.0.0.1, port: {b}, tls: none, from: canary@mailcanary.test, failover: {{ nexthop: \"[127.0.0.1]:{b}\" }} }}\ninboxes:\n{}{}probes:\n  - matrix: {{ providers: [relay-a, relay-b], inboxes: [x, y] }}\n",
        global(name, port, dir, "3s", "60s"),
        map.display(),
        inbox("x", &format!("{name}-x")),
        inbox("y", &format!("{name}-y")),
        a = s.relay_a,
        b = s.relay_b,
    )
}

/// The two applications: one through HAProxy, one through its own Postfix.
struct Apps {
    haproxy: SmtpApp,
    postfix: SmtpApp,
}

impl Apps {
    fn counts(&self) -> (usize, usize, usize, usize) {
        (self.haproxy.sent(), self.haproxy.failed(), self.postfix.sent(), self.postfix.failed())
    }

    /// Until each has tried `n` more messages.
    fn wait_more(&self, n: usize) {
        let (h, hf, p, pf) = self.counts();
        until(&format!("{n} more messages from each application"), || {
            self.haproxy.sent() + self.haproxy.failed() >= h + hf + n
                && self.postfix.sent() + self.postfix.failed() >= p + pf + n
        });
    }
}

/// One fault's row: messages tried and refused, through each consumer.
struct Row {
    fault: &'static str,
    haproxy: (usize, usize),
    postfix: (usize, usize),
}

/// Runs `fault` while both applications send, then until each has tried
/// ten more messages; its row.
fn during(apps: &Apps, fault: &'static str, f: impl FnOnce()) -> Row {
    during_then(apps, fault, 10, f)
}

/// Runs `fault`, then until each application has tried `more` messages.
fn during_then(apps: &Apps, fault: &'static str, more: usize, f: impl FnOnce()) -> Row {
    let (h0, hf0, p0, pf0) = apps.counts();
    f();
    apps.wait_more(more);
    let (h1, hf1, p1, pf1) = apps.counts();
    Row { fault, haproxy: (h1 + hf1 - h0 - hf0, hf1 - hf0), postfix: (p1 + pf1 - p0 - pf0, pf1 - pf0) }
}

/// How long the agent takes to answer, p99 over `n` checks, in ms.
fn agent_p99(agent: u16, n: usize) -> f64 {
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let mut c = TcpStream::connect(("127.0.0.1", agent)).expect("the agent accepts");
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.write_all(b"relay-a\n").unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).expect("the agent answers");
            assert!(out.starts_with("ready") || out.starts_with("drain"), "{out:?}");
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[(n * 99).div_ceil(100) - 1]
}

/// Raises this test process's own open-files limit, to hold a flood.
fn raise_own_limit() {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain struct in, plain struct out.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
}

/// `n` connections held against `port`: half of them silent, half with a
/// request sent halfway.
fn flood(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|i| {
            let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
            if i % 2 == 1 {
                let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: mailcanary\r\nX-Slow: ");
            }
            Some(c)
        })
        .collect()
}

#[test]
fn the_mail_keeps_flowing_whatever_happens_to_mailcanary() {
    let _relays = relays();
    let s = stack();
    mailstack(&["app-mta", "table"]);
    let app_mta_log = s.dir.join("log/app-mta.log");
    let log_from = std::fs::metadata(&app_mta_log).map_or(0, |m| m.len() as usize);
    let dir = temp_dir("failsafe");
    let (port, agent, front) = (free_port(), free_port(), free_port());
    let map = s.dir.join("app-mta/relay");
    let _ = std::fs::remove_file(map.with_extension("cdb"));
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mailcanary"));
    let mut mc = Mailcanary::start(&dir, port, &config("t-failsafe", port, agent, &dir, &map, ""));
    mc.wait_until("both relays healthy", WAIT, |m| {
        state(m, "relay-a", "healthy") == 1.0 && state(m, "relay-b", "healthy") == 1.0
    });
    let haproxy = Haproxy::start(&dir, &haproxy_agent_config(&dir, front, agent, s.relay_a, s.relay_b));
    haproxy.wait("both servers up at full weight", |h| serving(h, "relay-a") && serving(h, "relay-b"));
    let to = |who: &str| format!("{}@mailcanary.test", user(&format!("t-failsafe-{who}")));
    let apps = Apps { haproxy: SmtpApp::start(front, to("ha")), postfix: SmtpApp::start(s.app_mta, to("pf")) };
    apps.wait_more(5);
    let mut rows = Vec::new();

    rows.push(during(&apps, "kill -9", || mc.kill9()));
    assert!(serving(&haproxy, "relay-a") && serving(&haproxy, "relay-b"), "HAProxy left both servers as they were");
    mc = Mailcanary::restart(&dir, port, &binary, None);

    rows.push(during(&apps, "SIGSTOP for 30 s", || {
        mc.signal("STOP");
        let stopped = Instant::now();
        until("30 s stopped", || stopped.elapsed() >= Duration::from_secs(30));
    }));
    mc.signal("CONT");

    rows.push(during(&apps, "restart", || {
        mc.stop();
        mc = Mailcanary::restart(&dir, port, &binary, None);
    }));

    let upgraded = dir.join("mailcanary-upgraded");
    std::fs::copy(&binary, &upgraded).unwrap();
    rows.push(during(&apps, "upgrade (binary replaced, restarted)", || {
        mc.stop();
        mc = Mailcanary::restart(&dir, port, &upgraded, None);
    }));

    // Under a 1024-descriptor limit it cannot raise, 5,000 idle and
    // half-sent connections against its HTTP listener.
    mc.stop();
    mc = Mailcanary::restart(&dir, port, &binary, Some(1024));
    raise_own_limit();
    let mut p99 = 0.0;
    rows.push(during(&apps, "5,000 connections held on its HTTP listener", || {
        let held = flood(port, 5000);
        p99 = agent_p99(agent, 200);
        println!("flood: {} connections opened; the agent answered within {p99:.1} ms at p99", held.len());
        apps.wait_more(10);
        drop(held);
    }));
    assert!(p99 < 100.0, "the agent answers within 100 ms at p99 under the flood: {p99:.1} ms");
    mc.wait_until("its HTTP listener answers again", WAIT, |_| true);

    // Every provider down at once, as when the prober's own network or
    // credentials break (here: its config points both at a closed port):
    // the prober is the likelier fault, and nothing is drained.
    let closed = free_port().to_string();
    let healthy_config = config("t-failsafe", port, agent, &dir, &map, "");
    let broken = healthy_config.replace(&format!("port: {}, tls", s.relay_a), &format!("port: {closed}, tls"));
    let broken = broken.replace(&format!("port: {}, tls", s.relay_b), &format!("port: {closed}, tls"));
    rows.push(during(&apps, "every provider down at once", || {
        mc.rewrite_config(&broken);
        mc.signal("HUP");
        mc.wait_until("both relays down", WAIT, |m| {
            state(m, "relay-a", "down") == 1.0 && state(m, "relay-b", "down") == 1.0
        });
        // One may go down a check before the other and be drained while
        // the other still delivers; once both are down, neither is.
        haproxy.wait("both servers used while both are down", |h| serving(h, "relay-a") && serving(h, "relay-b"));
        let table = std::fs::read(map.with_extension("cdb")).unwrap();
        assert!(table.len() > 2048, "the table still names a next hop");
    }));
    mc.rewrite_config(&healthy_config);
    mc.signal("HUP");
    mc.wait_until("both relays healthy again", Duration::from_secs(60), |m| {
        state(m, "relay-a", "healthy") == 1.0 && state(m, "relay-b", "healthy") == 1.0
    });
    haproxy.wait("both servers at full weight again", |h| serving(h, "relay-a") && serving(h, "relay-b"));

    // A black hole, never released: drained, then taken back once repaired
    // although the canaries it swallowed are still in flight.
    mailstack(&["hold-relay", "a"]);
    let broke = Instant::now();
    haproxy.wait("relay A's share cut", |h| h.state("smtp", "relay-a").is_some_and(|(_, w)| w < 100));
    let cut = broke.elapsed();
    haproxy.wait("relay A drained", |h| drained(h, "relay-a"));
    let drain = broke.elapsed();
    mailstack(&["unhold-relay", "a"]);
    let repaired = Instant::now();
    haproxy.wait("relay A back at full weight", |h| serving(h, "relay-a"));
    let back = repaired.elapsed();
    let m = mc.metrics().unwrap();
    let in_flight = m.value("mailcanary_canaries_in_flight", &route("relay-a-to-x", "relay-a", "x"))
        + m.value("mailcanary_canaries_in_flight", &route("relay-a-to-y", "relay-a", "y"));
    println!(
        "black hole on relay A, never released: share cut after {:.1} s, drained after {:.1} s; repaired: back after {:.1} s with {in_flight} of its canaries still in flight",
        cut.as_secs_f64(),
        drain.as_secs_f64(),
        back.as_secs_f64()
    );
    assert!(in_flight >= 1.0, "swallowed canaries were still in flight when it came back");
    // up_after (2) deliveries on a route, an interval (3 s) of jitter, the agent's check (1 s).
    assert!(back < Duration::from_secs(2 * 3 + 3 + 2 + 2), "back after {back:?}");

    let (haproxy_refused, postfix_refused) = (apps.haproxy.stop(), apps.postfix.stop());
    println!("| fault | through HAProxy (sent, refused) | through Postfix (sent, refused) |");
    for r in &rows {
        println!("| {} | {}, {} | {}, {} |", r.fault, r.haproxy.0, r.haproxy.1, r.postfix.0, r.postfix.1);
    }
    for r in &rows {
        assert_eq!((r.haproxy.1, r.postfix.1), (0, 0), "{}: no application message refused", r.fault);
    }
    assert_eq!((haproxy_refused, postfix_refused), (0, 0));
    let log = std::fs::read(&app_mta_log).unwrap_or_default();
    let ours = String::from_utf8_lossy(&log[log_from.min(log.len())..]);
    assert!(ours.contains("status=sent"), "the application's Postfix relayed mail");
    assert!(!ours.contains("lookup failure"), "the application's Postfix never failed a lookup");
}

#[test]
fn the_old_recipes_stop_the_mail_when_mailcanary_is_gone() {
    let _relays = relays();
    let s = stack();
    mailstack(&["app-mta", "socketmap"]);
    let dir = temp_dir("failsafe-old");
    let (port, agent, front) = (free_port(), free_port(), free_port());
    let extra = format!(", socketmap: \"127.0.0.1:{}\"", s.socketmap);
    let mc = Mailcanary::start(&dir, port, &config("t-old", port, agent, &dir, &dir.join("relay"), &extra));
    mc.wait_until("both relays healthy", WAIT, |m| {
        state(m, "relay-a", "healthy") == 1.0 && state(m, "relay-b", "healthy") == 1.0
    });
    let haproxy = Haproxy::start(&dir, &haproxy_http_track_config(&dir, front, port, s.relay_a, s.relay_b));
    haproxy.wait("both servers up", |h| {
        h.stat("smtp", "relay-a").is_some_and(|(st, _)| st == "UP")
            && h.stat("smtp", "relay-b").is_some_and(|(st, _)| st == "UP")
    });
    let to = |who: &str| format!("{}@mailcanary.test", user(&format!("t-old-{who}")));
    let apps = Apps { haproxy: SmtpApp::start(front, to("ha")), postfix: SmtpApp::start(s.app_mta, to("pf")) };
    apps.wait_more(5);
    assert_eq!((apps.haproxy.failed(), apps.postfix.failed()), (0, 0), "both recipes work while it runs");
    let row = during(&apps, "kill -9", || mc.kill9());
    println!(
        "old recipes, mailcanary killed: through HAProxy tracking /health {} of {} refused; through Postfix asking the socketmap {} of {} refused",
        row.haproxy.1, row.haproxy.0, row.postfix.1, row.postfix.0
    );
    assert!(row.haproxy.1 > 0, "HAProxy marks every server down when its HTTP check fails: the mail stops");
    assert!(row.postfix.1 > 0, "Postfix refuses mail while the socketmap cannot answer (451 4.3.0)");
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mailcanary"));
    let mc = Mailcanary::restart(&dir, port, &binary, None);
    haproxy.wait("both servers up again", |h| {
        h.stat("smtp", "relay-a").is_some_and(|(st, _)| st == "UP")
            && h.stat("smtp", "relay-b").is_some_and(|(st, _)| st == "UP")
    });
    // A hung socketmap holds each of Postfix's lookups (and the
    // application's RCPT) until its client gives up: a few tries suffice.
    let row = during_then(&apps, "SIGSTOP for 10 s", 2, || {
        mc.signal("STOP");
        let stopped = Instant::now();
        until("10 s stopped", || stopped.elapsed() >= Duration::from_secs(10));
    });
    mc.signal("CONT");
    println!(
        "old recipes, mailcanary stopped for 10 s: through HAProxy tracking /health {} of {} refused; through Postfix asking the socketmap {} of {} refused",
        row.haproxy.1, row.haproxy.0, row.postfix.1, row.postfix.0
    );
    assert!(row.haproxy.1 > 0 && row.postfix.1 > 0, "a hung mailcanary stops the mail too");
    drop(apps);
    mailstack(&["app-mta", "table"]);
}

/// CPU seconds (user + system) the process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); here 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn out_of_file_descriptors_it_pauses_instead_of_spinning_and_recovers() {
    let s = stack();
    let dir = temp_dir("failsafe-emfile");
    let (port, agent) = (free_port(), free_port());
    let config = format!(
        "{}  failover: {{ agent: \"127.0.0.1:{agent}\" }}\nproviders:\n{}inboxes:\n{}probes:\n  - {{ name: r, provider: relay-a, inbox: x }}\n",
        global("t-emfile", port, &dir, "1h", "1m"),
        relay("relay-a"),
        inbox("x", "t-emfile-x"),
    );
    assert!(s.smtp > 0);
    std::fs::write(dir.join("probes.yaml"), &config).unwrap();
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mailcanary"));
    // Few descriptors, and a cap above them: accepting itself fails (EMFILE).
    let mc = Mailcanary::restart(&dir, port, &binary, Some(64));
    raise_own_limit();
    let held = flood(port, 300);
    let open = || std::fs::read_dir(format!("/proc/{}/fd", mc.pid())).map_or(0, |d| d.count());
    until("it runs out of descriptors", || open() >= 60);
    let before = cpu_seconds(mc.pid());
    let started = Instant::now();
    until("2 s out of descriptors", || started.elapsed() >= Duration::from_secs(2));
    let busy = (cpu_seconds(mc.pid()) - before) / started.elapsed().as_secs_f64();
    println!("out of descriptors with {} connections waiting: {:.1} % of a core", held.len(), busy * 100.0);
    assert!(busy < 0.2, "an accept loop spins: {:.0} % of a core", busy * 100.0);
    drop(held);
    mc.wait_until("its HTTP listener answers again", WAIT, |_| true);
    assert!(agent_p99(agent, 5) < 1000.0, "the agent answers again");
}
