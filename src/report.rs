//! `mailcanary report`: the post-incident review, from the ledger. Per route:
//! what was sent, delivered (seen in any folder; `spam` counts those of them
//! placed in spam, as `/metrics` and `/api/v1/status` do), late, lost or refused, latency
//! percentiles, and the windows in which delivery failed or was delayed,
//! with the canaries in them.

mod review;

pub use review::{gap_sentence, render_review};

use crate::health::Transition;
use crate::incident::{Judge, Tracker};
use crate::insight::Hop;
use crate::ledger::{Row, State};
use crate::outcome::OutcomeKind;
use crate::quote::quote;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// One route's account.
#[derive(Debug, Default, serde::Serialize)]
pub struct RouteReport {
    pub probe: String,
    pub provider: String,
    pub inbox: String,
    pub sent: usize,
    /// Not accepted by the provider.
    pub refused: usize,
    /// Seen within the timeout, in any folder (the metrics' meaning).
    pub delivered: usize,
    /// Of `delivered`, those placed in a spam folder.
    pub spam: usize,
    pub late: usize,
    pub lost: usize,
    /// Resolved by a bounce (DSN) before the timeout.
    pub bounced: usize,
    /// Application canaries that arrived but failed an expectation (crate::trigger).
    pub mismatched: usize,
    pub in_flight: usize,
    pub latency_p50_seconds: Option<f64>,
    pub latency_p95_seconds: Option<f64>,
    pub latency_p99_seconds: Option<f64>,
    /// Failure reasons and how often.
    pub failures: BTreeMap<String, usize>,
    /// Bounce status codes (DSN `Status`) and how often.
    pub bounces: BTreeMap<String, usize>,
    /// Failed expectations (`from`, `subject`, `link`, `link_dead`) and how often.
    pub mismatches: BTreeMap<String, usize>,
    pub windows: Vec<Window>,
    /// The path of the last canary seen: its `Received` hops, oldest first.
    pub last_path: Option<Path>,
}

/// The `Received` hops of one canary.
#[derive(Debug, serde::Serialize)]
pub struct Path {
    pub canary: String,
    pub seen_ms: i64,
    pub hops: Vec<Hop>,
}

use crate::incident::Window;

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Builds the per-route report of `rows` (oldest first), judged by `judge`.
pub fn build(rows: &[Row], judge: Judge) -> Vec<RouteReport> {
    // Per route: the report, its latencies, and its windows (crate::incident).
    let mut routes: BTreeMap<&str, (RouteReport, Vec<f64>, Tracker)> = BTreeMap::new();
    for row in rows {
        let (r, latencies, windows) = routes.entry(&row.probe).or_insert_with(|| {
            let r = RouteReport {
                probe: row.probe.clone(),
                provider: row.provider.clone(),
                inbox: row.inbox.clone(),
                ..Default::default()
            };
            (r, Vec::new(), Tracker::default())
        });
        match row.state {
            State::Settled(OutcomeKind::Refused) => {
                r.refused += 1;
                *r.failures.entry(row.failure_reason.clone().unwrap_or_else(|| "other".into())).or_default() += 1;
            }
            State::Sending | State::Sent => r.in_flight += 1,
            State::Settled(OutcomeKind::Delivered) => {
                r.delivered += 1;
                if row.placement.as_deref() == Some("spam") {
                    r.spam += 1;
                }
                latencies.extend(row.latency_ms.map(|ms| ms as f64 / 1000.0));
            }
            State::Settled(OutcomeKind::Lost) => r.lost += 1,
            State::Settled(OutcomeKind::Late) => r.late += 1,
            State::Settled(OutcomeKind::Bounced) => r.bounced += 1,
            State::Settled(OutcomeKind::Mismatched) => {
                r.mismatched += 1;
                let e = row.expectation.map_or("unknown", |e| e.as_str());
                *r.mismatches.entry(e.to_string()).or_default() += 1;
            }
        }
        if let Some(status) = &row.bounce_status {
            *r.bounces.entry(status.clone()).or_default() += 1;
        }
        if let (false, Some(seen_ms)) = (row.hops.is_empty(), row.seen_ms)
            && r.last_path.as_ref().is_none_or(|p| p.seen_ms <= seen_ms)
        {
            r.last_path = Some(Path { canary: row.id.clone(), seen_ms, hops: row.hops.clone() });
        }
        if row.state != State::Settled(OutcomeKind::Refused) && row.state != State::Sending {
            r.sent += 1;
        }
        windows.push(row, judge);
    }
    routes
        .into_values()
        .map(|(mut r, mut latencies, windows)| {
            r.windows = windows.windows;
            latencies.sort_by(f64::total_cmp);
            r.latency_p50_seconds = percentile(&latencies, 0.50);
            r.latency_p95_seconds = percentile(&latencies, 0.95);
            r.latency_p99_seconds = percentile(&latencies, 0.99);
            r
        })
        .collect()
}

pub(crate) fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "-".into(), |s| format!("{s:.2}s"))
}

/// The report as text for a terminal; `canaries` lists each canary that
/// went wrong; `slow` is the threshold it was judged with. Every text from
/// the ledger is quoted (crate::quote): provider ids, bounce diagnostics
/// and hop names come from servers.
pub fn render(reports: &[RouteReport], since_ms: i64, slow: Duration, canaries: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "mailcanary report since {} UTC", time(since_ms));
    let _ = writeln!(out, "{}", crate::incident::delayed_rule(slow));
    if reports.is_empty() {
        let _ = writeln!(out, "no canaries in this period");
        return out;
    }
    table(&mut out, reports);
    for r in reports.iter().filter(|r| !r.windows.is_empty() || !r.failures.is_empty() || r.last_path.is_some()) {
        details(&mut out, r);
        for w in &r.windows {
            window(&mut out, w, canaries);
        }
    }
    out
}

/// One line per route: its counts and latency.
fn table(out: &mut String, reports: &[RouteReport]) {
    let _ = writeln!(
        out,
        "\n{:<28} {:>5} {:>9} {:>5} {:>5} {:>5} {:>7} {:>7} {:>10} {:>8} {:>8} {:>8}",
        "route", "sent", "delivered", "spam", "late", "lost", "bounced", "refused", "mismatched", "p50", "p95", "p99"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "{:<28} {:>5} {:>9} {:>5} {:>5} {:>5} {:>7} {:>7} {:>10} {:>8} {:>8} {:>8}",
            quote(&r.probe),
            r.sent,
            r.delivered,
            r.spam,
            r.late,
            r.lost,
            r.bounced,
            r.refused,
            r.mismatched,
            seconds(r.latency_p50_seconds),
            seconds(r.latency_p95_seconds),
            seconds(r.latency_p99_seconds)
        );
    }
}

/// A route's reasons, bounce codes, failed expectations and last path.
fn details(out: &mut String, r: &RouteReport) {
    let _ = writeln!(out, "\n{} ({} → {}):", quote(&r.probe), quote(&r.provider), quote(&r.inbox));
    let counted = |counts: &BTreeMap<String, usize>| {
        counts.iter().map(|(k, v)| format!("{} {v}", quote(k))).collect::<Vec<_>>().join(", ")
    };
    if !r.failures.is_empty() {
        let _ = writeln!(out, "  refused by the provider: {}", counted(&r.failures));
    }
    if !r.bounces.is_empty() {
        let _ = writeln!(out, "  bounced with status: {}", counted(&r.bounces));
    }
    if !r.mismatches.is_empty() {
        let _ = writeln!(out, "  arrived but failed expectations: {}", counted(&r.mismatches));
    }
    if let Some(path) = &r.last_path {
        let _ =
            writeln!(out, "  path of the last canary seen ({} at {} UTC):", quote(&path.canary), time(path.seen_ms));
        for line in path_lines(&path.hops) {
            let _ = writeln!(out, "    {line}");
        }
    }
}

/// A window of canaries that went wrong: when, how many of each kind, and
/// with `canaries` each of them.
fn window(out: &mut String, w: &Window, canaries: bool) {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &w.canaries {
        *kinds.entry(i.kind).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, v)| format!("{v} {}", quote(k))).collect();
    let end = w.closed_ms.map_or_else(|| "still going on".into(), |c| format!("{} UTC", time(c)));
    let _ = writeln!(
        out,
        "  {} UTC → {end}: {} canar{} {}",
        time(w.from_ms),
        w.canaries.len(),
        if w.canaries.len() == 1 { "y" } else { "ies" },
        kinds.join(", ")
    );
    if !canaries {
        return;
    }
    for i in &w.canaries {
        let _ = writeln!(
            out,
            "    {}  {}  {:<16} {}{}{}",
            time(i.sent_ms),
            quote(&i.canary),
            quote(&i.outcome),
            i.provider_id.as_deref().map(|p| format!("id {}", quote(p))).unwrap_or_default(),
            i.latency_seconds.map(|l| format!("  after {}", seconds(Some(l)))).unwrap_or_default(),
            i.bounce_detail.as_deref().map(|d| format!("  {}", quote(d))).unwrap_or_default()
        );
    }
}

/// When each provider was down (or degraded) and why: its changes of
/// state in the period, from the ledger (crate::health).
pub fn render_providers(changes: &[Transition]) -> String {
    let mut out = String::new();
    if changes.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\nprovider health changes:");
    for t in changes {
        let _ = writeln!(
            out,
            "  {} UTC  {:<16} {:>8} → {:<8}  {}",
            time(t.at_ms),
            quote(&t.provider),
            t.from.as_str(),
            t.to.as_str(),
            quote(&t.reason)
        );
    }
    out
}

/// One line per hop: position, delay since the previous hop, host, TLS.
pub fn path_lines(hops: &[Hop]) -> Vec<String> {
    hops.iter()
        .map(|hop| {
            let delay = hop.delay_seconds.map_or_else(|| "      ?".to_string(), |d| format!("{d:>7.3}"));
            let tls = if hop.tls { "TLS" } else { "no TLS" };
            format!("hop {}  +{delay} s  {:<32} {tls}", hop.position, quote(hop.by.as_deref().unwrap_or("?")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(probe: &str, t: i64, state: State, latency_ms: Option<i64>, reason: Option<&str>) -> Row {
        Row {
            id: format!("c{t}"),
            probe: probe.into(),
            provider: "p".into(),
            inbox: "i".into(),
            state,
            created_ms: t,
            accepted_ms: Some(t),
            deadline_ms: t + 1000,
            provider_id: Some(format!("q{t}")),
            failure_reason: reason.map(str::to_string),
            seen_ms: latency_ms.map(|l| t + l),
            latency_ms,
            placement: latency_ms.map(|_| "inbox".into()),
            bounce_status: None,
            bounce_detail: None,
            hops: Vec::new(),
            observed: Default::default(),
            expectation: None,
        }
    }

    fn judge(slow: Duration) -> Judge {
        Judge { slow, now_ms: 400_000 }
    }

    #[test]
    fn counts_percentiles_and_windows() {
        let slow = judge(Duration::from_secs(90));
        let rows = vec![
            row("r", 0, State::Settled(OutcomeKind::Delivered), Some(1000), None),
            row("r", 60_000, State::Settled(OutcomeKind::Refused), None, Some("auth")),
            row("r", 120_000, State::Settled(OutcomeKind::Lost), None, None),
            row("r", 180_000, State::Settled(OutcomeKind::Late), Some(700_000), None),
            row("r", 240_000, State::Settled(OutcomeKind::Delivered), Some(2000), None),
            row("r", 300_000, State::Settled(OutcomeKind::Delivered), Some(120_000), None),
            row("r", 360_000, State::Sent, None, None),
        ];
        let report = &build(&rows, slow)[0];
        assert_eq!((report.sent, report.refused, report.delivered, report.lost, report.late), (6, 1, 3, 1, 1));
        assert_eq!(report.in_flight, 1);
        assert_eq!(report.failures.get("auth"), Some(&1));
        assert_eq!(report.latency_p50_seconds, Some(2.0));
        assert_eq!(report.latency_p99_seconds, Some(120.0));
        assert_eq!(report.windows.len(), 2);
        assert_eq!((report.windows[0].from_ms, report.windows[0].to_ms), (60_000, 180_000));
        let outcomes: Vec<&str> = report.windows[0].canaries.iter().map(|i| i.outcome.as_str()).collect();
        assert_eq!(outcomes, ["refused (auth)", "lost", "late"]);
        assert_eq!(report.windows[0].closed_ms, Some(242_000), "closed when the next good canary was seen");
        assert_eq!(report.windows[1].canaries[0].outcome, "delayed");
        let text = render(&build(&rows, slow), 0, slow.slow, true);
        assert!(
            text.contains("1970-01-01 00:01:00 UTC → 1970-01-01 00:04:02 UTC: 3 canaries 1 late, 1 lost, 1 refused"),
            "{text}"
        );
        assert!(text.contains("1970-01-01 00:05:00 UTC → still going on: 1 canary 1 delayed"), "{text}");
        assert!(text.contains("c120000  lost"), "{text}");
    }

    #[test]
    fn an_incident_shows_its_latency_as_the_table_does() {
        // 10 ms, slow against 5 ms: the table says 0.01s, and so must the incident line.
        let rows = vec![row("r", 0, State::Settled(OutcomeKind::Delivered), Some(10), None)];
        let slow = judge(Duration::from_millis(5));
        let text = render(&build(&rows, slow), 0, slow.slow, true);
        assert!(text.contains(" 0.01s "), "{text}");
        assert!(text.contains("after 0.01s"), "{text}");
    }

    #[test]
    fn delivered_counts_spam_placements_too_as_the_metrics_do() {
        let mut spam = row("r", 0, State::Settled(OutcomeKind::Delivered), Some(10), None);
        spam.placement = Some("spam".into());
        let rows = vec![spam, row("r", 60_000, State::Settled(OutcomeKind::Delivered), Some(10), None)];
        let report = &build(&rows, judge(Duration::from_secs(90)))[0];
        assert_eq!((report.delivered, report.spam), (2, 1));
    }
}
