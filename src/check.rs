//! `mailcanary check --probe NAME`: one canary now, through the same
//! pipeline as the service (with a ledger of its own), with live progress
//! and a timing breakdown. Succeeds only when the canary reaches the inbox.

use crate::config::{self, Config};
use crate::insight::Insight;
use crate::ledger::Ledger;
use crate::matcher::Event;
use crate::outcome::{Outcome, Placement};
use crate::probe::run_once;
use crate::quote::quote;
use crate::runtime::{self, Generation, Runtime, preflight};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

/// Whether the live progress line (no newline yet) is on the terminal.
static PROGRESS_LINE: AtomicBool = AtomicBool::new(false);

/// Where `check`'s log lines go: standard error, each line whole, and never
/// into the middle of the live progress line on standard output (which is
/// cleared first, and redrawn at the next tick).
#[derive(Clone, Copy)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if PROGRESS_LINE.swap(false, Ordering::SeqCst) {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"\r\x1b[K");
            let _ = out.flush();
        }
        std::io::stderr().lock().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        *self
    }
}

/// Runs the check and prints as it goes. Err only when it could not start.
pub async fn check(config_path: &Path, probe: &str) -> Result<Outcome, String> {
    let config = config::load(config_path).map_err(|e| e.to_string())?;
    let Some(route) = config.route(probe).cloned() else {
        let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        return Err(format!("no probe named {probe:?} in {}; probes: {}", config_path.display(), names.join(", ")));
    };
    let one = Config { routes: vec![route.clone()], ..config };
    preflight(&one)?;
    let mut rt = Runtime::with_ledger(&one, Ledger::in_memory().map_err(|e| e.to_string())?)?;
    // Its own instance name, so that a service of this instance watching the
    // same inbox does not count this canary as one it never sent.
    rt.instance = crate::canary::check_instance(&rt.instance);
    let stop = watch::channel(false).0;
    let mut generation = Generation::default();
    generation.watch(&one, &rt)?;
    let inbox = generation.inbox(&route.inbox).ok_or("validated config names a known inbox")?;
    let probe = runtime::probe(&one, &route, &runtime::providers(&one)?, inbox)?;
    rt.matcher.add_route(&route);
    let mut events = rt.matcher.subscribe();
    let ticker = rt.quick_ticker(stop.subscribe());
    let ctx = rt.probe_context(&one, 1);
    println!("check {}: {} → {} <{}>", route.name, route.provider, route.inbox, probe.to);
    match &route.trigger {
        Some(t) => println!("  triggering {} ({} {}) …", t.name, t.method, route.name),
        None => println!("  sending through {} …", route.provider),
    }
    let start = Instant::now();
    let verdict = match run_once(&probe, &ctx, false).await {
        None => Err("the canary could not be recorded; nothing was sent".to_string()),
        Some(id) => Ok(follow(&mut events, &id, &route.inbox, route.timeout, start).await),
    };
    stop.send_replace(true);
    generation.stop_watchers().await;
    let _ = ticker.await;
    verdict
}

/// Prints the canary's events until it is resolved.
async fn follow(
    events: &mut broadcast::Receiver<Event>,
    id: &str,
    inbox: &str,
    timeout: Duration,
    start: Instant,
) -> Outcome {
    let mut f = Following { inbox, timeout, start, live: std::io::stdout().is_terminal(), send_seconds: 0.0 };
    let every = if f.live { Duration::from_millis(250) } else { Duration::from_secs(5) };
    let mut progress = tokio::time::interval(every);
    progress.tick().await;
    // The matcher counts it lost at the deadline; this is only a backstop.
    let backstop = tokio::time::sleep(timeout + Duration::from_secs(5));
    tokio::pin!(backstop);
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Outcome::Lost,
            },
            _ = progress.tick() => {
                f.progress();
                continue;
            }
            _ = &mut backstop => {
                PROGRESS_LINE.store(false, Ordering::SeqCst);
                println!("\n  ✗ not seen within {} s", timeout.as_secs());
                return Outcome::Lost;
            }
        };
        match event {
            Event::Sent { canary, provider_id, send_seconds, .. } if canary == id => {
                f.accepted(send_seconds, provider_id);
            }
            Event::Settled { canary, outcome, insight, .. } if canary == id => {
                f.verdict(&outcome, &insight);
                return outcome;
            }
            _ => {}
        }
    }
}

/// What `check` has printed of its canary so far.
struct Following<'a> {
    inbox: &'a str,
    timeout: Duration,
    start: Instant,
    /// Standard output is a terminal: the progress is one line, redrawn.
    live: bool,
    /// How long the provider took to accept it; 0 until it did.
    send_seconds: f64,
}

impl Following<'_> {
    /// How long it has been waited for, once accepted.
    fn progress(&self) {
        if self.send_seconds == 0.0 {
            return;
        }
        let waited = self.start.elapsed().as_secs_f64() - self.send_seconds;
        if self.live {
            print!("\r  waiting for it in {}: {waited:.1} s of {} s ", self.inbox, self.timeout.as_secs());
            let _ = std::io::stdout().flush();
            PROGRESS_LINE.store(true, Ordering::SeqCst);
        } else {
            println!("  still waiting in {}: {waited:.0} s", self.inbox);
        }
    }

    fn accepted(&mut self, send_seconds: f64, provider_id: Option<String>) {
        self.send_seconds = send_seconds;
        let queued = provider_id.map(|q| format!(" (id {})", quote(&q))).unwrap_or_default();
        println!("  ✓ accepted in {send_seconds:.3} s{queued}");
        println!("  waiting for it in {} (timeout {} s) …", self.inbox, self.timeout.as_secs());
    }

    /// Ends the live progress line, when one is shown, before a line of ours.
    fn clear(&self) -> &'static str {
        if self.live && PROGRESS_LINE.swap(false, Ordering::SeqCst) { "\r\x1b[K" } else { "" }
    }

    fn verdict(&self, outcome: &Outcome, insight: &Insight) {
        let (clear, send_seconds, total) = (self.clear(), self.send_seconds, self.start.elapsed().as_secs_f64());
        match outcome {
            Outcome::Refused { reason, detail } => println!("{clear}  ✗ not accepted: {reason}: {}", quote(detail)),
            Outcome::Delivered { placement, latency_seconds, .. } => {
                let mark = if *placement == Placement::Inbox { "✓" } else { "✗" };
                println!("{clear}  {mark} delivered to {} in {latency_seconds:.3} s", placement.as_str());
                print_insight(insight);
                println!("timing:");
                println!("  submit → accepted   {send_seconds:>9.3} s");
                println!("  accepted → seen     {latency_seconds:>9.3} s");
                println!("  total               {total:>9.3} s");
            }
            Outcome::Bounced { bounce } => {
                println!("{clear}  ✗ bounced: {}", quote(&bounce.summary()));
                if let Some(mta) = bounce.remote_mta.as_deref().or(bounce.reporting_mta.as_deref()) {
                    println!("  reported by {}", quote(mta));
                }
                println!("timing:");
                println!("  submit → accepted   {send_seconds:>9.3} s");
                println!("  accepted → bounce   {:>9.3} s", total - send_seconds);
            }
            Outcome::Lost | Outcome::Late { .. } => {
                println!("{clear}  ✗ lost: not seen within {} s", self.timeout.as_secs())
            }
            Outcome::Mismatched { expectation, placement, latency_seconds } => println!(
                "{clear}  ✗ arrived in {} in {latency_seconds:.3} s, but failed its expectation: {}",
                placement.as_str(),
                expectation.as_str()
            ),
        }
    }
}

/// The path and the receiving server's verdicts of a canary seen.
fn print_insight(insight: &Insight) {
    if !insight.hops.is_empty() {
        println!("path (Received, oldest first):");
        for line in crate::report::path_lines(&insight.hops) {
            println!("  {line}");
        }
    }
    if !insight.verdicts.is_empty() {
        let verdicts: Vec<String> = insight.verdicts.iter().map(|v| format!("{}={}", v.method, v.result)).collect();
        println!("authentication: {}", verdicts.join(" "));
    }
}
