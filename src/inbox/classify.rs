//! What the watcher does with each message it fetched: verifies its token,
//! hands a genuine canary (or a bounce that returns one) to the matcher,
//! leaves everything else alone and counted, and cleans up only what the
//! matcher resolved. The session loop that fetches them is in mod.rs.

use super::Watcher;
use super::imap::{Fetched, ImapError, ImapSession};
use crate::canary::{ConflictingTokens, Rejection, Token, check_instance, extract_token};
use crate::matcher::{Disposition, Sight, Sighting};
use crate::outcome::{Placement, Unmatched};
use std::sync::Arc;

/// How much of a bounce is read: the report and the returned headers come
/// first, and a returned body beyond this is not needed.
const BOUNCE_LIMIT: usize = 256 * 1024;

/// Whether `message` carries a token of its own (or more than one): judged
/// by its headers alone, never by another read of the server.
fn has_token(message: &Fetched) -> bool {
    !matches!(extract_token(&message.headers), Ok(None))
}

/// What a fetched message turned out to be.
pub(super) enum Kind {
    /// A canary the matcher resolved: clean it up.
    Resolved,
    /// Someone else's mail, or one of ours not counted now: left alone.
    LeftAlone,
    /// A delivery status report: read the whole of it.
    Report,
    /// An application canary in flight whose body must be read for its link.
    Tagged(String, Arc<crate::trigger::Expect>),
}

impl Watcher {
    /// Classifies fetched messages and cleans up the ones the matcher
    /// resolved. If a bounce or an application canary's body cannot be
    /// read, stops there with its UID, so that the cursor stays on it and
    /// it (and what follows) is read again.
    pub(super) async fn process(
        &self,
        imap: &mut ImapSession,
        folder: &str,
        placement: Placement,
        messages: &[Fetched],
        at: Sight,
    ) -> Result<(), (u32, ImapError)> {
        // From the moment the matcher has a canary until its cleanup is
        // counted, a stop waits for it: it no longer counts as in flight.
        let _seen = self.cleanup_pending(messages.len());
        let mut resolved = Vec::new();
        let mut result = Ok(());
        let mut rest = messages;
        'judging: while !rest.is_empty() {
            // The messages with a token are judged together: the matcher
            // queues the verdicts of the canaries among them at once, in
            // their order, and the ledger commits them in one transaction,
            // one sync to disk, rather than one each. One without (a
            // bounce, an application canary's email, someone else's mail)
            // goes alone, as it may need the server again (its report, its
            // body): nothing after it is judged before it is read.
            let together = rest.iter().position(|m| !has_token(m)).unwrap_or(rest.len()).max(1);
            let (now, later) = rest.split_at(together);
            rest = later;
            let kinds = futures::future::join_all(now.iter().map(|m| self.classify(m, placement, at))).await;
            for (message, kind) in now.iter().zip(kinds) {
                match self.read_more(imap, message, kind, placement, at).await {
                    Ok(Kind::Resolved) => resolved.push(message.uid),
                    Ok(_) => {}
                    Err(e) => {
                        result = Err(e);
                        break 'judging;
                    }
                }
            }
        }
        // After a refused FETCH the session still works. After a broken or
        // silent one, the canaries resolved before it stay in the mailbox,
        // as after any failed cleanup; they are counted already.
        if result.as_ref().err().is_none_or(|(_, e)| e.refused) {
            self.resolved(imap, &resolved, folder).await;
        }
        result
    }

    /// What `message` of `kind` is, once what it needs of the server (a
    /// bounce's report, an application canary's body) is read; the UID to
    /// read from again if that failed (past it when it is too large).
    async fn read_more(
        &self,
        imap: &mut ImapSession,
        message: &Fetched,
        kind: Kind,
        placement: Placement,
        at: Sight,
    ) -> Result<Kind, (u32, ImapError)> {
        let uid = message.uid;
        let failed = |e: ImapError| (if e.too_large() { uid + 1 } else { uid }, e);
        Ok(match kind {
            Kind::Report => match imap.message(uid, BOUNCE_LIMIT).await.map_err(failed)? {
                Some(raw) => self.classify_report(uid, &raw).await,
                None => Kind::LeftAlone,
            },
            Kind::Tagged(tag, expect) => {
                match imap.message(uid, crate::trigger::expect::BODY_LIMIT).await.map_err(failed)? {
                    Some(raw) => {
                        self.check_body(uid, tag, expect, &raw, self.sighting(message, placement, None, at)).await
                    }
                    None => Kind::LeftAlone,
                }
            }
            kind => kind,
        })
    }

    /// Verifies one message's token and hands a genuine canary to the matcher.
    async fn classify(&self, message: &Fetched, placement: Placement, at: Sight) -> Kind {
        let (uid, headers) = (message.uid, &message.headers);
        let token = match extract_token(headers) {
            Ok(None) if self.bounces && crate::bounce::is_report(headers) => return Kind::Report,
            Ok(None) => return self.classify_tagged(message, placement, at).await,
            token => token,
        };
        match self.verify(token) {
            Ok(token) => {
                let sighting = self.sighting(message, placement, None, at);
                match self.shared.matcher.seen(&token, sighting).await {
                    Disposition::Resolved => Kind::Resolved,
                    Disposition::Unmatched(reason) => self.left_alone(uid, reason),
                }
            }
            Err(reason) => self.left_alone(uid, reason),
        }
    }

    pub(super) fn sighting(
        &self,
        message: &Fetched,
        placement: Placement,
        mismatch: Option<crate::outcome::Expectation>,
        at: Sight,
    ) -> Sighting {
        Sighting {
            at,
            placement,
            insight: crate::insight::read(&message.headers),
            received_ms: message.received_ms,
            mismatch,
        }
    }

    /// Hands a bounce that returns a genuine canary to the matcher. Bounces
    /// of other mail are none of our business and are not counted.
    async fn classify_report(&self, uid: u32, raw: &[u8]) -> Kind {
        let Some(report) = crate::bounce::read(raw) else { return Kind::LeftAlone };
        if matches!(report.token, Ok(None)) {
            return Kind::LeftAlone;
        }
        let token = match self.verify(report.token) {
            Ok(token) => token,
            Err(reason) => return self.left_alone(uid, reason),
        };
        match report.bounce {
            Some(bounce) if bounce.failed() => match self.shared.matcher.bounced(&token, bounce).await {
                Disposition::Resolved => Kind::Resolved,
                Disposition::Unmatched(reason) => self.left_alone(uid, reason),
            },
            Some(bounce) => {
                // A warning that delivery is delayed: the canary may still arrive.
                tracing::info!(inbox = %self.name(), canary = %token.canary_id, action = %bounce.action, status = %bounce.status, "delivery status notice for a canary; still waiting for it");
                Kind::LeftAlone
            }
            None => self.left_alone(uid, Unmatched::Malformed),
        }
    }

    /// The token of a message, verified; the reason to leave it alone if
    /// not (None: a canary of this instance's own `mailcanary check`, which
    /// that check resolves).
    fn verify(&self, token: Result<Option<String>, ConflictingTokens>) -> Result<Token, Option<Unmatched>> {
        let (instance, keys) = (&self.shared.instance, &self.shared.keys);
        match token {
            Ok(Some(text)) => match Token::verify(&text, instance, keys) {
                Ok(token) => Ok(token),
                Err(Rejection::Foreign { instance: other }) if other == check_instance(instance) => {
                    // Signed with our own key, or it is forged.
                    Err(Token::verify(&text, &other, keys).err().map(|_| Unmatched::Forged))
                }
                Err(Rejection::Forged) => Err(Some(Unmatched::Forged)),
                Err(Rejection::Foreign { .. }) => Err(Some(Unmatched::Foreign)),
            },
            // Two different tokens, or none where one was expected.
            Err(ConflictingTokens) | Ok(None) => Err(Some(Unmatched::Forged)),
        }
    }

    /// Leaves message `uid` alone: counted, and said once (the cursor
    /// passes it), unless it is a canary of this instance's own `check`.
    pub(super) fn left_alone(&self, uid: u32, reason: impl Into<Option<Unmatched>>) -> Kind {
        match reason.into() {
            Some(reason) => {
                tracing::info!(inbox = %self.name(), uid, reason = reason.as_str(), "a message with a canary token left alone");
                self.shared.metrics.unmatched(self.name(), reason);
            }
            None => tracing::debug!(inbox = %self.name(), uid, "a canary of mailcanary check left to it"),
        }
        Kind::LeftAlone
    }
}
