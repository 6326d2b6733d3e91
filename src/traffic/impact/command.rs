//! `mailcanary impact`, from its arguments to its output: which config and
//! ledger, which window, which form. An incident needs the whole config
//! (its instance and the page's settings decide incidents and their ids);
//! a provider's window needs only the ledger's place.

use super::window::{Spec, provider, resolve};
use crate::ledger::Ledger;
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
    pub slow: &'a str,
    pub format: Format,
}

/// The impact asked for, rendered; or what is wrong.
pub fn command(args: &Args<'_>) -> Result<String, String> {
    let slow: Duration = crate::config::duration::parse_duration(args.slow).map_err(|e| format!("--slow: {e}"))?;
    let config = match (args.incident, args.provider, args.since) {
        (Some(_), None, None) => Some(crate::config::load(args.config).map_err(|e| e.to_string())?),
        (None, Some(_), Some(_)) => None,
        _ => return Err("give --incident ID, or --provider NAME --since T [--until T]".into()),
    };
    let state_dir = match &config {
        Some(c) => c.global.state_dir.clone(),
        None => crate::config::load_state_dir(args.config).map_err(|e| e.to_string())?,
    };
    let file = state_dir.join("ledger.sqlite");
    if !file.is_file() {
        return Err(format!("no ledger at {}: `mailcanary run` has recorded nothing there yet", file.display()));
    }
    let ledger = Ledger::open(&state_dir).map_err(|e| format!("ledger: {e}"))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let window = match (&config, args.incident, args.provider, args.since) {
        (Some(config), Some(id), _, _) => resolve(config, &ledger, Spec::Incident(id), now_ms)?,
        (_, _, Some(name), Some(since)) => provider(name, since, args.until, now_ms)?,
        _ => unreachable!("the arguments were checked above"),
    };
    let rows =
        ledger.traffic_window(&window.providers, window.from_ms, window.to_ms).map_err(|e| format!("ledger: {e}"))?;
    let impact = super::build(window, rows, slow, now_ms);
    Ok(match args.format {
        Format::Text => super::text(&impact),
        Format::Csv => super::csv(&impact),
        Format::Json => super::json(&impact),
    })
}
