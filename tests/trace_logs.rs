//! The most verbose log there is prints no secret. `RUST_LOG=trace` lets
//! every crate speak (async-imap prints each IMAP command it sends, LOGIN
//! and AUTHENTICATE included; rustls, hyper, reqwest and the rest say what
//! they do), while the real binary logs in to the real Dovecot with a
//! password and with an OAuth2 bearer token, authenticates at the real
//! Postfix's submission port, fails to log in with passwords full of
//! characters that escaping changes, and fires an application trigger whose
//! URL, header and body hold secrets. The log is then searched for every
//! secret, spelled every way it could be.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const SIGNING_KEY: &str = "SIGNING-KEY-\"quoted\\back\"-d41d8cd98f00b204";
const NASTY_IMAP: &str = "Qz\"9\\xK-%+ é€ imap-wrong";
const NASTY_SMTP: &str = "Sm\"tp\\p%ss+ wörd-wrong";
const CLIENT_ID: &str = "mailcanary-trace.apps.example";
const CLIENT_SECRET: &str = "GOCSPX-trace-client-secret-9f8e";
const REFRESH_TOKEN: &str = "1//0g-refresh-trace-mailcanary";
const URL_SECRET: &str = "url-secret-7hJ2mQ";
const BODY_SECRET: &str = "body-secret-Lm4pXw";

/// `mailcanary run` with `RUST_LOG=trace`.
struct Traced {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Traced {
    fn start(dir: &std::path::Path, port: u16, config: &str, env: &[(&str, String)]) -> Traced {
        let path = dir.join("probes.yaml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.join("mailcanary.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "trace")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mailcanary");
        Traced { child, port, dir: dir.to_path_buf() }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("mailcanary.log")).unwrap_or_default()).into_owned()
    }

    fn wait_until(&self, what: &str, limit: Duration, cond: impl Fn(&Metrics) -> bool) {
        let start = Instant::now();
        loop {
            if let Some((200, body)) = http(self.port, "GET", "/metrics")
                && cond(&Metrics(body))
            {
                return;
            }
            let tail: String = self.log().lines().rev().take(40).collect::<Vec<_>>().join("\n");
            assert!(start.elapsed() < limit, "timed out waiting for {what}; the log ends (newest first):\n{tail}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `secret` as it could show in a log: raw, quoted by Rust and JSON, quoted
/// for IMAP then by `{:?}`, URL-encoded, base64, and inside a SASL PLAIN
/// exchange for `user`.
fn spellings(secret: &str, user: &str) -> Vec<String> {
    let imap = secret.replace('\\', "\\\\").replace('"', "\\\"");
    let json = serde_json::to_string(secret).unwrap();
    let mut form = reqwest::Url::parse("http://x/").unwrap();
    form.query_pairs_mut().append_pair("k", secret);
    vec![
        secret.to_string(),
        secret.escape_debug().to_string(),
        json[1..json.len() - 1].to_string(),
        format!("{imap:?}").trim_matches('"').to_string(),
        form.query().unwrap()[2..].to_string(),
        STANDARD.encode(secret),
        STANDARD.encode(format!("\0{user}\0{secret}")),
    ]
}

#[test]
fn trace_logging_prints_no_secret() {
    let s = stack();
    let app = App::start();
    let auth = AuthServer::start(CLIENT_ID, CLIENT_SECRET);
    let oauth_user = user("t-trace-oauth");
    auth.control(&format!(r#"{{"grant": {{"refresh_token": "{REFRESH_TOKEN}", "username": "{oauth_user}"}}}}"#));
    let dir = temp_dir("trace-logs");
    let port = free_port();
    let smtp_user = format!("{}@mailcanary.test", user("t-trace"));
    let submission = |name: &str, password: &str| {
        format!(
            "  - {{ name: {name}, type: smtp, host: localhost, port: {}, tls: starttls, username: \"{smtp_user}\", \
             password: \"{password}\", ca_file: \"{}\", from: \"{smtp_user}\" }}\n",
            s.submission, s.ca
        )
    };
    let oauth_inbox = format!(
        "  - name: bearer\n    address: {oauth_user}@mailcanary.test\n    imap:\n      host: localhost\n      port: {}\n      \
         tls: tls\n      username: {oauth_user}\n      ca_file: \"{}\"\n      oauth2: {{ token_url: \"{}\", client_id: {CLIENT_ID}, \
         client_secret: \"${{MC_CLIENT_SECRET}}\", refresh_token: \"{REFRESH_TOKEN}\" }}\n",
        s.imaps,
        s.ca,
        auth.token_url()
    );
    let trigger = app
        .trigger("shop", "ok", "test-app-key", "")
        .replace("mode=ok\"", "mode=ok&k=${MC_URL_SECRET}\"")
        .replace("\"}'", "\", \"k\": \"${MC_BODY_SECRET}\"}'");
    let config = format!(
        "{}  signing_key: \"${{MC_SIGNING_KEY}}\"\nproviders:\n{}{}{}inboxes:\n{}{}{oauth_inbox}probes:\n  \
         - matrix: {{ providers: [relay, sub, sub-wrong], inboxes: [good, locked] }}\n  \
         - {{ name: to-bearer, provider: relay, inbox: bearer }}\n  \
         - {{ name: reset, inbox: good, trigger: {trigger} }}\n",
        global("t-trace", port, &dir, "2s", "10s"),
        relay("relay"),
        submission("sub", "${MC_SMTP_PASSWORD}"),
        submission("sub-wrong", "${MC_NASTY_SMTP}"),
        inbox("good", "t-trace").replace(&s.password, "${MC_IMAP_PASSWORD}"),
        inbox("locked", "t-trace-locked").replace(&s.password, "${MC_NASTY_IMAP}"),
    );
    let env = [
        ("MC_SIGNING_KEY", SIGNING_KEY.to_string()),
        ("MC_IMAP_PASSWORD", s.password.clone()),
        ("MC_SMTP_PASSWORD", s.password.clone()),
        ("MC_NASTY_IMAP", NASTY_IMAP.to_string()),
        ("MC_NASTY_SMTP", NASTY_SMTP.to_string()),
        ("MC_CLIENT_SECRET", CLIENT_SECRET.to_string()),
        ("MC_URL_SECRET", URL_SECRET.to_string()),
        ("MC_BODY_SECRET", BODY_SECRET.to_string()),
    ];
    let mut mc = Traced::start(&dir, port, &config, &env);
    let delivered = |m: &Metrics, probe| m.value("mailcanary_canaries_delivered_total", &[("probe", probe)]) >= 1.0;
    mc.wait_until("every login and failure path", Duration::from_secs(90), |m| {
        delivered(m, "relay-to-good")
            && delivered(m, "sub-to-good")
            && delivered(m, "to-bearer")
            && delivered(m, "reset")
            && m.value("mailcanary_send_failures_total", &[("probe", "sub-wrong-to-good"), ("reason", "auth")]) >= 1.0
            && m.value("mailcanary_inbox_errors_total", &[("inbox", "locked"), ("reason", "auth")]) >= 1.0
    });
    mc.stop();
    let log = mc.log();

    // The log is the most verbose one: async-imap's own trace lines of the
    // commands it sent are there, LOGIN and AUTHENTICATE among them.
    let sent: Vec<&str> = log.lines().filter(|l| l.contains("async_imap") && l.contains("encode: input")).collect();
    assert!(sent.iter().any(|l| l.contains("LOGIN")), "no trace of IMAP LOGIN: the filter let nothing through");
    assert!(sent.iter().any(|l| l.contains("AUTHENTICATE")), "no trace of IMAP AUTHENTICATE");

    let issued: Vec<String> =
        auth.stats()["issued"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    assert!(!issued.is_empty(), "no access token was issued");
    let mut secrets: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    secrets.push(("refresh token".into(), REFRESH_TOKEN.into()));
    secrets.push(("application key".into(), "Bearer test-app-key".into()));
    for token in &issued {
        secrets.push(("access token".into(), token.clone()));
        let xoauth2 = format!("user={oauth_user}\x01auth=Bearer {token}\x01\x01");
        secrets.push(("XOAUTH2 exchange".into(), STANDARD.encode(xoauth2)));
    }
    let users = [smtp_user.clone(), user("t-trace"), user("t-trace-locked")];
    for (what, secret) in &secrets {
        for user in &users {
            for spelled in spellings(secret, user) {
                assert!(!log.contains(&spelled), "{what} appears in the trace log as {spelled:?}");
            }
        }
    }
    println!("searched {} lines ({} bytes) of trace log for {} secrets", log.lines().count(), log.len(), secrets.len());
}
