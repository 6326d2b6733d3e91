"""Checks rendered manifests (`kubectl kustomize` output) before a cluster sees them.

    validate.py RENDERED.yaml PROBER [--fleet]

Every object is validated against the Kubernetes schemas (kubernetes-validate,
strict: an unknown field is an error, as with `kubectl apply
--validate=strict`) or, for the prometheus-operator kinds, against the CRDs
vendored in crds/ (made strict the same way). Then the properties the
deployment relies on: one replica replaced not rolled, the hardened security
context, the probes, the `prober` label named PROBER in the pod and in the
instance name, and, with --fleet, alert rules and dashboard equal to alerts/
and dashboards/.
"""

import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
# The oldest and the newest Kubernetes the pinned kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.25", "1.37"]

problems = []


def problem(obj, text):
    problems.append(f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {text}")


def strict(schema):
    """The CRD's schema with unknown fields refused wherever it lists its fields."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    return schema


def crd_schemas():
    schemas = {}
    for path in sorted((HERE / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def validate_schema(obj, crds):
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in crds:
        for e in jsonschema.Draft7Validator(crds[key]).iter_errors(obj):
            problem(obj, f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}")
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            problem(obj, f"Kubernetes {version}: {'.'.join(map(str, e.path)) or '(root)'}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problem(obj, f"Kubernetes {version} has no {key[1]} in {key[0]}")


def check_deployment(d, prober):
    spec = d["spec"]
    pod = spec["template"]["spec"]
    if spec.get("replicas") != 1 or spec.get("strategy", {}).get("type") != "Recreate":
        problem(d, "must be one replica with strategy Recreate: the ledger has one writer")
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(d, "pod securityContext must set runAsNonRoot and the RuntimeDefault seccomp profile")
    if spec["template"]["metadata"].get("labels", {}).get("prober") != prober:
        problem(d, f"pod label prober must be {prober!r}")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if not (
            sc.get("readOnlyRootFilesystem") is True
            and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"]
        ):
            problem(d, f"container {c['name']}: read-only root, no privilege escalation, all capabilities dropped")
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            problem(d, f"container {c['name']}: liveness probe must be /healthz")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            problem(d, f"container {c['name']}: readiness probe must be /readyz")
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if env.get("MAILCANARY_INSTANCE") != prober:
            problem(d, f"container {c['name']}: MAILCANARY_INSTANCE must be {prober!r}")


def check_fleet(objs):
    rules = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "PrometheusRule"}
    want = {
        "mailcanary": yaml.safe_load((ROOT / "alerts/mailcanary.rules.yml").read_text()),
        "mailcanary-traffic": yaml.safe_load((ROOT / "alerts/traffic.rules.yml").read_text()),
    }
    if rules != want:
        problems.append(
            "PrometheusRule: not exactly mailcanary and mailcanary-traffic, equal to "
            "alerts/mailcanary.rules.yml and alerts/traffic.rules.yml"
        )
    boards = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard")]
    want = json.loads((ROOT / "dashboards/mailcanary.json").read_text())
    if len(boards) != 1 or json.loads(boards[0]["data"]["mailcanary.json"]) != want:
        problems.append("dashboard ConfigMap: not exactly one, equal to dashboards/mailcanary.json")


def main():
    path, prober = sys.argv[1], sys.argv[2]
    name = pathlib.Path(path).name
    fleet = "--fleet" in sys.argv[3:]
    objs = [o for o in yaml.safe_load_all(pathlib.Path(path).read_text()) if o]
    crds = crd_schemas()
    for obj in objs:
        validate_schema(obj, crds)
    kinds = sorted(o["kind"] for o in objs)
    for kind in ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceMonitor"]:
        if kind not in kinds:
            problems.append(f"no {kind}")
    for obj in objs:
        if obj["kind"] == "Deployment":
            check_deployment(obj, prober)
        if obj["kind"] == "Service" and obj["metadata"]["name"] != "mailcanary":
            problem(obj, "must be named mailcanary: it is the scrape job, and the rules watch up{job=\"mailcanary\"}")
        if obj["kind"] == "ServiceMonitor" and "prober" not in obj["spec"].get("podTargetLabels", []):
            problem(obj, "podTargetLabels must carry prober")
    if fleet:
        check_fleet(objs)
    elif "PrometheusRule" in kinds:
        problems.append("PrometheusRule: a region overlay must not repeat the fleet's rules")
    for p in problems:
        print(f"{name}: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"{name}: {len(objs)} objects valid ({', '.join(kinds)})")


main()
