//! SVG charts, drawn here so a page or a report needs no script and no
//! library: the daily bars of the status page, and the report's latency
//! lines, outcome columns and per-hop delays. Every chart is an `<svg
//! role="img">` with an `aria-label` saying what it shows, and each mark
//! has a `<title>` (a tooltip, and text for screen readers).

use super::format::{human, human_seconds, span};
use super::html::{BAD, GOOD, NONE, WARN, escape};
use super::view::DayView;
use crate::outcome::{OutcomeKind, Placement};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The colour of a day's share of canaries delivered in time.
pub fn share_colour(share: Option<f64>) -> &'static str {
    match share {
        None => "#d0d7de",
        Some(s) if s >= 0.999 => GOOD,
        Some(s) if s >= 0.95 => WARN,
        Some(_) => BAD,
    }
}

fn percent(share: f64) -> String {
    let p = share * 100.0;
    if (99.95..100.0).contains(&p) { "99.9%".into() } else { format!("{p:.1}%").replace(".0%", "%") }
}

/// One bar per day, coloured by the share delivered in time.
pub fn day_bars(days: &[DayView], provider: &str) -> String {
    let n = days.len().max(1);
    let (w, gap) = (10.0, 2.0);
    let width = n as f64 * (w + gap);
    let counted: Vec<&DayView> = days.iter().filter(|d| d.resolved > 0).collect();
    let (resolved, delivered) = counted.iter().fold((0, 0), |(r, d), day| (r + day.resolved, d + day.delivered));
    let overall = if resolved > 0 { percent(delivered as f64 / resolved as f64) } else { "no data".into() };
    let bad_days = counted.iter().filter(|d| d.share.is_some_and(|s| s < 0.999)).count();
    let label = format!(
        "{provider}: {}, {overall} of canaries delivered in time, {} below 99.9%",
        crate::words::count(days.len(), "day", "days"),
        crate::words::count(bad_days, "day", "days")
    );
    let mut out = format!(
        "<svg class=\"bars\" viewBox=\"0 0 {width} 34\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}\">",
        escape(&label)
    );
    for (i, d) in days.iter().enumerate() {
        let what = match d.share {
            Some(s) => format!("{}: {} of {} delivered in time ({})", d.date, d.delivered, d.resolved, percent(s)),
            None => format!("{}: no canaries", d.date),
        };
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"0\" width=\"{w}\" height=\"34\" rx=\"1.5\" fill=\"{}\" data-date=\"{}\" data-share=\"{}\"><title>{}</title></rect>",
            i as f64 * (w + gap),
            share_colour(d.share),
            escape(&d.date),
            d.share.map_or_else(String::new, |s| format!("{s:.4}")),
            escape(&what)
        );
    }
    out.push_str("</svg>");
    out
}

/// Colours for outcomes, and for lines (one per route, cycling).
pub fn outcome_colour(kind: &str) -> &'static str {
    match kind {
        "delivered" => GOOD,
        "spam" => "#8250df",
        "late" => WARN,
        "lost" => BAD,
        "bounced" => "#bc4c00",
        "refused" => "#0550ae",
        "mismatched" => "#953800",
        "deferred" => "#d4a72c",
        "no final event" => "#82071e",
        "rejected" => "#0550ae",
        "dropped" => "#57606a",
        _ => NONE,
    }
}
const LINES: [&str; 8] = ["#0550ae", "#1a7f37", "#8250df", "#bc4c00", "#cf222e", "#116329", "#953800", "#57606a"];

/// The plot area of the report's charts.
struct Frame {
    from: i64,
    to: i64,
    width: f64,
    height: f64,
    left: f64,
    bottom: f64,
}

impl Frame {
    fn x(&self, ms: i64) -> f64 {
        let span = (self.to - self.from).max(1) as f64;
        self.left + (ms - self.from) as f64 / span * (self.width - self.left - 10.0)
    }
    fn y(&self, v: f64, max: f64) -> f64 {
        let plot = self.height - self.bottom - 10.0;
        10.0 + plot - v / max.max(f64::MIN_POSITIVE) * plot
    }
    /// Axes, ticks at the start, middle and end, and the shaded windows.
    fn axes(&self, out: &mut String, max: f64, unit: &str, shaded: &[(i64, i64)]) {
        for (from, to) in shaded {
            let (x0, x1) = (self.x(*from), self.x(*to));
            let _ = write!(
                out,
                "<rect class=\"window\" x=\"{x0:.1}\" y=\"10\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#cf222e\" fill-opacity=\"0.12\"><title>{}</title></rect>",
                (x1 - x0).max(2.0),
                self.height - self.bottom - 10.0,
                escape(&format!("delivery failed {} to {}", human(*from), human(*to)))
            );
        }
        let base = self.height - self.bottom;
        let _ = write!(
            out,
            "<line x1=\"{l}\" y1=\"10\" x2=\"{l}\" y2=\"{base}\" stroke=\"#57606a\"/><line x1=\"{l}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#57606a\"/>",
            self.width - 10.0,
            l = self.left
        );
        for v in [0.0, max / 2.0, max] {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#1f2328\">{}</text>",
                self.left - 4.0,
                self.y(v, max) + 4.0,
                escape(&format!("{v:.1}{unit}"))
            );
        }
        // Minutes tell a span of hours apart; a span of minutes needs seconds.
        let short = |ms: i64| {
            if self.to - self.from < 3_600_000 {
                human_seconds(ms)[5..19].to_string()
            } else {
                human(ms)[5..16].to_string()
            }
        };
        for (ms, anchor) in [(self.from, "start"), ((self.from + self.to) / 2, "middle"), (self.to, "end")] {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"{anchor}\" fill=\"#1f2328\">{}</text>",
                self.x(ms),
                base + 15.0,
                escape(&short(ms))
            );
        }
    }
}

fn open_svg(out: &mut String, f: &Frame, label: &str) {
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {} {}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        f.width,
        f.height,
        escape(label)
    );
}

/// Latency per route over time, incident windows shaded.
pub fn latency(series: &[(String, Vec<(i64, f64)>)], shaded: &[(i64, i64)], from: i64, to: i64) -> String {
    let f = Frame { from, to, width: 900.0, height: 260.0, left: 56.0, bottom: 24.0 };
    let max = series.iter().flat_map(|(_, p)| p.iter().map(|(_, v)| *v)).fold(0.0, f64::max).max(0.001) * 1.1;
    let mut out = String::new();
    let routes = crate::words::count(series.len(), "route", "routes");
    open_svg(&mut out, &f, &format!("Delivery latency of {routes}; shaded: incident windows"));
    f.axes(&mut out, max, " s", shaded);
    for (i, (route, points)) in series.iter().enumerate() {
        let colour = LINES[i % LINES.len()];
        let path: Vec<String> = points.iter().map(|(t, v)| format!("{:.1},{:.1}", f.x(*t), f.y(*v, max))).collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>",
            path.join(" "),
            escape(route)
        );
        for (t, v) in points {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{colour}\"><title>{}</title></circle>",
                f.x(*t),
                f.y(*v, max),
                escape(&format!("{route}: {v:.2} s at {}", human(*t)))
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// The columns of canaries, in the order they are stacked: each outcome
/// (crate::outcome::OutcomeKind, in its order), deliveries into spam
/// beside the others.
pub fn kinds() -> Vec<&'static str> {
    let columns = |k: OutcomeKind| match k {
        OutcomeKind::Delivered => vec![k.as_str(), Placement::Spam.as_str()],
        k => vec![k.as_str()],
    };
    OutcomeKind::ALL.into_iter().flat_map(columns).collect()
}
/// What happened to real messages (crate::traffic::impact's judgement),
/// in the order they are stacked.
pub const TRAFFIC_KINDS: [&str; 7] =
    ["delivered", "late", "deferred", "no final event", "bounced", "rejected", "dropped"];

/// The outcomes of canaries per time bucket, as stacked columns.
pub fn outcomes(buckets: &[(i64, BTreeMap<&'static str, usize>)], bucket_ms: i64, from: i64, to: i64) -> String {
    stacked(
        buckets,
        &kinds(),
        &format!("Outcomes of canaries per {}, stacked by kind", span(bucket_ms)),
        bucket_ms,
        from,
        to,
    )
}

/// Real messages per time bucket (by when they were sent), as stacked
/// columns of what happened to them.
pub fn traffic(buckets: &[(i64, BTreeMap<&'static str, usize>)], bucket_ms: i64, from: i64, to: i64) -> String {
    let what =
        format!("Real messages per {}, by when they were sent, stacked by what happened to them", span(bucket_ms));
    stacked(buckets, &TRAFFIC_KINDS, &what, bucket_ms, from, to)
}

fn stacked(
    buckets: &[(i64, BTreeMap<&'static str, usize>)],
    kinds: &[&str],
    label: &str,
    bucket_ms: i64,
    from: i64,
    to: i64,
) -> String {
    let f = Frame { from, to, width: 900.0, height: 220.0, left: 56.0, bottom: 24.0 };
    let max = buckets.iter().map(|(_, k)| k.values().sum::<usize>()).max().unwrap_or(1).max(1) as f64;
    let mut out = String::new();
    open_svg(&mut out, &f, label);
    f.axes(&mut out, max, "", &[]);
    let w = (f.x(from + bucket_ms) - f.x(from)).max(1.0) * 0.85;
    for (start, counts) in buckets {
        let mut acc = 0.0;
        for &kind in kinds {
            let n = counts.get(kind).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let (y0, y1) = (f.y(acc, max), f.y(acc + n as f64, max));
            acc += n as f64;
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{y1:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}</title></rect>",
                f.x(*start),
                y0 - y1,
                outcome_colour(kind),
                escape(&format!("{}: {n} {kind}", human(*start)))
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// A legend for `kinds` (`KINDS`, `TRAFFIC_KINDS`), as HTML.
pub fn legend(kinds: &[&str]) -> String {
    let mut out = String::from("<p class=\"small\">");
    for kind in kinds {
        let _ = write!(
            out,
            "<span style=\"display:inline-block;width:.8em;height:.8em;background:{}\"></span> {kind} &nbsp;",
            outcome_colour(kind)
        );
    }
    out.push_str("</p>");
    out
}

/// Each canary's hop delays as a horizontal stacked bar.
pub fn hops(canaries: &[(String, Vec<f64>)]) -> String {
    let row = 22.0;
    let height = 30.0 + row * canaries.len() as f64;
    let max = canaries.iter().map(|(_, d)| d.iter().sum::<f64>()).fold(0.0, f64::max).max(0.001);
    let (left, width) = (260.0, 900.0);
    let mut out = format!(
        "<svg viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        escape(&format!("Delay of each Received hop of {} affected canaries", canaries.len()))
    );
    for (i, (label, delays)) in canaries.iter().enumerate() {
        let y = 10.0 + i as f64 * row;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#1f2328\">{}</text>",
            left - 6.0,
            y + 13.0,
            escape(label)
        );
        let mut x = left;
        for (h, d) in delays.iter().enumerate() {
            let w = d / max * (width - left - 70.0);
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"16\" fill=\"{}\"><title>{}</title></rect>",
                w.max(1.0),
                LINES[h % LINES.len()],
                escape(&format!("{label}: hop {} took {d:.3} s", h + 1))
            );
            x += w.max(1.0);
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#1f2328\">{:.2} s</text>",
            x + 4.0,
            y + 13.0,
            delays.iter().sum::<f64>()
        );
    }
    out.push_str("</svg>");
    out
}
