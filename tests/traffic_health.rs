//! Real traffic in provider health, through the service: a provider with no
//! canary at all (so `unknown`) becomes `degraded` once its own webhook
//! reports a deferral spike, and /api/v1/providers says which evidence
//! decided.

mod common;
#[path = "common/webhooks.rs"]
mod webhooks;

use common::*;
use std::time::{Duration, Instant};
use webhooks::*;

fn batch(deferred: usize, delivered: usize, now: i64) -> String {
    let events: Vec<String> = (0..deferred + delivered)
        .map(|n| {
            let kind = if n < deferred { "deferred" } else { "delivered" };
            format!(
                r#"{{"email":"r{n}@example.com","timestamp":{now},"event":"{kind}","sg_event_id":"e{n}","sg_message_id":"m{n}.filter0001.0","response":"421 try later"}}"#
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

fn provider(mc: &Mailcanary, name: &str) -> serde_json::Value {
    let (_, body) = http(mc.port, "GET", "/api/v1/providers").unwrap();
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    all["providers"].as_array().unwrap().iter().find(|p| p["provider"] == name).cloned().unwrap()
}

#[test]
fn a_deferral_spike_in_real_traffic_degrades_the_provider_with_its_reason() {
    let dir = temp_dir("traffic-health");
    let (port, hooks) = (free_port(), free_port());
    let sg = SendgridKey::new();
    let config = format!(
        "{}providers:\n  - {{ name: sg, type: sendgrid, api_key: unused, from: canary@example.com }}\n\
         traffic:\n  listen: \"127.0.0.1:{hooks}\"\n  sources:\n\
         \x20   - {{ name: sg-events, provider: sg, type: sendgrid, path: /t/sg, public_key: \"{}\" }}\n",
        global("health", port, &dir, "60s", "10m"),
        sg.public
    );
    let mc = Mailcanary::start(&dir, port, &config);
    wait_listening(hooks);
    assert_eq!(provider(&mc, "sg")["state"], "unknown");

    let now = now_s();
    let body = batch(20, 30, now);
    assert_eq!(post(hooks, "/t/sg", &sg.sign(now, &body), body.as_bytes()).0, 200);
    let start = Instant::now();
    let p = loop {
        let p = provider(&mc, "sg");
        if p["state"] == "degraded" {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still {p}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(p["reason"], "real traffic: 20 of 50 messages deferred in the last 1m (40 %, threshold 20 %)");
}
