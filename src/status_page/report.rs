//! `report --html FILE`: the post-incident review as one self-contained
//! file to paste into a post-mortem: the tables of `report`, and charts of
//! latency per route (incident windows shaded), outcomes over time, the
//! real mail over time beside them (when a traffic source recorded any)
//! and the per-hop delays of the affected canaries.

use super::chart;
use super::format::{human, human_seconds};
use super::html::{self, escape};
use crate::health::Transition;
use crate::incident::{Judge, Review};
use crate::ledger::{Row, State};
use crate::outcome::{OutcomeKind, Placement};
use crate::report::RouteReport;
use crate::words::span as span_words;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// Affected canaries drawn in the hop chart, at most.
const HOP_ROWS: usize = 30;

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "–".into(), |s| format!("{s:.2} s"))
}

fn kind(row: &Row) -> &'static str {
    match row.state {
        State::Settled(OutcomeKind::Delivered) if row.placement.as_deref() == Some(Placement::Spam.as_str()) => {
            Placement::Spam.as_str()
        }
        State::Settled(kind) => kind.as_str(),
        State::Sending | State::Sent => "",
    }
}

/// The whole document: the review of `rows` and `changes` since `since_ms`,
/// as `judge` judged it, with the real mail of the period (per minute and
/// kind: crate::ledger::Ledger::traffic_per_minute).
pub fn render(
    rows: &[Row],
    reports: &[RouteReport],
    review: &Review,
    changes: &[Transition],
    traffic: &[(i64, String, u64)],
    since_ms: i64,
    judge: Judge,
) -> String {
    let now_ms = judge.now_ms;
    let title = format!("mailcanary report since {}", human(since_ms));
    let mut out = String::with_capacity(64 * 1024);
    html::head(&mut out, &title, None);
    let _ = writeln!(
        out,
        "<header><h1>{}</h1><p class=\"muted small\">{} to {}. <span id=\"delayed-rule\">{}</span></p></header>\n<main>",
        escape(&title),
        human(since_ms),
        human(now_ms),
        escape(&crate::incident::delayed_rule(judge.slow))
    );
    // The review shows every window, even of one canary.
    let incidents = &review.incidents;
    let shaded: Vec<(i64, i64)> = incidents.iter().map(|i| (i.from_ms, i.to_ms.unwrap_or(now_ms))).collect();

    summary(&mut out, reports);
    out.push_str("<section aria-labelledby=\"incidents\"><h2 id=\"incidents\">Incidents</h2>\n");
    if incidents.is_empty() {
        out.push_str("<p>No incidents in this period.</p>\n");
    }
    for i in incidents {
        let mut said = format!("Providers: {}", escape(&i.providers.iter().cloned().collect::<Vec<_>>().join(", ")));
        if !i.inboxes.is_empty() {
            let _ = write!(said, "; inboxes: {}", escape(&i.inboxes.iter().cloned().collect::<Vec<_>>().join(", ")));
        }
        let kinds: Vec<String> = i.canaries().iter().map(|(k, n)| format!("{n} {k}")).collect();
        if !kinds.is_empty() {
            let _ = write!(said, ". Canaries that went wrong: {}", escape(&kinds.join(", ")));
        }
        // A provider's spell in `down` or `degraded` can make an incident on
        // its own (its canaries overdue, none judged yet): say so.
        for spell in &i.spells {
            let _ = write!(
                said,
                ". {} {} from {}{}",
                escape(&spell.provider),
                spell.state.as_str(),
                human_seconds(spell.from_ms),
                spell.to_ms.map(|t| format!(" to {}", human_seconds(t))).unwrap_or_default()
            );
        }
        let _ = writeln!(
            out,
            "<article class=\"incident{}\" data-from=\"{}\" data-to=\"{}\"><h3>{} – {} ({})</h3><p>{said}.</p></article>",
            if i.is_open() { "" } else { " closed" },
            i.from_ms,
            i.to_ms.map(|t| t.to_string()).unwrap_or_default(),
            human_seconds(i.from_ms),
            i.to_ms.map_or_else(|| "still going on".into(), human_seconds),
            i.to_ms.map_or_else(|| format!("so far {}", span_words(now_ms - i.from_ms)), |t| span_words(t - i.from_ms)),
        );
    }
    out.push_str("</section>\n");
    gaps(&mut out, review, now_ms);

    // The charts span the canaries, not the whole period asked for: an hour's
    // report of ten minutes' canaries would draw them in a sliver.
    let first = rows.first().map_or(since_ms, |r| r.created_ms);
    let from = (first - (now_ms - first) / 20).max(since_ms);
    charts(&mut out, rows, traffic, &shaded, from, now_ms);
    hops(&mut out, rows, reports);
    windows(&mut out, reports);
    if !changes.is_empty() {
        out.push_str("<section aria-labelledby=\"changes\"><h2 id=\"changes\">Provider health changes</h2><div class=\"scroll\"><table>\
            <thead><tr><th scope=\"col\">When</th><th scope=\"col\">Provider</th><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\">Why</th></tr></thead><tbody>\n");
        for t in changes {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                human_seconds(t.at_ms),
                escape(&t.provider),
                t.from.as_str(),
                t.to.as_str(),
                escape(&t.reason)
            );
        }
        out.push_str("</tbody></table></div></section>\n");
    }
    out.push_str("</main>\n");
    html::foot(&mut out);
    out
}

/// Stretches without measurement: neither healthy nor failing.
fn gaps(out: &mut String, review: &Review, now_ms: i64) {
    if review.gaps.is_empty() {
        return;
    }
    out.push_str(
        "<section aria-labelledby=\"gaps\"><h2 id=\"gaps\">Monitoring gaps</h2>\n\
         <p class=\"small\">Nothing was measured in these stretches: they count neither as healthy nor as failing.</p><ul>\n",
    );
    for g in &review.gaps {
        let _ = writeln!(
            out,
            "<li class=\"gap\" data-from=\"{}\">{} – {} ({}): {}</li>",
            g.from_ms,
            human_seconds(g.from_ms),
            g.to_ms.map_or_else(|| "still going on".into(), human_seconds),
            g.to_ms.map_or_else(|| format!("so far {}", span_words(now_ms - g.from_ms)), |t| span_words(t - g.from_ms)),
            escape(&crate::report::gap_sentence(g, g.inbox.as_deref()))
        );
    }
    out.push_str("</ul></section>\n");
}

fn summary(out: &mut String, reports: &[RouteReport]) {
    out.push_str(
        "<section aria-labelledby=\"routes\"><h2 id=\"routes\">Routes</h2><div class=\"scroll\"><table><thead><tr>",
    );
    for h in [
        "Route",
        "Provider",
        "Inbox",
        "Sent",
        "Delivered",
        "Spam",
        "Late",
        "Lost",
        "Bounced",
        "Refused",
        "Mismatched",
        "p50",
        "p95",
        "p99",
    ] {
        let _ = write!(out, "<th scope=\"col\">{h}</th>");
    }
    out.push_str("</tr></thead><tbody>\n");
    for r in reports {
        let _ = writeln!(
            out,
            "<tr data-route=\"{0}\"><th scope=\"row\">{0}</th><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td><td>{6}</td><td>{7}</td><td>{8}</td><td>{9}</td><td>{10}</td><td>{11}</td><td>{12}</td><td>{13}</td></tr>",
            escape(&r.probe),
            escape(&r.provider),
            escape(&r.inbox),
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
    if reports.is_empty() {
        out.push_str("<tr><td colspan=\"14\">No canaries in this period.</td></tr>\n");
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn charts(
    out: &mut String,
    rows: &[Row],
    traffic: &[(i64, String, u64)],
    shaded: &[(i64, i64)],
    since_ms: i64,
    now_ms: i64,
) {
    let mut series: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
    for r in rows {
        if let (Some(ms), State::Settled(OutcomeKind::Delivered) | State::Settled(OutcomeKind::Late)) =
            (r.latency_ms, r.state)
        {
            series.entry(&r.probe).or_default().push((r.created_ms, ms as f64 / 1000.0));
        }
    }
    let series: Vec<(String, Vec<(i64, f64)>)> = series.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    out.push_str("<section aria-labelledby=\"charts\"><h2 id=\"charts\">Over time</h2>\n");
    out.push_str(
        "<figure id=\"latency\"><figcaption>Delivery latency per route (seconds); shaded: incidents</figcaption>\n",
    );
    out.push_str(&chart::latency(&series, shaded, since_ms, now_ms));
    out.push_str("<p class=\"small\">");
    for (i, (route, _)) in series.iter().enumerate() {
        let _ = write!(
            out,
            "<span style=\"color:{}\">■</span> {} &nbsp;",
            ["#0550ae", "#1a7f37", "#8250df", "#bc4c00", "#cf222e", "#116329", "#953800", "#57606a"][i % 8],
            escape(route)
        );
    }
    out.push_str("</p></figure>\n");
    // About 48 columns over the period, in whole seconds.
    let bucket_ms = (((now_ms - since_ms) / 48).max(1000) / 1000) * 1000;
    let mut buckets: BTreeMap<i64, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for r in rows {
        let k = kind(r);
        if !k.is_empty() {
            let start = since_ms + (r.created_ms - since_ms).div_euclid(bucket_ms) * bucket_ms;
            *buckets.entry(start).or_default().entry(k).or_default() += 1;
        }
    }
    let buckets: Vec<_> = buckets.into_iter().collect();
    out.push_str("<figure id=\"outcomes\"><figcaption>Outcomes over time</figcaption>\n");
    out.push_str(&chart::outcomes(&buckets, bucket_ms, since_ms, now_ms));
    out.push_str(&chart::legend(&chart::kinds()));
    out.push_str("</figure>\n");
    real_traffic(out, traffic, bucket_ms, since_ms, now_ms);
    out.push_str("</section>\n");
}

/// The real mail over the same columns as the canaries' outcomes: what
/// the customers felt beside what the canaries measured.
fn real_traffic(out: &mut String, traffic: &[(i64, String, u64)], bucket_ms: i64, since_ms: i64, now_ms: i64) {
    let mut buckets: BTreeMap<i64, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for (minute, kind, n) in traffic {
        let Some(kind) = chart::TRAFFIC_KINDS.iter().copied().find(|k| *k == kind.as_str()) else { continue };
        if *minute < since_ms || *minute >= now_ms {
            continue;
        }
        let start = since_ms + (minute - since_ms).div_euclid(bucket_ms) * bucket_ms;
        *buckets.entry(start).or_default().entry(kind).or_default() += *n as usize;
    }
    if buckets.is_empty() {
        return;
    }
    let buckets: Vec<_> = buckets.into_iter().collect();
    out.push_str(
        "<figure id=\"real-traffic\"><figcaption>Real mail over time: messages by when they were sent, and what \
         happened to them (as <code>mailcanary impact</code> judges them)</figcaption>\n",
    );
    out.push_str(&chart::traffic(&buckets, bucket_ms, since_ms, now_ms));
    out.push_str(&chart::legend(&chart::TRAFFIC_KINDS));
    out.push_str("</figure>\n");
}

/// The hops of the canaries in windows that were seen (late, slow, spam);
/// if none was, those of each affected route's last canary seen.
fn hops(out: &mut String, rows: &[Row], reports: &[RouteReport]) {
    let by_id: HashMap<&str, &Row> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let delays = |row: &Row| -> Vec<f64> { row.hops.iter().map(|h| h.delay_seconds.unwrap_or(0.0)).collect() };
    let mut bars: Vec<(String, Vec<f64>)> = reports
        .iter()
        .flat_map(|r| r.windows.iter().flat_map(|w| &w.canaries))
        .filter_map(|c| by_id.get(c.canary.as_str()).filter(|row| !row.hops.is_empty()))
        .map(|row| (format!("{} {} ({})", row.probe, &human(row.created_ms)[11..16], kind(row)), delays(row)))
        .take(HOP_ROWS)
        .collect();
    let mut note = "canaries of the incident windows that were seen";
    if bars.is_empty() {
        note = "no canary of an incident window was seen; these are the last canaries seen of the affected routes";
        bars = reports
            .iter()
            .filter(|r| !r.windows.is_empty())
            .filter_map(|r| {
                let p = r.last_path.as_ref()?;
                Some((
                    format!("{} {}", r.probe, &human(p.seen_ms)[11..16]),
                    p.hops.iter().map(|h| h.delay_seconds.unwrap_or(0.0)).collect(),
                ))
            })
            .take(HOP_ROWS)
            .collect();
    }
    out.push_str("<section aria-labelledby=\"hops\"><h2 id=\"hops\">Per-hop delays</h2>\n");
    if bars.is_empty() {
        out.push_str("<p>No affected canary has Received hops to show.</p></section>\n");
        return;
    }
    let _ = writeln!(
        out,
        "<figure id=\"hop-chart\"><figcaption>Delay of each Received hop ({})</figcaption>",
        escape(note)
    );
    out.push_str(&chart::hops(&bars));
    out.push_str("</figure></section>\n");
}

fn windows(out: &mut String, reports: &[RouteReport]) {
    out.push_str("<section aria-labelledby=\"windows\"><h2 id=\"windows\">Canaries that went wrong</h2>\n");
    for r in reports.iter().filter(|r| !r.windows.is_empty()) {
        let _ = writeln!(
            out,
            "<h3>{} ({} → {})</h3><div class=\"scroll\"><table><thead><tr><th scope=\"col\">Sent</th><th scope=\"col\">Canary</th>\
             <th scope=\"col\">Outcome</th><th scope=\"col\">Latency</th><th scope=\"col\">Provider id</th><th scope=\"col\">Bounce</th></tr></thead><tbody>",
            escape(&r.probe),
            escape(&r.provider),
            escape(&r.inbox)
        );
        for c in r.windows.iter().flat_map(|w| &w.canaries) {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                human_seconds(c.sent_ms),
                escape(&c.canary),
                escape(&c.outcome),
                seconds(c.latency_seconds),
                escape(c.provider_id.as_deref().unwrap_or("")),
                escape(c.bounce_detail.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</tbody></table></div>\n");
    }
    out.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use crate::incident::{Judge, review};
    use crate::ledger::{Row, State};
    use crate::outcome::OutcomeKind;
    use std::time::Duration;

    #[test]
    fn the_review_states_the_threshold_it_was_given_and_judges_by_it() {
        let row = |t: i64, latency_ms: i64| Row {
            id: format!("c{t}"),
            probe: "r".into(),
            provider: "p".into(),
            inbox: "i".into(),
            state: State::Settled(OutcomeKind::Delivered),
            created_ms: t,
            accepted_ms: Some(t),
            deadline_ms: t + 600_000,
            provider_id: None,
            failure_reason: None,
            seen_ms: Some(t + latency_ms),
            latency_ms: Some(latency_ms),
            placement: Some("inbox".into()),
            bounce_status: None,
            bounce_detail: None,
            hops: Vec::new(),
            observed: Default::default(),
            expectation: None,
        };
        let rows = [row(0, 95_000), row(60_000, 1_000)];
        for (slow, incidents) in [(90, 1), (100, 0)] {
            let judge = Judge { slow: Duration::from_secs(slow), now_ms: 120_000 };
            let reports = crate::report::build(&rows, judge);
            let review = review(&rows, &[], judge);
            assert_eq!(review.incidents.len(), incidents, "--slow {slow}s");
            let html = super::render(&rows, &reports, &review, &[], &[], 0, judge);
            assert!(html.contains(&format!("A delivery slower than {slow} s counts as delayed")), "{html}");
            assert!(!html.contains("slower than 1 min"), "the threshold is said as set: {html}");
            assert!(!html.contains("id=\"real-traffic\""), "no real mail, no chart");
        }
        // The real mail, beside the canaries: every message of the ledger's counts in a column.
        let judge = Judge { slow: Duration::from_secs(90), now_ms: 120_000 };
        let traffic = [(0, "delivered".to_string(), 40), (0, "late".to_string(), 7), (60_000, "bounced".into(), 2)];
        let (reports, review) = (crate::report::build(&rows, judge), review(&rows, &[], judge));
        let html = super::render(&rows, &reports, &review, &[], &traffic, 0, judge);
        let chart = html
            .split("id=\"real-traffic\"")
            .nth(1)
            .expect("the real-traffic chart")
            .split("</figure>")
            .next()
            .unwrap();
        for said in [": 40 delivered</title>", ": 7 late</title>", ": 2 bounced</title>", "no final event"] {
            assert!(chart.contains(said), "{said} in {chart}");
        }
    }
}
