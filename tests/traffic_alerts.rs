//! The real-traffic alert rules: valid, and each alert firing when it
//! should and silent when it should not (alerts/tests/traffic.test.yml),
//! checked by promtool; and the metrics they read are exported under the
//! names they use.

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .unwrap_or_else(|e| panic!("promtool (a Debian package that scripts/test.sh installs): {e}"));
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_traffic_rules_pass_promtool_check() {
    promtool(&["check", "rules", "alerts/traffic.rules.yml"]);
}

#[test]
fn the_traffic_rules_pass_their_unit_tests() {
    promtool(&["test", "rules", "alerts/tests/traffic.test.yml"]);
}

/// Every metric the rules read is one mailcanary exports, and the
/// exposition passes `promtool check metrics`.
#[test]
fn the_rules_read_metrics_that_exist() {
    let m = mailcanary::metrics::Metrics::new();
    m.traffic.init_source("ses-events", "ses");
    let text = m.encode_text();
    let rules =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/traffic.rules.yml")).unwrap();
    for name in [
        "mailcanary_traffic_messages_total",
        "mailcanary_traffic_bounces_total",
        "mailcanary_traffic_events_total",
        "mailcanary_traffic_source_errors_total",
    ] {
        assert!(rules.contains(name), "{name} unused");
        assert!(text.contains(&format!("# TYPE {name} counter")), "{name} not exported");
    }
    for outcome in ["delivered", "deferred", "bounced", "complained", "rejected", "dropped"] {
        let series = format!("mailcanary_traffic_messages_total{{provider=\"ses\",outcome=\"{outcome}\"}} 0");
        assert!(text.contains(&series), "{series} missing at start-up");
    }
    assert!(
        text.contains("mailcanary_traffic_delivery_delay_seconds_bucket{le=\"90.0\",provider=\"ses\"} 0")
            || text.contains("mailcanary_traffic_delivery_delay_seconds_bucket{provider=\"ses\",le=\"90.0\"} 0"),
        "{text}"
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
