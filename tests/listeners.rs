//! The main listener as the Prometheus ecosystem secures an exporter's: TLS
//! and bcrypt basic auth from a web configuration file, checked with curl
//! against the real binary; and its control endpoint, which no browser can
//! reach cross-site.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// curl's status code and body for `args` (a URL last).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn tls_and_basic_auth_from_a_web_config_file() {
    let dir = temp_dir("web-config");
    let port = free_port();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), cert.signing_key.serialize_pem()).unwrap();
    let hash = bcrypt::hash("scrape-secret-9q", 4).unwrap();
    std::fs::write(
        dir.join("web.yml"),
        format!("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: \"{hash}\"\n"),
    )
    .unwrap();
    let config = format!(
        "{}  web: {{ config_file: \"{}\" }}\nproviders:\n{}inboxes:\n{}probes:\n  - {{ name: r, provider: relay, inbox: x }}\n",
        global("t-web", port, &dir, "1h", "1m"),
        dir.join("web.yml").display(),
        relay("relay"),
        inbox("x", "t-web-x"),
    );
    std::fs::write(dir.join("probes.yaml"), &config).unwrap();
    let log = std::fs::File::create(dir.join("mailcanary.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["run", "--config"])
        .arg(dir.join("probes.yaml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("https://localhost:{port}/metrics");
    let cacert = dir.join("tls.crt");
    let cacert = cacert.to_str().unwrap();
    let start = Instant::now();
    let (code, _) = loop {
        let answer = curl(&["--cacert", cacert, &url]);
        if answer.0 != 0 || start.elapsed() > Duration::from_secs(10) {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 401, "no credentials");
    assert_eq!(curl(&["--cacert", cacert, "-u", "prometheus:wrong", &url]).0, 401, "a wrong password");
    let (code, body) = curl(&["--cacert", cacert, "-u", "prometheus:scrape-secret-9q", &url]);
    assert_eq!(code, 200);
    assert!(body.contains("mailcanary_build_info") && !body.contains("# EOF"), "{body}");
    // Streamed a family at a time: OpenMetrics still ends once, at the end.
    let accept = "Accept: application/openmetrics-text; version=1.0.0";
    let (code, body) = curl(&["--cacert", cacert, "-u", "prometheus:scrape-secret-9q", "-H", accept, &url]);
    assert_eq!(code, 200);
    assert!(body.ends_with("\n# EOF\n") && body.matches("# EOF").count() == 1, "{body}");
    assert!(body.contains("# TYPE mailcanary_build_info gauge"), "{body}");
    assert_eq!(curl(&[&format!("http://localhost:{port}/metrics")]).0, 0, "no plain HTTP on a TLS listener");
    // With credentials on the listener, a caller may reload; a form post may not.
    let reload = format!("https://localhost:{port}/-/reload");
    let auth = ["--cacert", cacert, "-u", "prometheus:scrape-secret-9q", "-X", "POST"];
    assert_eq!(curl(&[&auth[..], &[reload.as_str()]].concat()).0, 200);
    let form = [&auth[..], &["-d", "x=1", reload.as_str()]].concat();
    assert_eq!(curl(&form).0, 403, "a form post, as a browser sends cross-site");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_browser_cannot_reload_it_cross_site() {
    let dir = temp_dir("control");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: r, provider: relay, inbox: x }}\n",
        global("t-control", port, &dir, "1h", "1m"),
        relay("relay"),
        inbox("x", "t-control-x"),
    );
    let _mc = Mailcanary::start(&dir, port, &config);
    let url = format!("http://127.0.0.1:{port}/-/reload");
    assert_eq!(curl(&["-X", "POST", &url]).0, 200, "the operator on the host");
    let (code, body) = curl(&["-H", "Origin: http://evil.example", "-X", "POST", &url]);
    assert_eq!(code, 403, "{body}");
    assert_eq!(curl(&["-d", "a=b", &url]).0, 403, "a plain form post");
    assert_eq!(curl(&["-H", "Content-Type: text/plain", "-d", "x", &url]).0, 403);
}
