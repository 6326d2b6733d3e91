//! The registry: every `mailcanary_*` family, made and registered once.

use super::*;
use exposition::{Parts, Register};

impl Metrics {
    pub fn new() -> Self {
        let detail = detail::DetailState::default();
        let m = Metrics {
            canaries_sent: Family::default(),
            send_failures: Family::default(),
            canaries_delivered: Family::default(),
            canaries_lost: Family::default(),
            canaries_late: Family::default(),
            canaries_bounced: Family::default(),
            canaries_mismatched: Family::default(),
            delivery_latency: Family::new_with_constructor(latency_histogram),
            send_duration: Family::new_with_constructor(detail.send.clone()),
            in_flight: Family::default(),
            oldest_in_flight: Family::default(),
            last_delivery: Family::default(),
            inbox_up: Family::default(),
            inbox_errors: Family::default(),
            unmatched: Family::default(),
            config_reload_ok: Gauge::default(),
            auth_results: Family::default(),
            hop_delay: Family::new_with_constructor(hop_histogram),
            hop_unusable: Family::default(),
            task_restarts: Family::default(),
            provider_state: Family::default(),
            provider_state_changes: Family::default(),
            overdue_bound: Family::default(),
            overdue_in_a_row: Family::default(),
            confirmations: Family::default(),
            traffic: traffic::TrafficMetrics::default(),
            detail,
            routes: Default::default(),
            time: Gauge::default(),
            parts: Parts::default(),
        };
        let mut parts = Parts::default();
        m.register_all(&mut parts);
        Metrics { parts, ..m }
    }

    /// Every family, in the order the exposition has them.
    pub(super) fn register_all(&self, r: &mut impl Register) {
        self.register_canaries(r);
        self.register_process(r);
        self.traffic.register(r);
    }

    /// The canaries' outcomes, latency and what is in flight.
    fn register_canaries(&self, r: &mut impl Register) {
        let m = self;
        r.register("canaries_sent", "Canaries accepted by the provider", m.canaries_sent.clone());
        r.register("send_failures", "Canaries the provider did not accept, by reason", m.send_failures.clone());
        r.register("canaries_delivered", "Canaries seen in the inbox, by placement", m.canaries_delivered.clone());
        r.register("canaries_lost", "Canaries not seen within the route's timeout", m.canaries_lost.clone());
        r.register("canaries_late", "Canaries seen after being counted lost", m.canaries_late.clone());
        r.register(
            "canaries_bounced",
            "Canaries resolved by a delivery status notification (bounce) in the provider's bounce inbox",
            m.canaries_bounced.clone(),
        );
        r.register(
            "canaries_mismatched",
            "Application canaries that arrived in time but failed an expectation (from, subject, link, link_dead)",
            m.canaries_mismatched.clone(),
        );
        r.register(
            "delivery_latency_seconds",
            "Provider acceptance to first sight in the inbox",
            m.delivery_latency.clone(),
        );
        r.register("send_duration_seconds", "Submit start to provider acceptance", m.send_duration.clone());
        r.register("canaries_in_flight", "Canaries sent and not yet delivered or lost", m.in_flight.clone());
        r.register(
            "oldest_in_flight_seconds",
            "Age of the oldest in-flight canary, 0 when none",
            m.oldest_in_flight.clone(),
        );
        r.register(
            "overdue_bound_seconds",
            "Age past which the route's canary in flight is overdue: learned from its recent deliveries, or fixed",
            m.overdue_bound.clone(),
        );
        r.register(
            "overdue_in_a_row",
            "The route's canaries in flight past its overdue bound, in a row from the newest: 1 a suspicion, 2 a confirmed one",
            m.overdue_in_a_row.clone(),
        );
        r.register(
            "confirmations",
            "Confirmation canaries sent at once because a canary of the provider's was overdue",
            m.confirmations.clone(),
        );
        r.register(
            "last_delivery_timestamp_seconds",
            "Wall-clock time of the route's last delivery",
            m.last_delivery.clone(),
        );
    }

    /// The inboxes, the receiving servers' verdicts, the providers' states
    /// and the process itself.
    fn register_process(&self, r: &mut impl Register) {
        let m = self;
        r.register("inbox_up", "1 while the inbox's IMAP session is healthy", m.inbox_up.clone());
        r.register("inbox_errors", "IMAP session failures, by reason", m.inbox_errors.clone());
        r.register(
            "unmatched_messages",
            "Messages in an inbox not matched to a canary, by reason",
            m.unmatched.clone(),
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info.get_or_create(&VersionLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        r.register("build_info", "mailcanary's version", build_info);
        r.register(
            "config_last_reload_successful",
            "1 if the last config (re)load succeeded",
            m.config_reload_ok.clone(),
        );
        r.register(
            "auth_results",
            "SPF, DKIM, DMARC and ARC verdicts of the receiving server (Authentication-Results)",
            m.auth_results.clone(),
        );
        r.register(
            "hop_delay_seconds",
            "Delay between successive Received hops, by position from the first",
            m.hop_delay.clone(),
        );
        r.register(
            "hop_timestamps_unusable",
            "Received hops whose timestamp was missing or unreadable",
            m.hop_unusable.clone(),
        );
        r.register(
            "task_restarts",
            "Route, inbox and ticker tasks that panicked and were restarted, by task",
            m.task_restarts.clone(),
        );
        r.register(
            "provider_state",
            "1 for the provider's current health state (healthy, degraded, down, unknown), 0 for the others",
            m.provider_state.clone(),
        );
        r.register(
            "provider_state_changes",
            "Changes of the provider's health state",
            m.provider_state_changes.clone(),
        );
        r.register(
            "time_seconds",
            "The wall clock of the mailcanary process, in seconds since the epoch, when scraped",
            m.time.clone(),
        );
    }
}
