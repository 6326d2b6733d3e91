//! `mailcanary run`: wires config, ledger, matcher, watchers, providers,
//! schedules and the HTTP server together; reloads on SIGHUP or
//! `POST /-/reload` (all or nothing: a bad config is refused and the old
//! one keeps running, untouched); drains on SIGTERM so no canary in hand is
//! left unrecorded.

use crate::canary::SigningKey;
use crate::config::{self, Config, InboxConfig, ProviderConfig, Route};
use crate::inbox::{self, InboxHandle, Shared};
use crate::ledger::{Ledger, LedgerThread};
use crate::matcher::Matcher;
use crate::metrics::Metrics;
use crate::probe::{Probe, ProbeContext};
use crate::provider::AnyProvider;
use crate::scheduler::Stop;
use crate::server::{self, AppState, ReloadRequest};
use crate::shutdown::stopped;
use crate::status_page::StatusPage;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long SIGTERM waits, in all, for canaries in hand to be answered and
/// those in flight to arrive (the rest are picked up from the ledger at the
/// next start). A second signal stops at once.
pub const DRAIN: Duration = Duration::from_secs(10);
/// Of the drain, how long a send in hand may take before it is given up.
const SEND_GRACE: Duration = Duration::from_secs(5);

/// What outlives a reload: the ledger, the metrics, the matcher.
pub struct Runtime {
    pub instance: String,
    pub key: SigningKey,
    pub ledger: LedgerThread,
    pub metrics: Arc<Metrics>,
    pub matcher: Arc<Matcher>,
}

impl Runtime {
    /// Opens the ledger under `state_dir` and loads the signing key.
    pub fn open(config: &Config) -> Result<Runtime, String> {
        let ledger = Ledger::open(&config.global.state_dir)
            .map_err(|e| format!("cannot open the ledger in {}: {e}", config.global.state_dir.display()))?;
        Self::with_ledger(config, ledger)
    }

    /// A runtime over a given ledger, which moves to a thread of its own.
    pub fn with_ledger(config: &Config, ledger: Ledger) -> Result<Runtime, String> {
        let key = signing_key(config)?;
        let ledger = LedgerThread::spawn(ledger);
        let metrics = Arc::new(Metrics::new());
        let matcher = Arc::new(Matcher::new(ledger.clone(), metrics.clone()));
        Ok(Runtime { instance: config.instance(), key, ledger, metrics, matcher })
    }

    /// What the watchers of `config` share.
    pub fn shared(&self, config: &Config) -> Arc<Shared> {
        Arc::new(Shared {
            instance: self.instance.clone(),
            keys: std::iter::once(self.key.clone())
                .chain(config.global.retired_signing_keys.iter().cloned().map(SigningKey::new))
                .collect(),
            matcher: self.matcher.clone(),
            metrics: self.metrics.clone(),
            ledger: self.ledger.clone(),
            fast_poll: config.global.fast_poll.clone(),
        })
    }
}

/// The signing key from config, or from its file (created if missing).
pub fn signing_key(config: &Config) -> Result<SigningKey, String> {
    config.signing_key()
}

/// Builds every provider and every inbox client of `config` without
/// starting anything: what `validate` checks, and what a reload tries
/// before it touches what runs.
pub fn preflight(config: &Config) -> Result<(), String> {
    let mut errors = Vec::new();
    for p in &config.providers {
        if let Err(e) = AnyProvider::build(p) {
            errors.push(format!("provider {}: {e}", p.name()));
        }
    }
    for t in config.routes.iter().filter_map(|r| r.trigger.as_deref()) {
        if let Err(e) = AnyProvider::trigger(t) {
            errors.push(format!("trigger {}: {e}", t.name));
        }
    }
    for i in &config.inboxes {
        if let Err(e) = inbox::clients(i) {
            errors.push(e);
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// A running inbox watcher and what it was started from.
struct Watching {
    config: InboxConfig,
    bounces: bool,
    handle: InboxHandle,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A running route and what it was started from.
struct Routing {
    route: Route,
    /// None for an application trigger: the route holds its config.
    provider: Option<ProviderConfig>,
    to: String,
    return_path: Option<String>,
    schedule: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Everything a config runs: a watcher per inbox in use, a task per route.
/// A reload changes only what the new config changes.
#[derive(Default)]
pub struct Generation {
    watchers: HashMap<String, Watching>,
    routes: HashMap<String, Routing>,
}

/// The inboxes `config` needs watched: those routes end in, the bounce
/// inboxes of the providers routes use, and those still awaiting canaries
/// (of a route a reload removed), with whether each reads bounces.
pub fn watched(config: &Config, matcher: &Matcher) -> Vec<(InboxConfig, bool)> {
    let bounces = |i: &InboxConfig| {
        config.routes.iter().any(|r| config.provider(&r.provider).and_then(|p| p.bounce_inbox()) == Some(&i.name))
    };
    config
        .inboxes
        .iter()
        .filter(|i| config.routes.iter().any(|r| r.inbox == i.name) || matcher.waiting_in(&i.name) > 0 || bounces(i))
        .map(|i| (i.clone(), bounces(i)))
        .collect()
}

impl Generation {
    /// Makes `config` the one that runs. Everything that can fail is built
    /// first; only if all of it succeeds is anything stopped or started, and
    /// then only what `config` changes: watchers and routes that stay the
    /// same keep running, with their sessions and their cadence.
    pub async fn apply(&mut self, config: &Config, rt: &Runtime) -> Result<(), String> {
        let shared = rt.shared(config);
        // 1. Build: new or changed watchers, every provider of a route.
        let mut prepared = Vec::new();
        for (inbox, bounces) in watched(config, &rt.matcher) {
            let same = self.watchers.get(&inbox.name).is_some_and(|w| w.config == inbox && w.bounces == bounces);
            if !same {
                prepared.push(inbox::prepare(inbox.clone(), bounces, shared.clone()).map(|p| (inbox, bounces, p)));
            }
        }
        let prepared: Vec<_> = prepared.into_iter().collect::<Result<_, _>>()?;
        let mut providers: HashMap<&str, Arc<AnyProvider>> = HashMap::new();
        for p in &config.providers {
            let built = AnyProvider::build(p).map_err(|e| format!("provider {}: {e}", p.name()))?;
            providers.insert(p.name(), Arc::new(built));
        }

        // 2. Stop what goes or changes. A changed inbox's watcher stops
        // before its successor starts: one watcher per inbox at a time.
        let keep_inboxes: Vec<String> = watched(config, &rt.matcher).into_iter().map(|(i, _)| i.name).collect();
        let restarted: Vec<String> = prepared.iter().map(|(i, _, _)| i.name.clone()).collect();
        let same_route = |name: &str, r: &Routing| {
            config.route(name).is_some_and(|route| {
                *route == r.route
                    && config.provider(&route.provider) == r.provider.as_ref()
                    && config.inbox(&route.inbox).map(|i| &i.address) == Some(&r.to)
                    && return_path(config, route) == r.return_path
                    && !restarted.contains(&route.inbox)
            })
        };
        let mut stopping: Vec<JoinHandle<()>> = Vec::new();
        for (_, r) in self.routes.extract_if(|name, r| !same_route(name, r)) {
            r.stop_now();
            stopping.push(r.task);
        }
        for (_, w) in self.watchers.extract_if(|name, _| !keep_inboxes.contains(name) || restarted.contains(name)) {
            w.stop.send_replace(true);
            stopping.push(w.task);
        }
        futures::future::join_all(stopping).await;

        // 3. Start what is new.
        for (inbox, bounces, prepared) in prepared {
            let stop = watch::channel(false).0;
            let (handle, task) = prepared.start(stop.subscribe());
            self.watchers.insert(inbox.name.clone(), Watching { config: inbox, bounces, handle, stop, task });
        }
        let ctx = Arc::new(ProbeContext {
            instance: rt.instance.clone(),
            key: rt.key.clone(),
            operator: config.global.operator.clone(),
            matcher: rt.matcher.clone(),
            sends: Arc::new(Semaphore::new(config.global.max_concurrent_sends)),
        });
        rt.matcher.configure_metrics(config.global.metrics.detail());
        for route in &config.routes {
            rt.matcher.add_route(route);
            if self.routes.contains_key(&route.name) {
                continue;
            }
            let provider = config.provider(&route.provider);
            let inbox = config.inbox(&route.inbox).ok_or("validated config names a known inbox")?;
            let (sender, from) = match (&route.trigger, provider) {
                (Some(t), _) => {
                    let built = AnyProvider::trigger(t).map_err(|e| format!("trigger {}: {e}", t.name))?;
                    (Arc::new(built), String::new())
                }
                (None, Some(p)) => (providers[route.provider.as_str()].clone(), p.from().to_string()),
                (None, None) => return Err("validated config names a known provider".into()),
            };
            let probe = Arc::new(Probe {
                route: route.clone(),
                provider: sender,
                inbox: self.watchers[&route.inbox].handle.clone(),
                from,
                to: inbox.address.clone(),
                return_path: return_path(config, route),
            });
            self.routes.insert(route.name.clone(), Routing::start(probe, ctx.clone(), provider.cloned(), rt));
        }
        rt.matcher.retain_routes(&config.routes);
        rt.matcher.configure_health(config);
        Ok(())
    }

    /// The handle of the watcher of `inbox`, if it is watched.
    pub fn inbox(&self, inbox: &str) -> Option<&InboxHandle> {
        self.watchers.get(inbox).map(|w| &w.handle)
    }

    /// Stops scheduling; gives sends in hand up to `grace` to be answered,
    /// then gives them up (they stay in the ledger, in flight).
    pub async fn stop_routes(&mut self, grace: Duration) {
        for r in self.routes.values() {
            r.schedule.send_replace(true);
        }
        let stopping = self.routes.drain().map(|(_, r)| async move {
            let mut task = r.task;
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                r.abort.send_replace(true);
                let _ = task.await;
            }
        });
        futures::future::join_all(stopping).await;
    }

    /// Stops the inbox watchers, cancelling whatever they were doing.
    pub async fn stop_watchers(&mut self) {
        for w in self.watchers.values() {
            w.stop.send_replace(true);
        }
        for (_, w) in self.watchers.drain() {
            let _ = w.task.await;
        }
    }
}

impl Routing {
    fn start(probe: Arc<Probe>, ctx: Arc<ProbeContext>, provider: Option<ProviderConfig>, rt: &Runtime) -> Routing {
        let (schedule, abort) = (watch::channel(false).0, watch::channel(false).0);
        let stop = Stop { schedule: schedule.subscribe(), abort: abort.subscribe() };
        let (route, to, return_path) = (probe.route.clone(), probe.to.clone(), probe.return_path.clone());
        let task = crate::supervise::spawn(
            format!("route:{}", route.name),
            rt.metrics.clone(),
            schedule.subscribe(),
            move || crate::scheduler::run(probe.clone(), ctx.clone(), stop.clone()),
        );
        Routing { route, provider, to, return_path, schedule, abort, task }
    }

    /// Stops it now, giving up a send in hand.
    fn stop_now(&self) {
        self.schedule.send_replace(true);
        self.abort.send_replace(true);
    }
}

/// The envelope sender of `route`'s canaries: its provider's bounce inbox.
pub fn return_path(config: &Config, route: &Route) -> Option<String> {
    let provider = config.provider(&route.provider)?;
    provider.bounce_inbox().and_then(|b| config.inbox(b)).map(|b| b.address.clone())
}

/// Counts lost canaries and refreshes gauges every second; prunes the
/// ledger every hour, a batch at a time.
fn spawn_ticker(
    matcher: Arc<Matcher>,
    ledger: LedgerThread,
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
                _ = stopped(&mut stop) => return,
            }
            matcher.tick().await;
            if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                last_prune = Some(Instant::now());
                let before = chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64;
                // The canaries, and the real traffic's messages and events (crate::traffic).
                match (
                    ledger.prune(before, Ledger::prune_batch).await,
                    ledger.prune(before, Ledger::prune_traffic_batch).await,
                ) {
                    (Ok(canaries), Ok(traffic)) if canaries + traffic > 0 => {
                        tracing::info!(canaries, traffic, "pruned the ledger")
                    }
                    (Ok(_), Ok(_)) => {}
                    (Err(e), _) | (_, Err(e)) => tracing::error!(error = %e, "ledger prune failed"),
                }
            }
        }
    })
}

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
        tasks.push(tokio::spawn(crate::steer::agent::serve(listener, rt.matcher.steering(), stop.clone())));
    }
    if let Some(path) = &failover.postfix_map {
        tracing::info!(table = %crate::steer::postfix_map::cdb_path(path).display(), "keeping Postfix's table of the best next hop");
        tasks.push(tokio::spawn(crate::steer::postfix_map::keep(path.clone(), rt.matcher.steering(), stop.clone())));
    }
    if let Some(listen) = &failover.socketmap {
        let listener = bind("socketmap", listen.clone()).await?;
        tracing::info!(listen = %listen, map = crate::socketmap::MAP, "answering Postfix's socketmap lookups");
        tasks.push(tokio::spawn(crate::socketmap::serve(listener, rt.matcher.steering(), stop.clone())));
    }
    Ok(tasks)
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn run(config_path: PathBuf) -> Result<(), String> {
    match crate::listener::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let mut config = config::load(&config_path).map_err(|e| e.to_string())?;
    preflight(&config)?;
    let rt = Runtime::open(&config)?;
    rt.metrics.config_reload_ok.set(1);
    match rt.matcher.resume().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            canaries = n,
            "resumed canaries in flight from the ledger; each is judged once its inbox has been looked at"
        ),
        Err(e) => return Err(format!("cannot read the ledger: {e}")),
    }
    let web = match &config.global.web.config_file {
        Some(path) => crate::listener::web::Web::load(path).map_err(|e| format!("global.web.config_file: {e}"))?,
        None => crate::listener::web::Web::default(),
    };
    let listener = tokio::net::TcpListener::bind(&config.global.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.global.listen))?;
    let mut generation = Generation::default();
    generation.apply(&config, &rt).await?;
    if let Err(e) = rt.matcher.restore_health().await {
        tracing::error!(error = %e, "cannot read the providers' last states from the ledger");
    }
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let status_page = Arc::new(StatusPage::new(rt.instance.clone(), &rt.key, rt.matcher.clone(), &config));
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
        ready: true.into(),
        reload: reload_tx,
        status_page: status_page.clone(),
        authenticated: web.requires_auth(),
    });
    let (stop_tx, stop) = watch::channel(false);
    let limits = config.global.web.limits();
    let server = tokio::spawn(server::serve(listener, state.clone(), limits, web, stop.clone()));
    let mut signals = start_signals(&config, &rt, &stop).await?;
    if let Some(listen) = &config.global.status_page.listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("global.status_page.listen: cannot listen on {listen}: {e}"))?;
        tracing::info!(listen = %listen, "serving the status page on its own listener");
        let own = Arc::new(status_page.for_own_listener());
        signals.push(tokio::spawn(server::serve_status_page(listener, own, limits, stop.clone())));
    }
    signals.extend(crate::traffic::start(&config, &rt.matcher, &rt.metrics, &rt.key, &stop).await?);
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
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        let reply = tokio::select! {
            _ = sighup.recv() => None,
            Some(reply) = reload_rx.recv() => Some(reply),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        };
        let result = reload(&config_path, &config, &rt, &mut generation).await;
        match &result {
            Ok(new) => {
                config = new.clone();
                status_page.configure(&config).await;
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

    state.ready.store(false, Ordering::Relaxed);
    tracing::info!(
        in_flight = rt.matcher.in_flight(),
        "draining: no new canaries; waiting up to {}s for those in hand and in flight (a second signal stops at once)",
        DRAIN.as_secs()
    );
    let deadline = Instant::now() + DRAIN;
    let drain = async {
        generation.stop_routes(SEND_GRACE).await;
        // Waiting is worth it only for canaries someone is watching for.
        while rt.matcher.in_flight_watched() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        _ = drain => {}
        _ = tokio::time::sleep_until(deadline) => {}
        _ = sigterm.recv() => tracing::info!("second signal: stopping now"),
        _ = sigint.recv() => tracing::info!("second signal: stopping now"),
    }
    generation.stop_routes(Duration::ZERO).await;
    rt.matcher.stop_judging_providers();
    generation.stop_watchers().await;
    stop_tx.send_replace(true);
    let _ = tokio::join!(server, ticker, futures::future::join_all(signals));
    rt.matcher.tick().await;
    tracing::info!(
        in_flight = rt.matcher.in_flight(),
        "stopped; canaries still in flight are picked up from the ledger at the next start"
    );
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(kind).map_err(|e| format!("cannot install signal handler: {e}"))
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
