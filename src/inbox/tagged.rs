//! The watcher's side of application canaries (crate::trigger): a message
//! without a token whose recipient carries a tag in flight is matched by
//! it, checked against its route's expectations, and, when its link must
//! be followed, handed to a task of its own. Following a link can take the
//! trigger's whole timeout (30 s by default); the watcher serves every
//! route of its inbox and goes on meanwhile. The canary's latency ends when
//! its headers were fetched, whatever the link takes.

use super::Watcher;
use super::classify::Kind;
use crate::inbox::imap::Fetched;
use crate::matcher::{Disposition, Sight, Sighting};
use crate::outcome::Placement;
use crate::trigger::Expect;
use crate::trigger::tag::RECIPIENT_HEADERS;
use std::sync::Arc;

/// Tags looked for in one `UID SEARCH`: each is three `HEADER` keys, and a
/// command line stays a few kilobytes.
const TAGS_PER_SEARCH: usize = 16;

/// `UID SEARCH` keys that find the messages to any of `tags` (none: no
/// search), for the first look at a folder: `OR`s of a substring search of
/// each recipient header a tag is read from.
pub(super) fn searches(tags: &[String]) -> Vec<String> {
    tags.chunks(TAGS_PER_SEARCH)
        .map(|chunk| {
            let keys: Vec<String> = chunk
                .iter()
                .flat_map(|tag| RECIPIENT_HEADERS.iter().map(move |h| format!("HEADER {h} \"{tag}\"")))
                .collect();
            any(&keys)
        })
        .collect()
}

/// IMAP's prefix `OR` of two keys, over a list of them.
fn any(keys: &[String]) -> String {
    match keys {
        [] => String::new(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("OR {first} {}", any(rest)),
    }
}

impl Watcher {
    /// A message without a token: an application canary if a recipient
    /// header carries a tag (crate::trigger::tag), else someone else's mail.
    /// A tag in flight is checked against its route's expectations (the
    /// body only if a link is expected and the headers passed).
    pub(super) async fn classify_tagged(&self, message: &Fetched, placement: Placement, at: Sight) -> Kind {
        let tags = crate::trigger::tag::in_recipients(&message.headers);
        let in_flight = tags.iter().find_map(|t| Some((t, self.shared.matcher.tag_in_flight(t)?)));
        let Some((tag, expect)) = in_flight else {
            // Stale (settled already) or unknown: the matcher says which.
            return match tags.first() {
                Some(tag) => self.tagged(message.uid, tag, self.sighting(message, placement, None, at)).await,
                None => Kind::LeftAlone,
            };
        };
        let mismatch = expect.as_ref().and_then(|e| e.check_headers(&message.headers));
        match expect {
            Some(expect) if mismatch.is_none() && expect.needs_body() => Kind::Tagged(tag.clone(), expect),
            _ => self.tagged(message.uid, tag, self.sighting(message, placement, mismatch, at)).await,
        }
    }

    /// Hands an application canary's email to the matcher.
    pub(super) async fn tagged(&self, uid: u32, tag: &str, sighting: Sighting) -> Kind {
        match self.shared.matcher.seen_tag(tag, sighting).await {
            Disposition::Resolved => Kind::Resolved,
            Disposition::Unmatched(reason) => self.left_alone(uid, reason),
        }
    }

    /// Checks the body of the email to `tag`: settled now if it holds no
    /// link or none need be followed. Otherwise the matcher is told it was
    /// seen (so that neither its deadline nor a second email to the tag
    /// settles it meanwhile), and a task of its own follows the link and
    /// settles it. The message is cleaned up now either way: its fate no
    /// longer depends on it.
    pub(super) async fn check_body(
        &self,
        uid: u32,
        tag: String,
        expect: Arc<Expect>,
        raw: &[u8],
        sighting: Sighting,
    ) -> Kind {
        let link = match expect.check_body(raw) {
            Ok(Some(link)) if expect.follows() => link,
            Ok(_) => return self.tagged(uid, &tag, sighting).await,
            Err(mismatch) => return self.tagged(uid, &tag, Sighting { mismatch: Some(mismatch), ..sighting }).await,
        };
        let Some(claim) = self.shared.matcher.claim(&tag, sighting.at) else {
            // Settled, or claimed by another email to the tag, meanwhile.
            return self.tagged(uid, &tag, sighting).await;
        };
        tokio::spawn(async move {
            let mismatch = expect.follow_link(&link).await.err();
            // Claimed: nothing else settles it meanwhile.
            claim.settle(Sighting { mismatch, ..sighting }).await;
        });
        Kind::Resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_searched_in_every_recipient_header() {
        assert!(searches(&[]).is_empty());
        let one = searches(&["mc1".to_string()]);
        assert_eq!(one, ["OR HEADER To \"mc1\" OR HEADER Delivered-To \"mc1\" HEADER X-Original-To \"mc1\""]);
        let many: Vec<String> = (0..TAGS_PER_SEARCH + 1).map(|i| format!("mc{i}")).collect();
        let searches = searches(&many);
        assert_eq!(searches.len(), 2);
        assert_eq!(searches[0].matches("HEADER").count(), TAGS_PER_SEARCH * 3);
        assert_eq!(searches[0].matches("OR ").count(), TAGS_PER_SEARCH * 3 - 1);
    }
}
