//! `/feed.atom`: one entry per incident (RFC 4287), so people can follow
//! the page in a feed reader, a chat integration or an email digest.

use super::format::human;
use super::html::escape;
use super::view::{IncidentView, Snapshot};
use std::fmt::Write;

/// The entry's content: when, who, how many canaries, as plain text.
fn summary(i: &IncidentView) -> String {
    let mut s = format!("Started {}", human(i.from_ms));
    match i.to_ms {
        Some(to) => {
            let _ = write!(s, ", ended {}.", human(to));
        }
        None => s.push_str(", still going on."),
    }
    let _ = write!(s, " Providers: {}.", i.providers.join(", "));
    if !i.inboxes.is_empty() {
        let _ = write!(s, " Inboxes: {}.", i.inboxes.join(", "));
    }
    if !i.canaries.is_empty() {
        let kinds: Vec<String> = i.canaries.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = write!(s, " Canaries that went wrong: {}.", kinds.join(", "));
    }
    for c in &i.provider_changes {
        let _ = write!(s, " {} was {} from {}", c.provider, c.state.as_str(), c.started);
        if let Some(reason) = &c.reason {
            let _ = write!(s, ": {reason}");
        }
        s.push('.');
    }
    s
}

pub fn render(snap: &Snapshot) -> String {
    // The feed changes when an incident does; without any, it is as old as the page.
    let updated = snap
        .incidents
        .iter()
        .map(|i| i.to_ms.unwrap_or(snap.generated_ms).max(i.from_ms))
        .max()
        .map_or_else(|| snap.generated.clone(), super::format::rfc3339);
    let mut out = String::new();
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <id>{}</id>\n<title>{}</title>\n<subtitle>{}</subtitle>\n<updated>{}</updated>\n<author><name>{}</name></author>\n\
         <link rel=\"alternate\" type=\"text/html\" href=\"/status\"/>\n<link rel=\"self\" href=\"/feed.atom\"/>\n\
         <generator>mailcanary</generator>\n",
        escape(&snap.feed_id),
        escape(&snap.title),
        escape(&snap.delayed_rule),
        escape(&updated),
        escape(&snap.title)
    );
    for i in &snap.incidents {
        let updated = super::format::rfc3339(i.to_ms.unwrap_or(snap.generated_ms).max(i.from_ms));
        let _ = write!(
            out,
            "<entry>\n<id>{}</id>\n<title>{}</title>\n<published>{}</published>\n<updated>{}</updated>\n\
             <link rel=\"alternate\" type=\"text/html\" href=\"/status\"/>\n<summary>{}</summary>\n</entry>\n",
            escape(&i.id),
            escape(&i.headline()),
            escape(&i.started),
            escape(&updated),
            escape(&summary(i))
        );
    }
    out.push_str("</feed>\n");
    out
}
