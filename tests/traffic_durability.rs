//! An event acknowledged with 2xx is on disk: `mailcanary run` is killed
//! with SIGKILL while eight clients post signed events as fast as it takes
//! them, and every event any client saw acknowledged is in the ledger
//! afterwards, and, after a restart, a retry of it changes nothing.

mod common;
#[path = "common/webhooks.rs"]
mod webhooks;

use common::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use webhooks::*;

const KEY: &str = "key-durability-test";

fn event(id: &str) -> String {
    format!(
        r#"{{"event": "delivered", "id": "{id}", "timestamp": 1521472262.9, "recipient": "r@example.com",
            "message": {{"headers": {{"message-id": "{id}@example.com"}}}}, "delivery-status": {{"code": 250, "message": "OK"}}}}"#
    )
}

fn config(dir: &std::path::Path, port: u16, hooks: u16) -> String {
    format!(
        "{}traffic:\n  listen: \"127.0.0.1:{hooks}\"\n  sources:\n\
         \x20   - {{ name: mg, provider: mailgun, type: mailgun, path: /t/mailgun, signing_key: \"{KEY}\" }}\n",
        global("durable", port, dir, "60s", "10m")
    )
}

#[test]
fn every_event_acknowledged_is_on_disk_after_a_kill_9() {
    let dir = temp_dir("traffic-kill9");
    let (port, hooks) = (free_port(), free_port());
    let mc = Mailcanary::start(&dir, port, &config(&dir, port, hooks));
    wait_listening(hooks);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let (count, stop, failed) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (acked, count, stop, failed) = (acked.clone(), count.clone(), stop.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("c{c}-{n}");
                    n += 1;
                    let body = mailgun(KEY, now_s(), &format!("tok-{id}"), &event(&id));
                    match try_post(hooks, "/t/mailgun", &[], body.as_bytes()) {
                        Some((200, _)) => {
                            acked.lock().unwrap().push(id);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            })
        })
        .collect();
    // Killed in the thick of it: once 500 events are acknowledged.
    let start = Instant::now();
    while count.load(Ordering::Relaxed) < 500 {
        assert!(start.elapsed() < Duration::from_secs(60), "too slow: {} acknowledged", count.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(1));
    }
    mc.kill9();
    let after_kill = count.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), count.load(Ordering::Relaxed));
    assert!(acked.len() >= 500 && acked.len() <= after_kill + 8, "{} acknowledged", acked.len());

    let db = rusqlite::Connection::open(dir.join("state/ledger.sqlite")).unwrap();
    let stored: HashSet<String> = db
        .prepare("SELECT event_id FROM traffic_events WHERE source = 'mg'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    drop(db);

    // After a restart, a provider's retry of an acknowledged event changes nothing.
    let mc = Mailcanary::restart(&dir, port, std::path::Path::new(env!("CARGO_BIN_EXE_mailcanary")), None);
    wait_listening(hooks);
    let id = &acked[0];
    let (code, body) =
        post(hooks, "/t/mailgun", &[], mailgun(KEY, now_s(), &format!("tok-{id}"), &event(id)).as_bytes());
    assert_eq!((code, body.as_str()), (200, "recorded 0, already had 1\n"));
    drop(mc);
}
