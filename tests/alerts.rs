//! The shipped alert rules (valid, and each alert firing when it should and
//! silent when it should not: alerts/tests/), Alertmanager config, compose
//! file and dashboard, checked offline by their own tools.

use std::path::Path;
use std::process::Command;

fn run(tool: &str, args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(tool)
        .args(args)
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (a Debian package that scripts/test.sh installs): {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn promtool(args: &[&str]) {
    run("promtool", args);
}

#[test]
fn the_rules_pass_promtool_check() {
    promtool(&["check", "rules", "alerts/mailcanary.rules.yml"]);
}

#[test]
fn the_rules_pass_their_unit_tests() {
    promtool(&["test", "rules", "alerts/tests/mailcanary.test.yml"]);
}

#[test]
fn the_alertmanager_config_is_valid() {
    run("amtool", &["check-config", "deploy/alertmanager/alertmanager.yml"]);
}

#[test]
fn the_compose_file_is_valid() {
    run("docker-compose", &["config", "-q"]);
}

#[test]
fn the_dashboard_is_json_with_its_variables() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/mailcanary.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vars: Vec<&str> =
        dashboard["templating"]["list"].as_array().unwrap().iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(vars, ["datasource", "instance", "provider", "inbox"]);
    assert_eq!(dashboard["uid"], "mailcanary");
}
