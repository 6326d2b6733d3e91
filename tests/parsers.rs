//! Property tests of every parser that reads bytes from a mailbox or the
//! network, through the public API: delivery status notifications,
//! `Authentication-Results` and `Received`, the token header and the token,
//! application canaries' tags and links, socketmap requests, and what an
//! application or an API answers. Each never panics, keeps what it returns
//! bounded and free of control characters, and gives back what was put in
//! where there is a way back. `PROPTEST_CASES=N` runs N cases of each
//! (256 by default; the network ones 64).

mod hosts;

use mailcanary::canary::{SigningKey, Token, extract_token};
use mailcanary::secret::Secret;
use proptest::prelude::*;
use std::sync::{Arc, Mutex};

/// Cases for a property that costs a network round trip each.
fn network_cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

fn no_controls(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

/// Header-ish text: printable, with the characters parsers split on.
fn field() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,80}", any::<String>(), "[;=()<>@:., \t]{0,20}", Just("x".repeat(5000))]
}

/// A MIME boundary as a mail server makes one.
const B: &str = "4Xb1.1700000000/mx.mailcanary.test";

fn dsn(status: &str, action: &str, diagnostic: &str, remote: &str, reporting: &str, token: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.test\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"{B}\"\r\n\r\n\
         --{B}\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--{B}\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; {reporting}\r\n\r\nFinal-Recipient: rfc822; a@b.test\r\nAction: {action}\r\nStatus: {status}\r\n\
         Remote-MTA: dns; {remote}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n\r\n--{B}\r\nContent-Type: text/rfc822-headers\r\n\r\n\
         X-Mailcanary-Token: {token}\r\nSubject: x\r\n\r\n--{B}--\r\n"
    )
}

proptest! {
    #[test]
    fn dsns_are_read_bounded_and_round_trip(
        class in prop_oneof![Just("2"), Just("4"), Just("5")], subject in 0u16..1000, detail in 0u16..1000,
        action in field(), diagnostic in field(), remote in field(), reporting in field(),
        token in "[A-Za-z0-9._-]{1,200}",
    ) {
        let status = format!("{class}.{subject}.{detail}");
        let fields = [&action, &diagnostic, &remote, &reporting].map(|f| f.replace(['\r', '\n'], " "));
        let raw = dsn(&status, &fields[0], &fields[1], &fields[2], &fields[3], &token);
        prop_assert!(mailcanary::bounce::is_report(raw.as_bytes()));
        let report = mailcanary::bounce::read(raw.as_bytes()).expect("a message");
        prop_assert_eq!(report.token, Ok(Some(token)));
        if let Some(b) = report.bounce {
            prop_assert_eq!(&b.status, &status);
            prop_assert!(b.action.chars().count() <= 253 && no_controls(&b.action));
            prop_assert!(b.diagnostic.as_ref().is_none_or(|d| d.len() <= 303 && no_controls(d)));
            for mta in [&b.remote_mta, &b.reporting_mta].into_iter().flatten() {
                prop_assert!(mta.chars().count() <= 253 && no_controls(mta), "{:?}", mta);
            }
        }
    }

    #[test]
    fn path_headers_are_read_bounded(
        received in proptest::collection::vec(field(), 0..80),
        results in proptest::collection::vec((prop_oneof![Just("spf"), Just("dkim"), Just("dmarc"), Just("arc"), Just("x")], field()), 0..60),
        junk in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut headers = String::new();
        let ar: Vec<String> = results.iter().map(|(m, r)| format!("{m}={}", r.replace(['\r', '\n', ';'], " "))).collect();
        headers.push_str(&format!("Authentication-Results: mx.test; {}\r\n", ar.join("; ")));
        for r in &received {
            headers.push_str(&format!("Received: from a by {} with ESMTPS; Tue, 24 Nov 2026 04:04:12 -0800\r\n", r.replace(['\r', '\n'], " ")));
        }
        let mut bytes = headers.into_bytes();
        bytes.extend_from_slice(&junk);
        let insight = mailcanary::insight::read(&bytes);
        prop_assert!(insight.hops.len() <= mailcanary::insight::MAX_RECEIVED);
        prop_assert!(insight.verdicts.len() <= mailcanary::insight::MAX_VERDICTS);
        for hop in &insight.hops {
            prop_assert!(hop.by.as_ref().is_none_or(|b| b.chars().count() <= 253 && no_controls(b)), "{:?}", hop.by);
        }
    }

    #[test]
    fn received_delays_round_trip(gaps in proptest::collection::vec(0i64..100_000, 1..8)) {
        // Newest first, as servers prepend them; each hop `gap` seconds after the one before.
        let mut at = chrono::DateTime::parse_from_rfc2822("Tue, 24 Nov 2026 04:04:12 +0000").unwrap();
        let mut lines = vec![format!("Received: by hop0 with ESMTP; {}\r\n", at.to_rfc2822())];
        for (i, gap) in gaps.iter().enumerate() {
            at += chrono::Duration::seconds(*gap);
            lines.push(format!("Received: by hop{} with ESMTP; {}\r\n", i + 1, at.to_rfc2822()));
        }
        lines.reverse();
        let insight = mailcanary::insight::read(lines.concat().as_bytes());
        let delays: Vec<f64> = insight.hops.iter().skip(1).map(|h| h.delay_seconds.unwrap()).collect();
        prop_assert_eq!(delays, gaps.iter().map(|g| *g as f64).collect::<Vec<_>>());
    }

    #[test]
    fn tokens_round_trip_and_junk_is_forged(
        instance in "[ -~]{1,40}", probe in "[ -~]{1,40}", id in "[A-Za-z0-9_-]{1,24}", sent in any::<i64>(),
        junk in any::<String>(), other in proptest::collection::vec(field(), 0..6),
    ) {
        let key = SigningKey::new(Secret::new("0123456789abcdef-proptest"));
        let token = Token { instance: instance.clone(), probe, canary_id: id, sent_ms: sent };
        let signed = token.sign(&key);
        prop_assert_eq!(Token::verify(&signed, &instance, std::slice::from_ref(&key)), Ok(token));
        prop_assert!(Token::verify(&junk, &instance, &[key]).is_err());
        // In a header block among any other headers, folded or not.
        let mut headers: Vec<String> = other.iter().map(|o| format!("X-Other: {}\r\n", o.replace(['\r', '\n'], " "))).collect();
        headers.insert(other.len() / 2, format!("X-Mailcanary-Token:\r\n {signed}\r\n"));
        prop_assert_eq!(extract_token(headers.concat().as_bytes()), Ok(Some(signed)));
    }

    #[test]
    fn header_blocks_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..8192)) {
        let _ = extract_token(&bytes);
        let _ = mailcanary::bounce::read(&bytes);
        let tags = mailcanary::trigger::tag::in_recipients(&bytes);
        prop_assert!(tags.iter().all(|t| mailcanary::trigger::tag::is_tag(t)));
    }

    #[test]
    fn tags_are_found_again_in_any_recipient_text(before in "[ -~]{0,40}", after in "[ -~]{0,40}") {
        let tag = mailcanary::trigger::tag::new();
        let to = format!("To: {}<ops+{tag}@example.com>{}\r\n", before.replace(['\r', '\n'], ""), after.replace(['\r', '\n'], ""));
        let found = mailcanary::trigger::tag::in_recipients(to.as_bytes());
        prop_assert!(found.contains(&tag), "{:?} in {:?}", found, to);
    }

    #[test]
    fn links_are_found_decoded_and_junk_never_panics(
        token in "[A-Za-z0-9_-]{8,64}", query in "[a-z0-9=]{0,20}", base64 in any::<bool>(),
        junk in proptest::collection::vec(any::<u8>(), 0..8192),
    ) {
        use base64::Engine;
        let config: mailcanary::trigger::ExpectConfig =
            serde_saphyr::from_str("{ link: 'https://shop\\.test/r/[^\"\\s<]+', from: '^a@', subject: 'x' }").unwrap();
        let expect = mailcanary::trigger::Expect::new(&config, None, std::time::Duration::from_secs(1)).unwrap().unwrap();
        let link = format!("https://shop.test/r/{token}?{query}&b=2");
        let html = format!("<a href=\"{}\">reset</a>", link.replace('&', "&amp;"));
        let body = if base64 {
            format!("Content-Transfer-Encoding: base64\r\n\r\n{}\r\n", base64::engine::general_purpose::STANDARD.encode(&html))
        } else {
            format!("\r\n{html}\r\n")
        };
        let raw = format!("From: a@b.test\r\nSubject: x\r\nContent-Type: text/html\r\n{body}");
        prop_assert_eq!(expect.check_body(raw.as_bytes()), Ok(Some(link)));
        let _ = expect.check_body(&junk);
        let _ = expect.check_headers(&junk);
    }

    #[test]
    fn socketmap_requests_round_trip_and_reads_stay_bounded(
        map in "[!-~]{1,20}", key in any::<String>(), junk in proptest::collection::vec(any::<u8>(), 0..20_000),
    ) {
        use mailcanary::socketmap::{Request, netstring, read_request};
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let wire = netstring(&format!("{map} {key}"));
        let mut reader = std::io::Cursor::new(wire.clone());
        let request = rt.block_on(read_request(&mut reader)).unwrap();
        if wire.len() <= 4096 + 8 {
            prop_assert_eq!(request, Some(Request::Lookup { map, key }));
        }
        let mut reader = std::io::Cursor::new(junk);
        let _ = rt.block_on(read_request(&mut reader));
        prop_assert!(reader.position() <= 4096 + 8, "read {} bytes for one request", reader.position());
    }
}

/// A loopback "application" and "API" whose next answer the test sets:
/// one for every case, which run one after another.
fn answering() -> &'static (hosts::Host, Arc<Mutex<String>>) {
    static HOST: std::sync::OnceLock<(hosts::Host, Arc<Mutex<String>>)> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let next = Arc::new(Mutex::new(String::new()));
        let answer = next.clone();
        (hosts::Host::start("127.0.0.1", move |_| answer.lock().unwrap().clone()), next)
    })
}

fn http(status: u16, header: &str, body: &[u8]) -> String {
    format!(
        "HTTP/1.1 {status} X\r\nX-Message-Id: {header}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        String::from_utf8_lossy(body)
    )
}

proptest! {
    #![proptest_config(network_cases())]

    #[test]
    fn answers_of_applications_and_apis_are_read_bounded(
        status in 200u16..600, header in "[ -~]{0,300}",
        message_id in prop_oneof![any::<String>(), "[\\x00-\\x1f\\x7f-\\u{9f}\\u{202e}a-z]{1,40}", Just("x".repeat(5000))],
        body in proptest::collection::vec(any::<u8>(), 0..2048), json in any::<bool>(),
    ) {
        let (host, next) = answering();
        let body = if json {
            serde_json::json!({ "MessageID": message_id, "ErrorCode": status % 3, "Message": message_id }).to_string().into_bytes()
        } else {
            body
        };
        *next.lock().unwrap() = http(status, &header, &body);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let trigger: mailcanary::trigger::TriggerConfig =
            serde_saphyr::from_str(&format!("{{ name: shop, url: \"{}\", timeout: 5s }}", host.url("/reset"))).unwrap();
        let trigger = mailcanary::provider::AnyProvider::trigger(&trigger).unwrap();
        let provider: mailcanary::config::ProviderConfig = serde_saphyr::from_str(&format!(
            "{{ name: pm, type: postmark, server_token: t0ken, from: a@example.com, endpoint: \"{}\" }}",
            host.url("")
        ))
        .unwrap();
        let provider = mailcanary::provider::AnyProvider::build(&provider).unwrap();
        let route = mailcanary::config::Route {
            name: "r".into(), provider: "pm".into(), inbox: "i".into(), interval: std::time::Duration::from_secs(60),
            timeout: std::time::Duration::from_secs(60), jitter: 0.0, trigger: None,
        };
        let key = SigningKey::new(Secret::new("0123456789abcdef"));
        let canary = mailcanary::canary::Canary::new(&route, "a@example.com", "b@example.com", "i", None, &key, chrono::Utc::now());
        for sender in [&trigger, &provider] {
            use mailcanary::provider::Provider;
            match rt.block_on(sender.send(&canary)) {
                Ok(accepted) => {
                    prop_assert!((200..300).contains(&status));
                    let id = accepted.provider_id.unwrap_or_default();
                    prop_assert!(id.chars().count() <= 8 * 200 + 1 && no_controls(&id), "{:?}", id);
                }
                Err(e) => {
                    prop_assert!(e.detail.chars().count() <= 2000 && no_controls(&e.detail), "{:?}", e.detail);
                    if (300..400).contains(&status) {
                        prop_assert_eq!(e.detail, format!("redirected (HTTP {status}) to another location: not followed"));
                    }
                }
            }
        }
    }
}
