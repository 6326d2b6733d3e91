//! A real Prometheus (the Debian package) on loopback, and its query API.

use super::{free_port, http};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus in `dir`, scraping and evaluating every `interval`,
    /// with the rule file `rules` (its text) and the `scrape_configs:` list
    /// `scrape` (YAML, indented as its items); `alertmanager` is a port to
    /// send alerts to, if any. Waits until it is ready.
    pub fn start(dir: &Path, interval: &str, rules: &str, scrape: &str, alertmanager: Option<u16>) -> Prometheus {
        let rules_path = dir.join("rules.yml");
        std::fs::write(&rules_path, rules).unwrap();
        let alerting = alertmanager
            .map(|p| {
                format!("alerting: {{ alertmanagers: [{{ static_configs: [{{ targets: [\"127.0.0.1:{p}\"] }}] }}] }}\n")
            })
            .unwrap_or_default();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global: {{ scrape_interval: {interval}, evaluation_interval: {interval} }}\n\
                 rule_files: [\"{}\"]\n{alerting}scrape_configs:\n{scrape}",
                rules_path.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (Debian package) is installed");
        let prometheus = Prometheus { child, port };
        let start = Instant::now();
        while http(port, "GET", "/-/ready").is_none_or(|(code, _)| code != 200) {
            assert!(start.elapsed() < Duration::from_secs(30), "Prometheus never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// The result of an instant query (its `data.result`).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        query(self.port, expr)
    }

    /// Polls `expr` until `cond` holds on its result; panics after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, expr: &str, cond: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let result = self.query(expr);
            if cond(&result) {
                return result;
            }
            assert!(start.elapsed() < limit, "no {what} within {limit:?}: {expr} = {result:?}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// An instant query of the Prometheus on `port`: its `data.result`.
pub fn query(port: u16, expr: &str) -> Vec<Value> {
    let mut encoded = String::new();
    for b in expr.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let (code, body) = http(port, "GET", &format!("/api/v1/query?query={encoded}")).expect("Prometheus answers");
    assert_eq!(code, 200, "{expr}: {body}");
    let body = body.lines().filter(|l| l.starts_with('{')).collect::<String>();
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: {e}: {body}"));
    json["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of one sample of a query's result.
pub fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}
