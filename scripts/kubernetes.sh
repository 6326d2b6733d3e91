#!/usr/bin/env bash
# The Kubernetes manifests in deploy/kubernetes/.
#
#   scripts/kubernetes.sh generate   writes the PrometheusRules (the canaries' and
#                                    the real traffic's) and the dashboard
#                                    ConfigMap from alerts/ and dashboards/
#   scripts/kubernetes.sh check      fails if they differ from what generate writes
#   scripts/kubernetes.sh test       check, then renders the base and the overlay
#                                    with `kubectl kustomize` and validates every
#                                    object (deploy/kubernetes/test/validate.py)
#
# kubectl is Debian's kubernetes-client (KUBECTL overrides); test installs
# kubernetes-validate from PyPI into a throwaway virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."

FLEET=deploy/kubernetes/base/fleet
RULES=alerts/mailcanary.rules.yml
TRAFFIC_RULES=alerts/traffic.rules.yml
DASHBOARD=dashboards/mailcanary.json
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0

die() { echo "kubernetes.sh: $*" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Every non-empty line of stdin, indented by $1 spaces (empty lines stay
# empty, so no trailing blanks end up in a YAML block).
indent() { sed "s/^./$(printf "%$1s")&/"; }

generated_from() {
  echo "# Generated from $1 by scripts/kubernetes.sh generate: edit that file, then run it."
}

# A PrometheusRule named $1 holding the rule file $2.
prometheus_rule() {
  generated_from "$2"
  cat <<EOF
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: $1
  labels:
    app.kubernetes.io/name: mailcanary
spec:
EOF
  indent 2 <"$2"
}

dashboard() {
  generated_from "$DASHBOARD"
  cat <<'EOF'
# Grafana's dashboard sidecar (kube-prometheus-stack, the Grafana chart) loads
# every ConfigMap labelled grafana_dashboard.
apiVersion: v1
kind: ConfigMap
metadata:
  name: mailcanary-dashboard
  labels:
    app.kubernetes.io/name: mailcanary
    grafana_dashboard: "1"
data:
  mailcanary.json: |
EOF
  indent 4 <"$DASHBOARD"
}

generate_into() {
  prometheus_rule mailcanary "$RULES" >"$1/prometheusrule.yaml"
  prometheus_rule mailcanary-traffic "$TRAFFIC_RULES" >"$1/prometheusrule-traffic.yaml"
  dashboard >"$1/grafana-dashboard.yaml"
}

check() {
  local tmp=$TMP/generated stale=()
  mkdir "$tmp"
  generate_into "$tmp"
  for f in prometheusrule.yaml prometheusrule-traffic.yaml grafana-dashboard.yaml; do
    diff -u "$FLEET/$f" "$tmp/$f" >&2 || stale+=("$FLEET/$f")
  done
  [ ${#stale[@]} -eq 0 ] ||
    die "${stale[*]} out of date with $RULES, $TRAFFIC_RULES and $DASHBOARD (diff above): run scripts/kubernetes.sh generate and commit the result"
  echo "kubernetes.sh: $FLEET matches $RULES, $TRAFFIC_RULES and $DASHBOARD"
}

render_and_validate() {
  local kubectl=${KUBECTL:-kubectl} tmp=$TMP python
  command -v "$kubectl" >/dev/null || die "$kubectl not found: install Debian's kubernetes-client (scripts/test.sh does)"
  python=$(command -v /usr/bin/python3 || command -v python3) || die "python3 not found"
  "$kubectl" kustomize deploy/kubernetes/base >"$tmp/base.yaml" 2>"$tmp/kustomize.err" ||
    { cat "$tmp/kustomize.err" >&2; die "kubectl kustomize deploy/kubernetes/base failed"; }
  "$kubectl" kustomize deploy/kubernetes/overlays/eu-west >"$tmp/eu-west.yaml" 2>"$tmp/kustomize.err" ||
    { cat "$tmp/kustomize.err" >&2; die "kubectl kustomize deploy/kubernetes/overlays/eu-west failed"; }
  "$python" -m venv "$tmp/venv" || die "python3 -m venv failed: install Debian's python3-venv"
  "$tmp/venv/bin/pip" install --quiet --disable-pip-version-check "$KUBERNETES_VALIDATE" ||
    die "pip install $KUBERNETES_VALIDATE failed"
  "$tmp/venv/bin/python" deploy/kubernetes/test/validate.py "$tmp/base.yaml" primary --fleet
  "$tmp/venv/bin/python" deploy/kubernetes/test/validate.py "$tmp/eu-west.yaml" eu-west
}

case "${1:-}" in
  generate) generate_into "$FLEET"; echo "kubernetes.sh: wrote $FLEET/prometheusrule.yaml, $FLEET/prometheusrule-traffic.yaml and $FLEET/grafana-dashboard.yaml" ;;
  check) check ;;
  test) check; render_and_validate ;;
  *) echo "usage: $0 generate | check | test" >&2; exit 2 ;;
esac
