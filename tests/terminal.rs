//! What a server or the ledger says reaches a terminal escaped: a provider
//! id, a bounce diagnostic or a hop name with ESC, BEL, CR, C1 controls or
//! bidi overrides is shown, never obeyed, by `mailcanary report`, and a
//! config key holding them is shown escaped by `validate`.

use mailcanary::canary::{Canary, SigningKey};
use mailcanary::config::Route;
use mailcanary::ledger::Ledger;
use std::process::Command;
use std::time::Duration;

/// Sets the terminal's title, rings, clears the screen, overwrites the
/// line, sends a C1 CSI, and reverses what follows.
const HOSTILE: &str = "q1\x1b]0;owned\x07\x1b[2J\rfake line\u{9b}31m\u{202e}exe.txt\u{2066}";

/// The characters no terminal output of mailcanary may hold as themselves.
fn obeyed(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}')
        })
        .collect()
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mailcanary-terminal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn report_escapes_what_servers_said() {
    let dir = temp("report");
    let state = dir.join("state");
    let ledger = Ledger::open(&state).unwrap();
    let route = Route {
        name: "relay-to-box".into(),
        provider: "relay".into(),
        inbox: "box".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(60),
        jitter: 0.0,
        trigger: None,
    };
    let key = SigningKey::new(mailcanary::secret::Secret::new("0123456789abcdef"));
    let now = chrono::Utc::now().timestamp_millis();
    for (i, bounced) in [false, true].into_iter().enumerate() {
        let canary = Canary::new(&route, "a@example.com", "b@example.com", "i", None, &key, chrono::Utc::now());
        let at = now - 60_000 + i as i64;
        ledger.record_sending(&canary, at + 1000).unwrap();
        assert!(ledger.record_sent(&canary.id, at, 5, Some(HOSTILE), at + 1000).unwrap());
        if bounced {
            assert!(ledger.record_bounced(&canary.id, at + 10, &format!("5.1.1{HOSTILE}"), Some(HOSTILE)).unwrap());
        } else {
            assert!(ledger.record_lost(&canary.id, at + 1000).unwrap());
        }
    }
    ledger
        .record_transition(&mailcanary::health::Transition {
            provider: "relay".into(),
            from: mailcanary::health::State::Healthy,
            to: mailcanary::health::State::Down,
            at_ms: now - 1000,
            reason: format!("refused: {HOSTILE}"),
        })
        .unwrap();
    drop(ledger);
    let config = dir.join("probes.yaml");
    std::fs::write(
        &config,
        format!(
            "global:\n  state_dir: \"{}\"\nproviders:\n  - {{ name: relay, type: smtp, host: h, port: 25, tls: none, from: a@example.com }}\n\
             inboxes:\n  - {{ name: box, address: b@example.com, imap: {{ host: h, username: b, password: p }} }}\n\
             probes:\n  - {{ name: relay-to-box, provider: relay, inbox: box }}\n",
            state.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["report", "--canaries", "--since", "1h", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(obeyed(&text), Vec::<char>::new(), "raw terminal controls in the report:\n{text:?}");
    assert!(text.contains("id q1\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\rfake line\\u{9b}31m\\u{202e}exe.txt"), "{text}");
    assert!(text.contains("refused: q1\\u{1b}]0;owned"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validate_escapes_keys_and_values_from_the_file() {
    let dir = temp("validate");
    let config = dir.join("probes.yaml");
    std::fs::write(
        &config,
        "global:\n  \"x\\e]0;owned\\a\\u202eexe\": 1\nproviders:\n  - { name: \"r\\e[2J\", type: smtp, host: h, port: 25, \
         tls: none, from: a@example.com }\n",
    )
    .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_mailcanary")).args(["validate", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(obeyed(&text), Vec::<char>::new(), "raw terminal controls from validate:\n{text:?}");
    assert!(text.contains("unknown field `x\\u{1b}]0;owned\\u{7}\\u{202e}exe`"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
