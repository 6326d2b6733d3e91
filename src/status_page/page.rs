//! `/status`: semantic HTML, readable without script, reloading itself.
//! Each provider and incident carries `data-` attributes naming what it
//! shows, for tests and for scrapers that would rather not parse prose.

use super::chart::day_bars;
use super::format::human;
use super::html::{self, escape, state_colour};
use super::view::{IncidentView, Snapshot};
use crate::health::State as HealthState;
use crate::outcome::OutcomeKind;
use std::fmt::Write;

impl Snapshot {
    /// The page, rendered once per snapshot.
    pub fn html(&self) -> String {
        self.html.get_or_init(|| render(self)).clone()
    }
}

fn time(rfc3339: &str) -> String {
    let ms = chrono::DateTime::parse_from_rfc3339(rfc3339).map(|t| t.timestamp_millis()).unwrap_or_default();
    format!("<time datetime=\"{}\">{}</time>", escape(rfc3339), escape(&human(ms)))
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn kinds(canaries: &std::collections::BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = canaries.iter().map(|(k, n)| format!("{n} {k}")).collect();
    escape(&parts.join(", "))
}

/// The sentence at the top: the worst of the providers and incidents.
fn banner(snap: &Snapshot) -> (&'static str, String) {
    let down: Vec<&str> =
        snap.providers.iter().filter(|p| p.state == HealthState::Down).map(|p| p.name.as_str()).collect();
    let degraded = snap.providers.iter().any(|p| p.state == HealthState::Degraded);
    let open = snap.incidents.iter().any(IncidentView::is_open);
    if !down.is_empty() {
        (html::BAD, format!("Email through {} is not being delivered", down.join(", ")))
    } else if degraded || open {
        (html::WARN, "Some email deliveries are failing or delayed".into())
    } else if snap.providers.iter().all(|p| p.state == HealthState::Unknown) {
        (html::NONE, "Waiting for the first canaries".into())
    } else {
        (html::GOOD, "All email providers are delivering normally".into())
    }
}

pub fn render(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(16 * 1024 + snap.routes.len() * 400);
    html::head(&mut out, &snap.title, Some(snap.refresh_seconds));
    let _ = write!(
        out,
        "<header>\n<h1>{}</h1>\n<p class=\"muted small\">Updated {}; this page reloads every {} s.</p>\n</header>\n<main>\n",
        escape(&snap.title),
        time(&snap.generated),
        snap.refresh_seconds
    );
    let (colour, sentence) = banner(snap);
    let _ = writeln!(
        out,
        "<p class=\"banner\" role=\"status\" style=\"background:{colour}\" id=\"overall\">{}</p>",
        escape(&sentence)
    );

    providers(&mut out, snap);
    routes(&mut out, snap);
    incidents(&mut out, snap);
    out.push_str("</main>\n");
    out.push_str(
        "<footer class=\"small muted\"><p>The same data as <a href=\"/api/v1/incidents\">JSON</a> and as an \
         <a href=\"/feed.atom\">Atom feed</a>. Measured by mailcanary with signed test messages.</p></footer>\n",
    );
    html::foot(&mut out);
    out
}

/// Each provider: its state, why, and its days as bars.
fn providers(out: &mut String, snap: &Snapshot) {
    let _ = writeln!(out, "<section aria-labelledby=\"providers\">\n<h2 id=\"providers\">Providers</h2>");
    for p in &snap.providers {
        let state = p.state.as_str();
        let _ = writeln!(
            out,
            "<article class=\"provider\" data-provider=\"{name}\" data-state=\"{state}\">\n<header><h3>{name}</h3>\
             <span class=\"state\" style=\"background:{}\">{}</span></header>\n\
             <p class=\"small\">{} <span class=\"muted\">since {}; {} route{}, {} failing.</span></p>\n{}\n\
             <div class=\"legend muted small\"><span>{} ago</span><span>today</span></div>\n</article>",
            state_colour(state),
            title_case(state),
            escape(&p.summary),
            time(&p.since),
            p.routes,
            if p.routes == 1 { "" } else { "s" },
            p.failing_routes,
            day_bars(&p.days, &p.name),
            crate::words::count(p.days.len().saturating_sub(1), "day", "days"),
            name = escape(&p.name)
        );
    }
    if snap.providers.is_empty() {
        out.push_str("<p>No providers are configured.</p>\n");
    }
    out.push_str(
        "<p class=\"small muted\">Each bar is a day (UTC), coloured by the share of canaries delivered in time: \
                  green 99.9% or more, amber 95% or more, red below, grey without canaries.</p>\n</section>\n",
    );
}

/// Each route's last outcome, where inboxes may be shown.
fn routes(out: &mut String, snap: &Snapshot) {
    if !snap.visibility.inboxes || snap.routes.is_empty() {
        return;
    }
    out.push_str(
        "<section aria-labelledby=\"routes\">\n<h2 id=\"routes\">Routes</h2>\n<div class=\"scroll\"><table>\n\
         <thead><tr><th scope=\"col\">Route</th><th scope=\"col\">Provider</th><th scope=\"col\">Inbox</th>\
         <th scope=\"col\">Last outcome</th><th scope=\"col\" class=\"hide-narrow\">When</th><th scope=\"col\">Latency</th></tr></thead>\n<tbody>\n",
    );
    for r in &snap.routes {
        let outcome =
            r.last_outcome.map_or(if r.in_flight > 0 { "in flight" } else { "none yet" }, OutcomeKind::as_str);
        // A route a reload retired: its last canaries, beside the current route of its name.
        let retired = if r.retired {
            " <small title=\"a reload gave this name to another provider or inbox; its own canaries still in flight settle here\">(retired)</small>"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<tr data-route=\"{}\" data-outcome=\"{}\"{}><th scope=\"row\">{}{retired}</th><td>{}</td><td>{}</td><td>{}</td><td class=\"hide-narrow\">{}</td><td>{}</td></tr>",
            escape(&r.name),
            escape(outcome),
            if r.retired { " data-retired=\"true\"" } else { "" },
            escape(&r.name),
            escape(&r.provider),
            escape(&r.inbox),
            escape(outcome),
            r.last_outcome_at.as_deref().map(time).unwrap_or_default(),
            r.last_latency_seconds.map(|l| format!("{l:.2} s")).unwrap_or_else(|| "–".into())
        );
    }
    out.push_str("</tbody>\n</table></div>\n</section>\n");
}

/// The incidents of the period, newest first, under the delayed rule.
fn incidents(out: &mut String, snap: &Snapshot) {
    let _ = writeln!(
        out,
        "<section aria-labelledby=\"incidents\">\n<h2 id=\"incidents\">Incidents</h2>\n<p class=\"small muted\" id=\"delayed-rule\">{}</p>",
        escape(&snap.delayed_rule)
    );
    if snap.incidents.is_empty() {
        out.push_str("<p>No incidents in this period.</p>\n");
    }
    for i in &snap.incidents {
        incident(out, i);
    }
    out.push_str("</section>\n");
    gaps(out, snap);
}

/// Stretches in which nothing was measured: said as such, not as health.
fn gaps(out: &mut String, snap: &Snapshot) {
    if snap.gaps.is_empty() {
        return;
    }
    out.push_str(
        "<section aria-labelledby=\"gaps\">\n<h2 id=\"gaps\">Monitoring gaps</h2>\n\
         <p class=\"small muted\">Nothing was measured in these stretches: they count neither as delivering nor as failing.</p>\n<ul>\n",
    );
    for g in &snap.gaps {
        let _ = writeln!(
            out,
            "<li data-gap=\"{}\">{}{}: {}.</li>",
            g.kind,
            time(&g.started),
            g.ended.as_deref().map(|e| format!(" to {}", time(e))).unwrap_or_else(|| " until now".into()),
            escape(&g.sentence())
        );
    }
    out.push_str("</ul>\n</section>\n");
}

fn incident(out: &mut String, i: &IncidentView) {
    let open = i.is_open();
    let _ = writeln!(
        out,
        "<article class=\"incident{}\" data-open=\"{open}\" data-providers=\"{}\">\n<h3>{}</h3>\n<p>Started {}{}.</p>",
        if open { "" } else { " closed" },
        escape(&i.providers.join(" ")),
        escape(&i.headline()),
        time(&i.started),
        i.ended.as_deref().map(|e| format!(", ended {}", time(e))).unwrap_or_else(|| ", still going on".into())
    );
    let _ = write!(out, "<p>Providers: {}", escape(&i.providers.join(", ")));
    if !i.inboxes.is_empty() {
        let _ = write!(out, "; inboxes: {}", escape(&i.inboxes.join(", ")));
    }
    out.push_str(".</p>\n");
    if !i.canaries.is_empty() {
        let _ = writeln!(out, "<p>Canaries that went wrong: {}.</p>", kinds(&i.canaries));
    }
    if let Some(t) = &i.real_traffic {
        let _ = write!(out, "<p class=\"real-traffic\">{}.", escape(&t.sentence()));
        if let Some(command) = &t.command {
            let _ = write!(out, " <span class=\"small muted\">List them: <code>{}</code></span>", escape(command));
        }
        out.push_str("</p>\n");
    }
    if !i.provider_changes.is_empty() || !i.routes.is_empty() {
        out.push_str("<ul class=\"small\">\n");
        for c in &i.provider_changes {
            let _ = writeln!(
                out,
                "<li>{} {} from {}{}{}</li>",
                escape(&c.provider),
                c.state.as_str(),
                time(&c.started),
                c.ended.as_deref().map(|e| format!(" to {}", time(e))).unwrap_or_default(),
                c.reason.as_deref().map(|r| format!(": {}", escape(r))).unwrap_or_default()
            );
        }
        for r in &i.routes {
            let _ = writeln!(
                out,
                "<li>{} ({} → {}): {} from {}{}</li>",
                escape(&r.route),
                escape(&r.provider),
                escape(&r.inbox),
                kinds(&r.canaries),
                time(&r.started),
                r.ended.as_deref().map(|e| format!(" to {}", time(e))).unwrap_or_default()
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</article>\n");
}
