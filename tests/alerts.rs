//! The shipped alert rules: valid for Prometheus, and each alert firing when
//! it should and staying silent when it should not (alerts/tests/).

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root)
        .output()
        .expect("promtool (Debian package prometheus) is installed");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rules_pass_promtool_check() {
    promtool(&["check", "rules", "alerts/mailcanary.rules.yml"]);
}

#[test]
fn the_rules_pass_their_unit_tests() {
    promtool(&["test", "rules", "alerts/tests/mailcanary.test.yml"]);
}
