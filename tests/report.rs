//! `mailcanary report` reads the ledger and nothing else: no secret need be
//! set, and a state_dir without a ledger is an error naming it.

use std::path::Path;
use std::process::Command;

fn dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mailcanary-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config whose every credential is an unset `${VAR}`, with `state_dir`.
fn config(dir: &Path, state_dir: &Path) -> std::path::PathBuf {
    let path = dir.join("probes.yaml");
    std::fs::write(
        &path,
        format!(
            "global:\n  state_dir: \"{}\"\nproviders:\n  - {{ name: sg, type: sendgrid, api_key: \"${{MC_REPORT_UNSET_KEY}}\", from: a@example.com }}\n\
             inboxes:\n  - {{ name: box, address: b@example.com, imap: {{ host: h, username: b, password: \"${{MC_REPORT_UNSET_PW}}\" }} }}\n\
             probes:\n  - matrix: {{ providers: [sg], inboxes: [box] }}\n",
            state_dir.display()
        ),
    )
    .unwrap();
    path
}

fn report(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["report", "--config"])
        .arg(config)
        .env_remove("MC_REPORT_UNSET_KEY")
        .env_remove("MC_REPORT_UNSET_PW")
        .output()
        .unwrap()
}

#[test]
fn report_needs_no_secret() {
    let dir = dir("secrets");
    let state = dir.join("state");
    drop(mailcanary::ledger::Ledger::open(&state).unwrap());
    let out = report(&config(&dir, &state));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no canaries in this period"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_state_dir_without_a_ledger_is_an_error_naming_it() {
    let dir = dir("missing");
    let state = dir.join("wrong-place");
    let out = report(&config(&dir, &state));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("no ledger at {}", state.join("ledger.sqlite").display())), "{stderr}");
    assert!(!state.exists(), "report created {}", state.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A ledger of route `b-to-x` (relay-b), a canary every 10 s from 20
/// minutes ago: relay-b held every canary sent from 100 s to 236 s and
/// released them all at 236 s; mailcanary was stopped from 290 s to 341 s.
fn outage_ledger(state: &Path) {
    drop(mailcanary::ledger::Ledger::open(state).unwrap());
    let db = rusqlite::Connection::open(state.join("ledger.sqlite")).unwrap();
    let base = chrono::Utc::now().timestamp_millis() - 20 * 60_000;
    let mut t = 0;
    while t < 600 {
        if (291..341).contains(&t) {
            t = 341;
        }
        let latency = if (100..236).contains(&t) { 236 - t } else { 1 };
        let at = base + t * 1000;
        db.execute(
            "INSERT INTO canaries (id, probe, provider, inbox, state, created_ms, deadline_ms, accepted_ms, seen_ms, latency_ms, placement)
             VALUES (?1, 'b-to-x', 'relay-b', 'x', 'delivered', ?2, ?3, ?2, ?4, ?5, 'inbox')",
            rusqlite::params![format!("c{t}"), at, at + 600_000, at + latency * 1000, latency * 1000],
        )
        .unwrap();
        t += 10;
    }
}

#[test]
fn a_black_hole_is_one_incident_and_a_stop_a_gap_judged_by_the_threshold_given_in_every_rendering() {
    let dir = dir("outage");
    let state = dir.join("state");
    outage_ledger(&state);
    let config = config(&dir, &state);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
            .args(["report", "--since", "1h", "--config"])
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let html = dir.join("review.html");
    let text = run(&["--slow", "100s", "--html", html.to_str().unwrap()]);
    assert!(text.contains("A delivery slower than 100 s counts as delayed"), "{text}");
    assert!(text.contains("(2 min 16 s): relay-b"), "one incident of 136 s: {text}");
    assert!(text.contains("canaries that went wrong: 4 delayed"), "{text}");
    assert!(text.contains("(51 s): no canary sent"), "the stop is a gap: {text}");
    assert!(text.contains("→ still going on (so far 10 min"), "{text}");
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(html.contains("A delivery slower than 100 s counts as delayed"), "{html}");
    assert_eq!(html.matches("<article class=\"incident").count(), 1, "{html}");
    assert!(html.contains("(2 min 16 s)</h3>") && html.contains("class=\"gap\""), "{html}");

    let json: serde_json::Value = serde_json::from_str(&run(&["--slow", "100s", "--json"])).unwrap();
    assert_eq!(json["slow_seconds"], 100.0);
    let incidents = json["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{json:#}");
    assert_eq!(incidents[0]["to_ms"].as_i64().unwrap() - incidents[0]["from_ms"].as_i64().unwrap(), 136_000);
    // And nothing since the last canary, ten minutes ago: mailcanary is not running now.
    let gaps = json["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 2, "{json:#}");
    assert_eq!(gaps[0]["to_ms"].as_i64().unwrap() - gaps[0]["from_ms"].as_i64().unwrap(), 51_000);
    assert!(gaps[1]["to_ms"].is_null(), "{json:#}");

    // Without --slow, the config's status_page.slow (90 s by default) decides: one more delayed canary.
    assert!(run(&[]).contains("canaries that went wrong: 5 delayed"));
    let yaml =
        std::fs::read_to_string(&config).unwrap().replace("global:\n", "global:\n  status_page: { slow: 100s }\n");
    std::fs::write(&config, yaml).unwrap();
    let text = run(&[]);
    assert!(text.contains("slower than 100 s") && text.contains("4 delayed"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
