//! Starts what `traffic:` asks for, beside the service's other listeners:
//! the writer, the webhook listener, a follower per log. The service's
//! hourly prune forgets the traffic's part of the ledger with the canaries
//! (`global.retention`). Changes to `traffic:` take effect on restart.

use super::recipient::Recipients;
use super::refusal::{LOGGED_PER_MINUTE, PerMinute};
use super::webhook::{self, Hook};
use super::writer::{Listener, Writer};
use super::{Source, follow};
use crate::canary::SigningKey;
use crate::config::{Config, SourceConfig};
use crate::health_keeper::HealthKeeper;
use crate::ledger::LedgerThread;
use crate::metrics::Metrics;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts the real-traffic sources of `config`; their tasks end on `stop`.
/// Events reach `ledger`, provider `health` and `metrics`; recipients are
/// hashed with a key derived from `key`.
pub async fn start(
    config: &Config,
    ledger: &LedgerThread,
    health: &Arc<HealthKeeper>,
    metrics: &Arc<Metrics>,
    key: &SigningKey,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let Some(traffic) = &config.traffic else { return Ok(Vec::new()) };
    health.configure_traffic(traffic.health.thresholds());
    let observer = health.clone();
    let listener: Listener =
        Arc::new(move |provider, effects, now_ms| observer.observe_traffic(provider, effects, now_ms));
    let writer = Writer::spawn(ledger.clone(), metrics.clone(), Some(listener));
    let recipients = Recipients::new(traffic.recipients, key);
    let mut tasks = Vec::new();
    let mut hooks = Vec::new();
    for source in &traffic.sources {
        metrics.traffic.init_source(source.name(), source.provider());
        match (Source::build(source).map_err(|e| format!("traffic source {}: {e}", source.name()))?, source) {
            (Some(built), _) => {
                let hook = Hook {
                    name: source.name().to_string(),
                    provider: source.provider().to_string(),
                    source: built,
                    recipients: recipients.clone(),
                    writer: writer.clone(),
                    metrics: metrics.clone(),
                    log_limit: PerMinute::new(LOGGED_PER_MINUTE),
                };
                hooks.push((source.path().unwrap_or("/").to_string(), Arc::new(hook)));
            }
            (None, SourceConfig::PostfixLog(log)) => {
                let follower = follow::Follower::new(log.clone(), recipients.clone(), writer.clone(), ledger.clone());
                tasks.push(tokio::spawn(follower.run(stop.clone())));
            }
            (None, _) => {}
        }
    }
    if let Some(listen) = traffic.listen.as_ref().filter(|_| !hooks.is_empty()) {
        let web = match &traffic.web_config_file {
            Some(path) => crate::listener::web::Web::load(path).map_err(|e| format!("traffic.web_config_file: {e}"))?,
            None => crate::listener::web::Web::default(),
        };
        let socket = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("traffic.listen: cannot listen on {listen}: {e}"))?;
        tracing::info!(listen = %listen, sources = hooks.len(), "receiving the providers' webhooks");
        let app = webhook::router(hooks);
        let limits = config.global.web.limits();
        tasks.push(tokio::spawn(crate::listener::serve_http(socket, app, limits, web, "traffic", stop.clone())));
    }
    Ok(tasks)
}
