//! `impact`'s three forms: text for a terminal (the summary, the counts,
//! then every message), CSV for a spreadsheet or a mail merge, JSON for a
//! script. The summary names no recipient and no provider detail: it is
//! written to be pasted into a message to customers.
//!
//! What providers and logs said is untrusted: on a terminal it is quoted
//! (crate::quote: control and invisible characters escaped, long text
//! cut), and a CSV cell that a spreadsheet would take for a formula is
//! made text.

use super::window::rfc3339;
use super::{Harm, Impact};
use crate::quote::quote;
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// "42 s", "12 min", "1 h 5 min".
pub fn duration(seconds: f64) -> String {
    let s = seconds.round() as i64;
    match s {
        ..90 => format!("{s} s"),
        90..3600 => format!("{} min", (s + 30) / 60),
        _ => {
            let m = (s + 30) / 60;
            if m % 60 == 0 { format!("{} h", m / 60) } else { format!("{} h {} min", m / 60, m % 60) }
        }
    }
}

fn when(ms: i64, fmt: &str) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.format(fmt).to_string())
}

/// Thousands separated: 10,000.
fn n(count: usize) -> String {
    let digits = count.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The paragraph for customers.
pub fn summary(i: &Impact) -> String {
    let w = &i.window;
    let (from, to) = (when(w.from_ms, "%H:%M"), when(w.to_ms, "%H:%M UTC on %-d %B %Y"));
    let span = if w.ongoing {
        format!("Since {from} UTC on {}", when(w.from_ms, "%-d %B %Y"))
    } else {
        format!("Between {from} and {to}")
    };
    let hurt = i.affected_count();
    if hurt == 0 {
        return format!("{span}, all {} emails we sent were delivered without delay.", n(i.messages));
    }
    let c = |h: Harm| i.counts.get(&h).copied().unwrap_or(0);
    let mut parts = Vec::new();
    if c(Harm::Late) > 0 {
        let typical = i.delay_p50_seconds.map(duration).unwrap_or_default();
        let longest = i.delay_max_seconds.map(duration).unwrap_or_default();
        parts.push(format!("{} arrived late (typically by {typical}, at most by {longest})", n(c(Harm::Late))));
    }
    let undelivered = c(Harm::Deferred) + c(Harm::NoFinalEvent);
    if undelivered > 0 {
        parts.push(format!("{} have not been delivered", n(undelivered)));
    }
    let failed = c(Harm::Bounced) + c(Harm::Rejected) + c(Harm::Dropped);
    if failed > 0 {
        parts.push(format!("{} could not be delivered", n(failed)));
    }
    let list = match parts.len() {
        1 => parts[0].clone(),
        _ => format!("{} and {}", parts[..parts.len() - 1].join(", "), parts[parts.len() - 1]),
    };
    let mut out = format!(
        "{span}, our email delivery was disrupted. Of the {} emails we sent in that time, {list}.",
        n(i.messages)
    );
    if undelivered + failed > 0 {
        out.push_str(" If you were expecting an email from us in that time (a password reset, a confirmation), please request it again.");
    }
    out
}

/// The text form.
pub fn text(i: &Impact) -> String {
    let w = &i.window;
    let mut out = String::new();
    let what = match &w.incident {
        Some(id) => format!("incident {}{}", quote(id), if w.ongoing { " (ongoing)" } else { "" }),
        None => "window".to_string(),
    };
    let _ = writeln!(
        out,
        "mailcanary impact: {what}, {} from {} to {}",
        quote(&w.providers.join(", ")),
        rfc3339(w.from_ms),
        rfc3339(w.to_ms)
    );
    let _ = writeln!(
        out,
        "{} real messages in the window; {} affected{}",
        n(i.messages),
        n(i.affected_count()),
        if i.in_flight > 0 { format!(", {} still in flight", n(i.in_flight)) } else { String::new() }
    );
    for (harm, count) in &i.counts {
        let mut line = format!("  {:<28}{:>8}", harm.words(), n(*count));
        if *harm == Harm::Late && *count > 0 {
            let d = |v: Option<f64>| v.map(duration).unwrap_or_default();
            let _ = write!(
                line,
                "   delay p50 {}, p95 {}, max {}",
                d(i.delay_p50_seconds),
                d(i.delay_p95_seconds),
                d(i.delay_max_seconds)
            );
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "\nSummary (for customers):\n  {}\n", summary(i));
    if !i.affected.is_empty() {
        table(&mut out, i);
    }
    out
}

/// Every affected message, a line each.
fn table(out: &mut String, i: &Impact) {
    let _ = writeln!(
        out,
        "{:<21} {:<14} {:<26} {:>9}  {:<34} {:<28} LAST EVENT",
        "SENT (UTC)", "PROVIDER", "OUTCOME", "DELAY", "RECIPIENT", "MESSAGE ID"
    );
    for a in &i.affected {
        let r = &a.row;
        let _ = writeln!(
            out,
            "{:<21} {:<14} {:<26} {:>9}  {:<34} {:<28} {} {}{}",
            rfc3339(r.first_ms),
            quote(&r.provider),
            a.harm.words(),
            a.delay_seconds.map(duration).unwrap_or_else(|| "-".into()),
            if r.recipient.is_empty() { "-".to_string() } else { quote(&r.recipient) },
            quote(&r.message_id),
            quote(&r.last_kind),
            rfc3339(r.last_ms),
            r.last_detail.as_deref().map(|d| format!(" ({})", quote(d))).unwrap_or_default()
        );
    }
}

/// RFC 4180: quoted when it must be, quotes doubled. A cell a spreadsheet
/// would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a
/// CR) gets a leading `'`, which makes it text (OWASP's CSV injection).
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// The CSV form: one message a row, with a header.
pub fn csv(i: &Impact) -> String {
    let mut out = String::from(
        "sent_at,provider,harm,delay_seconds,recipient,message_id,smtp_id,deferrals,last_event,last_event_at,detail\r\n",
    );
    for a in &i.affected {
        let r = &a.row;
        let row = [
            rfc3339(r.first_ms),
            r.provider.clone(),
            a.harm.as_str().to_string(),
            a.delay_seconds.map(|d| format!("{d:.3}")).unwrap_or_default(),
            r.recipient.clone(),
            r.message_id.clone(),
            r.smtp_id.clone().unwrap_or_default(),
            r.deferrals.to_string(),
            r.last_kind.clone(),
            rfc3339(r.last_ms),
            r.last_detail.clone().unwrap_or_default(),
        ];
        out.push_str(&row.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// The JSON form: the window, counts, delays, summary and every message.
pub fn json(i: &Impact) -> String {
    let counts: serde_json::Map<String, serde_json::Value> =
        i.counts.iter().map(|(h, c)| (h.as_str().to_string(), (*c).into())).collect();
    let value = serde_json::json!({
        "window": i.window,
        "from": rfc3339(i.window.from_ms),
        "to": rfc3339(i.window.to_ms),
        "messages": i.messages,
        "in_flight": i.in_flight,
        "affected": i.affected_count(),
        "counts": counts,
        "delay_p50_seconds": i.delay_p50_seconds,
        "delay_p95_seconds": i.delay_p95_seconds,
        "delay_max_seconds": i.delay_max_seconds,
        "summary": summary(i),
        "messages_affected": i.affected,
    });
    crate::quote::json_for_terminal(&serde_json::to_string_pretty(&value).expect("JSON of plain data")) + "\n"
}
