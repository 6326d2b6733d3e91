//! Config validation: one invalid fixture per rule, each pinned to the exact
//! problems it must report (path, message, line), and `mailcanary validate`.

use mailcanary::config;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/config/invalid-{name}.yaml"))
}

fn problems(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    match config::parse(&text, &HashMap::new()) {
        Ok(_) => vec![],
        Err(problems) => problems.iter().map(|p| p.to_string()).collect(),
    }
}

/// Every fixture and what it must say, in file order.
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "ses-region",
        &[
            r#"providers[0].region: "US East" is not an AWS region such as us-east-1 (line 2)"#,
            r#"providers[0].secret_access_key: must not be empty: give the credential, or a ${VAR} that holds it (line 2)"#,
        ],
    ),
    ("mailgun-domain", &[r#"providers[0].domain: "https://mg.example.com" is not a sending domain (line 2)"#]),
    (
        "empty-key-and-endpoint",
        &[
            r#"providers[0].api_key: must not be empty: give the credential, or a ${VAR} that holds it (line 2)"#,
            r#"providers[0].endpoint: "127.0.0.1:4566" is not an http:// or https:// URL (line 2)"#,
        ],
    ),
    ("bad-cleanup", &[r#"inboxes[0].cleanup: unknown cleanup "purge": use delete, keep or { move: FOLDER } (line 5)"#]),
    (
        "bad-duration",
        &[
            NOTHING_TO_MONITOR,
            r#"global.defaults.interval: invalid duration "30": missing unit (ms, s, m, h or d) (line 2)"#,
        ],
    ),
    (
        "bad-from",
        &[r#"providers[0].from: "Canary <canary@example.com>" is not an email address (user@domain) (line 2)"#],
    ),
    (
        "bad-jitter",
        &[NOTHING_TO_MONITOR, r#"global.defaults.jitter: invalid percentage "0.1": write it like 10% (line 2)"#],
    ),
    (
        "bad-listen",
        &[NOTHING_TO_MONITOR, r#"global.listen: "localhost" is not an address:port such as 0.0.0.0:9925 (line 2)"#],
    ),
    (
        "status-page",
        &[
            NOTHING_TO_MONITOR,
            r#"global.status_page.title: title must not be empty (line 3)"#,
            r#"global.status_page.listen: "localhost" is not an address:port such as 0.0.0.0:9927 (line 4)"#,
            r#"global.status_page.refresh: refresh must be more than 0s (line 5)"#,
        ],
    ),
    (
        "status-page-listen-taken",
        &[NOTHING_TO_MONITOR, r#"global.status_page.listen: 127.0.0.1:9925 is already in use by this config (line 3)"#],
    ),
    (
        "learn",
        &[
            "global.health.learn: health.learn.quantile 2 must be above 0 and at most 1, e.g. 0.99 (line 2)",
            "providers[0]: health.learn.floor must not be above health.learn.ceiling (line 4)",
        ],
    ),
    (
        "health",
        &[
            r#"global.health.down_after: down_after counts canaries in a row: at least 1 (line 2)"#,
            r#"global.failover.socketmap: "localhost" is not an address:port such as 127.0.0.1:9926 (line 3)"#,
            r#"providers[0].health.up_after: up_after counts canaries in a row: at least 1 (line 10)"#,
            r#"providers[0].failover.nexthop: a Postfix next hop such as [smtp.example.com]:587, without spaces (line 11)"#,
        ],
    ),
    (
        "metrics-detail",
        &[
            NOTHING_TO_MONITOR,
            r#"global.metrics.detail[1]: unknown variant `hop`, expected one of auth, hops, send_duration (line 2)"#,
        ],
    ),
    (
        "bad-name",
        &[
            r#"providers[0].name: provider name "relay one" may use only letters, digits, '-', '_' and '.' (at most 64) (line 2)"#,
        ],
    ),
    ("bad-tls", &[r#"providers[0].tls: unknown variant `ssl`, expected one of tls, starttls, none (line 2)"#]),
    ("duplicate-provider", &[r#"providers[1].name: duplicate provider name "relay" (line 3)"#]),
    ("duplicate-route", &[r#"probes[1]: route "relay-to-box" is defined twice (also by probes[0]) (line 9)"#]),
    ("jitter-too-large", &[r#"probes[0].jitter: jitter must be between 0% and 100% (line 8)"#]),
    (
        "many-problems",
        &[
            r#"global.listen: "nowhere" is not an address:port such as 0.0.0.0:9925 (line 2)"#,
            r#"providers[0].from: "canary" is not an email address (user@domain) (line 4)"#,
            r#"inboxes[0].imap.port: expected a whole number from 1 to 65535 (line 8)"#,
            r#"probes[0].provider: unknown provider "ses-prd" (line 10)"#,
        ],
    ),
    ("matrix-and-provider", &[r#"probes[0]: a probe has either matrix or provider and inbox, not both (line 8)"#]),
    ("missing-ca-file", &[r#"inboxes[0].imap.ca_file: CA file /nonexistent/ca.pem does not exist (line 4)"#]),
    ("missing-host", &[r#"providers[0]: missing field `host` (line 2)"#]),
    ("move-into-watched", &[r#"inboxes[0].cleanup: cannot move canaries into the watched folder "Junk" (line 6)"#]),
    ("not-a-list", &[r#"providers: must be a list (each item starts with -) (line 1)"#]),
    ("probe-without-name", &[r#"probes[0]: probe needs a name (or use matrix) (line 8)"#]),
    (
        "short-signing-key",
        &[NOTHING_TO_MONITOR, r#"global.signing_key: signing key must be at least 16 characters (line 2)"#],
    ),
    ("spam-is-inbox", &[r#"inboxes[0].folders.spam: "INBOX" is the inbox folder too (line 5)"#]),
    (
        "syntax-error",
        &[
            r#"YAML syntax error at column 4: while parsing a block collection, did not find expected '-' indicator (line 3)"#,
        ],
    ),
    (
        "two-signing-keys",
        &[NOTHING_TO_MONITOR, r#"global.signing_key: set signing_key or signing_key_file, not both (line 2)"#],
    ),
    ("unknown-in-matrix", &[r#"probes[0].matrix.providers[1]: unknown provider "sendgrid" (line 8)"#]),
    ("unknown-inbox-in-probe", &[r#"probes[0].inbox: unknown inbox "gmail" (line 8)"#]),
    ("unknown-bounce-inbox", &[r#"providers[0].bounce_inbox: unknown inbox "bounces" (line 7)"#]),
    (
        "imap-credentials",
        &[
            r#"inboxes[0].imap.oauth2: set password or oauth2, not both (line 10)"#,
            r#"inboxes[1].imap: needs a password, or oauth2 (token_url, client_id, refresh_token) for XOAUTH2 or OAUTHBEARER (line 13)"#,
        ],
    ),
    (
        "oauth2-fields",
        &[
            r#"providers[0]: oauth2 needs the username it logs in as (line 2)"#,
            r#"providers[0].oauth2.token_url: "oauth2.example.com/token" is not an http:// or https:// URL (line 7)"#,
            r#"providers[0].oauth2.client_id: client_id must not be empty (line 8)"#,
            r#"providers[0].oauth2.refresh_token: must not be empty: give the credential, or a ${VAR} that holds it (line 9)"#,
            r#"providers[0].oauth2.mechanism: SMTP logs in with xoauth2 only (line 10)"#,
            r#"inboxes[0].imap.oauth2.mechanism: unknown variant `plain`, expected one of xoauth2, oauthbearer (line 17)"#,
        ],
    ),
    ("unknown-provider-in-probe", &[r#"probes[0].provider: unknown provider "ses-prd" (line 8)"#]),
    (
        "unknown-provider-key",
        &[
            r#"providers[0].hots: unknown field `hots`, expected one of name, host, port, tls, username, password, oauth2, from, bounce_inbox, health, failover, ca_file, insecure_skip_verify, timeout (line 5)"#,
        ],
    ),
    (
        "unknown-provider-type",
        &[
            r#"providers[0].type: unknown variant `sess`, expected one of smtp, ses, sendgrid, mailgun, postmark, resend (line 2)"#,
        ],
    ),
    (
        "unknown-top-key",
        &[r#"alerts: unknown key "alerts", expected one of global, providers, inboxes, probes, traffic (line 9)"#],
    ),
    ("unset-variable", &[r#"providers[0].password: environment variable MAILCANARY_TEST_UNSET is not set (line 6)"#]),
    (
        "username-without-password",
        &[r#"providers[0]: username and password go together: set both or neither (line 2)"#],
    ),
    ("zero-interval", &[r#"probes[0].interval: interval must be more than 0s (line 8)"#]),
    // A bad key does not hide the entry's other problems.
    (
        "every-problem-of-an-entry",
        &[
            r#"probes[0].interval: invalid duration "30 s": unknown unit " s" (use ms, s, m, h or d) (line 8)"#,
            r#"probes[0].provider: unknown provider "ses-prd" (line 8)"#,
        ],
    ),
    (
        "duplicate-route-and-another",
        &[
            r#"probes[1].timeout: invalid duration "soon": expected a number, e.g. 30s or 10m (line 9)"#,
            r#"probes[1]: route "r" is defined twice (also by probes[0]) (line 9)"#,
        ],
    ),
    // The main listener always serves the internal page: a public one needs its own.
    (
        "public-page-without-listener",
        &[
            NOTHING_TO_MONITOR,
            "global.status_page.public: a public page needs a listener of its own: set global.status_page.listen (global.listen always serves the internal page, beside /metrics and /-/reload) (line 2)",
        ],
    ),
    ("empty", &[NOTHING_TO_MONITOR]),
    ("nothing-to-monitor", &[NOTHING_TO_MONITOR]),
    ("no-routes", &[r#"probes: no routes: add a probe (name, provider, inbox) or a matrix (line 7)"#]),
    // The unset variable once, not again as a CA file "${...}" that does not exist.
    ("unset-ca-file", &[r#"providers[0].ca_file: environment variable MAILCANARY_TEST_UNSET_CA is not set (line 6)"#]),
    // One problem per unset variable, naming every line that uses it.
    (
        "unset-variable-twice",
        &[
            r#"providers[0].api_key: environment variable MAILCANARY_TEST_UNSET is not set; used again on lines 3, 4 (line 2)"#,
        ],
    ),
    // As the HTTP client parses URLs, lettre addresses, rustls CA files.
    (
        "token-url-without-host",
        &[r#"inboxes[0].imap.oauth2.token_url: "http://" is not a valid URL: empty host (line 7)"#],
    ),
    (
        "address-two-ats",
        &[r#"providers[0].from: "canary@mail@example.com" is not an email address (user@domain) (line 2)"#],
    ),
    (
        "ca-file-not-pem",
        &[
            r#"inboxes[0].imap.ca_file: CA file tests/fixtures/config/invalid-ca-file-not-pem.yaml holds no certificate (line 4)"#,
        ],
    ),
    ("trigger-and-provider", &["probes[0].trigger: a probe has either provider or trigger, not both (line 11)"]),
    ("trigger-in-matrix", &["probes[0].trigger: a matrix has no trigger: write one probe per inbox with it (line 9)"]),
    (
        "trigger-named-like-provider",
        &[r#"probes[0].trigger.name: "relay" is a provider's name too: name the trigger apart (line 10)"#],
    ),
    (
        "trigger-request",
        &[
            r#"probes[0].trigger.method: unknown method "DELETE": use GET, POST, PUT or PATCH (line 12)"#,
            "probes[0].trigger.url: is not an http:// or https:// URL (line 13)",
            r#"probes[0].trigger.headers: "Bad Header" is not a header name (line 14)"#,
            "probes[0].trigger.timeout: timeout must be more than 0s (line 15)",
        ],
    ),
    (
        "trigger-template-without-tag",
        &[r#"probes[0].trigger.address.template: "canary@catchall.example.com" must hold {{tag}} (line 13)"#],
    ),
    (
        "trigger-template-not-an-address",
        &[
            r#"probes[0].trigger.address.template: "canary-{{tag}}" does not make an email address (user@domain) (line 13)"#,
        ],
    ),
    (
        "trigger-separator",
        &[r##"probes[0].trigger.address.separator: separator "#" must be one of + - _ . (line 13)"##],
    ),
    (
        "trigger-expect",
        &[
            "probes[0].trigger.expect.subject: not a regular expression: unclosed group (line 14)",
            "probes[0].trigger.expect.follow_link: needs expect.link: the pattern that finds the link (line 15)",
        ],
    ),
    (
        "trigger-allow-addresses",
        &[
            r#"probes[0].trigger.expect.allow_addresses[1]: not an address range (CIDR such as 10.0.0.0/8 or fd00::/8): "127.0.0.1/8" has bits set past its prefix: write 127.0.0.0/8 (line 16)"#,
            r#"probes[0].trigger.expect.allow_addresses[2]: not an address range (CIDR such as 10.0.0.0/8 or fd00::/8): prefix length "33" is not a number from 0 to 32 (line 17)"#,
            r#"probes[0].trigger.expect.allow_addresses[3]: not an address range (CIDR such as 10.0.0.0/8 or fd00::/8): "intranet" is not an IP address (line 18)"#,
            "probes[1].trigger.expect.allow_addresses: applies only with follow_link: true (line 24)",
        ],
    ),
];

const NOTHING_TO_MONITOR: &str =
    "nothing to monitor: the file has no providers, inboxes or probes (the repository's probes.yaml is an example)";

#[test]
fn each_invalid_fixture_reports_exactly_its_problems() {
    let mut failures = Vec::new();
    for (name, expected) in EXPECTED {
        let got = problems(&fixture(name));
        if got != *expected {
            failures.push(format!("{name}:\n  expected {expected:#?}\n  got {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fixture_is_pinned() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        let name = name.trim_start_matches("invalid-").trim_end_matches(".yaml");
        assert!(EXPECTED.iter().any(|(n, _)| *n == name), "fixture {name} has no expected problems");
    }
}

/// Each provider kind refuses a key it does not know, and names the keys
/// it knows in the order of its reference: the kind's own keys sit among
/// the shared ones, which are written once for every kind.
#[test]
fn each_provider_kind_names_its_keys_in_order() {
    let shared = |own: &str, later: &str, endpoint: bool| {
        let later = if later.is_empty() { String::new() } else { format!(", {later}") };
        let endpoint = if endpoint { ", endpoint" } else { "" };
        format!("name, {own}, from, bounce_inbox, health, failover{later}{endpoint}, timeout")
    };
    let kinds = [
        ("smtp", shared("host, port, tls, username, password, oauth2", "ca_file, insecure_skip_verify", false)),
        ("ses", shared("region, access_key_id, secret_access_key, session_token", "configuration_set", true)),
        ("sendgrid", shared("api_key", "", true)),
        ("mailgun", shared("api_key, domain, region", "", true)),
        ("postmark", shared("server_token", "message_stream", true)),
        ("resend", shared("api_key", "", true)),
    ];
    for (kind, keys) in kinds {
        let text = format!("providers:\n  - type: {kind}\n    bogus: 1\n");
        let problems = config::parse(&text, &HashMap::new()).unwrap_err();
        let messages: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let expected = format!("providers[0].bogus: unknown field `bogus`, expected one of {keys} (line 3)");
        assert!(messages.contains(&expected), "{kind}: {messages:#?}");
    }
}

/// `${VAR}` unquoted inside `{ ... }`, where YAML reads braces as a
/// mapping, works as anywhere else, and takes the type of its key.
#[test]
fn a_variable_inside_a_flow_mapping_validates() {
    let text = "providers:\n  - { name: r, type: smtp, host: localhost, port: ${MC_PORT}, tls: none, from: a@example.com }\n\
                inboxes:\n  - name: i\n    address: a@example.com\n    imap: { host: localhost, port: ${MC_PORT}, username: u, password: \"${MC_PW}\" }\n\
                probes:\n  - { name: x, provider: r, inbox: i }\n";
    let env: HashMap<String, String> =
        [("MC_PORT", "10993"), ("MC_PW", "p w")].map(|(k, v)| (k.into(), v.into())).into();
    let config = config::parse(text, &env).unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(config.inboxes[0].imap.port, Some(10993));
}

#[test]
fn the_shipped_config_is_valid() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("probes.yaml")).unwrap();
    // A certificate made here stands in for the stack's CA: validation reads it.
    let dir = std::env::temp_dir().join(format!("mailcanary-shipped-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap().cert.pem()).unwrap();
    let ca = ca_path.to_str().unwrap();
    let env: HashMap<String, String> = [
        ("MAILSTACK_PASSWORD", "x"),
        ("MAILSTACK_CA", ca),
        ("MAILSTACK_SMTP_PORT", "10025"),
        ("MAILSTACK_SUBMISSION_PORT", "10587"),
        ("MAILSTACK_IMAPS_PORT", "10993"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = config::parse(&text, &env).unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(config.routes.len(), 5);
    assert!(config.route("relay-to-local").is_some());
    // The demo's bouncing route: the relay's bounces come back to a watched inbox.
    assert_eq!(config.route("relay-to-gone").map(|r| r.inbox.as_str()), Some("local-gone"));
    assert_eq!(config.provider("relay").and_then(|p| p.bounce_inbox()), Some("local-bounces"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without the stack's env, the shipped config names each unset variable
/// once, says nothing of CA files, and says where the variables come from.
#[test]
fn validate_without_the_stack_env_hints_at_sourcing_it() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailcanary"));
    cmd.args(["validate", "--config"]).arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("probes.yaml"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("MAILSTACK_")) {
        cmd.env_remove(key);
    }
    let out = cmd.env("MAILSTACK_DIR", "/srv/stack").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One problem per variable, wherever it is used; none about CA files.
    assert!(stderr.contains("has 5 problems:"), "{stderr}");
    assert!(!stderr.contains("CA file"), "{stderr}");
    assert!(
        stderr.contains(
            "providers[1].ca_file: environment variable MAILSTACK_CA is not set; used again on lines 59, 70, 80, 89 (line 28)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with(
            "hint: the MAILSTACK_* variables come from the mail stack; source its env first: set -a; . /srv/stack/env; set +a"
        ),
        "{stderr}"
    );
}

#[test]
fn validate_exits_2_with_every_problem_and_0_when_valid() {
    let out = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["validate", "--config"])
        .arg(fixture("many-problems"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has 4 problems:"), "{stderr}");
    assert!(stderr.contains(r#"probes[0].provider: unknown provider "ses-prd" (line 10)"#), "{stderr}");

    let dir = std::env::temp_dir().join(format!("mailcanary-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "providers:\n  - { name: relay, type: smtp, host: 127.0.0.1, tls: none, from: a@example.com }\n\
         inboxes:\n  - { name: box, address: b@example.com, imap: { host: h, username: b, password: \"${MC_TEST_PW}\" } }\n\
         probes:\n  - matrix: { providers: [relay], inboxes: [box] }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["validate", "--config"])
        .arg(&good)
        .env("MC_TEST_PW", "pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 route)"), "{}", String::from_utf8_lossy(&out.stdout));
    let missing = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["validate", "--config"])
        .arg(dir.join("absent.yaml"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read config"));
    std::fs::remove_dir_all(&dir).unwrap();
}
