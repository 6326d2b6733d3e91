//! A Postfix relay's mail log as a source of real-traffic events, for teams
//! whose provider is their own relay. Postfix logs a message's life under
//! its queue id across daemons: `smtpd` (`client=`, and a `hold` of a
//! recipient before the queue id exists, joined by the smtpd's pid),
//! `cleanup` (`message-id=`), `qmgr` (`from=`, and `removed`), and one
//! delivery line per attempt and recipient (`to=`, `delay=`, `dsn=`,
//! `status=sent|deferred|bounced|expired`). Each delivery line is an event;
//! its `delay=` (seconds since the message arrived) gives the send time.
//! Messages from the null sender are Postfix's own notices, not traffic.
//!
//! Postfix reuses a (short) queue id once its message has left the queue,
//! so a message is accounted under its queue id and the second it entered
//! the queue (`75B6798E3D8@2026-12-05T00:13:24Z`): the time of its
//! `client=` (or pickup's `uid=`) line, or, for a message met first by a
//! later line, that line's time less its `delay=`. A line's event id is its
//! queue id and a hash of the line, so reading a line twice (after a
//! restart) changes nothing. follow.rs reads the file, and on a restart
//! reads the part before where it stopped again without recording it, so
//! that the messages then in the queue keep their keys.

use crate::traffic_event::{BounceKind, Event, Kind, detail};
use chrono::{Datelike, NaiveDateTime, TimeZone};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Queue ids remembered at most: a relay's queue, with room.
const MAX_QUEUE: usize = 200_000;

/// What the log told of a queue id so far.
#[derive(Debug, Clone)]
struct Queued {
    /// `<queue id>@<when it entered the queue>`: the account's key.
    key: String,
    smtp_id: Option<String>,
    null_sender: bool,
}

impl Queued {
    fn new(qid: &str, since_ms: i64) -> Queued {
        let since = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(since_ms.div_euclid(1000) * 1000)
            .map_or_else(|| since_ms.to_string(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        Queued { key: format!("{qid}@{since}"), smtp_id: None, null_sender: false }
    }
}

/// Joins a log's lines into events.
#[derive(Debug, Default)]
pub struct Joiner {
    queue: HashMap<String, Queued>,
    /// Recipients an smtpd held before its message had a queue id, by pid.
    holds: HashMap<String, Vec<(String, i64)>>,
}

/// One line's parts: when, which daemon (and pid), and its message.
struct Line<'a> {
    at_ms: i64,
    daemon: &'a str,
    pid: &'a str,
    text: &'a str,
}

impl Joiner {
    /// smtpd holds a recipient before the message has a queue id: kept by
    /// the smtpd's pid until its next `client=` line names the queue id.
    fn hold_before_queue_id(&mut self, line: &Line<'_>, rest: &str) {
        if line.daemon == "smtpd"
            && let Some(to) = field(rest, "to=<", ">")
        {
            let held = self.holds.entry(line.pid.to_string()).or_default();
            if held.len() < 1000 {
                held.push((to.to_string(), line.at_ms));
            }
        }
    }

    /// The events of one log line (most lines have none).
    pub fn line(&mut self, raw: &str, now_ms: i64) -> Vec<Event> {
        let Some(line) = parse(raw, now_ms) else { return Vec::new() };
        if let Some(rest) = line.text.strip_prefix("NOQUEUE: hold: ") {
            self.hold_before_queue_id(&line, rest);
            return Vec::new();
        }
        let Some((qid, rest)) = line.text.split_once(": ").filter(|(q, _)| queue_id(q)) else { return Vec::new() };
        if self.queue.len() >= MAX_QUEUE && !self.queue.contains_key(qid) {
            self.queue.clear();
        }
        let delivered = delivery(rest, line.at_ms);
        if rest.starts_with("client=") || rest.starts_with("uid=") {
            // A new message: the queue id may have served an older one.
            self.queue.insert(qid.to_string(), Queued::new(qid, line.at_ms));
        }
        if rest == "removed" {
            self.queue.remove(qid);
            return Vec::new();
        }
        let since_ms = delivered.as_ref().and_then(|d| d.2).unwrap_or(line.at_ms);
        let queued = self.queue.entry(qid.to_string()).or_insert_with(|| Queued::new(qid, since_ms));
        let (key, smtp_id) = (queued.key.clone(), queued.smtp_id.clone());
        let event = |kind, recipient: Option<&str>, at_ms, sent_ms, said: &str| Event {
            event_id: format!("{qid}:{}", line_hash(raw, recipient)),
            message_id: key.clone(),
            recipient: recipient.map(str::to_string),
            kind,
            at_ms,
            sent_ms,
            smtp_id: smtp_id.clone(),
            detail: detail(said),
        };
        if rest.starts_with("client=") || rest.starts_with("uid=") {
            let held = self.holds.remove(line.pid).unwrap_or_default();
            return held
                .iter()
                .map(|(to, at)| event(Kind::Sent, Some(to), *at, Some(*at), "held by the relay"))
                .collect();
        }
        if let Some(id) = rest.strip_prefix("message-id=") {
            self.queue.entry(qid.to_string()).and_modify(|q| q.smtp_id = Some(id.trim().to_string()));
            return Vec::new();
        }
        if line.daemon == "qmgr" && rest.starts_with("from=<") {
            self.queue.entry(qid.to_string()).and_modify(|q| q.null_sender = rest.starts_with("from=<>"));
            return Vec::new();
        }
        if self.queue.get(qid).is_some_and(|q| q.null_sender) {
            return Vec::new();
        }
        if let Some(said) = rest.strip_prefix("reject: ") {
            return vec![event(Kind::Rejected, field(said, "to=<", ">"), line.at_ms, None, said)];
        }
        if let Some(said) = rest.strip_prefix("hold: ") {
            return vec![event(
                Kind::Sent,
                field(said, "to=<", ">"),
                line.at_ms,
                Some(line.at_ms),
                "held by the relay",
            )];
        }
        match delivered {
            Some((kind, to, sent_ms, said)) => vec![event(kind, Some(to), line.at_ms, sent_ms, &said)],
            None => Vec::new(),
        }
    }
}

/// A delivery line's event: its kind, recipient, send time (from
/// `delay=`) and what the next hop said.
fn delivery(rest: &str, at_ms: i64) -> Option<(Kind, &str, Option<i64>, String)> {
    let (to, status) = (field(rest, "to=<", ">")?, field(rest, "status=", " ")?);
    let dsn = field(rest, "dsn=", ",").unwrap_or("");
    let kind = match status {
        "sent" => Kind::Delivered,
        "deferred" => Kind::Deferred,
        "bounced" if dsn.starts_with('5') => Kind::Bounced(BounceKind::Permanent),
        "bounced" => Kind::Bounced(BounceKind::Undetermined),
        "expired" => Kind::Bounced(BounceKind::Transient),
        _ => return None,
    };
    let delay: Option<f64> = field(rest, "delay=", ",").and_then(|d| d.parse().ok());
    let sent_ms = delay.map(|d| at_ms - (d * 1000.0) as i64);
    let why = rest.split_once(&format!("status={status} ")).map_or("", |(_, w)| w);
    Some((kind, to, sent_ms, format!("{dsn} {why}")))
}

/// A line's (and, for a line naming several, a recipient's) short hash.
fn line_hash(raw: &str, recipient: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(raw.trim_end().as_bytes());
    h.update([0]);
    h.update(recipient.unwrap_or("").as_bytes());
    crate::traffic::refusal::hex(&h.finalize()[..10])
}

/// The text between `start` and the next `end` (or the end of the line).
fn field<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let rest = &text[from..];
    Some(rest.find(end).map_or(rest, |to| &rest[..to]))
}

/// A Postfix queue id: short (hex) or long (base 52 with `z`-less digits).
fn queue_id(s: &str) -> bool {
    (6..=20).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Splits a syslog line: `Dec  5 00:13:24 host postfix/smtpd[123]: text`
/// (local time, the year inferred) or `2026-12-05T00:13:24.123456+00:00
/// host postfix/smtpd[123]: text`; None for a line not from Postfix.
fn parse(raw: &str, now_ms: i64) -> Option<Line<'_>> {
    let raw = raw.trim_end();
    let (at_ms, rest) = if raw.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        let (stamp, rest) = raw.split_once(' ')?;
        (chrono::DateTime::parse_from_rfc3339(stamp).ok()?.timestamp_millis(), rest)
    } else {
        (classic_time(raw.get(..15)?, now_ms)?, raw.get(16..)?)
    };
    let (_host, rest) = rest.split_once(' ')?;
    let (program, text) = rest.split_once(": ")?;
    let (name, pid) = program.strip_suffix(']').and_then(|p| p.split_once('['))?;
    let (suite, daemon) = name.rsplit_once('/')?;
    if !suite.starts_with("postfix") {
        return None;
    }
    Some(Line { at_ms, daemon, pid, text })
}

/// `Dec  5 00:13:24` in local time, in the year that puts it nearest before now.
fn classic_time(stamp: &str, now_ms: i64) -> Option<i64> {
    let now = chrono::Local.timestamp_millis_opt(now_ms).single()?;
    let at = |year: i32| {
        NaiveDateTime::parse_from_str(&format!("{year} {stamp}"), "%Y %b %e %H:%M:%S")
            .ok()
            .and_then(|t| chrono::Local.from_local_datetime(&t).earliest())
            .map(|t| t.timestamp_millis())
    };
    let this_year = at(now.year())?;
    // A line from late December read in early January belongs to last year.
    if this_year > now_ms + 86_400_000 { at(now.year() - 1) } else { Some(this_year) }
}

#[cfg(test)]
mod tests;
