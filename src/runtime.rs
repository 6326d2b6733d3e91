//! What `run` and `check` both build from a config: the runtime that
//! outlives a reload (ledger, metrics, matcher, signing key), the probes of
//! the routes, the inbox watchers and route tasks of a generation (a reload
//! changes only what the new config changes), and the ticker.

use crate::canary::SigningKey;
use crate::clock::SystemClock;
use crate::config::{Config, InboxConfig, ProviderConfig, Route};
use crate::health_keeper::HealthKeeper;
use crate::inbox::{self, InboxHandle, Shared};
use crate::ledger::{Ledger, LedgerThread};
use crate::matcher::Matcher;
use crate::metrics::Metrics;
use crate::probe::{Probe, ProbeContext};
use crate::provider::AnyProvider;
use crate::scheduler::Stop;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

/// How long a reload waits for the cleanups of the watchers it stops.
const CLEANUP_GRACE: Duration = Duration::from_millis(1500);

/// What outlives a reload: the ledger, the metrics, the matcher.
pub struct Runtime {
    pub instance: String,
    pub key: SigningKey,
    pub ledger: LedgerThread,
    pub metrics: Arc<Metrics>,
    pub matcher: Arc<Matcher>,
    /// Provider health: a consumer of the matcher's verdicts, deciding at each tick.
    pub health: Arc<HealthKeeper>,
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
        let key = config.signing_key()?;
        let ledger = LedgerThread::spawn(ledger);
        let metrics = Arc::new(Metrics::new());
        let matcher = Arc::new(Matcher::new(ledger.clone(), metrics.clone()));
        let health = Arc::new(HealthKeeper::new(ledger.clone(), metrics.clone(), Arc::new(SystemClock)));
        // Who else takes each verdict, after the matcher's own (crate::settled).
        matcher.register(health.clone());
        matcher.register(metrics.clone());
        matcher.register(Arc::new(crate::settled::Log));
        Ok(Runtime { instance: config.instance(), key, ledger, metrics, matcher, health })
    }

    /// What the probes of `config` share, at most `sends` canaries in hand at once.
    pub fn probe_context(&self, config: &Config, sends: usize) -> ProbeContext {
        ProbeContext {
            instance: self.instance.clone(),
            key: self.key.clone(),
            operator: config.global.operator.clone(),
            matcher: self.matcher.clone(),
            sends: Arc::new(Semaphore::new(sends)),
        }
    }

    /// The service's ticker: every second, and the ledger pruned to `global.retention`.
    pub fn ticker(&self, config: &Config, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        crate::ticker::spawn(
            self.ticked(),
            self.metrics.clone(),
            Duration::from_secs(1),
            Some(config.global.retention),
            stop,
        )
    }

    /// `check`'s ticker: twice a second, nothing pruned.
    pub fn quick_ticker(&self, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        crate::ticker::spawn(self.ticked(), self.metrics.clone(), Duration::from_millis(500), None, stop)
    }

    /// What the ticker works on: the matcher, provider health, the ledger.
    fn ticked(&self) -> (Arc<Matcher>, Arc<HealthKeeper>, LedgerThread) {
        (self.matcher.clone(), self.health.clone(), self.ledger.clone())
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
        let providers = providers(config)?;

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
        let leaving: Vec<Watching> = self
            .watchers
            .extract_if(|name, _| !keep_inboxes.contains(name) || restarted.contains(name))
            .map(|(_, w)| w)
            .collect();
        // Canaries they resolved wait a second at most for their cleanup
        // (crate::inbox's cleanup.rs): a watcher stopped first would leave
        // them in the mailbox, its successor's cursor past them.
        let until = tokio::time::Instant::now() + CLEANUP_GRACE;
        while leaving.iter().any(|w| w.handle.cleanups() > 0) && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for w in leaving {
            w.stop.send_replace(true);
            stopping.push(w.task);
        }
        futures::future::join_all(stopping).await;

        // 3. Start what is new: the routes' series and statuses before any
        // watcher, so that no verdict a new watcher settles (a canary resumed
        // from the ledger, found at its first look) finds its route unknown
        // (the metrics count only routes whose series exist).
        rt.matcher.configure_metrics(config.global.metrics.detail());
        for route in &config.routes {
            rt.matcher.add_route(route);
        }
        rt.matcher.retain_routes(&config.routes);
        self.start_watchers(prepared);
        let ctx = Arc::new(rt.probe_context(config, config.global.max_concurrent_sends));
        for route in &config.routes {
            if self.routes.contains_key(&route.name) {
                continue;
            }
            let probe = Arc::new(probe(config, route, &providers, &self.watchers[&route.inbox].handle)?);
            let provider = config.provider(&route.provider).cloned();
            self.routes.insert(route.name.clone(), Routing::start(probe, ctx.clone(), provider, rt));
        }
        rt.health.configure(config);
        Ok(())
    }

    /// Starts watching every inbox `config` needs (for `check`: a
    /// generation with no routes of its own).
    pub fn watch(&mut self, config: &Config, rt: &Runtime) -> Result<(), String> {
        let shared = rt.shared(config);
        let prepared = watched(config, &rt.matcher)
            .into_iter()
            .map(|(inbox, bounces)| inbox::prepare(inbox.clone(), bounces, shared.clone()).map(|p| (inbox, bounces, p)))
            .collect::<Result<Vec<_>, _>>()?;
        self.start_watchers(prepared);
        Ok(())
    }

    fn start_watchers(&mut self, prepared: Vec<(InboxConfig, bool, inbox::Prepared)>) {
        for (inbox, bounces, prepared) in prepared {
            let stop = watch::channel(false).0;
            let (handle, task) = prepared.start(stop.subscribe());
            self.watchers.insert(inbox.name.clone(), Watching { config: inbox, bounces, handle, stop, task });
        }
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

    /// How many canaries seen by the watchers are not cleaned up yet.
    pub fn cleanups(&self) -> usize {
        self.watchers.values().map(|w| w.handle.cleanups()).sum()
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
        rt.health.route_started(&route.name, probe.confirm.clone());
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

/// Every provider of `config`, built (the same client for every route
/// through it), by name.
pub fn providers(config: &Config) -> Result<HashMap<String, Arc<AnyProvider>>, String> {
    config
        .providers
        .iter()
        .map(|p| {
            let built = AnyProvider::build(p).map_err(|e| format!("provider {}: {e}", p.name()))?;
            Ok((p.name().to_string(), Arc::new(built)))
        })
        .collect()
}

/// The probe of `route`: what sends its canaries (its provider, among
/// `providers`, or its application's trigger), the watcher of its inbox,
/// its addresses.
pub fn probe(
    config: &Config,
    route: &Route,
    providers: &HashMap<String, Arc<AnyProvider>>,
    inbox: &InboxHandle,
) -> Result<Probe, String> {
    let to = config.inbox(&route.inbox).ok_or("validated config names a known inbox")?.address.clone();
    let (sender, from) = match (&route.trigger, config.provider(&route.provider)) {
        (Some(t), _) => {
            let built = AnyProvider::trigger(t).map_err(|e| format!("trigger {}: {e}", t.name))?;
            (Arc::new(built), String::new())
        }
        (None, Some(p)) => (providers[p.name()].clone(), p.from().to_string()),
        (None, None) => return Err("validated config names a known provider".into()),
    };
    let return_path = return_path(config, route);
    Ok(Probe {
        route: route.clone(),
        provider: sender,
        inbox: inbox.clone(),
        from,
        to,
        return_path,
        confirm: Arc::default(),
    })
}
