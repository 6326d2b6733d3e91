use super::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

/// Secrets with every character that escaping changes.
const NASTY: [&str; 5] =
    ["Qz\"9\\xK-%+ é€😀'", "pa ss+w%rd/==", "\\\\server\\share\"", "tab\there\nnl\u{1b}[0m", "ünïcødé-密码-пароль"];

/// The secret spelled as other code spells it (not as `renderings` does).
fn spelled(secret: &str) -> Vec<(&'static str, String)> {
    let mut form = reqwest::Url::parse("http://x/").unwrap();
    form.query_pairs_mut().append_pair("k", secret);
    let imap = secret.replace('\\', "\\\\").replace('"', "\\\"");
    vec![
        ("raw", secret.to_string()),
        ("debug", format!("{secret:?}")),
        ("debug of debug", format!("{:?}", format!("{secret:?}"))),
        ("escape_default", secret.escape_default().to_string()),
        ("json", serde_json::to_string(secret).unwrap()),
        ("json of json", serde_json::to_string(&serde_json::to_string(secret).unwrap()).unwrap()),
        ("json ascii", super::json_ascii(secret)),
        ("yaml", crate::config::yaml_quoted(secret)),
        ("yaml single", format!("'{}'", secret.replace('\'', "''"))),
        ("form", form.query().unwrap().to_string()),
        ("percent", secret.bytes().map(|b| format!("%{b:02X}")).collect::<String>()),
        (
            "async-imap trace",
            format!("encode: input: Some(\"a1\"), {:?}", Ok::<&str, ()>(&format!("LOGIN \"u\" \"{imap}\""))),
        ),
        ("sasl plain", STANDARD.encode(format!("\0canary@example.com\0{secret}"))),
        ("sasl plain, authzid", STANDARD.encode(format!("canary@example.com\0canary\0{secret}"))),
        ("sasl login", STANDARD.encode(secret)),
        ("xoauth2", STANDARD.encode(format!("user=a@b.test\x01auth=Bearer {secret}\x01\x01"))),
        ("url-safe base64", URL_SAFE.encode(format!("x{secret}"))),
    ]
}

#[test]
fn every_spelling_of_a_secret_is_redacted() {
    for secret in NASTY {
        let redactor = Redactor::new([secret]);
        for (how, text) in spelled(secret) {
            let line = format!("before {text} after");
            let redacted = redactor.redact(&line);
            assert!(redacted.contains(MARK), "{how} of {secret:?} not found in {line:?}");
            for (_, other) in spelled(secret) {
                // What is left holds no full spelling, and no more than
                // a few characters of base64 at either end.
                let chars = other.chars().count();
                if chars > 8 {
                    let most: String = other.chars().take(chars - 4).collect();
                    assert!(!redacted.contains(&most), "{how}: {redacted}");
                }
            }
        }
    }
}

#[test]
fn text_without_secrets_is_left_alone() {
    let redactor = Redactor::new(["hunter2-secret"]);
    let text = "IMAP login refused for ops@example.com: [AUTHENTICATIONFAILED]";
    assert!(matches!(redactor.redact(text), Cow::Borrowed(_)));
    assert!(matches!(Redactor::default().redact(text), Cow::Borrowed(_)));
}

#[test]
fn the_longest_secret_wins_and_short_ones_are_skipped() {
    let redactor = Redactor::new(["pass", "password-1234", "ab"]);
    assert_eq!(redactor.redact("password-1234 pass ab"), "*** *** ab");
    assert!(renderings("ab").is_empty());
}

#[test]
fn base64_runs_do_not_depend_on_what_surrounds_the_secret() {
    let secret = "s3cr3t-p4ss";
    for prefix in ["", "a", "ab", "abc", "\0user\0"] {
        for suffix in ["", "x", "xy"] {
            let encoded = STANDARD.encode(format!("{prefix}{secret}{suffix}"));
            assert!(base64_runs(secret.as_bytes()).iter().any(|r| encoded.contains(r)), "{prefix:?} {suffix:?}");
        }
    }
}
