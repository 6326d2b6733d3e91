//! A secret from the environment put in the wrong key is never quoted back,
//! however the message would spell it: `validate`, the `POST /-/reload`
//! answer and the log say `***` where a value with `"`, `\`, `%`, `+`,
//! spaces or non-ASCII characters would have been, raw or escaped.

mod common;

use common::*;
use std::process::Command;

/// Secrets with every character that quoting or encoding changes.
const SECRETS: [(&str, &str); 4] = [
    ("MC_LISTEN", "Qz\"9\\xK-%+ é€-listen"),
    ("MC_FROM", "pa ss+w%rd/==\"-from"),
    ("MC_NAME", "\\\\server\\share\"ü-name"),
    ("MC_TIMEOUT", "ünïcødé-密码\"\\-timeout"),
];

/// Every spelling of `secret` a message could carry.
fn spellings(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap();
    let mut form = reqwest::Url::parse("http://x/").unwrap();
    form.query_pairs_mut().append_pair("k", secret);
    vec![
        secret.to_string(),
        secret.escape_debug().to_string(),
        secret.escape_default().to_string(),
        json[1..json.len() - 1].to_string(),
        secret.replace('\\', "\\\\").replace('"', "\\\""),
        form.query().unwrap()[2..].to_string(),
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for (name, secret) in SECRETS {
        for spelled in spellings(secret) {
            assert!(!text.contains(&spelled), "{name} appears in {what} as {spelled:?}:\n{text}");
        }
    }
}

fn invalid(head: &str) -> String {
    format!(
        "{head}providers:\n  - {{ name: sg, type: sendgrid, api_key: k3y, from: \"${{MC_FROM}}\" }}\n  \
         - {{ name: \"${{MC_NAME}}\", type: sendgrid, api_key: k3y, from: a@example.com }}\n  \
         - {{ name: pm, type: postmark, server_token: t0k, from: a@example.com, timeout: \"${{MC_TIMEOUT}}\" }}\n\
         inboxes:\n{}probes:\n  - {{ name: r, provider: sg, inbox: box }}\n",
        inbox("box", "t-redaction")
    )
}

#[test]
fn a_secret_in_a_wrong_key_is_never_shown_however_escaped() {
    let dir = temp_dir("redaction");
    let port = free_port();
    let head = global("t-redaction", port, &dir, "1h", "1m");

    // `validate`: every problem named with its key and line, no value.
    let path = dir.join("invalid.yaml");
    std::fs::write(&path, invalid(&head.replace(&format!("\"127.0.0.1:{port}\""), "\"${MC_LISTEN}\""))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["validate", "--config"])
        .arg(&path)
        .envs(SECRETS)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_no_secret("validate", &said);
    for expected in [
        "global.listen: \"***\" is not an address:port",
        "providers[0].from: \"***\" is not an email address (user@domain) (line 7)",
        "providers[1].name: provider name \"***\" may use only letters",
        "providers[2]: invalid duration \"***\"",
    ] {
        assert!(said.contains(expected), "{expected}:\n{said}");
    }

    // `POST /-/reload` with the same mistakes: refused, and neither the
    // answer nor the log quotes a value.
    for (name, value) in SECRETS {
        // SAFETY: the only test of this binary; set before the service starts.
        unsafe { std::env::set_var(name, value) };
    }
    let good = format!(
        "{head}providers:\n  - {{ name: sg, type: sendgrid, api_key: k3y, from: a@example.com }}\n\
         inboxes:\n{}probes:\n  - {{ name: r, provider: sg, inbox: box }}\n",
        inbox("box", "t-redaction")
    );
    let mut mc = Mailcanary::start(&dir, port, &good);
    mc.rewrite_config(&invalid(&head));
    let (code, body) = http(port, "POST", "/-/reload").expect("reload answers");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("providers[0].from: \"***\" is not an email address"), "{body}");
    assert_no_secret("the reload answer", &body);
    mc.stop();
    assert_no_secret("the log", &mc.log());
}

#[test]
fn a_secret_with_any_character_is_read_back_as_written() {
    // Expanding a ${VAR} rewrites the YAML text: a value with quotes,
    // backslashes or multi-byte characters must survive it.
    let env = SECRETS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let config = mailcanary::config::parse(
        "providers:\n  - { name: pm, type: postmark, server_token: \"${MC_TIMEOUT}\", from: a@example.com }\n  \
         - { name: sg, type: sendgrid, api_key: \"${MC_NAME}\", from: a@example.com }\n\
         inboxes:\n  - { name: box, address: box@example.com, imap: { host: h, username: box, password: \"${MC_LISTEN}\" } }\n\
         probes:\n  - matrix: { providers: [pm, sg], inboxes: [box] }\n",
        &env,
    )
    .unwrap_or_else(|p| panic!("{p:?}"));
    use mailcanary::config::ProviderConfig;
    let secrets: Vec<&str> = config
        .providers
        .iter()
        .map(|p| match p {
            ProviderConfig::Postmark(c) => c.server_token.expose(),
            ProviderConfig::Sendgrid(c) => c.api_key.expose(),
            _ => "",
        })
        .collect();
    assert_eq!(secrets, [SECRETS[3].1, SECRETS[2].1]);
    assert_eq!(config.inboxes[0].imap.password.as_ref().unwrap().expose(), SECRETS[0].1);
}
