//! `mailcanary report`: reads the ledger named by a config (and nothing
//! else of it: no secret need be set) and renders the period as text or
//! JSON (crate::report) or as a self-contained HTML review
//! (crate::status_page::report).

use crate::duration::parse_duration;
use crate::incident::{Judge, Review};
use crate::ledger::{Ledger, Row};
use std::path::Path;
use std::time::Duration;

/// What `report` was asked for, as the command line gives it.
pub struct Args<'a> {
    pub config: &'a Path,
    /// How far back: `30m`, `24h`, `7d`.
    pub since: &'a str,
    /// The delayed threshold; the config's `status_page.slow` unless given.
    pub slow: Option<&'a str>,
    /// Every canary that went wrong listed.
    pub canaries: bool,
    pub json: bool,
    /// Also write the HTML review there.
    pub html: Option<&'a Path>,
}

/// The report's text (or JSON); Err says what to change.
pub fn command(args: &Args<'_>) -> Result<String, String> {
    let since = parse_duration(args.since).map_err(|e| format!("--since: {e}"))?;
    let settings = crate::config::load_report_settings(args.config).map_err(|e| e.to_string())?;
    let slow = match args.slow {
        Some(slow) => parse_duration(slow).map_err(|e| format!("--slow: {e}"))?,
        None => settings.slow,
    };
    let ledger = open(args.config, &settings.state_dir)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let since_ms = now_ms - since.as_millis() as i64;
    let rows = ledger.since(since_ms).map_err(|e| format!("ledger: {e}"))?;
    let changes = ledger.transitions_since(since_ms).map_err(|e| format!("ledger: {e}"))?;
    let judge = Judge { slow, now_ms };
    let reports = crate::report::build(&rows, judge);
    let review = crate::incident::review(&rows, &changes, judge);
    let period = Period { rows: &rows, reports: &reports, review: &review, changes: &changes, since_ms, judge };
    if let Some(file) = args.html {
        let page = period.html(&ledger)?;
        std::fs::write(file, page).map_err(|e| format!("--html {}: {e}", file.display()))?;
        eprintln!("mailcanary: wrote the report to {}", file.display());
    }
    Ok(if args.json { period.json(slow) } else { period.text(args.canaries) })
}

/// The ledger `mailcanary run` keeps in `state_dir`, or what to do when there is none.
fn open(config: &Path, state_dir: &Path) -> Result<Ledger, String> {
    let file = state_dir.join("ledger.sqlite");
    if !file.is_file() {
        return Err(format!(
            "no ledger at {}: global.state_dir of {} is {}, where `mailcanary run` has recorded nothing yet",
            file.display(),
            config.display(),
            state_dir.display()
        ));
    }
    Ledger::open(state_dir).map_err(|e| format!("ledger: {e}"))
}

/// One period, read and judged.
struct Period<'a> {
    rows: &'a [Row],
    reports: &'a [crate::report::RouteReport],
    review: &'a Review,
    changes: &'a [crate::health::Transition],
    since_ms: i64,
    judge: Judge,
}

impl Period<'_> {
    fn text(&self, canaries: bool) -> String {
        crate::report::render(self.reports, self.since_ms, self.judge.slow, canaries)
            + &crate::report::render_review(self.review, self.judge.now_ms)
            + &crate::report::render_providers(self.changes)
    }

    fn json(&self, slow: Duration) -> String {
        let report = serde_json::json!({
            "slow_seconds": slow.as_secs_f64(),
            "routes": self.reports,
            "incidents": self.review.incidents,
            "gaps": self.review.gaps,
            "provider_changes": self.changes,
        });
        let text = serde_json::to_string_pretty(&report).expect("JSON of plain data");
        crate::quote::json_for_terminal(&text) + "\n"
    }

    /// The HTML review, with the real mail of the period beside the canaries.
    fn html(&self, ledger: &Ledger) -> Result<String, String> {
        let (now_ms, slow_ms) = (self.judge.now_ms, self.judge.slow.as_millis() as i64);
        let traffic =
            ledger.traffic_per_minute(self.since_ms, now_ms, slow_ms, now_ms).map_err(|e| format!("ledger: {e}"))?;
        let (rows, reports, review, changes) = (self.rows, self.reports, self.review, self.changes);
        Ok(crate::status_page::report::render(rows, reports, review, changes, &traffic, self.since_ms, self.judge))
    }
}
