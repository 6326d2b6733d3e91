//! One canary's life on one route: build, record, expect, send, report.
//! What happens after the send is the matcher's and the watcher's business.

use crate::canary::{Canary, SigningKey};
use crate::config::Route;
use crate::inbox::InboxHandle;
use crate::matcher::Matcher;
use crate::provider::{AnyProvider, Provider};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::{Notify, Semaphore};

/// A route with everything it needs to send.
pub struct Probe {
    pub route: Route,
    pub provider: Arc<AnyProvider>,
    pub inbox: InboxHandle,
    pub from: String,
    pub to: String,
    /// The provider's bounce inbox address: the envelope sender.
    pub return_path: Option<String>,
    /// Asks its schedule for a confirmation canary now (crate::health).
    pub confirm: Arc<Confirm>,
}

/// A route's request for a confirmation canary, sent at once beside its
/// schedule: at most one is asked for at a time, and the request stands
/// until the canary it asked for has been handed to the provider.
#[derive(Debug, Default)]
pub struct Confirm {
    wanted: AtomicBool,
    notify: Notify,
}

impl Confirm {
    /// Asks for one; false when one is asked for already and not yet sent.
    pub fn ask(&self) -> bool {
        if self.wanted.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.notify.notify_one();
        true
    }

    /// Waits until a confirmation is asked for.
    pub async fn asked(&self) {
        self.notify.notified().await
    }

    /// The confirmation asked for was sent (or given up): another may be asked for.
    pub fn done(&self) {
        self.wanted.store(false, Ordering::Release);
    }
}

/// What every probe shares.
pub struct ProbeContext {
    pub instance: String,
    pub key: SigningKey,
    pub operator: Option<String>,
    pub matcher: Arc<Matcher>,
    /// Bounds the canaries being submitted at once.
    pub sends: Arc<Semaphore>,
}

/// Sends one canary on `probe`'s route (a confirmation, or one on its
/// schedule); returns its id once the provider answered, or None if it
/// could not even be recorded (then nothing is sent).
pub async fn run_once(probe: &Probe, ctx: &ProbeContext, confirmation: bool) -> Option<String> {
    // An application's trigger fires one at a time, an interval apart.
    let _turn = match &probe.route.trigger {
        Some(_) => {
            let ledger = ctx.matcher.ledger();
            Some(crate::trigger::turn(&probe.route.name, probe.route.interval, Some(ledger)).await)
        }
        None => None,
    };
    let mut canary = Canary::new(
        &probe.route,
        &probe.from,
        &probe.to,
        &ctx.instance,
        ctx.operator.as_deref(),
        &ctx.key,
        chrono::Utc::now(),
    );
    canary.return_path = probe.return_path.clone();
    canary.confirmation = confirmation;
    if let Some(trigger) = &probe.route.trigger {
        let tag = crate::trigger::tag::new();
        let address = trigger.canary_address(&probe.to, &tag);
        canary = canary.tagged(tag, address);
    }
    // Recorded and expected before anything leaves: a fast arrival is never missed.
    if let Err(e) = ctx.matcher.expect(&canary, probe.route.timeout).await {
        tracing::error!(probe = %probe.route.name, error = %e, "cannot record the canary in the ledger; not sending it");
        return None;
    }
    // If this future is dropped before the provider answers (a reload or a
    // stop gave up on it), the canary may still have been taken.
    let in_hand = InHand { matcher: &ctx.matcher, id: &canary.id };
    let _permit = ctx.sends.acquire().await.ok()?;
    let start = Instant::now();
    let result = probe.provider.send(&canary).await;
    let took = start.elapsed();
    match result {
        Ok(accepted) => {
            tracing::debug!(probe = %probe.route.name, canary = %canary.id, provider_id = accepted.provider_id.as_deref().unwrap_or(""), send_seconds = took.as_secs_f64(), "canary accepted");
            ctx.matcher.accepted(&canary.id, &accepted, took).await;
            probe.inbox.canary_sent();
        }
        Err(e) => ctx.matcher.failed(&canary.id, &e, took).await,
    }
    std::mem::forget(in_hand);
    Some(canary.id)
}

/// A canary handed to its provider and not yet answered for.
struct InHand<'a> {
    matcher: &'a Matcher,
    id: &'a str,
}

impl Drop for InHand<'_> {
    fn drop(&mut self) {
        self.matcher.unanswered(self.id);
    }
}
