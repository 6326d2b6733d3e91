//! The real-traffic ingestion benchmark (docs/performance.md, "Real
//! traffic"): `mailcanary run` (release build) takes signed webhook
//! deliveries from 16 keep-alive clients as fast as it acknowledges them,
//! each verified as its provider documents and recorded in the durable
//! ledger before its 2xx. Deliveries are signed before the clock starts.
//!
//!   sendgrid  batches of 100 events, one ECDSA P-256 signature each
//!   mailgun   one event a delivery, HMAC-SHA256 and a single-use token
//!   resend    one event a delivery, Svix HMAC-SHA256
//!   ses       one event a delivery through SNS, RSA SHA-256 (openssl signs)
//!
//! Then, with no listener (traffic/offline.rs): a replayed SES outage
//! through provider health, and `impact` over an incident of 100,000
//! messages, its counts checked against SQL over the ledger.
//!
//!   cargo bench --bench traffic [-- sendgrid mailgun resend ses replay impact]
//!
//! Sizes: MC_BENCH_EVENTS (per mode, 50,000; ses 2,000), MC_BENCH_CLIENTS
//! (16), MC_BENCH_MESSAGES (impact, 100,000).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "traffic/offline.rs"]
mod offline;
#[path = "../tests/common/webhooks.rs"]
mod webhooks;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use webhooks::*;

const MG_KEY: &str = "key-bench";
const RS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One signed delivery: path, headers, body, events in it.
struct Delivery {
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
    events: usize,
}

/// An HTTP/1.1 connection kept alive across requests.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Conn { reader: BufReader::new(s.try_clone().unwrap()), writer: s }
    }

    fn post(&mut self, d: &Delivery) -> u16 {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            d.path,
            d.body.len()
        );
        for (k, v) in &d.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(d.body.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let code = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        code
    }
}

fn sendgrid(key: &SendgridKey, events: usize) -> Vec<Delivery> {
    let now = now_s();
    (0..events / 100)
        .map(|b| {
            let list: Vec<String> = (0..100)
                .map(|i| {
                    let n = b * 100 + i;
                    let kind = ["processed", "delivered", "deferred"][n % 3];
                    format!(
                        r#"{{"email":"r{n}@example.com","timestamp":{now},"smtp-id":"<{n}@example.com>","event":"{kind}","sg_event_id":"e{n}","sg_message_id":"m{}.filter0001.0","response":"250 OK"}}"#,
                        n / 3
                    )
                })
                .collect();
            let body = format!("[{}]", list.join(","));
            Delivery { path: "/t/sendgrid", headers: key.sign(now, &body), body, events: 100 }
        })
        .collect()
}

fn mailgun_deliveries(events: usize) -> Vec<Delivery> {
    let now = now_s();
    (0..events)
        .map(|n| {
            let data = format!(
                r#"{{"event": "delivered", "id": "ev{n}", "timestamp": {now}.5, "recipient": "r{n}@example.com",
                    "message": {{"headers": {{"message-id": "{n}@example.com"}}}}, "delivery-status": {{"code": 250, "message": "OK"}}}}"#
            );
            Delivery { path: "/t/mailgun", headers: vec![], body: mailgun(MG_KEY, now, &format!("token-{n}"), &data), events: 1 }
        })
        .collect()
}

fn resend(events: usize) -> Vec<Delivery> {
    let now = now_s();
    (0..events)
        .map(|n| {
            let body = format!(
                r#"{{"type":"email.delivered","created_at":"2026-02-22T23:41:12.126Z","data":{{"created_at":"2026-02-22T23:41:11.894Z","email_id":"e{n}","to":["r{n}@example.com"]}}}}"#
            );
            Delivery { path: "/t/resend", headers: svix(RS_SECRET, &format!("msg_{n}"), now, &body), body, events: 1 }
        })
        .collect()
}

/// SNS notifications signed with an RSA key by openssl (one process for all).
fn ses(dir: &Path, cert_url: &str, events: usize) -> Vec<Delivery> {
    let key = dir.join("sns.key");
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let topic = "arn:aws:sns:us-east-1:123456789012:ses-events";
    let messages: Vec<(String, String)> = (0..events)
        .map(|n| {
            let ses = format!(
                r#"{{"eventType":"Delivery","mail":{{"timestamp":"{now}","messageId":"m{n}","destination":["r{n}@example.com"]}},"delivery":{{"timestamp":"{now}","recipients":["r{n}@example.com"],"smtpResponse":"250 ok"}}}}"#
            );
            let signed = format!("Message\n{ses}\nMessageId\nsns-{n}\nTimestamp\n{now}\nTopicArn\n{topic}\nType\nNotification\n");
            (ses, signed)
        })
        .collect();
    // One openssl per message would take minutes: a shell loop over files.
    for (n, (_, signed)) in messages.iter().enumerate() {
        std::fs::write(dir.join(format!("m{n}.txt")), signed).unwrap();
    }
    let script = format!(
        "cd {} && for n in $(seq 0 {}); do openssl dgst -sha256 -sign sns.key -out m$n.sig m$n.txt || exit 1; done",
        dir.display(),
        events - 1
    );
    assert!(std::process::Command::new("sh").args(["-c", &script]).status().unwrap().success());
    let _ = key;
    messages
        .into_iter()
        .enumerate()
        .map(|(n, (ses, _))| {
            use base64::Engine;
            let sig =
                base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join(format!("m{n}.sig"))).unwrap());
            let body = serde_json::json!({
                "Type": "Notification", "MessageId": format!("sns-{n}"), "TopicArn": topic, "Message": ses,
                "Timestamp": now, "SignatureVersion": "2", "Signature": sig, "SigningCertURL": cert_url,
            })
            .to_string();
            Delivery { path: "/t/ses", headers: vec![], body, events: 1 }
        })
        .collect()
}

/// Posts every delivery from `clients` connections; (events/s, seconds).
fn drive(port: u16, deliveries: Vec<Delivery>, clients: usize) -> (f64, f64, usize) {
    let events: usize = deliveries.iter().map(|d| d.events).sum();
    let queue = Arc::new(Mutex::new(deliveries));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(port);
                let mut refused = 0;
                loop {
                    let Some(d) = queue.lock().unwrap().pop() else { return refused };
                    if conn.post(&d) != 200 {
                        refused += 1;
                    }
                }
            })
        })
        .collect();
    let refused: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let secs = start.elapsed().as_secs_f64();
    (events as f64 / secs, secs, refused)
}

/// Peak RSS (MiB) and CPU seconds of process `pid`.
fn usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm: f64 =
        status.lines().find(|l| l.starts_with("VmHWM:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    (hwm / 1024.0, ticks / 100.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let all = ["sendgrid", "mailgun", "resend", "ses", "replay", "impact"];
    let modes: Vec<&str> = all.iter().copied().filter(|m| args.is_empty() || args.iter().any(|a| a == m)).collect();
    let clients = env_usize("MC_BENCH_CLIENTS", 16);
    println!("| source | events | deliveries/request | events/s | wall s | CPU s | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|");
    for mode in modes.iter().copied().filter(|m| !["replay", "impact"].contains(m)) {
        let dir = temp_dir(&format!("bench-traffic-{mode}"));
        let (port, hooks) = (free_port(), free_port());
        let sg = SendgridKey::new();
        let mut extra = String::new();
        let mut _host = None;
        let deliveries = match mode {
            "sendgrid" => sendgrid(&sg, env_usize("MC_BENCH_EVENTS", 50_000)),
            "mailgun" => mailgun_deliveries(env_usize("MC_BENCH_EVENTS", 50_000)),
            "resend" => resend(env_usize("MC_BENCH_EVENTS", 50_000)),
            _ => {
                let (url, ca, host) = ses_host(&dir);
                extra = format!(", certificate_hosts: [\"{}\"], ca_file: \"{ca}\"", url.split('/').nth(2).unwrap());
                _host = Some(host);
                ses(&dir, &url, env_usize("MC_BENCH_EVENTS", 2_000).min(20_000))
            }
        };
        let config = format!(
            "{}traffic:\n  listen: \"127.0.0.1:{hooks}\"\n  sources:\n\
             \x20   - {{ name: sendgrid, provider: sendgrid, type: sendgrid, path: /t/sendgrid, public_key: \"{}\" }}\n\
             \x20   - {{ name: mailgun, provider: mailgun, type: mailgun, path: /t/mailgun, signing_key: \"{MG_KEY}\" }}\n\
             \x20   - {{ name: resend, provider: resend, type: resend, path: /t/resend, secret: \"{RS_SECRET}\" }}\n\
             \x20   - {{ name: ses, provider: ses, type: ses_sns, path: /t/ses, topic_arns: [\"arn:aws:sns:us-east-1:123456789012:ses-events\"]{extra} }}\n",
            global("bench", port, &dir, "60s", "10m"),
            sg.public
        );
        let mc = Mailcanary::start(&dir, port, &config);
        wait_listening(hooks);
        let per_request = deliveries[0].events;
        let events: usize = deliveries.iter().map(|d| d.events).sum();
        let (rate, secs, refused) = drive(hooks, deliveries, clients);
        let (rss, cpu) = usage(mc.pid());
        let stored = ledger_count(&dir.join("state"), "SELECT count(*) FROM traffic_events") as usize;
        assert_eq!((refused, stored), (0, events), "{mode}: every delivery acknowledged and recorded");
        println!("| {mode} | {events} | {per_request} | {rate:.0} | {secs:.1} | {cpu:.1} | {rss:.0} |");
        drop(mc);
    }
    if modes.contains(&"replay") {
        println!();
        offline::replay();
    }
    if modes.contains(&"impact") {
        let dir = temp_dir("bench-traffic-impact");
        offline::impact(&dir, env_usize("MC_BENCH_MESSAGES", 100_000));
    }
}

/// The loopback HTTPS host serving an openssl-made signing certificate.
fn ses_host(dir: &Path) -> (String, String, (tokio::runtime::Runtime, tokio::sync::watch::Sender<bool>)) {
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sns", "-keyout"])
        .arg(dir.join("sns.key"))
        .arg("-out")
        .arg(dir.join("sns.pem"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let pem = std::fs::read_to_string(dir.join("sns.pem")).unwrap();
    let (tls, ca) = tls_server(dir, "sns-host", &["127.0.0.1"], false);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route("/cert.pem", axum::routing::get(move || async move { pem.clone() }));
    let mut web = mailcanary::listener::web::Web::default();
    web.tls = Some(tokio_rustls::TlsAcceptor::from(tls));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    rt.spawn(mailcanary::listener::serve_http(listener, app, Default::default(), web, "sns host", stopped));
    (format!("https://127.0.0.1:{port}/cert.pem"), ca, (rt, stop))
}
