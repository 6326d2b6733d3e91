//! The Postfix log source against the stack's real Postfix: mail to this
//! test's own recipients is delivered, bounced (undeliverable-*), and held
//! (hold-*: a black hole, as a relay that takes mail and never sends it).
//! `impact` lists exactly the messages Postfix's own queue holds as having
//! no final event; once this test releases them (by queue id: only its
//! own), they are delivered late, with the delay Postfix's log gives. The
//! ledger's message id is the queue id and when the message was queued
//! (Postfix reuses queue ids).

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn impact(dir: &std::path::Path, since: i64) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args([
            "impact",
            "--provider",
            "relay",
            "--since",
            &since.to_string(),
            "--slow",
            "1s",
            "--format",
            "json",
            "--config",
        ])
        .arg(dir.join("probes.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The queue id in a ledger message id (`<queue id>@<when queued>`).
fn queue_id(message_id: &str) -> String {
    message_id.split('@').next().unwrap().to_string()
}

/// This test's affected messages: (harm, queue id, recipient, delay).
fn mine(v: &serde_json::Value, suffix: &str) -> Vec<(String, String, String, Option<f64>)> {
    v["messages_affected"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["recipient"].as_str().unwrap_or("").ends_with(suffix))
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or("").to_string();
            (s("harm"), queue_id(&s("message_id")), s("recipient"), m["delay_seconds"].as_f64())
        })
        .collect()
}

/// The queue ids Postfix holds for recipients ending in `suffix`, with
/// when Postfix queued each (Unix s).
fn held(stack: &Stack, suffix: &str) -> BTreeMap<String, i64> {
    let out = Command::new("postqueue").arg("-c").arg(stack.dir.join("postfix")).arg("-j").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["queue_name"] == "hold" && m["recipients"].to_string().contains(suffix))
        .map(|m| (m["queue_id"].as_str().unwrap().to_string(), m["arrival_time"].as_i64().unwrap()))
        .collect()
}

/// The `delay=` Postfix logged for the delivery of `queue_id`.
fn logged_delay(stack: &Stack, queue_id: &str) -> f64 {
    let log = std::fs::read_to_string(stack.dir.join("log/postfix.log")).unwrap();
    let line =
        log.lines().rev().find(|l| l.contains(&format!("{queue_id}: to=<")) && l.contains("status=sent")).unwrap();
    line.split("delay=").nth(1).unwrap().split(',').next().unwrap().parse().unwrap()
}

#[test]
fn a_held_relay_is_listed_as_postfix_holds_it_and_then_as_late_with_postfixs_delay() {
    let s = stack();
    let dir = temp_dir("traffic-postfix");
    let port = free_port();
    let config = format!(
        "{}traffic:\n  recipients: keep\n  sources:\n\
         \x20   - {{ name: relay-log, provider: relay, type: postfix_log, file: \"{}\", poll_interval: 100ms }}\n",
        global("postfix-log", port, &dir, "60s", "10m"),
        s.dir.join("log/postfix.log").display()
    );
    let _mc = Mailcanary::start(&dir, port, &config);
    let since = chrono::Utc::now().timestamp_millis() - 2_000;
    let suffix = format!("-{}@mailcanary.test", std::process::id());
    let to = |base: &str| format!("{}@mailcanary.test", user(base));

    // The follower reads from the log's end once it runs: a first message,
    // sent again until it is seen, says it does.
    let mut tries = 0;
    until("the first message in the ledger", || {
        if tries % 10 == 0 {
            s.inject(&to("h4t-first"), "Subject: first\n\nfirst");
        }
        tries += 1;
        (impact(&dir, since)["messages"].as_u64() > Some(0)).then_some(())
    });
    for base in ["h4t-ok-a", "h4t-ok-b", "hold-h4t-a", "hold-h4t-b", "undeliverable-h4t"] {
        s.inject(&to(base), &format!("Subject: {base}\nMessage-ID: <{base}{suffix}>\n\nreal mail"));
    }

    // Held: no final event, exactly what Postfix holds; the bounce bounced.
    let queue = until("Postfix to hold both", || Some(held(s, &suffix)).filter(|q| q.len() == 2));
    let listed = until("impact to list the held and the bounced", || {
        let m = mine(&impact(&dir, since), &suffix);
        (m.len() == 3).then_some(m)
    });
    let silent: BTreeSet<String> = listed.iter().filter(|m| m.0 == "no_final_event").map(|m| m.1.clone()).collect();
    assert_eq!(silent, queue.keys().cloned().collect(), "impact's black hole is Postfix's hold queue");
    let bounced: Vec<_> = listed.iter().filter(|m| m.0 == "bounced").collect();
    assert_eq!((bounced.len(), bounced[0].2.as_str()), (1, to("undeliverable-h4t").as_str()));

    // Released (only this test's queue ids) once Postfix's own record says
    // they were queued more than 2 s ago (past --slow): delivered late,
    // with the delay Postfix logs for them.
    until("Postfix's queue to say 2 s", || {
        let now = chrono::Utc::now().timestamp();
        queue.values().all(|queued| now - queued >= 2).then_some(())
    });
    for id in queue.keys() {
        let out = Command::new("postsuper").arg("-c").arg(s.dir.join("postfix")).args(["-H", id]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    Command::new("postqueue").arg("-c").arg(s.dir.join("postfix")).arg("-f").status().unwrap();
    let late = until("impact to list them as late", || {
        let m = mine(&impact(&dir, since), &suffix);
        let late: Vec<_> = m.into_iter().filter(|m| m.0 == "late").collect();
        (late.len() == 2).then_some(late)
    });
    for (_, id, _, delay) in &late {
        assert!(queue.contains_key(id));
        // Postfix logs `delay=` from its queue file's time; the ledger's
        // send time is the hold line's, to the second.
        let (ours, postfix) = (delay.unwrap(), logged_delay(s, id));
        assert!((ours - postfix).abs() <= 1.0, "{id}: ours {ours} s, Postfix's {postfix} s");
        assert!(postfix > 1.0, "{id}: late by Postfix's own figure ({postfix} s) too");
    }
    let after = mine(&impact(&dir, since), &suffix);
    assert!(after.iter().all(|m| m.0 != "no_final_event"), "{after:?}");
    assert!(!after.iter().any(|m| m.2.contains("h4t-ok")), "delivered in time: not affected");
}
