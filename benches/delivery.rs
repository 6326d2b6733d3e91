//! The delivery benchmark, on the local mail stack (docs/performance.md):
//!
//!   accuracy  mailcanary's detection time minus the moment the message file
//!             appears in Dovecot's Maildir (the ground truth, by inotify)
//!   cost      1,000 routes (10 providers × 100 inboxes) at 60 s: CPU per
//!             canary, peak RSS, open connections, false lost canaries
//!   peer      check_email_delivery (monitoring-plugins-contrib) and
//!             `mailcanary check`, one-shot checks side by side
//!   scrape    /metrics response time and size at 1,000 routes
//!   share     two instances, 50 routes each, on the same 10 inboxes: none
//!             of the other's canaries deleted or miscounted (tests/common/share.rs)
//!
//!   sudo cargo bench --bench delivery [-- accuracy cost peer scrape share] [--smoke]
//!
//! Sizes: MC_BENCH_CANARIES (accuracy, 300), MC_BENCH_MINUTES (cost, 3),
//! MC_BENCH_PROVIDERS × MC_BENCH_INBOXES (cost, 10 × 100),
//! MC_BENCH_PEER_RUNS (peer, 20), MC_BENCH_SHARE_SECONDS (share, 300);
//! MC_BENCH_SCRAPE_SECONDS (cost: how often /metrics is scraped, 2; the
//! shipped Prometheus scrapes every 15).
//! MC_BENCH_BINARY runs the cost part with another build of mailcanary.
//! `--smoke` runs all parts tiny, for CI.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use inotify::{Inotify, WatchMask};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentiles(mut values: Vec<f64>) -> (f64, f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let q = |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    (q(0.5), q(0.95), q(0.99), *values.last().unwrap())
}

/// A Maildir made ready (owned by the mail user) before Dovecot first sees it.
fn maildir(base: &str) -> PathBuf {
    let s = stack();
    let home = s.dir.join("mail").join(user(base));
    let maildir = home.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for path in [home, maildir.clone(), maildir.join("cur"), maildir.join("new"), maildir.join("tmp")] {
        std::os::unix::fs::chown(&path, Some(8), Some(8)).unwrap();
    }
    maildir
}

/// Watches Maildir/new directories: canary id (or message id) → arrival, ms.
fn arrivals(dirs: Vec<PathBuf>) -> Arc<Mutex<HashMap<String, i64>>> {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let sink = seen.clone();
    let mut inotify = Inotify::init().unwrap();
    let mut by_watch = HashMap::new();
    for dir in &dirs {
        let wd = inotify.watches().add(dir.join("new"), WatchMask::MOVED_TO | WatchMask::CREATE).unwrap();
        by_watch.insert(wd, dir.clone());
    }
    std::thread::spawn(move || {
        let mut buffer = [0u8; 65536];
        loop {
            let events = inotify.read_events_blocking(&mut buffer).unwrap();
            let at = now_ms();
            for event in events {
                let (Some(name), Some(dir)) = (event.name, by_watch.get(&event.wd)) else { continue };
                let name = name.to_string_lossy().to_string();
                // Dovecot may move it to cur/ (adding flags) as soon as a session looks.
                let base = name.split(':').next().unwrap_or(&name).to_string();
                let text = std::fs::read_to_string(dir.join("new").join(&name)).ok().or_else(|| {
                    std::fs::read_dir(dir.join("cur")).ok()?.flatten().find_map(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&base)
                            .then(|| std::fs::read_to_string(e.path()).ok())?
                    })
                });
                if let Some(key) = text.as_deref().and_then(message_key) {
                    sink.lock().unwrap().entry(key).or_insert(at);
                }
            }
        }
    });
    seen
}

/// The canary id of a message (the 5th field of its token), or its X-Peer-Id.
fn message_key(text: &str) -> Option<String> {
    let headers = &text[..text.find("\n\n").or_else(|| text.find("\r\n\r\n")).unwrap_or(text.len())];
    headers.lines().find_map(|l| {
        if let Some(token) = l.strip_prefix("X-Mailcanary-Token: ") {
            token.trim().split('.').nth(4).map(str::to_string)
        } else {
            l.strip_prefix("Subject: ").filter(|s| s.starts_with("peer ")).map(|s| s.trim().to_string())
        }
    })
}

fn accuracy(canaries: usize) {
    let routes = 10;
    let dir = temp_dir("bench-accuracy");
    let port = free_port();
    let dirs: Vec<PathBuf> = (0..routes).map(|i| maildir(&format!("acc-{i}"))).collect();
    let seen = arrivals(dirs);
    let mut inboxes = String::new();
    for i in 0..routes {
        inboxes += &inbox(&format!("b{i}"), &format!("acc-{i}"));
        inboxes += "    cleanup: keep\n";
    }
    let config = format!(
        "{}providers:\n{}inboxes:\n{inboxes}probes:\n  - matrix: {{ providers: [relay], inboxes: [{}] }}\n",
        global("bench-accuracy", port, &dir, "1s", "1m"),
        relay("relay"),
        (0..routes).map(|i| format!("b{i}")).collect::<Vec<_>>().join(", "),
    );
    println!("accuracy: waiting for {canaries} canaries delivered on {routes} routes, one a second per route ...");
    let mut mc = Mailcanary::start(&dir, port, &config);
    let start = Instant::now();
    mc.wait_until("enough deliveries", Duration::from_secs(600), |m| {
        let delivered: f64 =
            m.0.lines()
                .filter(|l| l.starts_with("mailcanary_canaries_delivered_total{") && l.contains("placement=\"inbox\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
        delivered >= canaries as f64
    });
    let took = start.elapsed();
    mc.stop();
    let rows = mailcanary::ledger::Ledger::open(&dir.join("state")).unwrap().since(0).unwrap();
    let seen = seen.lock().unwrap();
    let (mut overhead, mut truth, mut error) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows
        .iter()
        .filter(|r| r.state == mailcanary::ledger::State::Settled(mailcanary::outcome::OutcomeKind::Delivered))
    {
        let (Some(arrived), Some(seen_ms), Some(accepted), Some(latency)) =
            (seen.get(&row.id), row.seen_ms, row.accepted_ms, row.latency_ms)
        else {
            continue;
        };
        overhead.push((seen_ms - arrived) as f64);
        truth.push((arrived - accepted) as f64);
        error.push((latency - (arrived - accepted)) as f64);
    }
    let n = overhead.len();
    assert!(n > 0, "no canary matched to its Maildir file");
    let (p50, p95, p99, max) = percentiles(overhead);
    let (t50, t95, t99, _) = percentiles(truth);
    let (e50, e95, e99, _) = percentiles(error);
    println!("\n## accuracy: {n} canaries on {routes} routes in {:.0} s (default settings)", took.as_secs_f64());
    println!("| | p50 | p95 | p99 | max |\n|---|---|---|---|---|");
    println!("| detection overhead (seen − file in Maildir), ms | {p50:.0} | {p95:.0} | {p99:.0} | {max:.0} |");
    println!("| true delivery time (file − accepted), ms | {t50:.0} | {t95:.0} | {t99:.0} | |");
    println!("| error of the reported latency, ms | {e50:.0} | {e95:.0} | {e99:.0} | |");
}

/// CPU seconds (user + system) and peak RSS (kB) of a process, from /proc.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = clock_ticks();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (ticks / hz, hwm)
}

fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")))
                .count()
        })
        .unwrap_or(0)
}

/// What `cost_and_scrape` runs: routes, their interval, for how long.
struct CostRun {
    minutes: f64,
    providers: usize,
    inboxes: usize,
    interval: &'static str,
}

/// The smoke run's figures per canary (benches/recorded): CI's smoke run
/// fails past them by more than [`GROWTH_ALLOWED`] (see [`guard`]).
const RECORDED: &str = include_str!("recorded");
const GROWTH_ALLOWED: f64 = 0.30;

fn recorded(key: &str) -> f64 {
    RECORDED
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == key).and_then(|(_, v)| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("benches/recorded has no {key}"))
}

/// Work that does not depend on the machine's speed of the moment: the
/// process's wakeups (voluntary context switches, summed over its live
/// threads) and its read and write system calls.
fn work(pid: u32) -> (f64, f64) {
    let mut wakeups = 0.0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        wakeups += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        io.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
    };
    (wakeups, field("syscr:") + field("syscw:"))
}

/// The CPU time (s) the local mail stack has spent so far: Postfix and
/// Dovecot, their masters (with the children they have reaped) and the
/// children they run now. It does the same work for every canary whatever
/// mailcanary does (an SMTP session, a queue, a delivery, IMAP commands),
/// on the same cores at the same time: CPU per canary divided by the
/// stack's is a figure that does not move with the host's other guests as
/// CPU time alone does (docs/performance.md, 2b).
fn stack_cpu() -> f64 {
    let ticks = |pid: &str, children_too: bool| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<f64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().filter_map(|f| f.parse().ok()).collect())
            .unwrap_or_default();
        // After the state (a letter, not kept): ppid, ..., cmajflt (10 values), then
        // utime, stime, cutime, cstime.
        let take = if children_too { 4 } else { 2 };
        fields.iter().skip(10).take(take).sum()
    };
    let dir = stack().dir.clone();
    let masters: Vec<String> = ["postfix-spool/pid/master.pid", "dovecot/run/master.pid"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .map(|p| p.trim().to_string())
        .collect();
    assert_eq!(masters.len(), 2, "the mail stack's Postfix and Dovecot pid files under {}", dir.display());
    let mut total = 0.0;
    for proc in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = proc.file_name().to_string_lossy().to_string();
        if masters.contains(&pid) {
            total += ticks(&pid, true);
            continue;
        }
        let status = std::fs::read_to_string(proc.path().join("status")).unwrap_or_default();
        let parent = status.lines().find_map(|l| l.strip_prefix("PPid:")).map(str::trim);
        if parent.is_some_and(|p| masters.iter().any(|m| m == p)) {
            total += ticks(&pid, false);
        }
    }
    total / clock_ticks()
}

fn clock_ticks() -> f64 {
    String::from_utf8(Command::new("getconf").arg("CLK_TCK").output().unwrap().stdout).unwrap().trim().parse().unwrap()
}

fn cost_and_scrape(run: &CostRun, smoke: bool) -> Result<(), String> {
    let &CostRun { minutes, providers, inboxes, interval } = run;
    let dir = temp_dir("bench-cost");
    let port = free_port();
    let mut provider_list = String::new();
    for p in 0..providers {
        provider_list += &relay(&format!("p{p}"));
    }
    let mut inbox_list = String::new();
    for i in 0..inboxes {
        inbox_list += &inbox(&format!("i{i}"), &format!("cost-{i}"));
    }
    let names = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(", ");
    let config = format!(
        "{}providers:\n{provider_list}inboxes:\n{inbox_list}probes:\n  - matrix: {{ providers: [{}], inboxes: [{}] }}\n",
        global("bench-cost", port, &dir, interval, "60s").replace("jitter: 0%", "jitter: 10%"),
        names("p", providers),
        names("i", inboxes),
    );
    let routes = providers * inboxes;
    let every = env_usize("MC_BENCH_SCRAPE_SECONDS", 2).max(1) as u64;
    println!("cost: {routes} routes at {interval} for {:.0} s, scraping /metrics every {every} s ...", minutes * 60.0);
    // Another build side by side (MC_BENCH_BINARY): the same run, the same stack.
    // Logging as it ships: the tests' `debug` lines cost a deployment nothing.
    std::fs::write(dir.join("probes.yaml"), &config).unwrap();
    let binary = std::env::var_os("MC_BENCH_BINARY").unwrap_or_else(|| env!("CARGO_BIN_EXE_mailcanary").into());
    let mut mc = Mailcanary::start_as_shipped(&dir, port, std::path::Path::new(&binary));
    let pid = mc.pid();
    let run = Duration::from_secs_f64(minutes * 60.0);
    // The steady state is measured from here: start-up and the first
    // sends (every route at once) are behind.
    let warm = run / 4;
    let start = Instant::now();
    let (mut peak_sockets, mut scrape_ms, mut scrape_bytes) = (0, Vec::new(), 0);
    let mut warmed: Option<(f64, f64, (f64, f64))> = None;
    let mut warm_stack = 0.0;
    while start.elapsed() < run {
        std::thread::sleep(Duration::from_secs(every));
        peak_sockets = peak_sockets.max(sockets(pid));
        let t = Instant::now();
        if let Some((200, body)) = http(port, "GET", "/metrics") {
            scrape_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            scrape_bytes = body.len();
            if warmed.is_none() && start.elapsed() >= warm {
                warmed = Some((usage(pid).0, Metrics(body).sum("mailcanary_canaries_delivered_total{"), work(pid)));
                warm_stack = stack_cpu();
            }
        }
    }
    let (cpu, rss_kb) = usage(pid);
    let stack_cpu = stack_cpu() - warm_stack;
    let (wakeups, syscalls) = work(pid);
    let m = mc.metrics().unwrap();
    let delivered = m.sum("mailcanary_canaries_delivered_total{");
    let (warm_cpu, warm_delivered, (warm_wakeups, warm_syscalls)) = warmed.expect("a scrape after the warm-up");
    let measured = (delivered - warm_delivered).max(1.0);
    let steady = (cpu - warm_cpu) * 1000.0 / measured;
    let (wakeups, syscalls) = ((wakeups - warm_wakeups) / measured, (syscalls - warm_syscalls) / measured);
    // Against the mail stack's CPU for the same canaries, at the same time.
    assert!(stack_cpu > 0.0, "the mail stack's CPU was not read");
    let stack_steady = stack_cpu * 1000.0 / measured;
    let to_stack = steady / stack_steady;
    let sent = m.sum("mailcanary_canaries_sent_total{");
    let failed = m.sum("mailcanary_send_failures_total{");
    // Every canary sent so far ends delivered or lost (within its 60 s
    // timeout) before lost ones are counted; canaries sent later only add.
    println!("cost: waiting for {:.0} canaries in flight to be delivered or lost (60 s at most) ...", sent - delivered);
    let m = mc.wait_until("every canary sent to be delivered or lost", Duration::from_secs(75), |m| {
        m.sum("mailcanary_canaries_delivered_total{") + m.sum("mailcanary_canaries_lost_total{") >= sent
    });
    let lost = m.sum("mailcanary_canaries_lost_total{");
    let up = m.sum("mailcanary_inbox_up{");
    mc.stop();
    let (s50, _, s99, smax) = percentiles(scrape_ms.clone());
    println!(
        "\n## cost: {routes} routes ({providers} providers × {inboxes} inboxes) at {interval}, {minutes} min, /metrics scraped every {every} s"
    );
    println!("| measure | value |\n|---|---|");
    println!("| canaries sent / delivered / refused | {sent:.0} / {delivered:.0} / {failed:.0} |");
    println!(
        "| CPU per delivered canary (whole run, start-up included) | {:.2} ms |",
        cpu * 1000.0 / delivered.max(1.0)
    );
    println!("| CPU per delivered canary, steady (after the first quarter) | {steady:.2} ms |");
    println!("| the mail stack's CPU per delivered canary, the same time | {stack_steady:.2} ms |");
    println!("| mailcanary's CPU per canary ÷ the mail stack's | {to_stack:.3} |");
    println!("| wakeups / read and write calls per delivered canary, steady | {wakeups:.1} / {syscalls:.1} |");
    println!("| CPU total | {cpu:.1} s over {:.0} s |", start.elapsed().as_secs_f64());
    println!("| peak RSS | {:.1} MB |", rss_kb as f64 / 1024.0);
    println!("| open sockets, peak | {peak_sockets} ({inboxes} IMAP sessions + SMTP + HTTP) |");
    println!("| inboxes up at the end | {up:.0} of {inboxes} |");
    println!("| false lost canaries | {lost:.0} |");
    println!("\n## scrape: /metrics at {routes} routes");
    println!("| measure | value |\n|---|---|");
    println!("| response time p50 / p99 / max ({} scrapes) | {s50:.1} / {s99:.1} / {smax:.1} ms |", scrape_ms.len());
    println!("| size | {:.0} kB |", scrape_bytes as f64 / 1024.0);
    // Every route delivered by now, so its hop series (when on) exist too.
    let series = m.0.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
    let route_series = m.0.lines().filter(|l| !l.starts_with('#') && l.contains("probe=\"")).count();
    println!("| series | {series}, of which per route {:.1} |", route_series as f64 / routes as f64);
    if smoke { guard(steady, to_stack, wakeups, syscalls) } else { Ok(()) }
}

/// Holds the smoke run to the figures recorded in benches/recorded, per
/// canary: its CPU, seen two ways that must both have grown (CPU time
/// alone moves with the host's other guests: 2.4 to 6 ms for one build
/// within two hours; divided by the mail stack's CPU for the same canaries
/// it moves with the stack's own state, and less with the host's: 0.25 to
/// 0.31 since the stack's own cost fell, docs/performance.md 2f), the
/// wakeups and the read and write calls (every
/// wasted poll, round trip or ledger write adds to them, and they hold
/// still). Past 30 %: what grew, or `Ok`.
fn guard(cpu_ms: f64, cpu_to_stack: f64, wakeups: f64, syscalls: f64) -> Result<(), String> {
    let check = |key: &str, what: &str, value: f64| -> Option<String> {
        let limit = recorded(key);
        let growth = value / limit - 1.0;
        println!("cost: {value:.3} {what} per canary, recorded {limit:.3} ({:+.0} %)", growth * 100.0);
        (growth > GROWTH_ALLOWED).then(|| format!("{what} per canary grew from the recorded {limit:.3} to {value:.3}"))
    };
    let cpu = [
        check("smoke_cpu_ms_per_canary", "ms CPU", cpu_ms),
        check("smoke_cpu_to_stack", "CPU (÷ the mail stack's)", cpu_to_stack),
    ];
    let mut grown: Vec<String> =
        if cpu.iter().all(Option::is_some) { cpu.into_iter().flatten().collect() } else { Vec::new() };
    grown.extend(check("smoke_wakeups_per_canary", "wakeups", wakeups));
    grown.extend(check("smoke_syscalls_per_canary", "read and write calls", syscalls));
    if grown.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} (more than {:.0} %): find where it goes (docs/performance.md), or record the new figures in \
         benches/recorded with the reason",
        grown.join("; "),
        GROWTH_ALLOWED * 100.0
    ))
}

/// Runs `command` under GNU time: (wall s, CPU s, max RSS kB, stdout).
fn timed(command: &mut Command) -> (f64, f64, u64, String) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %U %S %M", "-o", "/dev/stderr"])
        .arg(command.get_program())
        .args(command.get_args())
        .output()
        .expect("GNU time (Debian package time)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or("");
    let f: Vec<f64> = last.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    assert_eq!(f.len(), 4, "time output: {stderr}");
    (f[0], f[1] + f[2], f[3] as u64, String::from_utf8_lossy(&out.stdout).to_string())
}

fn peer(runs: usize) {
    let s = stack();
    let peer_dir = maildir("peer");
    let mc_dir = maildir("peer-mc");
    let seen = arrivals(vec![peer_dir, mc_dir]);
    let plugins = "/usr/lib/nagios/plugins";
    let (mut p_wall, mut p_cpu, mut p_rss, mut p_err) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    println!("peer: {runs} runs of check_email_delivery, then {runs} of mailcanary check ...");
    for run in 0..runs {
        let subject = format!("peer {}-{run}", std::process::id());
        let spawned = now_ms();
        let (wall, cpu, rss, stdout) = timed(
            Command::new(format!("{plugins}/check_email_delivery"))
                .args(["--libexec", plugins, "--hires", "--wait", "1", "--imap-check-interval", "1"])
                .args(["--smtp-server", "127.0.0.1", "--smtp-port", &s.smtp.to_string(), "--nosmtptls"])
                .args(["--imap-server", "127.0.0.1", "--imap-port", &s.imap.to_string(), "--noimapssl"])
                .args(["--username", &user("peer"), "--password", &s.password])
                .args(["--mailto", &format!("{}@mailcanary.test", user("peer")), "--mailfrom", "peer@mailcanary.test"])
                .args(["--header", &format!("Subject: {subject}")]),
        );
        // "EMAIL DELIVERY OK - 1.23 seconds"
        let reported: Option<f64> =
            stdout.split(" - ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok());
        std::thread::sleep(Duration::from_millis(200));
        let arrived = seen.lock().unwrap().get(&subject).copied();
        if let (Some(reported), Some(arrived)) = (reported, arrived) {
            // The truth from the check's own start: an upper bound of its send time.
            p_err.push(reported * 1000.0 - (arrived - spawned) as f64);
        } else {
            println!("peer run {run}: {stdout}");
        }
        p_wall.push(wall);
        p_cpu.push(cpu);
        p_rss.push(rss as f64);
    }
    let dir = temp_dir("bench-peer");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: one, provider: relay, inbox: box }}\n",
        global("bench-peer", port, &dir, "1h", "1m"),
        relay("relay"),
        inbox("box", "peer-mc"),
    );
    let path = dir.join("probes.yaml");
    std::fs::write(&path, config).unwrap();
    let (mut m_wall, mut m_cpu, mut m_rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (wall, cpu, rss, stdout) = timed(
            Command::new(env!("CARGO_BIN_EXE_mailcanary")).args(["check", "--probe", "one", "--config"]).arg(&path),
        );
        assert!(stdout.contains("delivered to inbox"), "{stdout}");
        m_wall.push(wall);
        m_cpu.push(cpu);
        m_rss.push(rss as f64);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!("\n## peer: one-shot checks, {runs} runs each, same stack");
    println!("| per check (mean) | check_email_delivery | mailcanary check | ratio |\n|---|---|---|---|");
    println!("| wall time | {:.2} s | {:.2} s | {:.2} |", mean(&p_wall), mean(&m_wall), mean(&m_wall) / mean(&p_wall));
    println!("| CPU | {:.3} s | {:.3} s | {:.2} |", mean(&p_cpu), mean(&m_cpu), mean(&m_cpu) / mean(&p_cpu));
    println!(
        "| max RSS | {:.1} MB | {:.1} MB | {:.2} |",
        mean(&p_rss) / 1024.0,
        mean(&m_rss) / 1024.0,
        mean(&m_rss) / mean(&p_rss)
    );
    if !p_err.is_empty() {
        let (e50, e95, e99, _) = percentiles(p_err.iter().map(|e| e.abs()).collect());
        println!(
            "| error of the reported delay, |ms| p50 / p95 / p99 | {e50:.0} / {e95:.0} / {e99:.0} | see accuracy | |"
        );
    }
}

fn share(seconds: u64) {
    println!("share: two instances, 50 routes each, on the same 10 inboxes for {seconds} s ...");
    let r = common::share::run(seconds);
    let [(sa, da, fa, xa), (sb, db, fb, xb)] = r.counts;
    let [(ka, ta), (kb, tb)] = r.foreign_kept;
    println!(
        "\n## share: 2 instances × {} routes (5 providers × 10 inboxes, 5 s), same inboxes, {:.0} s",
        r.routes_each, r.seconds
    );
    println!("| measure | instance a | instance b |\n|---|---|---|");
    println!("| canaries sent (ledger) | {sa:.0} | {sb:.0} |");
    println!("| delivered (ledger = counter) | {da:.0} | {db:.0} |");
    println!("| in flight at the end, all held in the queue ({} held) | {fa:.0} | {fb:.0} |", r.held);
    println!("| refused / lost / late / bounced | 0 / 0 / 0 / 0 | 0 / 0 / 0 / 0 |");
    println!("| forged / duplicate / expired counted | 0 / 0 / 0 | 0 / 0 / 0 |");
    println!("| foreign counted, all inboxes | {xa:.0} | {xb:.0} |");
    println!(
        "| foreign counted in kept inboxes = the other's deliveries there | {ka:.0} = {ta:.0} | {kb:.0} = {tb:.0} |"
    );
    println!("| the other's canaries deleted | 0 | 0 |");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--bench")).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let parts: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with("--")).collect();
    let all = parts.is_empty();
    let want = |p: &str| all || parts.contains(&p);
    println!("# mailcanary delivery benchmark{}", if smoke { " (smoke)" } else { "" });
    if want("accuracy") {
        accuracy(if smoke { 20 } else { env_usize("MC_BENCH_CANARIES", 300) });
    }
    if want("cost") || want("scrape") {
        if smoke {
            // 100 routes at 5 s: about 900 canaries measured in 45 s.
            let run = CostRun { minutes: 1.0, providers: 10, inboxes: 10, interval: "5s" };
            // A neighbour's burst passes; a regression is there again.
            if let Err(grown) = cost_and_scrape(&run, true) {
                println!("cost: {grown}; measuring once more ...");
                cost_and_scrape(&run, true).unwrap_or_else(|grown| panic!("{grown}"));
            }
        } else {
            let run = CostRun {
                minutes: env_usize("MC_BENCH_MINUTES", 3) as f64,
                providers: env_usize("MC_BENCH_PROVIDERS", 10),
                inboxes: env_usize("MC_BENCH_INBOXES", 100),
                interval: "60s",
            };
            cost_and_scrape(&run, false).expect("no guard outside the smoke run");
        }
    }
    if want("peer") {
        peer(if smoke { 2 } else { env_usize("MC_BENCH_PEER_RUNS", 20) });
    }
    if want("share") {
        share(if smoke { 10 } else { env_usize("MC_BENCH_SHARE_SECONDS", 300) as u64 });
    }
}
