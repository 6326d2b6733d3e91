//! The text report's incidents and monitoring gaps: the same review the
//! HTML file shows (crate::incident::review), for a terminal.

use super::time;
use crate::incident::{Gap, Incident, Review};
use crate::words::span as span_words;
use std::fmt::Write;

fn end(to_ms: Option<i64>) -> String {
    to_ms.map_or_else(|| "still going on".into(), |t| format!("{} UTC", time(t)))
}

/// How long, from `from_ms` to `to_ms` (or `now_ms` while it lasts).
fn lasted(from_ms: i64, to_ms: Option<i64>, now_ms: i64) -> String {
    match to_ms {
        Some(to) => span_words(to - from_ms),
        None => format!("so far {}", span_words(now_ms - from_ms)),
    }
}

fn incident(out: &mut String, i: &Incident, now_ms: i64) {
    let _ = writeln!(
        out,
        "  {} UTC → {} ({}): {}",
        time(i.from_ms),
        end(i.to_ms),
        lasted(i.from_ms, i.to_ms, now_ms),
        i.providers.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    if !i.inboxes.is_empty() {
        let _ = writeln!(out, "    inboxes: {}", i.inboxes.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    let kinds: Vec<String> = i.canaries().iter().map(|(k, n)| format!("{n} {k}")).collect();
    if !kinds.is_empty() {
        let _ = writeln!(out, "    canaries that went wrong: {}", kinds.join(", "));
    }
    for s in &i.spells {
        let _ =
            writeln!(out, "    {} {} from {} UTC to {}", s.provider, s.state.as_str(), time(s.from_ms), end(s.to_ms));
    }
}

/// What a gap means, in a sentence.
pub fn gap_sentence(gap: &Gap, inbox: Option<&str>) -> String {
    match inbox {
        Some(inbox) => format!("inbox {inbox} not watched: canaries that arrived then were found only afterwards"),
        None if gap.to_ms.is_none() => "no canary sent since (mailcanary not running, or unable to send)".into(),
        None => "no canary sent (mailcanary not running, or unable to send)".into(),
    }
}

/// The incidents (newest first) and gaps of `review`, as of `now_ms`.
pub fn render_review(review: &Review, now_ms: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nincidents, newest first:");
    if review.incidents.is_empty() {
        let _ = writeln!(out, "  none in this period");
    }
    for i in &review.incidents {
        incident(&mut out, i, now_ms);
    }
    if !review.gaps.is_empty() {
        let _ = writeln!(out, "\nmonitoring gaps (nothing was measured; neither healthy nor failing):");
    }
    for g in &review.gaps {
        let _ = writeln!(
            out,
            "  {} UTC → {} ({}): {}",
            time(g.from_ms),
            end(g.to_ms),
            lasted(g.from_ms, g.to_ms, now_ms),
            gap_sentence(g, g.inbox.as_deref())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Judge, review};
    use crate::ledger::{Row, State};
    use crate::outcome::OutcomeKind;
    use std::time::Duration;

    fn row(probe: &str, t_s: i64, latency_s: i64) -> Row {
        Row {
            id: format!("{probe}{t_s}"),
            probe: probe.into(),
            provider: "relay-b".into(),
            inbox: "x".into(),
            state: State::Settled(OutcomeKind::Delivered),
            created_ms: t_s * 1000,
            accepted_ms: Some(t_s * 1000),
            deadline_ms: t_s * 1000 + 600_000,
            provider_id: None,
            failure_reason: None,
            seen_ms: Some((t_s + latency_s) * 1000),
            latency_ms: Some(latency_s * 1000),
            placement: Some("inbox".into()),
            bounce_status: None,
            bounce_detail: None,
            hops: Vec::new(),
            observed: Default::default(),
            expectation: None,
        }
    }

    #[test]
    fn the_text_report_lists_incidents_with_their_length_and_gaps_as_gaps() {
        // Held from 100 s to 236 s, then a stop from 300 s to 341 s.
        let mut rows = Vec::new();
        for t in (0..300).step_by(10) {
            let held = (100..236).contains(&t);
            rows.push(row("b-to-x", t, if held { 236 - t } else { 1 }));
        }
        rows.extend([row("b-to-x", 341, 1), row("b-to-x", 351, 1)]);
        let text =
            render_review(&review(&rows, &[], Judge { slow: Duration::from_secs(100), now_ms: 360_000 }), 360_000);
        assert!(
            text.contains("1970-01-01 00:01:40 UTC → 1970-01-01 00:03:56 UTC (2 min 16 s): relay-b"),
            "one incident of 136 s: {text}"
        );
        assert!(text.contains("canaries that went wrong: 4 delayed"), "held over 100 s: {text}");
        assert!(
            text.contains("1970-01-01 00:04:50 UTC → 1970-01-01 00:05:41 UTC (51 s): no canary sent"),
            "the stop is a gap: {text}"
        );
    }
}
