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
