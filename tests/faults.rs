//! Servers that are down, slow or rude, and mail that is hostile: each is
//! counted under its reason, nothing hangs or panics, and a healthy route
//! next to them keeps delivering.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How a rude server treats every connection.
#[derive(Clone)]
enum Rude {
    /// Accepts and never says anything.
    Silent,
    /// Says half a line, then nothing.
    HalfLine(&'static str),
    /// Answers with something that is not the protocol.
    Garbage,
    /// A TLS server with the given certificate.
    Tls(Arc<ServerConfig>),
}

/// A rude server on a loopback port, for as long as the test runs.
fn rude(kind: Rude) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let kind = kind.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                match kind {
                    Rude::Silent => std::thread::sleep(Duration::from_secs(120)),
                    Rude::HalfLine(text) => {
                        let _ = stream.write_all(text.as_bytes());
                        std::thread::sleep(Duration::from_secs(120));
                    }
                    Rude::Garbage => {
                        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\x00\xff\xfe garbage\r\n");
                        let mut buf = [0u8; 1024];
                        let _ = stream.read(&mut buf);
                    }
                    Rude::Tls(config) => {
                        let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), stream);
                        let _ = tls.write_all(b"* OK hello\r\n220 hello\r\n");
                        let mut buf = [0u8; 1024];
                        let _ = tls.read(&mut buf);
                    }
                }
            });
        }
    });
    port
}

#[test]
fn rude_servers_are_counted_and_the_healthy_route_keeps_delivering() {
    let s = stack();
    let dir = temp_dir("faults");
    let port = free_port();
    let (wrong_name, wrong_name_ca) = tls_server(&dir, "wrong-name", &["wrong.example"], false);
    let (expired, expired_ca) = tls_server(&dir, "expired", &["localhost"], true);
    let (untrusted, _) = tls_server(&dir, "untrusted", &["localhost"], false);
    let closed = free_port();
    let silent = rude(Rude::Silent);
    let half = rude(Rude::HalfLine("* OK half a gree"));
    let half_smtp = rude(Rude::HalfLine("220 half a gree"));
    let garbage = rude(Rude::Garbage);
    let wrong_name = rude(Rude::Tls(wrong_name));
    let expired = rude(Rude::Tls(expired));
    let untrusted = rude(Rude::Tls(untrusted));

    let bad_inbox = |name: &str, port: u16, tls: &str, ca: Option<&str>| {
        let ca = ca.map(|c| format!(", ca_file: \"{c}\"")).unwrap_or_default();
        format!(
            "  - {{ name: {name}, address: {}@mailcanary.test, imap: {{ host: localhost, port: {port}, tls: {tls}, timeout: 2s, username: u, password: p{ca} }} }}\n",
            user(&format!("t-faults-{name}"))
        )
    };
    let bad_smtp = |name: &str, port: u16, tls: &str, ca: Option<&str>| {
        let ca = ca.map(|c| format!(", ca_file: \"{c}\"")).unwrap_or_default();
        format!(
            "  - {{ name: {name}, type: smtp, host: localhost, port: {port}, tls: {tls}, timeout: 2s, from: canary@mailcanary.test{ca} }}\n"
        )
    };
    let imap_faults = [
        ("imap-closed", closed, "none", None, "connect"),
        ("imap-silent", silent, "none", None, "timeout"),
        ("imap-half", half, "none", None, "timeout"),
        ("imap-garbage", garbage, "none", None, "protocol"),
        ("imap-wrong-name", wrong_name, "tls", Some(wrong_name_ca.as_str()), "tls"),
        ("imap-expired", expired, "tls", Some(expired_ca.as_str()), "tls"),
        ("imap-untrusted", untrusted, "tls", None, "tls"),
    ];
    let smtp_faults = [
        ("smtp-closed", closed, "none", None, "connect"),
        ("smtp-silent", silent, "none", None, "timeout"),
        ("smtp-half", half_smtp, "none", None, "timeout"),
        ("smtp-garbage", garbage, "none", None, "other"),
        ("smtp-wrong-name", wrong_name, "tls", Some(wrong_name_ca.as_str()), "tls"),
        ("smtp-expired", expired, "tls", Some(expired_ca.as_str()), "tls"),
        ("smtp-untrusted", untrusted, "tls", None, "tls"),
    ];
    let mut providers = relay("relay");
    let mut inboxes = inbox("healthy", "t-faults");
    // A spam folder that does not exist: counted, skipped, and the inbox still works.
    inboxes = inboxes.replace("spam: [Junk]", "spam: [Junk, Gone]");
    let mut probes = String::from("  - { name: healthy, provider: relay, inbox: healthy, interval: 1s }\n");
    for (name, port, tls, ca, _) in imap_faults {
        inboxes += &bad_inbox(name, port, tls, ca);
        probes += &format!("  - {{ name: to-{name}, provider: relay, inbox: {name} }}\n");
    }
    for (name, port, tls, ca, _) in smtp_faults {
        providers += &bad_smtp(name, port, tls, ca);
        probes += &format!("  - {{ name: {name}-to-healthy, provider: {name}, inbox: healthy }}\n");
    }
    let config = format!(
        "{}providers:\n{providers}inboxes:\n{inboxes}probes:\n{probes}",
        global("t-faults", port, &dir, "3s", "1m")
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let healthy = [route("healthy", "relay", "healthy").as_slice(), &[("placement", "inbox")]].concat();
    mc.wait_until("the healthy route delivering", Duration::from_secs(30), |m| {
        m.value("mailcanary_canaries_delivered_total", &healthy) >= 2.0
    });

    // Hostile and malformed mail into the healthy inbox.
    let to = format!("{}@mailcanary.test", user("t-faults"));
    let big = "x".repeat(998) + "\n";
    s.inject(&to, &format!("Subject: big\nX-Mailcanary-Token: mc1.x.y.z.w.1.v\n\n{}", big.repeat(3 * 1024)));
    s.inject(&to, "X-Mailcanary-Token: =?bogus?q?=ZZ=?=\nSubject: =?utf-8?b?!!!not base64?=\nContent-Type: multipart/mixed; boundary=\n\n--\n--\n");
    s.inject(&to, "no header here at all\n\n\n");
    s.inject(&to, &format!("X-Mailcanary-Token: {}\n\nlong token\n", "A".repeat(5000)));

    let m = mc.wait_until("every fault counted", Duration::from_secs(60), |m| {
        imap_faults.iter().all(|(name, _, _, _, reason)| {
            m.value("mailcanary_inbox_errors_total", &[("inbox", name), ("reason", reason)]) >= 1.0
        }) && smtp_faults.iter().all(|(name, _, _, _, reason)| {
            let probe = format!("{name}-to-healthy");
            let labels = [("probe", probe.as_str()), ("reason", *reason)];
            m.value("mailcanary_send_failures_total", &labels) >= 1.0
        }) && m.value("mailcanary_unmatched_messages_total", &[("inbox", "healthy"), ("reason", "forged")]) >= 3.0
            && m.value("mailcanary_inbox_errors_total", &[("inbox", "healthy"), ("reason", "protocol")]) >= 1.0
    });
    for (name, ..) in imap_faults {
        assert_eq!(m.get("mailcanary_inbox_up", &[("inbox", name)]), Some(0.0), "{name}");
    }
    let refused = m.value("mailcanary_inbox_errors_total", &[("inbox", "healthy"), ("reason", "protocol")]);
    assert_eq!(refused, 1.0, "a missing folder is counted once, not at every poll");
    // Still delivering, in spite of all that.
    let before = m.value("mailcanary_canaries_delivered_total", &healthy);
    mc.wait_until("more deliveries", Duration::from_secs(30), |m| {
        m.value("mailcanary_canaries_delivered_total", &healthy) >= before + 3.0
    });
    assert_eq!(mc.metrics().unwrap().get("mailcanary_inbox_up", &[("inbox", "healthy")]), Some(1.0));
    assert_eq!(s.wait_messages("t-faults", "", 4).len(), 4, "hostile mail is left alone, canaries are cleaned up");
    let mut mc = mc;
    assert!(mc.stop().success(), "SIGTERM ends it cleanly, whatever it was waiting on");
    assert!(!mc.log().contains("panicked"), "{}", mc.log());
}

#[test]
fn ten_thousand_unrelated_messages_cost_no_scans() {
    let s = stack();
    let dir = temp_dir("big-inbox");
    let port = free_port();
    // 10,000 ordinary messages, delivered today, already in the mailbox.
    let maildir = s.dir.join("mail").join(user("t-big")).join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for i in 0..10_000 {
        let body = format!(
            "From: someone@example.test\nSubject: unrelated {i}\nMessage-ID: <{i}@example.test>\n\nhello {i}\n"
        );
        std::fs::write(maildir.join("cur").join(format!("1795000000.M{i}P1.test:2,S")), body).unwrap();
    }
    for path in [s.dir.join("mail").join(user("t-big")), maildir.clone()]
        .into_iter()
        .chain(["cur", "new", "tmp"].iter().map(|d| maildir.join(d)))
        .chain(std::fs::read_dir(maildir.join("cur")).unwrap().map(|e| e.unwrap().path()))
    {
        std::os::unix::fs::chown(&path, Some(8), Some(8)).unwrap();
    }
    // Through a proxy that counts what the server sends: the measure of
    // what was fetched, whatever the log says.
    let proxy = common::proxy::imap_proxy();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: big, provider: relay, inbox: big, interval: 1s }}\n",
        global("t-big", port, &dir, "1s", "1m"),
        relay("relay"),
        common::proxy::proxied_inbox("big", "t-big", &proxy),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let labels = [route("big", "relay", "big").as_slice(), &[("placement", "inbox")]].concat();
    mc.wait_until("deliveries", Duration::from_secs(60), |m| {
        m.value("mailcanary_canaries_delivered_total", &labels) >= 5.0
    });
    // One of the 10,000 headers alone is ~100 bytes: a scan would be > 1 MB.
    let down = proxy.bytes_down.load(std::sync::atomic::Ordering::SeqCst);
    assert!(down < 100_000, "the server sent {down} bytes for 5 canaries\n{}", mc.log());
    // Canaries come and go; the unrelated mail stays, all of it.
    let unrelated = s.messages("t-big", "").iter().filter(|m| m.contains("Subject: unrelated ")).count();
    assert_eq!(unrelated, 10_000, "the unrelated mail is untouched");
}
