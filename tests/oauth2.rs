//! Mailboxes and relays that take OAuth2: IMAP login with XOAUTH2 and
//! OAUTHBEARER, and SMTP AUTH XOAUTH2 at the submission port,
//! against the real Dovecot (its oauth2 passdb asks the test's own
//! authorization server whether a token is good), access tokens refreshed
//! from the token endpoint as they expire or are refused, and a revoked
//! grant reported as an auth failure, with no secret anywhere.

mod common;

use common::*;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const CLIENT_ID: &str = "mailcanary-test.apps.example";
const CLIENT_SECRET: &str = "GOCSPX-mailcanary-test-client-secret";

fn oauth_inbox(name: &str, base: &str, token_url: &str, refresh_token: &str, mechanism: &str) -> String {
    let s = stack();
    let user = user(base);
    format!(
        "  - name: {name}\n    address: {user}@mailcanary.test\n    imap:\n      host: localhost\n      port: {}\n      tls: tls\n      username: {user}\n      ca_file: \"{}\"\n      oauth2:\n        token_url: \"{token_url}\"\n        client_id: {CLIENT_ID}\n        client_secret: \"${{TEST_CLIENT_SECRET}}\"\n        refresh_token: \"{refresh_token}\"\n        mechanism: {mechanism}\n",
        s.imaps, s.ca
    )
}

/// Canaries delivered into `inbox` so far.
fn delivered(m: &Metrics, probe: &str, inbox: &str) -> f64 {
    m.value("mailcanary_canaries_delivered_total", &route(probe, "relay", inbox))
}

fn refreshes(auth: &AuthServer, refresh_token: &str) -> u64 {
    auth.stats()["refreshes"][refresh_token].as_u64().unwrap_or(0)
}

#[test]
fn oauth2_mailboxes_log_in_with_fresh_tokens_and_report_a_revoked_grant() {
    let auth = AuthServer::start(CLIENT_ID, CLIENT_SECRET);
    let (rt_x, rt_b, rt_s) =
        ("1//0g-refresh-xoauth2-mailcanary", "M.C5-refresh-oauthbearer-mailcanary", "1//0g-refresh-smtp-mailcanary");
    auth.control(&format!(r#"{{"grant": {{"refresh_token": "{rt_x}", "username": "{}"}}}}"#, user("oauth-x")));
    auth.control(&format!(r#"{{"grant": {{"refresh_token": "{rt_b}", "username": "{}"}}}}"#, user("oauth-b")));
    auth.control(&format!(r#"{{"grant": {{"refresh_token": "{rt_s}", "username": "{}"}}}}"#, user("oauth-s")));
    // Tokens that expire within seconds, so that each new session needs a new one.
    auth.control(r#"{"expires_in": 2}"#);

    let dir = temp_dir("oauth2");
    let port = free_port();
    let relay_oauth = format!(
        "  - name: oauth-relay\n    type: smtp\n    host: localhost\n    port: {}\n    tls: starttls\n    ca_file: \"{}\"\n    username: {}\n    from: canary@mailcanary.test\n    oauth2: {{ token_url: \"{}\", client_id: {CLIENT_ID}, client_secret: \"${{TEST_CLIENT_SECRET}}\", refresh_token: \"{rt_s}\" }}\n",
        stack().submission,
        stack().ca,
        user("oauth-s"),
        auth.token_url()
    );
    let config = format!(
        "{}providers:\n{}{relay_oauth}inboxes:\n{}{}probes:\n  - {{ name: to-x, provider: relay, inbox: xoauth2 }}\n  - {{ name: to-b, provider: relay, inbox: bearer }}\n  - {{ name: smtp-oauth, provider: oauth-relay, inbox: bearer }}\n",
        global("t-oauth2", port, &dir, "1s", "1m"),
        relay("relay"),
        oauth_inbox("xoauth2", "oauth-x", &auth.token_url(), rt_x, "xoauth2"),
        oauth_inbox("bearer", "oauth-b", &auth.token_url(), rt_b, "oauthbearer"),
    );
    // The client secret comes from the environment, as it would in production.
    // SAFETY: set before any thread of this test binary reads the environment.
    unsafe { std::env::set_var("TEST_CLIENT_SECRET", CLIENT_SECRET) };
    let mc = Mailcanary::start(&dir, port, &config);
    let smtp_route = route("smtp-oauth", "oauth-relay", "bearer");
    let m = mc.wait_until("canaries seen through both OAuth2 logins", WAIT, |m| {
        delivered(m, "to-x", "xoauth2") >= 1.0
            && delivered(m, "to-b", "bearer") >= 1.0
            && m.value("mailcanary_canaries_delivered_total", &smtp_route) >= 1.0
    });
    assert_eq!(m.value("mailcanary_send_failures_total", &smtp_route), 0.0, "AUTH XOAUTH2 at submission");
    assert_eq!(m.get("mailcanary_inbox_up", &[("inbox", "xoauth2")]), Some(1.0));
    assert_eq!(m.get("mailcanary_inbox_up", &[("inbox", "bearer")]), Some(1.0));
    assert_eq!(m.value("mailcanary_inbox_errors_total", &[("inbox", "xoauth2")]), 0.0);
    assert!(auth.stats()["introspections"].as_u64().unwrap() >= 2, "Dovecot checked the tokens");
    let first = refreshes(&auth, rt_x);
    assert_eq!(first, 1, "one token for the first session");

    // The token has expired; the server ends the session. The watcher logs
    // in again with a fresh token and goes on seeing canaries.
    std::thread::sleep(Duration::from_secs(3));
    kick(&user("oauth-x"));
    let seen = delivered(&mc.metrics().unwrap(), "to-x", "xoauth2");
    mc.wait_until("canaries seen after the new login", WAIT, |m| delivered(m, "to-x", "xoauth2") >= seen + 2.0);
    assert!(refreshes(&auth, rt_x) > first, "a fresh token for the new session");
    assert!(refreshes(&auth, rt_s) >= 2, "the relay's two-second tokens were refreshed as they expired");
    // The cut session counts as `connect`; the new login failed nowhere.
    let auth_errors = [("inbox", "xoauth2"), ("reason", "auth")];
    let m = mc.metrics().unwrap();
    assert_eq!(m.value("mailcanary_inbox_errors_total", &auth_errors), 0.0, "the token was refreshed, not refused");

    // A token the server refuses although it has not expired (revoked):
    // one auth failure, then a fresh token, and canaries again.
    auth.control(r#"{"expires_in": 3600}"#);
    std::thread::sleep(Duration::from_secs(2));
    kick(&user("oauth-x"));
    let seen = delivered(&mc.metrics().unwrap(), "to-x", "xoauth2");
    mc.wait_until("canaries with the long-lived token", WAIT, |m| delivered(m, "to-x", "xoauth2") >= seen + 1.0);
    let before = refreshes(&auth, rt_x);
    auth.control(r#"{"revoke_access": true}"#);
    kick(&user("oauth-x"));
    let m = mc.wait_until("the refused token counted", WAIT, |m| {
        m.value("mailcanary_inbox_errors_total", &auth_errors) >= 1.0
    });
    let seen = delivered(&m, "to-x", "xoauth2");
    mc.wait_until("canaries after the refused token", WAIT, |m| delivered(m, "to-x", "xoauth2") >= seen + 1.0);
    assert_eq!(refreshes(&auth, rt_x), before + 1, "exactly one refresh after the refusal");
    assert_eq!(mc.metrics().unwrap().value("mailcanary_inbox_errors_total", &auth_errors), 1.0);

    // The grant is revoked: no token can be had. The inbox is down with
    // `auth`, and the log says what the token endpoint said.
    auth.control(r#"{"revoke_refresh": true, "revoke_access": true}"#);
    kick(&user("oauth-x"));
    kick(&user("oauth-b"));
    let start = Instant::now();
    let smtp_auth = [smtp_route.as_slice(), &[("reason", "auth")]].concat();
    mc.wait_until("both inboxes down and the relay refusing, with auth", WAIT, |m| {
        m.get("mailcanary_inbox_up", &[("inbox", "xoauth2")]) == Some(0.0)
            && m.get("mailcanary_inbox_up", &[("inbox", "bearer")]) == Some(0.0)
            && m.value("mailcanary_inbox_errors_total", &[("inbox", "bearer"), ("reason", "auth")]) >= 1.0
            && m.value("mailcanary_send_failures_total", &smtp_auth) >= 1.0
    });
    assert!(start.elapsed() < WAIT);
    let log = mc.log();
    assert!(log.contains("invalid_grant"), "the endpoint's answer is logged:\n{log}");

    // No secret in anything mailcanary says.
    let issued: Vec<String> =
        auth.stats()["issued"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    assert!(issued.len() >= 4);
    let said = format!("{}{}{log}", mc.metrics().unwrap().0, mc.status());
    for secret in issued.iter().map(String::as_str).chain([CLIENT_SECRET, rt_x, rt_b, rt_s]) {
        assert!(!said.contains(secret), "{secret} leaked");
    }
}
