//! `mailcanary run`: the runtime (crate::runtime) behind the HTTP
//! listeners and the steering signals; reloads on SIGHUP or
//! `POST /-/reload` (all or nothing: a bad config is refused and the old
//! one keeps running, untouched); drains on SIGTERM so no canary in hand is
//! left unrecorded.

use crate::config::{self, Config};
use crate::listener::web::Web;
use crate::runtime::{Generation, Runtime, preflight};
use crate::server::{self, AppState, ReloadRequest};
use crate::status_page::StatusPage;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long SIGTERM waits, in all, for canaries in hand to be answered and
/// those in flight to arrive (the rest are picked up from the ledger at the
/// next start). A second signal stops at once.
pub const DRAIN: Duration = Duration::from_secs(10);
/// Of the drain, how long a send in hand may take before it is given up.
const SEND_GRACE: Duration = Duration::from_secs(5);

/// Starts the steering signals `global.failover` names (crate::steer):
/// HAProxy's agent, the Postfix table, the socketmap.
async fn start_signals(
    config: &Config,
    rt: &Runtime,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let Some(failover) = &config.global.failover else { return Ok(Vec::new()) };
    let bind = |key: &'static str, listen: String| async move {
        tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("global.failover.{key}: cannot listen on {listen}: {e}"))
    };
    let mut tasks = Vec::new();
    if let Some(listen) = &failover.agent {
        let listener = bind("agent", listen.clone()).await?;
        tracing::info!(listen = %listen, "answering HAProxy's agent checks");
        tasks.push(tokio::spawn(crate::steer::agent::serve(listener, rt.health.steering(), stop.clone())));
    }
    if let Some(path) = &failover.postfix_map {
        tracing::info!(table = %crate::steer::postfix_map::cdb_path(path).display(), "keeping Postfix's table of the best next hop");
        tasks.push(tokio::spawn(crate::steer::postfix_map::keep(path.clone(), rt.health.steering(), stop.clone())));
    }
    if let Some(listen) = &failover.socketmap {
        let listener = bind("socketmap", listen.clone()).await?;
        tracing::info!(listen = %listen, map = crate::socketmap::MAP, "answering Postfix's socketmap lookups");
        tasks.push(tokio::spawn(crate::socketmap::serve(listener, rt.health.steering(), stop.clone())));
    }
    Ok(tasks)
}

/// Has the C allocator give large buffers back to the system when they are
/// freed. By default glibc raises its threshold for mapping a buffer of its
/// own to the largest one freed, so after the first scrape each worker
/// thread's heap keeps a `/metrics` exposition's worth (3 MB at 1,000
/// routes) for good. With the threshold fixed, a buffer past 1 MB is mapped
/// for its use and unmapped after (docs/performance.md, 2e).
///
/// # Safety
///
/// To be called while the process has one thread: glibc's parameters are
/// not guarded against threads that allocate meanwhile.
pub unsafe fn return_large_buffers() {
    #[cfg(target_env = "gnu")]
    // SAFETY: the caller runs it before any other thread exists; mallopt
    // only sets a parameter, and returns 0 for one it does not know, which
    // changes nothing.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn run(config_path: PathBuf) -> Result<(), String> {
    match crate::listener::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let mut config = config::load(&config_path).map_err(|e| e.to_string())?;
    preflight(&config)?;
    let rt = resume(&config).await?;
    // Listening first: a port taken stops the start before anything runs.
    let main = listen(&config).await?;
    let mut generation = Generation::default();
    generation.apply(&config, &rt).await?;
    if let Err(e) = rt.health.restore().await {
        tracing::error!(error = %e, "cannot read the providers' last states from the ledger");
    }
    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let (stop_tx, stop) = watch::channel(false);
    let (state, status_page, mut tasks) = serve(main, &config, &rt, reload_tx, &stop).await?;
    tasks.extend(crate::traffic::start(&config, &rt.ledger, &rt.health, &rt.metrics, &rt.key, &stop).await?);
    tasks.push(rt.ticker(&config, stop));
    tracing::info!(
        listen = %config.global.listen,
        instance = %rt.instance,
        routes = config.routes.len(),
        inboxes = config.inboxes.len(),
        "mailcanary running"
    );
    let mut signals = Signals::install()?;
    let mut reloads = Reloads { path: &config_path, rt: &rt, status_page: &status_page, requests: reload_rx };
    reloads.until_stopped(&mut config, &mut generation, &mut signals).await;
    state.ready.store(false, Ordering::Relaxed);
    drain(&rt, &mut generation, &mut signals).await;
    stop_tx.send_replace(true);
    futures::future::join_all(tasks).await;
    rt.matcher.tick().await;
    // What was written behind (cursors, acceptances) is on disk before the end.
    if let Err(e) = rt.ledger.flush().await {
        tracing::error!(error = %e, "ledger: the last writes may be lost");
    }
    tracing::info!(
        in_flight = rt.matcher.in_flight(),
        "stopped; canaries still in flight are picked up from the ledger at the next start"
    );
    Ok(())
}

/// Opens the runtime of `config` and takes back the canaries the ledger
/// still has in flight.
async fn resume(config: &Config) -> Result<Runtime, String> {
    let rt = Runtime::open(config)?;
    rt.metrics.config_reload_ok.set(1);
    match rt.matcher.resume().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            canaries = n,
            "resumed canaries in flight from the ledger; each is judged once its inbox has been looked at"
        ),
        Err(e) => return Err(format!("cannot read the ledger: {e}")),
    }
    Ok(rt)
}

/// The main listener and its web configuration (TLS, basic auth).
async fn listen(config: &Config) -> Result<(Web, TcpListener), String> {
    let web = match &config.global.web.config_file {
        Some(path) => Web::load(path).map_err(|e| format!("global.web.config_file: {e}"))?,
        None => Web::default(),
    };
    let listener = TcpListener::bind(&config.global.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.global.listen))?;
    Ok((web, listener))
}

/// Serves the main listener, starts the status page's own listener and
/// the steering signals; their tasks end when `stop` says so.
async fn serve(
    (web, listener): (Web, TcpListener),
    config: &Config,
    rt: &Runtime,
    reload: mpsc::Sender<ReloadRequest>,
    stop: &watch::Receiver<bool>,
) -> Result<(Arc<AppState>, Arc<StatusPage>, Vec<JoinHandle<()>>), String> {
    let status_page =
        Arc::new(StatusPage::new(rt.instance.clone(), &rt.key, (rt.matcher.clone(), rt.health.clone()), config));
    // The first read of the history is the long one: done now, not by the first viewer.
    let warm = status_page.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.snapshot().await {
            tracing::warn!(error = %e, "status page: cannot read the ledger's history yet");
        }
    });
    let state = Arc::new(AppState {
        instance: rt.instance.clone(),
        metrics: rt.metrics.clone(),
        matcher: rt.matcher.clone(),
        health: rt.health.clone(),
        ready: true.into(),
        reload,
        status_page: status_page.clone(),
        authenticated: web.requires_auth(),
    });
    let limits = config.global.web.limits();
    let mut tasks = vec![tokio::spawn(server::serve(listener, state.clone(), limits, web, stop.clone()))];
    tasks.extend(start_signals(config, rt, stop).await?);
    if let Some(listen) = &config.global.status_page.listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("global.status_page.listen: cannot listen on {listen}: {e}"))?;
        tracing::info!(listen = %listen, "serving the status page on its own listener");
        let own = Arc::new(status_page.for_own_listener());
        tasks.push(tokio::spawn(server::serve_status_page(listener, own, limits, stop.clone())));
    }
    Ok((state, status_page, tasks))
}

/// The signals the service answers: SIGHUP reloads, SIGTERM and SIGINT stop.
struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        let signal =
            |kind| tokio::signal::unix::signal(kind).map_err(|e| format!("cannot install signal handler: {e}"));
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves at the next SIGTERM or SIGINT.
    async fn stop(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// What a reload needs: where the config is, what it changes, who asks.
struct Reloads<'a> {
    path: &'a Path,
    rt: &'a Runtime,
    status_page: &'a StatusPage,
    requests: mpsc::Receiver<ReloadRequest>,
}

impl Reloads<'_> {
    /// Reloads at each SIGHUP or request until a stop signal.
    async fn until_stopped(&mut self, config: &mut Config, generation: &mut Generation, signals: &mut Signals) {
        loop {
            let reply = tokio::select! {
                _ = signals.hangup.recv() => None,
                Some(reply) = self.requests.recv() => Some(reply),
                _ = signals.terminate.recv() => return,
                _ = signals.interrupt.recv() => return,
            };
            let result = reload(self.path, config, self.rt, generation).await;
            match &result {
                Ok(new) => {
                    *config = new.clone();
                    self.status_page.configure(config).await;
                    self.rt.metrics.config_reload_ok.set(1);
                    tracing::info!(routes = config.routes.len(), "config reloaded");
                }
                Err(e) => {
                    self.rt.metrics.config_reload_ok.set(0);
                    tracing::error!(error = %e, "config reload refused; the old config keeps running");
                }
            }
            if let Some(reply) = reply {
                let _ = reply.send(result.map(drop));
            }
        }
    }
}

/// Stops scheduling and waits, up to DRAIN, for canaries in hand to be
/// answered, watched ones in flight to arrive and those seen to be
/// cleaned up; a second signal stops
/// at once. Then stops the routes and the watchers for good.
async fn drain(rt: &Runtime, generation: &mut Generation, signals: &mut Signals) {
    tracing::info!(
        in_flight = rt.matcher.in_flight(),
        "draining: no new canaries; waiting up to {}s for those in hand and in flight (a second signal stops at once)",
        DRAIN.as_secs()
    );
    let deadline = Instant::now() + DRAIN;
    let waiting = async {
        generation.stop_routes(SEND_GRACE).await;
        // Waiting is worth it only for canaries someone is watching for,
        // and for the cleanup of those seen (crate::inbox's cleanup.rs).
        while (rt.matcher.in_flight_watched() > 0 || generation.cleanups() > 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        _ = waiting => {}
        _ = tokio::time::sleep_until(deadline) => {}
        _ = signals.stop() => tracing::info!("second signal: stopping now"),
    }
    generation.stop_routes(Duration::ZERO).await;
    rt.health.stop_judging();
    generation.stop_watchers().await;
}

/// Loads the config again; if all of it can run, applies it.
async fn reload(path: &Path, old: &Config, rt: &Runtime, generation: &mut Generation) -> Result<Config, String> {
    let new = config::load(path).map_err(|e| e.to_string())?;
    if new.instance() != old.instance()
        || new.global.state_dir != old.global.state_dir
        || new.global.listen != old.global.listen
        || new.global.status_page.listen != old.global.status_page.listen
        || new.global.signing_key_file != old.global.signing_key_file
        || new.global.signing_key != old.global.signing_key
    {
        tracing::warn!(
            "changes to global instance, state_dir, listen, status_page.listen or signing key take effect on restart"
        );
    }
    preflight(&new)?;
    generation.apply(&new, rt).await?;
    Ok(new)
}
