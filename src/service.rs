//! `mailcanary run`: wires config, ledger, matcher, watchers, providers,
//! schedules and the HTTP server together; reloads on SIGHUP or
//! `POST /-/reload` (a bad config is refused and the old one keeps
//! running); drains on SIGTERM so no canary in hand is left unrecorded.

use crate::canary::SigningKey;
use crate::config::{self, Config};
use crate::inbox::{self, InboxHandle, Shared};
use crate::ledger::Ledger;
use crate::matcher::Matcher;
use crate::metrics::Metrics;
use crate::probe::{Probe, ProbeContext};
use crate::provider::AnyProvider;
use crate::server::{self, AppState, ReloadRequest};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

/// How long SIGTERM waits for canaries in flight to arrive before exiting
/// (they stay in the ledger and are resolved after the next start).
const DRAIN: Duration = Duration::from_secs(10);

/// What outlives a reload: the ledger, the metrics, the matcher.
pub struct Runtime {
    pub instance: String,
    pub key: SigningKey,
    pub ledger: Arc<Ledger>,
    pub metrics: Arc<Metrics>,
    pub matcher: Arc<Matcher>,
}

impl Runtime {
    /// Opens the ledger under `state_dir` and loads the signing key.
    pub fn open(config: &Config) -> Result<Runtime, String> {
        let ledger = Ledger::open(&config.global.state_dir)
            .map_err(|e| format!("cannot open the ledger in {}: {e}", config.global.state_dir.display()))?;
        Self::with_ledger(config, Arc::new(ledger))
    }

    /// A runtime over a given ledger.
    pub fn with_ledger(config: &Config, ledger: Arc<Ledger>) -> Result<Runtime, String> {
        let key = signing_key(config)?;
        let metrics = Arc::new(Metrics::new());
        let matcher = Arc::new(Matcher::new(ledger.clone(), metrics.clone()));
        Ok(Runtime { instance: config.instance(), key, ledger, metrics, matcher })
    }
}

/// The signing key from config, or from its file (created if missing).
pub fn signing_key(config: &Config) -> Result<SigningKey, String> {
    if let Some(key) = &config.global.signing_key {
        return Ok(SigningKey::new(key.clone()));
    }
    let path = config.global.signing_key_file.clone().unwrap_or_else(|| config.global.state_dir.join("signing.key"));
    SigningKey::load_or_create(&path).map_err(|e| format!("signing key {}: {e}", path.display()))
}

/// Everything one config runs; replaced whole on reload.
pub struct Generation {
    stop_routes: watch::Sender<bool>,
    stop_watchers: watch::Sender<bool>,
    routes: Vec<JoinHandle<()>>,
    watchers: Vec<JoinHandle<()>>,
}

/// The probes of `config`, each with its provider and inbox handle.
pub fn probes(config: &Config, inboxes: &HashMap<String, InboxHandle>) -> Result<Vec<Arc<Probe>>, String> {
    let mut providers: HashMap<&str, Arc<AnyProvider>> = HashMap::new();
    for p in &config.providers {
        providers.insert(p.name(), Arc::new(AnyProvider::build(p).map_err(|e| format!("provider {}: {e}", p.name()))?));
    }
    config
        .routes
        .iter()
        .map(|route| {
            let provider = config.provider(&route.provider).ok_or("validated config names a known provider")?;
            let inbox = config.inbox(&route.inbox).ok_or("validated config names a known inbox")?;
            Ok(Arc::new(Probe {
                route: route.clone(),
                provider: providers[route.provider.as_str()].clone(),
                inbox: inboxes[route.inbox.as_str()].clone(),
                from: provider.from().to_string(),
                to: inbox.address.clone(),
                return_path: provider.bounce_inbox().and_then(|b| config.inbox(b)).map(|b| b.address.clone()),
            }))
        })
        .collect()
}

/// The running watchers: a handle per inbox name, and their tasks.
pub type Watchers = (HashMap<String, InboxHandle>, Vec<JoinHandle<()>>);

/// Starts watchers for every inbox a route uses.
pub fn watch_inboxes(config: &Config, rt: &Runtime, stop: &watch::Sender<bool>) -> Result<Watchers, String> {
    let shared = Arc::new(Shared {
        instance: rt.instance.clone(),
        keys: std::iter::once(rt.key.clone())
            .chain(config.global.retired_signing_keys.iter().cloned().map(SigningKey::new))
            .collect(),
        matcher: rt.matcher.clone(),
        metrics: rt.metrics.clone(),
        ledger: rt.ledger.clone(),
        fast_poll: config.global.fast_poll.clone(),
    });
    let mut handles = HashMap::new();
    let mut tasks = Vec::new();
    // Inboxes that routes end in, and those still awaiting canaries of routes
    // a reload removed, so that those are resolved rather than lost.
    // Bounce inboxes of the providers routes use.
    let bounces = |i: &crate::config::InboxConfig| {
        config.routes.iter().any(|r| config.provider(&r.provider).and_then(|p| p.bounce_inbox()) == Some(&i.name))
    };
    let watched = |i: &&crate::config::InboxConfig| {
        config.routes.iter().any(|r| r.inbox == i.name) || rt.matcher.waiting_in(&i.name) > 0 || bounces(i)
    };
    for inbox in config.inboxes.iter().filter(watched) {
        let (handle, task) = inbox::spawn(inbox.clone(), bounces(inbox), shared.clone(), stop.subscribe())?;
        handles.insert(inbox.name.clone(), handle);
        tasks.push(task);
    }
    Ok((handles, tasks))
}

impl Generation {
    /// Starts watchers and schedules for `config`.
    pub fn start(config: &Config, rt: &Runtime) -> Result<Generation, String> {
        let stop_watchers = watch::channel(false).0;
        let (inboxes, watchers) = watch_inboxes(config, rt, &stop_watchers)?;
        let probes = match probes(config, &inboxes) {
            Ok(probes) => probes,
            Err(e) => {
                stop_watchers.send_replace(true);
                return Err(e);
            }
        };
        for route in &config.routes {
            rt.matcher.add_route(route);
        }
        let ctx = Arc::new(ProbeContext {
            instance: rt.instance.clone(),
            key: rt.key.clone(),
            operator: config.global.operator.clone(),
            matcher: rt.matcher.clone(),
            sends: Arc::new(Semaphore::new(config.global.max_concurrent_sends)),
        });
        let stop_routes = watch::channel(false).0;
        let routes =
            probes.into_iter().map(|p| crate::scheduler::spawn(p, ctx.clone(), stop_routes.subscribe())).collect();
        Ok(Generation { stop_routes, stop_watchers, routes, watchers })
    }

    /// Stops scheduling; returns once every canary in hand is recorded.
    pub async fn stop_routes(&mut self) {
        self.stop_routes.send_replace(true);
        for task in self.routes.drain(..) {
            let _ = task.await;
        }
    }

    /// Stops the inbox watchers.
    pub async fn stop_watchers(&mut self) {
        self.stop_watchers.send_replace(true);
        for task in self.watchers.drain(..) {
            let _ = task.await;
        }
    }
}

/// Counts lost canaries and refreshes gauges every second; prunes the
/// ledger every hour.
fn spawn_ticker(
    matcher: Arc<Matcher>,
    ledger: Arc<Ledger>,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            matcher.tick();
            if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                last_prune = Some(Instant::now());
                let before = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
                match ledger.prune(before) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(canaries = n, "pruned the ledger"),
                    Err(e) => tracing::error!(error = %e, "ledger prune failed"),
                }
            }
        }
    })
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn run(config_path: PathBuf) -> Result<(), String> {
    let mut config = config::load(&config_path).map_err(|e| e.to_string())?;
    let rt = Runtime::open(&config)?;
    rt.metrics.config_reload_ok.set(1);
    match rt.matcher.resume() {
        Ok(0) => {}
        Ok(n) => tracing::info!(canaries = n, "resumed canaries in flight from the ledger"),
        Err(e) => return Err(format!("cannot read the ledger: {e}")),
    }
    let listener = tokio::net::TcpListener::bind(&config.global.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.global.listen))?;
    let mut generation = Generation::start(&config, &rt)?;
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let state = Arc::new(AppState {
        instance: rt.instance.clone(),
        metrics: rt.metrics.clone(),
        matcher: rt.matcher.clone(),
        ready: true.into(),
        reload: reload_tx,
    });
    let (stop_tx, stop) = watch::channel(false);
    let server = tokio::spawn(server::serve(listener, state.clone(), stop.clone()));
    let ticker = spawn_ticker(rt.matcher.clone(), rt.ledger.clone(), config.global.retention, stop);
    tracing::info!(
        listen = %config.global.listen,
        instance = %rt.instance,
        routes = config.routes.len(),
        inboxes = config.inboxes.len(),
        "mailcanary running"
    );

    let mut sighup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let reply = tokio::select! {
            _ = sighup.recv() => None,
            Some(reply) = reload_rx.recv() => Some(reply),
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let result = reload(&config_path, &config, &rt, &mut generation).await;
        match &result {
            Ok(new) => {
                config = new.clone();
                rt.metrics.config_reload_ok.set(1);
                tracing::info!(routes = config.routes.len(), "config reloaded");
            }
            Err(e) => {
                rt.metrics.config_reload_ok.set(0);
                tracing::error!(error = %e, "config reload refused; the old config keeps running");
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(result.map(drop));
        }
    }

    tracing::info!("draining: no new canaries; waiting up to {DRAIN:?} for those in flight");
    state.ready.store(false, Ordering::Relaxed);
    generation.stop_routes().await;
    let deadline = Instant::now() + DRAIN;
    while Instant::now() < deadline && config.inboxes.iter().any(|i| rt.matcher.waiting_in(&i.name) > 0) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    generation.stop_watchers().await;
    stop_tx.send_replace(true);
    let _ = tokio::join!(server, ticker);
    rt.matcher.tick();
    tracing::info!("stopped");
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(kind).map_err(|e| format!("cannot install signal handler: {e}"))
}

/// Loads the config again; if it is valid, replaces the running generation.
async fn reload(path: &Path, old: &Config, rt: &Runtime, generation: &mut Generation) -> Result<Config, String> {
    let new = config::load(path).map_err(|e| e.to_string())?;
    if new.instance() != old.instance()
        || new.global.state_dir != old.global.state_dir
        || new.global.listen != old.global.listen
        || new.global.signing_key_file != old.global.signing_key_file
        || new.global.signing_key != old.global.signing_key
    {
        tracing::warn!("changes to global instance, state_dir, listen or signing key take effect on restart");
    }
    // Everything that can fail is tried before the old config is stopped.
    preflight(&new)?;
    // One watcher per inbox at a time, or a canary could be seen twice.
    generation.stop_routes().await;
    generation.stop_watchers().await;
    match Generation::start(&new, rt) {
        Ok(next) => {
            *generation = next;
            Ok(new)
        }
        Err(e) => {
            *generation = Generation::start(old, rt)?;
            Err(e)
        }
    }
}

/// Builds every provider and TLS set-up of `config` without starting anything.
pub fn preflight(config: &Config) -> Result<(), String> {
    for p in &config.providers {
        AnyProvider::build(p).map_err(|e| format!("provider {}: {e}", p.name()))?;
    }
    for i in &config.inboxes {
        crate::tls::client_config(i.imap.ca_file.as_deref(), i.imap.insecure_skip_verify)
            .map_err(|e| format!("inbox {}: {e}", i.name))?;
    }
    Ok(())
}
