//! The status page (`/status`), its JSON (`/api/v1/incidents`), its Atom
//! feed (`/feed.atom`) and badges (`/badge/{name}.svg`): the answer to "is
//! it you?" for support teams and customers, from what mailcanary already
//! knows. Also `report --html`, the post-incident review as one file.
//!
//! Everything is rendered here, by hand, with one escaping helper
//! ([`html::escape`]); nothing is fetched from elsewhere (no CDN, font or
//! script). The data is read from the ledger on its own thread and kept for
//! `refresh`, so many viewers and 1,000 routes cost one ledger read per
//! period ([`history`]).

mod badge;
pub mod chart;
mod feed;
mod format;
mod history;
pub mod html;
mod mask;
mod page;
mod real_traffic;
pub mod report;
mod view;

#[cfg(test)]
mod tests;

pub use view::{Snapshot, Visibility};

use crate::canary::SigningKey;
use crate::config::{Config, StatusPageConfig};
use crate::health_keeper::HealthKeeper;
use crate::ledger::{LedgerError, LedgerThread, TrafficCounts};
use crate::matcher::Matcher;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use history::History;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Days of bars at most: the ledger's retention, up to 90.
const MAX_DAYS: i64 = 90;

/// The purpose of the key the page's ids are made with.
const FEED_IDS: &str = "status page feed ids";

/// The incidents the page of `config` shows at `now_ms`, newest first,
/// each with the page's id: read from the ledger as the page reads it, so
/// `impact --incident` names the same incidents by the same ids.
pub async fn page_incidents(
    config: &Config,
    key: &SigningKey,
    ledger: &LedgerThread,
    now_ms: i64,
) -> Result<Vec<(String, crate::incident::Incident)>, LedgerError> {
    let settings = Settings::from_config(config);
    let data = History::new(&settings, now_ms).read(ledger, &settings, now_ms).await?;
    let (feed_key, instance) = (key.derive(FEED_IDS), config.instance());
    Ok(view::incidents(&data, &settings)
        .into_iter()
        .map(|x| (view::incident_id(&feed_key, &instance, x.from_ms), x))
        .collect())
}

/// What a config says of the page.
#[derive(Debug, Clone)]
pub struct Settings {
    pub page: StatusPageConfig,
    /// Days of history shown: the retention, at most 90.
    pub days: i64,
    /// How long after its sending a canary's outcome is taken as settled:
    /// the longest route timeout, and some.
    pub settle: Duration,
    /// Parts of an incident this close are one (crate::incident::merge_gap).
    pub merge_gap: Duration,
    /// Canaries in a row that make a window part of an incident: what makes
    /// a route fail (`health.down_after`).
    pub min_canaries: usize,
    /// Each route's interval, by route name: what makes a silence a gap.
    pub intervals: HashMap<String, Duration>,
    /// The inboxes' names, in config order, and each route's (route,
    /// inbox): what `hide_inboxes` hides.
    pub inboxes: Vec<String>,
    pub routes: Vec<(String, String)>,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        let longest = config.routes.iter().map(|r| r.timeout).max().unwrap_or_default();
        Settings {
            page: config.global.status_page.clone(),
            days: (config.global.retention.as_secs() as i64 / 86_400).clamp(1, MAX_DAYS),
            settle: longest + Duration::from_secs(600),
            min_canaries: config.global.health.down_after.max(1) as usize,
            merge_gap: crate::incident::merge_gap(config.routes.iter().map(|r| r.interval).max().unwrap_or_default()),
            intervals: config.routes.iter().map(|r| (r.name.clone(), r.interval)).collect(),
            inboxes: config.inboxes.iter().map(|i| i.name.clone()).collect(),
            routes: config.routes.iter().map(|r| (r.name.clone(), r.inbox.clone())).collect(),
        }
    }

    /// What `audience` may see. The main listener always serves the
    /// internal page; the page's own listener serves the public one when
    /// `public: true`. `hide_inboxes` applies to both (its default: hidden
    /// on a public page only).
    pub fn visibility(&self, audience: Audience) -> Visibility {
        let public = audience == Audience::OwnListener && self.page.public;
        Visibility { inboxes: !self.page.hide_inboxes.unwrap_or(public), reasons: !public, public }
    }
}

/// Who a page is served to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// `global.listen`: the operators' listener, beside `/metrics`.
    Internal,
    /// `status_page.listen`: what a reverse proxy may expose.
    OwnListener,
}

/// The page's data source and cache, shared by every request and by both
/// audiences: one ledger read per refresh serves both pages.
pub struct StatusPage {
    shared: Arc<Shared>,
    audience: Audience,
}

struct Shared {
    instance: String,
    /// The key of the feed's ids (derived from the signing key): an id
    /// confirms nothing about a guessed instance name.
    feed_key: [u8; 32],
    matcher: Arc<Matcher>,
    health: Arc<HealthKeeper>,
    settings: RwLock<Settings>,
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    history: Option<History>,
    /// The last read and when it was made.
    fresh: Option<(Instant, Arc<Fresh>)>,
    /// Per audience, the snapshot of `fresh`.
    internal: Option<Arc<Snapshot>>,
    own_listener: Option<Arc<Snapshot>>,
}

/// Incidents, newest first, whose real traffic is counted for the page.
const TRAFFIC_COUNTED: usize = 50;

/// One read: the ledger's history and the live state, at `now_ms`.
struct Fresh {
    data: history::Data,
    /// The real traffic of each incident, by its start.
    traffic: HashMap<i64, TrafficCounts>,
    providers: Arc<Vec<Arc<crate::health::ProviderHealth>>>,
    routes: Vec<crate::matcher::RouteStatus>,
    now_ms: i64,
}

impl StatusPage {
    /// The internal page, for `global.listen`.
    pub fn new(
        instance: String,
        key: &SigningKey,
        (matcher, health): (Arc<Matcher>, Arc<HealthKeeper>),
        config: &Config,
    ) -> StatusPage {
        let shared = Shared {
            instance,
            feed_key: key.derive(FEED_IDS),
            matcher,
            health,
            settings: RwLock::new(Settings::from_config(config)),
            cache: Default::default(),
        };
        StatusPage { shared: Arc::new(shared), audience: Audience::Internal }
    }

    /// The page of `status_page.listen` (public when `public: true`),
    /// sharing this one's data.
    pub fn for_own_listener(&self) -> StatusPage {
        StatusPage { shared: self.shared.clone(), audience: Audience::OwnListener }
    }

    /// Takes in a reloaded config; the next request builds the page afresh,
    /// and reads the whole history again only if what it was read with changed.
    pub async fn configure(&self, config: &Config) {
        let new = Settings::from_config(config);
        let old = std::mem::replace(&mut *self.shared.settings.write().unwrap_or_else(|p| p.into_inner()), new.clone());
        let mut cache = self.shared.cache.lock().await;
        (cache.fresh, cache.internal, cache.own_listener) = (None, None, None);
        if (old.page.slow, old.days) != (new.page.slow, new.days) {
            cache.history = None;
        }
    }

    pub fn settings(&self) -> Settings {
        self.shared.settings.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What this page's audience may see.
    pub fn visibility(&self) -> Visibility {
        self.settings().visibility(self.audience)
    }

    /// The data of the page, at most `refresh` old. One request at a time
    /// reads the ledger; the others wait for it and share its result.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, LedgerError> {
        let settings = self.settings();
        let mut cache = self.shared.cache.lock().await;
        let fresh = match &cache.fresh {
            Some((at, fresh)) if at.elapsed() < settings.page.refresh => fresh.clone(),
            _ => {
                let now_ms = chrono::Utc::now().timestamp_millis();
                let history = cache.history.get_or_insert_with(|| History::new(&settings, now_ms));
                let data = history.read(self.shared.matcher.ledger(), &settings, now_ms).await?;
                let traffic = traffic(self.shared.matcher.ledger(), &data, &settings, now_ms).await?;
                let (providers, routes) = (self.shared.health.providers(), self.shared.matcher.status());
                let fresh = Arc::new(Fresh { data, traffic, providers, routes, now_ms });
                (cache.fresh, cache.internal, cache.own_listener) = (Some((Instant::now(), fresh.clone())), None, None);
                fresh
            }
        };
        let slot = match self.audience {
            Audience::Internal => &mut cache.internal,
            Audience::OwnListener => &mut cache.own_listener,
        };
        if let Some(snap) = slot {
            return Ok(snap.clone());
        }
        let view = view::Inputs {
            instance: &self.shared.instance,
            feed_key: &self.shared.feed_key,
            settings: &settings,
            visibility: settings.visibility(self.audience),
            data: &fresh.data,
            traffic: &fresh.traffic,
            providers: &fresh.providers,
            routes: &fresh.routes,
            now_ms: fresh.now_ms,
        };
        let snap = Arc::new(view::build(&view));
        *slot = Some(snap.clone());
        Ok(snap)
    }
}

/// The real messages sent during each of the latest incidents of `data`,
/// counted as `impact` judges them (one ledger job).
async fn traffic(
    ledger: &LedgerThread,
    data: &history::Data,
    settings: &Settings,
    now_ms: i64,
) -> Result<HashMap<i64, TrafficCounts>, LedgerError> {
    let asks: Vec<(i64, i64, Vec<String>)> = view::incidents(data, settings)
        .into_iter()
        .take(TRAFFIC_COUNTED)
        .map(|x| (x.from_ms, x.to_ms.unwrap_or(now_ms), x.providers.into_iter().collect()))
        .collect();
    let slow_ms = settings.page.slow.as_millis() as i64;
    ledger
        .call(move |l| {
            asks.into_iter()
                .map(|(from, to, providers)| Ok((from, l.traffic_counts(&providers, from, to, slow_ms, now_ms)?)))
                .collect()
        })
        .await
}

/// The page's routes, for `global.listen` and for `status_page.listen`.
pub fn router(page: Arc<StatusPage>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/status") }))
        .route("/status", get(status))
        .route("/api/v1/incidents", get(incidents))
        .route("/feed.atom", get(atom))
        .route("/badge/{file}", get(badge))
        .with_state(page)
}

fn unavailable(e: LedgerError) -> Response {
    tracing::error!(error = %e, "status page: cannot read the ledger");
    (StatusCode::SERVICE_UNAVAILABLE, "the ledger cannot be read just now\n").into_response()
}

/// Everything the page serves may be cached for as long as it is fresh
/// here; by shared caches (a proxy, a CDN) only on the public page.
fn cache_control(page: &StatusPage) -> String {
    let settings = page.settings();
    let scope = if page.visibility().public { "public" } else { "private" };
    format!("{scope}, max-age={}", settings.page.refresh.as_secs().max(1))
}

async fn status(State(page): State<Arc<StatusPage>>) -> Response {
    match page.snapshot().await {
        Ok(snap) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
                (header::CACHE_CONTROL, cache_control(&page)),
            ],
            snap.html(),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn incidents(State(page): State<Arc<StatusPage>>) -> Response {
    match page.snapshot().await {
        Ok(snap) => {
            let mut body = serde_json::to_string_pretty(&*snap).expect("serializable");
            body.push('\n');
            (
                [(header::CONTENT_TYPE, "application/json".to_string()), (header::CACHE_CONTROL, cache_control(&page))],
                body,
            )
                .into_response()
        }
        Err(e) => unavailable(e),
    }
}

async fn atom(State(page): State<Arc<StatusPage>>) -> Response {
    match page.snapshot().await {
        Ok(snap) => (
            [
                (header::CONTENT_TYPE, "application/atom+xml; charset=utf-8".to_string()),
                (header::CACHE_CONTROL, cache_control(&page)),
            ],
            feed::render(&snap),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

/// `/badge/{name}.svg`: a provider's state, or a route's last outcome
/// (routes only where inbox names may be shown).
async fn badge(State(page): State<Arc<StatusPage>>, Path(file): Path<String>) -> Response {
    let Some(name) = file.strip_suffix(".svg") else {
        return (StatusCode::NOT_FOUND, "badges are /badge/{name}.svg\n").into_response();
    };
    let snap = match page.snapshot().await {
        Ok(snap) => snap,
        Err(e) => return unavailable(e),
    };
    match badge::for_name(&snap, name) {
        Some(svg) => {
            ([(header::CONTENT_TYPE, "image/svg+xml".to_string()), (header::CACHE_CONTROL, cache_control(&page))], svg)
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such provider or route\n").into_response(),
    }
}
