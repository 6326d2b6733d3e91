//! SES events through SNS against `mailcanary run`: messages signed with an
//! RSA key made here (SignatureVersion 1, SHA1withRSA, and 2, SHA256withRSA,
//! by openssl), the signing certificate served by a loopback HTTPS host the
//! config trusts. The certificate is fetched once, with no Referer, from
//! no other host, and no redirect is followed; a subscription is confirmed;
//! forged messages, other topics and untrusted certificate hosts change
//! nothing.

mod common;
#[path = "common/webhooks.rs"]
mod webhooks;

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use base64::Engine;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use webhooks::*;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-events";

/// SES's documented Bounce and Delivery records.
const BOUNCE: &str = r#"{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"recipient@example.com","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}],"timestamp":"2017-08-05T00:41:02.669Z","feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000","reportingMTA":"dsn; mta.example.com"},"mail":{"timestamp":"2017-08-05T00:40:02.012Z","source":"Sender Name <sender@example.com>","sourceArn":"arn:aws:ses:us-east-1:123456789012:identity/sender@example.com","sendingAccountId":"123456789012","messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","destination":["recipient@example.com"],"headersTruncated":false,"headers":[],"commonHeaders":{"from":["Sender Name <sender@example.com>"],"to":["Recipient Name <recipient@example.com>"],"messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","subject":"Message sent from Amazon SES"}}}"#;
const DELIVERY: &str = r#"{"eventType":"Delivery","mail":{"timestamp":"2016-10-19T23:20:52.240Z","source":"sender@example.com","sendingAccountId":"123456789012","messageId":"EXAMPLE-delivered-000000","destination":["recipient@example.com"],"commonHeaders":{"messageId":"EXAMPLE-delivered-000000"}},"delivery":{"timestamp":"2016-10-19T23:21:04.133Z","processingTimeMillis":11893,"recipients":["recipient@example.com"],"smtpResponse":"250 2.6.0 Message received","reportingMTA":"mta.example.com"}}"#;

/// What the certificate host was asked.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, bool)>,
}

/// The loopback HTTPS host serving the signing certificate, the
/// confirmation URL, and a redirect.
/// The host runs while the returned runtime and stop sender live.
fn certificate_host(dir: &Path, signing_pem: String) -> (u16, String, Arc<Mutex<Seen>>, Host) {
    let (tls, ca) = tls_server(dir, "sns-host", &["127.0.0.1"], false);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = (seen.clone(), Arc::new(signing_pem), port);
    async fn any(
        State((seen, pem, port)): State<(Arc<Mutex<Seen>>, Arc<String>, u16)>,
        req: Request,
    ) -> axum::response::Response {
        let uri = req.uri().to_string();
        seen.lock().unwrap().requests.push((uri.clone(), req.headers().contains_key("referer")));
        match req.uri().path() {
            "/cert.pem" => (*pem).clone().into_response(),
            "/redirect.pem" => {
                (http::StatusCode::FOUND, [("location", format!("https://127.0.0.1:{port}/cert.pem"))]).into_response()
            }
            "/confirm" => "<ConfirmSubscriptionResponse/>".into_response(),
            _ => http::StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = axum::Router::new().fallback(any).with_state(state);
    let mut web = mailcanary::listener::web::Web::default();
    web.tls = Some(tokio_rustls::TlsAcceptor::from(tls));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    rt.spawn(mailcanary::listener::serve_http(listener, app, Default::default(), web, "sns host", stopped));
    (port, ca, seen, Host { _rt: rt, _stop: stop })
}

/// What keeps the certificate host running.
struct Host {
    _rt: tokio::runtime::Runtime,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// An RSA key and a self-signed certificate for it, made by openssl.
fn signing_key(dir: &Path) -> (PathBuf, String) {
    let (key, cert) = (dir.join("sns.key"), dir.join("sns.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=sns.amazonaws.com",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (key, std::fs::read_to_string(cert).unwrap())
}

/// An SNS message of `kind` with `fields`, signed by `key` as SNS signs it.
fn message(key: &Path, version: &str, cert_url: &str, fields: &[(&str, &str)]) -> String {
    let order: &[&str] = if fields.iter().any(|(k, _)| *k == "Token") {
        &["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    } else {
        &["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    };
    let mut signed = String::new();
    for name in order {
        if let Some((_, v)) = fields.iter().find(|(k, _)| k == name) {
            signed.push_str(&format!("{name}\n{v}\n"));
        }
    }
    let input = key.with_extension(format!("in-{}", std::process::id()));
    std::fs::write(&input, &signed).unwrap();
    let digest = if version == "1" { "-sha1" } else { "-sha256" };
    let out = Command::new("openssl").args(["dgst", digest, "-sign"]).arg(key).arg(&input).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut m: serde_json::Map<String, serde_json::Value> =
        fields.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
    m.insert("SignatureVersion".into(), version.into());
    m.insert("Signature".into(), base64::engine::general_purpose::STANDARD.encode(out.stdout).into());
    m.insert("SigningCertURL".into(), cert_url.into());
    serde_json::Value::Object(m).to_string()
}

fn notification(key: &Path, version: &str, cert_url: &str, id: &str, topic: &str, ses: &str) -> String {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    message(
        key,
        version,
        cert_url,
        &[
            ("Type", "Notification"),
            ("MessageId", id),
            ("TopicArn", topic),
            ("Message", ses),
            ("Timestamp", &now),
            ("UnsubscribeURL", "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"),
        ],
    )
}

#[test]
fn sns_messages_signed_by_the_trusted_hosts_certificate_are_recorded_and_nothing_else() {
    let dir = temp_dir("traffic-sns");
    let (key, pem) = signing_key(&dir);
    let (host, ca, seen, _host) = certificate_host(&dir, pem);
    let (port, hooks) = (free_port(), free_port());
    let config = format!(
        "{}traffic:\n  listen: \"127.0.0.1:{hooks}\"\n  recipients: keep\n  sources:\n\
         \x20   - {{ name: ses, provider: ses-use1, type: ses_sns, path: /t/ses, topic_arns: [\"{TOPIC}\"], certificate_hosts: [\"127.0.0.1:{host}\"], ca_file: \"{ca}\" }}\n",
        global("sns", port, &dir, "60s", "10m")
    );
    let mc = Mailcanary::start(&dir, port, &config);
    wait_listening(hooks);
    let cert = format!("https://127.0.0.1:{host}/cert.pem");
    let send = |body: String| {
        post(hooks, "/t/ses", &[("x-amz-sns-message-type", "Notification".to_string())], body.as_bytes())
    };

    // A subscription confirmation: its URL visited on the trusted host.
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let confirm_url =
        format!("https://127.0.0.1:{host}/confirm?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37");
    let confirmation = message(
        &key,
        "1",
        &cert,
        &[
            ("Type", "SubscriptionConfirmation"),
            ("MessageId", "165545c9-2a5c-472c-8df2-7ff2be2b3b1b"),
            ("Token", "2336412f37"),
            ("TopicArn", TOPIC),
            (
                "Message",
                "You have chosen to subscribe to the topic. To confirm the subscription, visit the SubscribeURL included in this message.",
            ),
            ("SubscribeURL", &confirm_url),
            ("Timestamp", &now),
        ],
    );
    assert_eq!(send(confirmation), (200, "subscription confirmed\n".into()));

    // Version 1 and 2 notifications; the first again is a retry.
    let bounce = notification(&key, "1", &cert, "sns-bounce", TOPIC, BOUNCE);
    assert_eq!(send(bounce.clone()), (200, "recorded 1, already had 0\n".into()));
    assert_eq!(send(bounce.clone()), (200, "recorded 0, already had 1\n".into()));
    assert_eq!(send(notification(&key, "2", &cert, "sns-delivery", TOPIC, DELIVERY)).0, 200);

    // Forged, tampered, another topic, untrusted hosts, a redirect.
    let other_key = dir.join("other.key");
    let out = Command::new("openssl").args(["genrsa", "-out"]).arg(&other_key).arg("2048").output().unwrap();
    assert!(out.status.success());
    assert_eq!(send(notification(&other_key, "2", &cert, "sns-forged", TOPIC, BOUNCE)).0, 403, "another key");
    assert_eq!(send(bounce.replace("5.1.1", "5.1.2").replace("sns-bounce", "sns-tampered")).0, 403, "tampered");
    let elsewhere = "arn:aws:sns:us-east-1:123456789012:not-ours";
    assert_eq!(send(notification(&key, "2", &cert, "sns-topic", elsewhere, BOUNCE)).0, 403, "not a topic taken");
    for url in [
        "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem".to_string(),
        format!("http://127.0.0.1:{host}/cert.pem"),
        format!("https://localhost:{host}/cert.pem"),
    ] {
        assert_eq!(send(notification(&key, "2", &url, "sns-untrusted", TOPIC, BOUNCE)).0, 403, "{url}");
    }
    let redirect = format!("https://127.0.0.1:{host}/redirect.pem");
    assert_eq!(
        send(notification(&key, "2", &redirect, "sns-redirect", TOPIC, BOUNCE)).0,
        503,
        "a redirect is not followed"
    );
    assert_eq!(send("{\"Type\": \"Notification\"".into()).0, 400);

    let requests = seen.lock().unwrap().requests.clone();
    let paths: Vec<&str> = requests.iter().map(|(u, _)| u.split('?').next().unwrap()).collect();
    assert_eq!(paths, ["/cert.pem", "/confirm", "/redirect.pem"], "fetched once, cached; the redirect not followed");
    assert!(requests.iter().all(|(_, referer)| !referer), "no Referer sent");
    assert!(requests[1].0.contains("Token=2336412f37"));

    let state = dir.join("state");
    assert_eq!(ledger_count(&state, "SELECT count(*) FROM traffic_events"), 2);
    assert_eq!(
        ledger_count(
            &state,
            "SELECT count(*) FROM traffic_messages WHERE recipient = 'recipient@example.com' AND settled IS NOT NULL"
        ),
        2,
        "recipients: keep"
    );
    let m = mc.metrics().unwrap();
    let messages = |o: &str| m.value("mailcanary_traffic_messages_total", &[("provider", "ses-use1"), ("outcome", o)]);
    assert_eq!((messages("bounced"), messages("delivered")), (1.0, 1.0));
    assert_eq!(m.value("mailcanary_traffic_delivery_delay_seconds_sum", &[("provider", "ses-use1")]), 11.893);
    let errors = |r: &str| m.value("mailcanary_traffic_source_errors_total", &[("source", "ses"), ("reason", r)]);
    assert_eq!(
        (errors("forged"), errors("certificate"), errors("malformed"), errors("duplicate")),
        (6.0, 1.0, 1.0, 1.0)
    );
}
