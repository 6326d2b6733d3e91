//! The state directory and what `mailcanary run` makes in it (the ledger,
//! SQLite's -wal and -shm, the signing key) are private to their owner
//! whatever the umask, and a directory an earlier version left open is
//! tightened at start.

mod common;

use common::{free_port, http, temp_dir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// `mailcanary run` under `umask`, with nothing reachable to probe.
fn run_under(umask: &str, dir: &Path, port: u16) -> Child {
    let closed = free_port();
    let config = dir.join("probes.yaml");
    std::fs::write(
        &config,
        format!(
            "global:\n  listen: \"127.0.0.1:{port}\"\n  state_dir: \"{}\"\n  instance: t-private\n\
             providers:\n  - {{ name: relay, type: smtp, host: 127.0.0.1, port: {closed}, tls: none, from: a@example.com }}\n\
             inboxes:\n  - {{ name: box, address: b@example.com, imap: {{ host: 127.0.0.1, port: {closed}, tls: none, username: b, password: p4ss }} }}\n\
             probes:\n  - {{ name: relay-to-box, provider: relay, inbox: box, interval: 1h }}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("mailcanary.log")).unwrap();
    let child = Command::new("/bin/sh")
        .args(["-c", &format!("umask {umask} && exec \"$0\" run --config \"$1\""), env!("CARGO_BIN_EXE_mailcanary")])
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while http(port, "GET", "/healthz").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            std::fs::read_to_string(dir.join("mailcanary.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

fn assert_private(state: &Path) {
    assert_eq!(mode(state), 0o700, "{}", state.display());
    for name in ["ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm", "signing.key"] {
        assert_eq!(mode(&state.join(name)), 0o600, "{name}");
    }
}

#[test]
fn state_dir_is_private_whatever_the_umask() {
    for umask in ["022", "000"] {
        let dir = temp_dir(&format!("private-{umask}"));
        let child = run_under(umask, &dir, free_port());
        assert_private(&dir.join("state"));
        stop(child);
    }
}

#[test]
fn an_open_state_dir_is_tightened_at_start() {
    let dir = temp_dir("private-tighten");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // As an earlier version left them under umask 022.
    drop(mailcanary::ledger::Ledger::open(&state).unwrap());
    std::fs::write(state.join("signing.key"), "0123456789abcdef0123456789abcdef").unwrap();
    for (path, m) in [(state.clone(), 0o755), (state.join("ledger.sqlite"), 0o644), (state.join("signing.key"), 0o644)]
    {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let child = run_under("022", &dir, free_port());
    assert_private(&state);
    stop(child);
}
