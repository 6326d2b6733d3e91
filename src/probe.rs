//! One canary's life on one route: build, record, expect, send, report.
//! What happens after the send is the matcher's and the watcher's business.

use crate::canary::{Canary, SigningKey};
use crate::config::Route;
use crate::inbox::InboxHandle;
use crate::matcher::Matcher;
use crate::provider::{AnyProvider, Provider};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// A route with everything it needs to send.
pub struct Probe {
    pub route: Route,
    pub provider: Arc<AnyProvider>,
    pub inbox: InboxHandle,
    pub from: String,
    pub to: String,
    /// The provider's bounce inbox address: the envelope sender.
    pub return_path: Option<String>,
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

/// Sends one canary on `probe`'s route; returns its id once the provider
/// answered, or None if it could not even be recorded (then nothing is sent).
pub async fn run_once(probe: &Probe, ctx: &ProbeContext) -> Option<String> {
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
