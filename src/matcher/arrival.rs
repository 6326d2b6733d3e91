//! Arrivals: what the inbox watchers hand the matcher. A verified canary
//! seen in a mailbox ([`Sighting`], at a [`Sight`]), an application's email
//! to a canary tag (matched, or claimed while its link is followed), and a
//! DSN that returns a canary. Each is judged here against the book and the
//! ledger; the fate itself is decided in `settle.rs`.

use super::book::Early;
use super::{Disposition, Matcher, labels, secs};
use crate::bounce::Bounce;
use crate::canary::Token;
use crate::insight::Insight;
use crate::ledger::{Row, State};
use crate::outcome::OutcomeKind;
use crate::outcome::{Expectation, Outcome, Placement, Unmatched};
use std::sync::Arc;

/// The claim on an application canary whose email was seen and is being
/// checked (its link followed) away from the watcher: see [`Matcher::claim`].
/// Dropped unsettled (its task ended early), the canary is in flight as
/// before, and its deadline judges it.
pub struct Claim {
    matcher: Arc<Matcher>,
    tag: String,
}

impl Claim {
    /// Settles the canary by its sighting (whose moment is its first sight).
    pub async fn settle(self, sighting: Sighting) -> Disposition {
        self.matcher.seen_id(&self.tag, sighting, true).await
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Once settled, it is out of the book and this does nothing.
        if let Some(c) = self.matcher.book().in_flight.get_mut(&self.tag) {
            c.claimed = None;
        }
    }
}

/// A moment on the matcher's two clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sight {
    pub now: std::time::Instant,
    pub wall_ms: i64,
}

/// A verified canary of this instance, seen in a mailbox.
pub struct Sighting {
    /// When the watcher first saw it: its headers fetched, before anything
    /// slower (a body read, a link followed). Its latency ends here.
    pub at: Sight,
    pub placement: Placement,
    /// What its headers say about its path.
    pub insight: Insight,
    /// When the server received it (INTERNALDATE), in Unix milliseconds.
    pub received_ms: Option<i64>,
    /// The expectation an application's email failed (crate::trigger), if any.
    pub mismatch: Option<Expectation>,
}

impl Matcher {
    /// Now, as a sighting's moment: the watcher takes it when it fetches
    /// a message's headers.
    pub fn sight(&self) -> Sight {
        Sight { now: self.clock.now(), wall_ms: self.clock.wall_ms() }
    }

    /// A verified canary of this instance was seen.
    pub async fn seen(&self, token: &Token, sighting: Sighting) -> Disposition {
        self.seen_id(&token.canary_id, sighting, false).await
    }

    /// Whether the application canary tagged `tag` is in flight here, and
    /// if so what its email must look like (None: nothing).
    pub fn tag_in_flight(&self, tag: &str) -> Option<Option<Arc<crate::trigger::Expect>>> {
        let probe = self.book().in_flight.get(tag).map(|c| c.labels.probe().clone())?;
        Some(self.expectations().get(&*probe).cloned())
    }

    /// An application's email to the canary address tagged `tag`: matched
    /// as a canary of that id, or left alone as stale (already settled)
    /// or unknown (never ours).
    pub async fn seen_tag(&self, tag: &str, sighting: Sighting) -> Disposition {
        match self.seen_id(tag, sighting, false).await {
            Disposition::Unmatched(Unmatched::Expired) if self.lookup(tag).await.is_none() => {
                Disposition::Unmatched(Unmatched::UnknownTag)
            }
            d => d,
        }
    }

    /// The watcher saw the application canary tagged `tag` at `at`, and
    /// checks it further (follows its link) away from its own loop. While
    /// the returned claim lives, only it settles the canary, judged as
    /// observed at `at`: its deadline passing does not make it lost, and
    /// another email to the tag is a duplicate. None if it is not in flight,
    /// or claimed already.
    pub fn claim(self: &Arc<Self>, tag: &str, at: Sight) -> Option<Claim> {
        match self.book().in_flight.get_mut(tag) {
            Some(c) if c.claimed.is_none() => c.claimed = Some(c.observed(at.now)),
            _ => return None,
        }
        Some(Claim { matcher: self.clone(), tag: tag.to_string() })
    }

    /// The canary `id` was seen; by `claimant`, the one who claimed it.
    async fn seen_id(&self, id: &str, sighting: Sighting, claimant: bool) -> Disposition {
        let (now, now_ms) = (sighting.at.now, sighting.at.wall_ms);
        let (settling, lookup) = {
            let mut book = self.book();
            match book.in_flight.get_mut(id) {
                // Seen already, and being checked: its claimant settles it.
                Some(c) if c.claimed.is_some() && !claimant => {
                    return Disposition::Unmatched(Unmatched::Duplicate);
                }
                Some(c) if !c.accepted => {
                    // Arrived before the provider's answer: settled on the answer.
                    c.early.get_or_insert(Early::Seen(sighting));
                    return Disposition::Resolved;
                }
                Some(_) => {
                    let c = book.in_flight.remove(id).expect("just found");
                    (Some(self.settle_sighting(id, c, sighting, now, now_ms)), None)
                }
                // Asked under the lock: any outcome queued before is seen.
                None => (None, Some((self.lookup(id), sighting))),
            }
        };
        if let Some(settling) = settling {
            settling.await;
            return Disposition::Resolved;
        }
        let (lookup, sighting) = lookup.expect("one or the other");
        let Some(row) = lookup.await else { return Disposition::Unmatched(Unmatched::Expired) };
        match row.state {
            State::Settled(OutcomeKind::Lost) => {
                let late = Outcome::Late {
                    placement: sighting.placement,
                    latency_seconds: secs(now_ms - row.accepted_ms.unwrap_or(row.created_ms)),
                };
                let l = labels(&row.probe, &row.provider, &row.inbox);
                if self.settle(id, (l, self.clock.now()), late, sighting.insight, now_ms).await {
                    Disposition::Resolved
                } else {
                    Disposition::Unmatched(Unmatched::Duplicate)
                }
            }
            State::Sending | State::Sent => Disposition::Unmatched(Unmatched::Expired),
            State::Settled(_) => Disposition::Unmatched(Unmatched::Duplicate),
        }
    }

    /// A DSN in a bounce inbox says delivery of a verified canary of this
    /// instance failed: it is settled now as bounced rather than lost at its
    /// deadline. A bounce for a canary already counted lost is kept in the
    /// ledger as the reason, and counted nowhere else.
    pub async fn bounced(&self, token: &Token, bounce: Bounce) -> Disposition {
        let id = token.canary_id.as_str();
        let (settling, lookup) = {
            let mut book = self.book();
            match book.in_flight.get_mut(id) {
                Some(c) if !c.accepted => {
                    c.early.get_or_insert(Early::Bounced(bounce));
                    return Disposition::Resolved;
                }
                Some(_) => {
                    let c = book.in_flight.remove(id).expect("just found");
                    let outcome = Outcome::Bounced { bounce: bounce.clone() };
                    (
                        Some(self.settle(id, (c.labels, c.since), outcome, Insight::default(), self.clock.wall_ms())),
                        None,
                    )
                }
                None => {
                    let (id2, status, detail) = (id.to_string(), bounce.status.clone(), bounce.diagnostic.clone());
                    let after_lost =
                        self.ledger.call(move |l| l.record_bounce_after_lost(&id2, &status, detail.as_deref()));
                    (None, Some((after_lost, self.lookup(id))))
                }
            }
        };
        if let Some(settling) = settling {
            settling.await;
            return Disposition::Resolved;
        }
        let (after_lost, lookup) = lookup.expect("one or the other");
        let explained = after_lost.await;
        let row = lookup.await;
        match (explained, row) {
            (Ok(true), Some(row)) => {
                tracing::warn!(probe = %row.probe, canary = %row.id, status = %bounce.status, detail = %bounce.summary(), "a canary counted lost bounced");
                if let Some(s) = self.routes().find_mut(&row.probe, &row.provider, &row.inbox) {
                    s.last_bounce = Some(bounce);
                }
                Disposition::Resolved
            }
            (Err(e), _) => {
                tracing::error!(error = %e, "ledger write failed");
                Disposition::Unmatched(Unmatched::Expired)
            }
            (_, Some(row)) if row.state != State::Sending && row.state != State::Sent => {
                Disposition::Unmatched(Unmatched::Duplicate)
            }
            _ => Disposition::Unmatched(Unmatched::Expired),
        }
    }

    /// The tags of the application canaries in flight into `inbox`.
    pub fn tags_in(&self, inbox: &str) -> Vec<String> {
        self.book().ids_in(inbox).into_iter().filter(|id| crate::trigger::tag::is_tag(id)).collect()
    }

    /// The ledger's row of a canary no longer in flight (None when it was
    /// never ours, was pruned, or cannot be read), queued now.
    fn lookup(&self, id: &str) -> impl Future<Output = Option<Row>> + Send + 'static {
        let id = id.to_string();
        let read = self.ledger.call(move |l| l.get(&id));
        async move {
            read.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "ledger read failed");
                None
            })
        }
    }
}
