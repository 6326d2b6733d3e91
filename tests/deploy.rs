//! The deployment files in deploy/ checked offline: the Kubernetes alert
//! rules and dashboard generated from alerts/ and dashboards/ (another
//! change to those must regenerate them), and the example configs that the
//! Kubernetes base and the Debian package ship, valid as shipped. Rendering
//! and schema validation of the manifests, and installing the package, are
//! scripts/kubernetes.sh test and scripts/deb.sh test (run by scripts/test.sh).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_kubernetes_rules_and_dashboard_match_alerts_and_dashboards() {
    let out = Command::new("bash").arg("scripts/kubernetes.sh").arg("check").current_dir(root()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A change to the alert rules, not yet generated, fails the check with the
/// command that fixes it; once generated, the check passes.
#[test]
fn a_changed_rule_fails_the_check_until_generated() {
    let dir = common::temp_dir("kubernetes-drift");
    for f in [
        "scripts/kubernetes.sh",
        "alerts/mailcanary.rules.yml",
        "alerts/traffic.rules.yml",
        "dashboards/mailcanary.json",
        "deploy/kubernetes/base/fleet/prometheusrule.yaml",
        "deploy/kubernetes/base/fleet/prometheusrule-traffic.yaml",
        "deploy/kubernetes/base/fleet/grafana-dashboard.yaml",
    ] {
        std::fs::create_dir_all(dir.join(f).parent().unwrap()).unwrap();
        std::fs::copy(root().join(f), dir.join(f)).unwrap();
    }
    let rules = dir.join("alerts/mailcanary.rules.yml");
    let changed = std::fs::read_to_string(&rules).unwrap().replacen("for: 10m", "for: 12m", 1);
    std::fs::write(&rules, changed).unwrap();
    let script =
        |verb: &str| Command::new("bash").arg("scripts/kubernetes.sh").arg(verb).current_dir(&*dir).output().unwrap();

    let out = script("check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with('+') && l.ends_with("for: 12m")),
        "the diff shows the change: {stderr}"
    );
    assert!(
        stderr.contains(
            "deploy/kubernetes/base/fleet/prometheusrule.yaml out of date with alerts/mailcanary.rules.yml, \
             alerts/traffic.rules.yml and dashboards/mailcanary.json (diff above): run scripts/kubernetes.sh \
             generate and commit the result"
        ),
        "{stderr}"
    );
    assert!(script("generate").status.success());
    let out = script("check");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `mailcanary validate` on `config` with only `env` (VAR=value lines) for
/// its variables.
fn validates_with(config: &Path, env: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailcanary"));
    cmd.args(["validate", "--config"]).arg(config).env_clear();
    for line in env.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (key, value) = line.split_once('=').unwrap();
        cmd.env(key, value);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_kubernetes_example_config_validates_with_the_pods_environment() {
    // What the Deployment sets, and the keys the Secret is documented to hold.
    validates_with(
        &root().join("deploy/kubernetes/base/prober/probes.yaml"),
        "MAILCANARY_INSTANCE=primary\nSMTP_PASSWORD=x\nIMAP_PASSWORD=x",
    );
}

#[test]
fn the_debian_example_config_validates_with_its_secrets_file() {
    let env = std::fs::read_to_string(root().join("deploy/debian/default")).unwrap();
    validates_with(&root().join("deploy/debian/probes.yaml"), &env);
}
