//! `mailcanary impact`, from its arguments to its output: which config and
//! ledger, which window, which form. An incident needs the whole config
//! and the signing key (the page's settings decide incidents, and its ids
//! are keyed); a provider's window needs only the ledger's place and the
//! delayed threshold.

use super::window::{provider, resolve};
use crate::ledger::{Ledger, LedgerThread};
use std::path::Path;
use std::time::Duration;

/// The output's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Csv,
    Json,
}

/// What `impact` was asked.
pub struct Args<'a> {
    pub config: &'a Path,
    pub incident: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    /// None: the config's `global.status_page.slow`, as the page and `report` judge.
    pub slow: Option<&'a str>,
    pub format: Format,
}

/// The impact asked for, rendered; or what is wrong.
pub fn command(args: &Args<'_>) -> Result<String, String> {
    let config = match (args.incident, args.provider, args.since) {
        (Some(_), None, None) => Some(crate::config::load(args.config).map_err(|e| e.to_string())?),
        (None, Some(_), Some(_)) => None,
        _ => return Err("give --incident ID, or --provider NAME --since T [--until T]".into()),
    };
    let (state_dir, configured_slow) = match &config {
        Some(c) => (c.global.state_dir.clone(), c.global.status_page.slow),
        None => {
            let s = crate::config::load_report_settings(args.config).map_err(|e| e.to_string())?;
            (s.state_dir, s.slow)
        }
    };
    let slow: Duration = match args.slow {
        Some(text) => crate::duration::parse_duration(text).map_err(|e| format!("--slow: {e}"))?,
        None => configured_slow,
    };
    let file = state_dir.join("ledger.sqlite");
    if !file.is_file() {
        return Err(format!("no ledger at {}: `mailcanary run` has recorded nothing there yet", file.display()));
    }
    let ledger = LedgerThread::spawn(Ledger::open(&state_dir).map_err(|e| format!("ledger: {e}"))?);
    let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(|e| e.to_string())?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let window = match (&config, args.incident, args.provider, args.since) {
        (Some(config), Some(id), _, _) => {
            let key = config.signing_key()?;
            let incidents = runtime
                .block_on(crate::status_page::page_incidents(config, &key, &ledger, now_ms))
                .map_err(|e| format!("ledger: {e}"))?;
            resolve(&incidents, id, now_ms)?
        }
        (_, _, Some(name), Some(since)) => provider(name, since, args.until, now_ms)?,
        _ => unreachable!("the arguments were checked above"),
    };
    let (providers, from_ms, to_ms) = (window.providers.clone(), window.from_ms, window.to_ms);
    let rows = runtime
        .block_on(ledger.call(move |l| l.traffic_window(&providers, from_ms, to_ms)))
        .map_err(|e| format!("ledger: {e}"))?;
    let impact = super::build(window, rows, slow, now_ms);
    Ok(match args.format {
        Format::Text => super::text(&impact),
        Format::Csv => super::csv(&impact),
        Format::Json => super::json(&impact),
    })
}
