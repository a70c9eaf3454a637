"""deploy/k8s (Kustomize) renders offline, validates against the Kubernetes and CRD schemas, and agrees
with the code it runs.

Each overlay is rendered with the real Kustomize (`kustomize build`, or the copy built into `kubectl`);
no cluster is contacted. Built-in kinds are validated with kubernetes-validate's bundled schemas in
strict mode (unknown fields are errors); the custom resources (KEDA, Strimzi, prometheus-operator, Gateway
API) with kubeconform, strict, against the CRDs of the pinned operator releases (deploy/local/crds.py fetches
them from the registries once, into .local/crds/): an apiVersion the pinned operator does not serve fails.
Then the objects are compared with the code: ports and probes with the services' settings and
shared/service.py, topics with shared/topics.py, KEDA triggers with each service's subscriptions, alert
expressions with the metrics the code defines, the HTTPRoute with the services' routes.
"""

from __future__ import annotations

import ast
import base64
import codecs
import functools
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import ValidationError

from deploy.local import crds, tools
from services.coaching.app import SPEC as COACHING
from services.coaching.settings import CoachingSettings
from services.ingest import cli as tenants_cli
from services.ingest.app import SPEC as INGEST
from services.ingest.settings import IngestSettings
from services.kpi.app import SPEC as KPI
from services.kpi.settings import KpiSettings
from services.notify.app import SPEC as NOTIFY
from services.notify.settings import NotifySettings
from services.recognition.app import SPEC as RECOGNITION
from services.recognition.settings import RecognitionSettings
from shared.service import ServiceSpec
from shared.settings import ServiceSettings
from shared.topics import AUDIT, TENANTS, all_with_dlq

pytestmark = [pytest.mark.tools, pytest.mark.timeout(1500)]  # kubeconform: built in the background, run last

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
BOOTSTRAP = K8S / "bootstrap"
OVERLAYS = ("base", "overlays/dev", "overlays/prod")

# The contract's services (CONTRACT.md section 1): how each is described in code.
SERVICES: dict[str, tuple[ServiceSpec, type[ServiceSettings]]] = {
    "ingest": (INGEST, IngestSettings),
    "kpi": (KPI, KpiSettings),
    "coaching": (COACHING, CoachingSettings),
    "recognition": (RECOGNITION, RecognitionSettings),
    "notify": (NOTIFY, NotifySettings),
}
CONSUMERS = [name for name, (spec, _) in SERVICES.items() if spec.subscriptions]
TOPICS = {topic.name: topic for topic in all_with_dlq()}
# Topics a group reads that neither scale it nor cap its replicas (see deploy/k8s/base/kpi.yaml).
NOT_SCALED_ON = {TENANTS.name, AUDIT.name}  # a trickle: never a reason to scale
RUN_AS_USER = 10001

# Kubernetes versions the objects must be valid for: an old floor and the newest kubernetes-validate bundles.
K8S_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
# The custom resources deploy/k8s uses, at the versions the pinned operators serve (deploy/local/crds.py).
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("kafka.strimzi.io/v1", "KafkaTopic"), ("kafka.strimzi.io/v1", "KafkaUser"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
}
CUSTOM_GROUPS = {api.split("/")[0] for api, _ in CUSTOM_KINDS}
# The kafka scaler's metadata parameters (KEDA 2.x docs, "Apache Kafka"): catches a misspelt key,
# which KEDA would silently ignore.
KEDA_KAFKA_PARAMETERS = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag",
    "limitToPartitionsWithLag", "version", "partitionLimitation", "sasl", "tls", "unsafeSsl",
}


# --- rendering -------------------------------------------------------------------------------------


def _kustomize() -> list[str] | None:
    if path := shutil.which("kustomize"):
        return [path, "build"]
    if path := shutil.which("kubectl"):
        return [path, "kustomize"]
    return None


@functools.cache
def _render(overlay: str) -> tuple[dict[str, Any], ...]:
    command = _kustomize()
    if command is None:
        pytest.fail("neither kustomize nor kubectl is installed: the manifests cannot be rendered and checked;"
                    " install kubectl (it carries kustomize) or kustomize")
    done = subprocess.run([*command, str(K8S / overlay)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"kustomize failed for {overlay}:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def render(overlay: str) -> list[dict[str, Any]]:
    return list(_render(overlay))


def objects(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in render(overlay) if o["kind"] == kind}


def one(overlay: str, kind: str, name: str) -> dict[str, Any]:
    found = objects(overlay, kind)
    assert name in found, f"{overlay}: no {kind} {name} (has {sorted(found)})"
    return found[name]


def config(overlay: str) -> dict[str, str]:
    maps = [o for o in render(overlay)
            if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("attain-config")]
    assert len(maps) == 1, f"{overlay}: expected one attain-config ConfigMap"
    data: dict[str, str] = maps[0]["data"]
    return data


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app"], f"{workload['metadata']['name']}: one container, `app`"
    found: dict[str, Any] = containers[0]
    return found


def workloads(overlay: str) -> Iterator[dict[str, Any]]:
    yield from objects(overlay, "Deployment").values()
    yield from objects(overlay, "Job").values()


def setting_names() -> set[str]:
    """Every environment variable a service reads: its settings fields, upper-cased."""
    return {field.upper() for _, settings in SERVICES.values() for field in settings.model_fields}


def http_port(name: str) -> int:
    port = SERVICES[name][1].model_fields["http_port"].default
    assert isinstance(port, int)
    return port


# --- the code's metrics (read from the source, as Prometheus would see them) ----------------------

SAMPLE_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum", "_created"),
    "Summary": ("", "_count", "_sum", "_created"),
}
# Labels prometheus-operator adds to every series scraped through a ServiceMonitor.
TARGET_LABELS = {"namespace", "job", "service", "pod", "container", "endpoint", "instance"}


@functools.cache
def _source_trees() -> tuple[ast.Module, ...]:
    return tuple(ast.parse(path.read_text(), filename=str(path))
                 for folder in ("shared", "services") for path in sorted((ROOT / folder).rglob("*.py")))


@functools.cache
def exported_metrics() -> dict[str, frozenset[str]]:
    """Sample name -> label names, for every prometheus_client metric defined in shared/ and services/."""
    samples: dict[str, frozenset[str]] = {}
    for tree in _source_trees():
        kinds = {alias.asname or alias.name: alias.name for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client"
                 for alias in node.names if alias.name in SAMPLE_SUFFIXES}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in kinds):
                continue
            kind = kinds[node.func.id]
            name = _literal(node.args[0]) if node.args else _keyword(node, "name")
            assert isinstance(name, str), f"a {kind} whose name is not a literal: {ast.unparse(node)}"
            labels = _literal(node.args[2]) if len(node.args) > 2 else _keyword(node, "labelnames")
            labelnames = frozenset(labels or ())
            base = name.removesuffix("_total") if kind == "Counter" else name
            for suffix in SAMPLE_SUFFIXES[kind]:
                extra = {"le"} if suffix == "_bucket" else {"quantile"} if kind == "Summary" and not suffix else set()
                samples[base + suffix] = labelnames | extra
    return samples


@functools.cache
def code_strings() -> frozenset[str]:
    """Every string literal in shared/ and services/ (label values the code can emit)."""
    return frozenset(node.value for tree in _source_trees() for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and isinstance(node.value, str))


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _keyword(call: ast.Call, name: str) -> Any:
    return next((_literal(k.value) for k in call.keywords if k.arg == name), None)


# --- PromQL, as much of it as the checks need ----------------------------------------------------------

PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                   "bool", "offset"}
_MATCHERS = re.compile(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression selects (identifiers that are not functions, keywords or labels)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text)
    return {n for n in names if n not in PROMQL_KEYWORDS}


def promql_matchers(expr: str) -> list[tuple[str, str, str, str]]:
    """(metric, label, operator, value) for every label matcher, the value unescaped as PromQL does."""
    found = []
    for metric, body in _MATCHERS.findall(expr):
        for label, op, raw in _MATCHER.findall(body):
            found.append((metric, label, op, codecs.decode(raw, "unicode_escape")))
    return found


def promql_grouping_labels(expr: str) -> set[str]:
    return {label.strip() for _, labels in _GROUPING.findall(expr) for label in labels.split(",") if label.strip()}


def alert_rules(overlay: str = "base") -> list[dict[str, Any]]:
    rules = [rule for rule_set in objects(overlay, "PrometheusRule").values()
             for group in rule_set["spec"]["groups"] for rule in group["rules"]]
    assert rules, "no alert rules rendered"
    return rules


# --- schemas -----------------------------------------------------------------------------------------


def is_custom(manifest: dict[str, Any]) -> bool:
    return "/" in manifest["apiVersion"] and manifest["apiVersion"].split("/")[0] in CUSTOM_GROUPS


@functools.cache
def _kubeconform() -> tuple[str, tuple[str, ...]]:
    """The pinned kubeconform and a `-schema-location` per pinned operator (fetched on the first run only)."""
    try:
        binary = tools.ensure("kubeconform")
        crds.ensure_all()
    except crds.StackError as err:
        pytest.fail(f"the validators could not be fetched: {err}")
    locations = tuple(arg for op in crds.OPERATORS.values() for arg in ("-schema-location", op.schema_location))
    return str(binary), locations


def kubeconform(manifests: list[dict[str, Any]], version: str) -> tuple[int, dict[str, Any]]:
    """kubeconform's exit status and JSON report for `manifests`, strict, against the operators' CRDs only:
    built-in kinds are skipped (kubernetes-validate checks them; the Kubernetes schemas are not reachable
    offline), and a custom resource without a schema is an error (no -ignore-missing-schemas)."""
    binary, locations = _kubeconform()
    built_in = sorted({f"{m['apiVersion']}/{m['kind']}" for m in manifests if not is_custom(m)})
    command = [binary, "-strict", "-summary", "-output", "json", "-kubernetes-version",
               ".".join([*version.split(".")[:2], "0"]),
               *locations, *(["-skip", ",".join(built_in)] if built_in else []), "-"]
    stream = yaml.safe_dump_all(manifests, sort_keys=False)
    done = subprocess.run(command, input=stream, capture_output=True, text=True, timeout=60, check=False)
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"kubeconform said no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.returncode, report


def kubeconform_problems(report: dict[str, Any]) -> list[str]:
    return [f"{r['kind']}/{r['name']} ({r['version']}): {r['status']}: {r.get('msg', '')}"
            for r in report.get("resources", []) if r["status"] not in ("statusValid", "statusSkipped")]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_custom_resources_are_valid_against_the_pinned_operators_crds(overlay: str, version: str) -> None:
    manifests = render(overlay)
    custom = [m for m in manifests if is_custom(m)]
    assert {(m["apiVersion"], m["kind"]) for m in custom} == CUSTOM_KINDS
    status, report = kubeconform(manifests, version)
    print(f"kubeconform {overlay} (Kubernetes {version}): {json.dumps(report['summary'])}")  # the summary, with -s
    assert status == 0 and not kubeconform_problems(report), f"{overlay}:\n" + "\n".join(kubeconform_problems(report))
    # every custom resource was checked against a schema, none skipped; every built-in one was left to the next test
    assert report["summary"] == {"valid": len(custom), "invalid": 0, "errors": 0,
                                 "skipped": len(manifests) - len(custom)}


def test_an_api_version_the_pinned_operator_does_not_serve_fails_validation() -> None:
    """Strimzi 1.x serves kafka.strimzi.io/v1 alone: the v1beta2 KafkaTopics this repository once had would be
    refused by the cluster, and are refused here ("could not find schema" is a failure); so is a made-up version
    of every group, and a kind the operator does not define."""
    topic = one("base", "KafkaTopic", "sales.deals.v1")
    unserved = [{**topic, "apiVersion": "kafka.strimzi.io/v1beta2"},
                {**topic, "apiVersion": "kafka.strimzi.io/v1alpha1"},
                {**one("base", "KafkaUser", "attain-ingest"), "apiVersion": "kafka.strimzi.io/v1beta2"},
                {**one("base", "ScaledObject", "attain-kpi"), "apiVersion": "keda.sh/v1beta7"},
                {**one("base", "ServiceMonitor", "attain"), "apiVersion": "monitoring.coreos.com/v2"},
                {**one("base", "HTTPRoute", "attain"), "apiVersion": "gateway.networking.k8s.io/v1alpha9"},
                {**topic, "kind": "KafkaTopics"}]
    status, report = kubeconform(unserved, K8S_VERSIONS[-1])
    print(json.dumps(report, indent=1))  # the evidence, with -s
    assert status != 0
    assert report["summary"]["errors"] == len(unserved) and report["summary"]["valid"] == 0
    assert all("could not find schema" in r["msg"] for r in report["resources"]), kubeconform_problems(report)
    (served,) = [f.name for f in (crds.OPERATORS["strimzi"].schemas / "kafka.strimzi.io").glob("kafkatopic_*.json")]
    assert served == "kafkatopic_v1.json"


def test_the_crd_schemas_reject_what_the_operators_reject() -> None:
    """Strict (unknown fields fail) and faithful (enums, minimums, required fields, patterns)."""
    def custom(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": api_version, "kind": kind, "metadata": {"name": f"bad-{kind.lower()}"}, "spec": spec}

    route = one("base", "HTTPRoute", "attain")["spec"]
    rejected = [
        custom("keda.sh/v1alpha1", "ScaledObject", {"scaleTargetRef": {"name": "x"}, "maxReplicas": 3,
                                                   "triggers": [{"type": "kafka", "metadata": {}}]}),
        custom("keda.sh/v1alpha1", "ScaledObject", {"scaleTargetRef": {"name": "x"}}),
        custom("kafka.strimzi.io/v1", "KafkaTopic", {"partitions": 1, "replication": 3}),
        custom("kafka.strimzi.io/v1", "KafkaUser", {"authentication": {"type": "scram-sha-256"}}),
        custom("kafka.strimzi.io/v1", "KafkaUser", {"authorization": {"type": "simple", "acls": [
            {"resource": {"type": "topic", "name": "t"}, "operations": ["Consume"]}]}}),
        # v1beta2's singular `operation` is gone from v1
        custom("kafka.strimzi.io/v1", "KafkaUser", {"authorization": {"type": "simple", "acls": [
            {"resource": {"type": "topic", "name": "t"}, "operation": "Read"}]}}),
        custom("monitoring.coreos.com/v1", "ServiceMonitor", {"selector": {},
                                                             "endpoints": [{"interval": "30 seconds"}]}),
        custom("monitoring.coreos.com/v1", "PrometheusRule", {"groups": [{"name": "g", "rules": [{"alert": "A"}]}]}),
        custom("gateway.networking.k8s.io/v1", "HTTPRoute", {**route, "rules": [
            {"matches": [{"path": {"type": "Glob", "value": "/v1/*"}}],
             "backendRefs": route["rules"][0]["backendRefs"]}]}),
        custom("gateway.networking.k8s.io/v1", "HTTPRoute", {**route, "parentRef": route["parentRefs"][0]}),
    ]
    status, report = kubeconform(rejected, K8S_VERSIONS[-1])
    accepted = {m["metadata"]["name"] for m in rejected} - {r["name"] for r in report["resources"]}
    assert status != 0 and report["summary"]["invalid"] == len(rejected), f"accepted: {accepted}"
    # a schema was found for each: invalid, not missing
    assert report["summary"]["errors"] == 0, kubeconform_problems(report)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_built_in_objects_are_valid_kubernetes(overlay: str, version: str) -> None:
    built_in = [o for o in render(overlay) if not is_custom(o)]
    assert {o["kind"] for o in built_in} >= {"Deployment", "Service", "PodDisruptionBudget", "ServiceAccount",
                                             "ConfigMap", "HorizontalPodAutoscaler", "Job", "NetworkPolicy"}
    assert not kubernetes_errors(built_in, version), f"{overlay} (Kubernetes {version}):\n" + "\n".join(
        kubernetes_errors(built_in, version))


def kubernetes_errors(manifests: list[dict[str, Any]], version: str) -> list[str]:
    errors = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            errors.append(f"{manifest['kind']}/{manifest['metadata']['name']} at {path}: {err.message}")
    return errors


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_lands_in_the_overlays_namespace(overlay: str) -> None:
    expected = {"base": None, "overlays/dev": "attain-dev", "overlays/prod": "attain"}[overlay]
    for manifest in render(overlay):
        assert manifest["metadata"].get("namespace") == expected, manifest["metadata"]["name"]


# --- the services ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_its_module_with_both_probes_on_its_port(overlay: str, name: str) -> None:
    port = http_port(name)
    deployment = one(overlay, "Deployment", f"attain-{name}")
    app = container(deployment)
    assert app["command"] == ["python", "-m", f"services.{name}"]
    assert app["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert {"name": "HTTP_PORT", "value": str(port)} in app["env"]
    named_ports = {p["name"]: p["containerPort"] for p in app["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = app[probe]["httpGet"]
        assert get["path"] == path, f"{name}: {probe}"
        assert named_ports.get(get["port"], get["port"]) == port, f"{name}: {probe} on the wrong port"
    # /readyz waits up to 2 s + 2 s for PostgreSQL and 3 s for Kafka before answering (shared/service.py).
    assert app["readinessProbe"]["timeoutSeconds"] > 7

    service = one(overlay, "Service", f"attain-{name}")
    assert service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_replica_is_a_static_group_member_named_after_its_pod(overlay: str) -> None:
    assert "KAFKA_GROUP_INSTANCE_ID" in setting_names()
    for name in SERVICES:
        env = {e["name"]: e for e in container(one(overlay, "Deployment", f"attain-{name}"))["env"]}
        assert env["KAFKA_GROUP_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_as_a_fixed_non_root_user_with_a_read_only_root(overlay: str) -> None:
    accounts = objects(overlay, "ServiceAccount")
    found = list(workloads(overlay))
    assert len(found) == len(SERVICES) + 1  # and the migration Job
    for workload in found:
        name, pod = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
        app = container(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == RUN_AS_USER, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        context = app["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        assert context.get("runAsUser", RUN_AS_USER) == RUN_AS_USER, name
        assert "privileged" not in context or context["privileged"] is False, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for each in [app, *pod.get("initContainers", [])]:
            context = each["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]} and context.get("privileged") is False, name
            tmp = [m for m in each["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]["name"]], f"{name}: /tmp must be an emptyDir"
        assert pod["serviceAccountName"] in accounts, name
        assert pod["automountServiceAccountToken"] is False, name


def test_the_termination_grace_period_outlasts_the_sigterm_drain() -> None:
    source = (ROOT / "shared" / "service.py").read_text()
    drain = int(re.search(r"timeout_graceful_shutdown=(\d+)", source).group(1))  # type: ignore[union-attr]
    for overlay in OVERLAYS:
        for name in SERVICES:
            deployment = one(overlay, "Deployment", f"attain-{name}")
            pod = deployment["spec"]["template"]["spec"]
            pre_stop = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
            pause = float(re.search(r"sleep\((\d+(?:\.\d+)?)\)", pre_stop[-1]).group(1))  # type: ignore[union-attr]
            assert pod["terminationGracePeriodSeconds"] > drain + pause, f"{overlay}: {name}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_comes_from_a_config_map_and_a_secret_with_settings_names(overlay: str) -> None:
    data = config(overlay)
    assert set(data) <= setting_names(), f"not settings: {set(data) - setting_names()}"
    required = {"KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL", "KAFKA_CONSUMER_GROUP_PREFIX", "LOG_LEVEL"}
    assert required <= data.keys()
    config_name = next(o["metadata"]["name"] for o in render(overlay) if o["kind"] == "ConfigMap"
                       and o["metadata"]["name"].startswith("attain-config"))
    for workload in workloads(overlay):
        sources = container(workload)["envFrom"]
        assert {"configMapRef": {"name": config_name}} in sources, workload["metadata"]["name"]
        if workload["kind"] == "Deployment":
            assert {"secretRef": {"name": "attain-secrets"}} in sources, workload["metadata"]["name"]
    secrets = objects(overlay, "Secret")
    database = {"attain-db-owner", *(f"attain-db-{name}" for name in SERVICES)}
    if overlay == "overlays/prod":  # real credentials come from outside; never render placeholders over them
        assert not {"attain-secrets", *database} & secrets.keys()
        return
    placeholders = secrets["attain-secrets"]["data"]
    assert set(placeholders) == {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"}
    assert set(secrets["attain-db-owner"]["data"]) == {"DATABASE_URL"}
    for name in SERVICES:
        assert set(secrets[f"attain-db-{name}"]["data"]) == {"DATABASE_APP_URL"}
        placeholders = {**placeholders, **{f"{name}:{k}": v for k, v in secrets[f"attain-db-{name}"]["data"].items()}}
    placeholders["DATABASE_URL"] = secrets["attain-db-owner"]["data"]["DATABASE_URL"]
    assert {key.rsplit(":", 1)[-1] for key in placeholders} <= setting_names()
    for key, value in placeholders.items():
        assert "CHANGE-ME" in base64.b64decode(value).decode(), f"{key} is not a placeholder"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_ingest_gets_the_crm_secret_keys_from_a_secret_of_its_own(overlay: str) -> None:
    """CRM_SECRET_KEYS, the keys tenants' CRM secrets are encrypted with, reaches ingest by key reference to
    `attain-ingest-secrets` and no other workload; the base renders a placeholder that ingest refuses to start
    with, prod renders none (the secret store makes it)."""
    for workload in workloads(overlay):
        env = {e["name"]: e for e in container(workload).get("env", [])}
        if workload["metadata"]["name"] == "attain-ingest":
            assert env["CRM_SECRET_KEYS"]["valueFrom"] == {
                "secretKeyRef": {"name": "attain-ingest-secrets", "key": "CRM_SECRET_KEYS"}}
        else:
            assert "CRM_SECRET_KEYS" not in env, workload["metadata"]["name"]
    secrets = objects(overlay, "Secret")
    if overlay == "overlays/prod":
        assert "attain-ingest-secrets" not in secrets
        return
    assert set(secrets["attain-ingest-secrets"]["data"]) == {"CRM_SECRET_KEYS", "REGISTRY_SIGNING_KEY"}
    placeholder = base64.b64decode(secrets["attain-ingest-secrets"]["data"]["CRM_SECRET_KEYS"]).decode()
    assert "CHANGE-ME" in placeholder
    with pytest.raises(ValidationError, match="CRM_SECRET_KEYS: key 1 of 1 is not a Fernet key"):
        IngestSettings(crm_secret_keys=placeholder)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_ingest_gets_the_registry_signing_key_and_every_service_the_verify_keys(overlay: str) -> None:
    """The private key the tenant registry is signed with reaches ingest alone, from its own Secret; the public
    keys are configuration every service reads. The base's placeholders are no keys: the services refuse them."""
    for workload in workloads(overlay):
        env = {e["name"]: e for e in container(workload).get("env", [])}
        if workload["metadata"]["name"] == "attain-ingest":
            assert env["REGISTRY_SIGNING_KEY"]["valueFrom"] == {
                "secretKeyRef": {"name": "attain-ingest-secrets", "key": "REGISTRY_SIGNING_KEY"}}
        else:
            assert "REGISTRY_SIGNING_KEY" not in env, workload["metadata"]["name"]
    assert "REGISTRY_SIGNING_KEY" not in config(overlay)
    verify = config(overlay)["REGISTRY_VERIFY_KEYS"]
    with pytest.raises(ValidationError, match="REGISTRY_VERIFY_KEYS: key 1 of 1 is not an Ed25519 public key"):
        KpiSettings(registry_verify_keys=verify)
    secrets = objects(overlay, "Secret")
    if overlay != "overlays/prod":
        placeholder = base64.b64decode(secrets["attain-ingest-secrets"]["data"]["REGISTRY_SIGNING_KEY"]).decode()
        with pytest.raises(ValidationError, match="REGISTRY_SIGNING_KEY: not a base64 or PEM Ed25519 private key"):
            IngestSettings(crm_secret_keys=Fernet.generate_key().decode(), registry_signing_key=placeholder)


def test_prod_connects_to_kafka_over_sasl_ssl_like_keda() -> None:
    data = config("overlays/prod")
    assert data["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    for name in SERVICES:
        deployment = one("overlays/prod", "Deployment", f"attain-{name}")
        mounts = {m["mountPath"]: m for m in container(deployment)["volumeMounts"]}
        assert str(Path(data["KAFKA_SSL_CAFILE"]).parent) in mounts, f"{name}: the CA file is not mounted"
    auth = one("overlays/prod", "TriggerAuthentication", "attain-kafka")["spec"]["secretTargetRef"]
    assert {ref["parameter"] for ref in auth} == {"sasl", "tls", "username", "password", "ca"}
    secret = one("overlays/prod", "Secret", "attain-keda-kafka")
    mode = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    keda_sasl = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
    assert mode == {"sasl": keda_sasl[data["KAFKA_SASL_MECHANISM"]], "tls": "enable", "username": "attain-keda"}


def test_in_prod_each_service_and_keda_connect_as_their_own_kafka_user() -> None:
    """Each Deployment's SASL credentials are its own KafkaUser's (the ACLs of shared/acls.py), from the Secret
    Strimzi makes for it, not the shared attain-secrets; KEDA reads the lag as attain-keda."""
    users = objects("overlays/prod", "KafkaUser")
    for name in SERVICES:
        env = {e["name"]: e for e in container(one("overlays/prod", "Deployment", f"attain-{name}"))["env"]}
        assert env["KAFKA_SASL_USERNAME"]["value"] == f"attain-{name}" in users
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"] == {
            "secretKeyRef": {"name": f"attain-{name}", "key": "password"}}
    auth = {ref["parameter"]: ref for ref in one("overlays/prod", "TriggerAuthentication", "attain-kafka")["spec"][
        "secretTargetRef"]}
    assert "attain-keda" in users
    assert (auth["password"]["name"], auth["password"]["key"]) == ("attain-keda", "password")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_all_workloads_run_the_one_image_with_the_overlays_tag(overlay: str) -> None:
    images = {c["image"] for w in workloads(overlay) for c in all_containers(w)}
    assert len(images) == 1, images
    image = images.pop()
    if overlay == "overlays/dev":
        assert image == "attain:dev"
    if overlay == "overlays/prod":  # pinned: a release version or a digest, never a moving tag
        assert re.fullmatch(r".+/attain(:\d+\.\d+\.\d+|@sha256:[0-9a-f]{64})", image), image


# --- scaling and disruption --------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_one_autoscaler_and_a_disruption_budget(overlay: str, name: str) -> None:
    deployment = one(overlay, "Deployment", f"attain-{name}")
    assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns the replica count"
    hpas = [h for h in objects(overlay, "HorizontalPodAutoscaler").values()
            if h["spec"]["scaleTargetRef"]["name"] == f"attain-{name}"]
    scaled = [s for s in objects(overlay, "ScaledObject").values()
              if s["spec"]["scaleTargetRef"]["name"] == f"attain-{name}"]
    if name in CONSUMERS:
        assert not hpas and len(scaled) == 1, name
        spec = scaled[0]["spec"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name  # the CRD's CEL rule
    else:
        assert not scaled and len(hpas) == 1, name
        spec = hpas[0]["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"attain-{name}"}
        assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
        assert "cpu" in container(deployment)["resources"]["requests"], "CPU utilisation needs a CPU request"
    budgets = [p for p in objects(overlay, "PodDisruptionBudget").values()
               if p["spec"]["selector"]["matchLabels"].items()
               <= deployment["spec"]["template"]["metadata"]["labels"].items()]
    assert len(budgets) == 1, name
    resources = container(deployment)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], name


def _minimum_replicas(overlay: str, name: str) -> int:
    for hpa in objects(overlay, "HorizontalPodAutoscaler").values():
        if hpa["spec"]["scaleTargetRef"]["name"] == f"attain-{name}":
            minimum: int = hpa["spec"]["minReplicas"]
            return minimum
    minimum = one(overlay, "ScaledObject", f"attain-{name}")["spec"]["minReplicaCount"]
    return minimum


def test_dev_runs_one_replica_and_prod_keeps_a_minimum_available_through_disruptions() -> None:
    for name in SERVICES:
        assert _minimum_replicas("overlays/dev", name) == 1
        budget = one("overlays/dev", "PodDisruptionBudget", f"attain-{name}")["spec"]
        assert budget.get("maxUnavailable") == 1, "one replica in dev: a drain must still be able to evict it"
        replicas = _minimum_replicas("overlays/prod", name)
        assert replicas >= 2, name
        budget = one("overlays/prod", "PodDisruptionBudget", f"attain-{name}")["spec"]
        assert "maxUnavailable" not in budget
        assert 1 <= budget["minAvailable"] < replicas, f"{name}: a budget that allows no eviction blocks drains"
    for kind in ("ScaledObject", "HorizontalPodAutoscaler"):
        for scaler in objects("overlays/dev", kind).values():
            assert scaler["spec"].get("maxReplicaCount", scaler["spec"].get("maxReplicas")) == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", CONSUMERS)
def test_keda_scales_each_consumer_on_its_groups_lag_within_its_partitions(overlay: str, name: str) -> None:
    spec_of_service = SERVICES[name][0]
    (subscription,) = spec_of_service.subscriptions
    group = f"{config(overlay)['KAFKA_CONSUMER_GROUP_PREFIX']}-{subscription.group}"  # shared/service.py
    scaled = one(overlay, "ScaledObject", f"attain-{name}")["spec"]
    triggers = scaled["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {group}
    topics = [t["metadata"]["topic"] for t in triggers]
    assert len(topics) == len(set(topics))
    assert set(topics) == set(subscription.topics) - NOT_SCALED_ON, f"{name}: triggers differ from the subscription"
    assert set(subscription.topics) <= set(TOPICS)
    cap = min(TOPICS[topic].partitions for topic in topics)
    assert scaled["maxReplicaCount"] <= cap, f"{name}: replicas beyond {cap} partitions would idle"
    auth = objects(overlay, "TriggerAuthentication")
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert set(metadata) <= KEDA_KAFKA_PARAMETERS, set(metadata) - KEDA_KAFKA_PARAMETERS
        assert metadata["bootstrapServers"] == config(overlay)["KAFKA_BOOTSTRAP_SERVERS"]
        assert int(metadata["lagThreshold"]) > 0
        assert metadata["offsetResetPolicy"] == "earliest"  # as the consumers (shared/consumer.py)
        assert trigger["authenticationRef"]["name"] in auth


# --- topics ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_of_the_code_is_a_kafka_topic_with_its_partitions_and_cleanup(overlay: str) -> None:
    kafka_topics = {t["spec"]["topicName"]: t for t in objects(overlay, "KafkaTopic").values()}
    assert set(kafka_topics) == set(TOPICS)
    replicas, min_insync = (1, 1) if overlay == "overlays/dev" else (3, 2)
    for name, topic in TOPICS.items():
        manifest = kafka_topics[name]
        assert manifest["metadata"]["labels"]["strimzi.io/cluster"], name
        spec = manifest["spec"]
        assert spec["partitions"] == topic.partitions, name
        assert spec["config"]["cleanup.policy"] == topic.cleanup, name
        assert spec["replicas"] == replicas, name
        assert int(spec["config"]["min.insync.replicas"]) == min_insync, name
        assert int(spec["config"]["min.insync.replicas"]) <= spec["replicas"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_a_kafka_user_of_the_topics_cluster_and_only_ingest_writes_the_sources(overlay: str) -> None:
    """The KafkaUsers are those shared/acls.py derives (tests/unit/shared/test_acls.py checks the file); here: they
    render in every overlay, for the cluster the topics belong to, and the write grants agree with the code."""
    users = objects(overlay, "KafkaUser")
    clusters = {t["metadata"]["labels"]["strimzi.io/cluster"] for t in objects(overlay, "KafkaTopic").values()}
    assert {f"attain-{name}" for name in SERVICES} <= set(users)
    sources = {name for name in TOPICS if name.startswith("sales.") and not name.endswith(".dlq")} | {TENANTS.name}
    for name, user in users.items():
        assert {user["metadata"]["labels"]["strimzi.io/cluster"]} == clusters, name
        assert user["spec"]["authentication"]["type"] == "scram-sha-512", name
        written = {acl["resource"]["name"] for acl in user["spec"]["authorization"]["acls"]
                   if acl["resource"]["type"] == "topic" and "Write" in acl["operations"]}
        assert written <= set(TOPICS), f"{name} may write topics the code does not have: {written - set(TOPICS)}"
        assert bool(written & sources) == (name == "attain-ingest"), name


# --- monitoring ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_metrics_of_every_service(overlay: str) -> None:
    (monitor,) = objects(overlay, "ServiceMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    for name in SERVICES:
        service = one(overlay, "Service", f"attain-{name}")
        assert selector.items() <= service["metadata"]["labels"].items(), name
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}, name


def test_the_metric_scan_finds_the_shared_metrics() -> None:
    exported = exported_metrics()
    assert {"attain_consumed_messages_total", "attain_outbox_pending", "attain_ready",
            "attain_consumer_batch_seconds_bucket", "attain_ingest_events_total"} <= set(exported)
    assert exported["attain_consumed_messages_total"] == {"group", "topic", "type", "outcome"}
    assert promql_metrics('sum by (job) (rate(a_total{x="y"}[5m])) > on (job) group_left () b unless c') == {
        "a_total", "b", "c"}
    assert promql_matchers(r'm{topic=~"sales\\..+", group="g"}') == [("m", "topic", "=~", r"sales\..+"),
                                                                     ("m", "group", "=", "g")]


def test_every_alert_names_only_metrics_labels_and_values_the_code_exports() -> None:
    exported = exported_metrics()
    groups = {f"attain-{s.group}" for spec, _ in SERVICES.values() for s in spec.subscriptions}
    values = {"topic": set(TOPICS), "group": groups}
    for rule in alert_rules():
        expr, alert = str(rule["expr"]), rule["alert"]
        metrics = promql_metrics(expr)
        assert metrics, f"{alert}: no metric found in {expr}"
        assert metrics <= set(exported), f"{alert}: not exported by the code: {metrics - set(exported)}"
        available = TARGET_LABELS.union(*(exported[m] for m in metrics))
        for metric, label, op, value in promql_matchers(expr):
            assert label in exported[metric] | TARGET_LABELS, f"{alert}: {metric} has no label {label}"
            if label in values and op == "=":
                assert value in values[label], f"{alert}: no {label} {value!r}"
            elif label in values and op == "=~":
                assert any(re.fullmatch(value, v) for v in values[label]), f"{alert}: {label}=~{value!r} matches none"
            elif label == "outcome" and op == "=":
                assert value in code_strings(), f"{alert}: the code never emits outcome {value!r}"
        assert promql_grouping_labels(expr) <= available, f"{alert}: grouping by labels the metrics lack"
        templated = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])))
        assert templated <= available | set(rule.get("labels", {})), f"{alert}: annotations use {templated}"


def test_alerts_cover_lag_dead_letters_outbox_readiness_and_errors() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {"AttainConsumerLagGrowing", "AttainConsumerStalled", "AttainDeadLettersReceived", "AttainOutboxBacklog",
            "AttainOutboxStuck", "AttainNotReady", "AttainNoReplicaReady", "AttainTransientErrors",
            "AttainIngestWebhookErrors", "AttainOffsetRegression"} <= names
    for rule in rules:
        assert "record" not in rule
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        expr = str(rule["expr"])
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), rule["alert"]
    stalled = {rule["labels"]["consumer_group"] for rule in rules if rule["alert"] == "AttainConsumerStalled"}
    assert stalled == {f"attain-{s.group}" for name in CONSUMERS for s in SERVICES[name][0].subscriptions}


# --- the migration Job -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_owners_credentials_reach_the_migration_job_alone(overlay: str) -> None:
    """The pods hold only their working role (issue 16, item 6): DATABASE_URL (the schemas' owner) is in the
    Secret attain-db-owner, which only the Job reads; each service reads its own attain-db-<service>,
    does not migrate at start, and no service can read another's working role (nor can its init container)."""
    assert config(overlay)["DB_MIGRATE_ON_START"] == "false"
    (job,) = objects(overlay, "Job").values()
    assert container(job)["command"] == ["python", "-m", "shared.migrate"]
    assert {"secretRef": {"name": "attain-db-owner"}} in container(job)["envFrom"]
    holders = {w["metadata"]["name"] for w in workloads(overlay) for c in all_containers(w)
               if "attain-db-owner" in secrets_read(c)}
    assert holders == {"attain-migrate"}, f"{overlay}: the owner's Secret reaches {holders}"
    for name in SERVICES:
        app = container(one(overlay, "Deployment", f"attain-{name}"))
        refs = {source["secretRef"]["name"] for source in app["envFrom"] if "secretRef" in source}
        refs |= {e["valueFrom"]["secretKeyRef"]["name"] for e in app.get("env", [])
                 if "secretKeyRef" in e.get("valueFrom", {})}
        database = {ref for ref in refs if ref.startswith("attain-db-")}
        assert database == {f"attain-db-{name}"}, f"{overlay}: {name} reads {database}"
        app_url = [e for e in app["env"] if e["name"] == "DATABASE_APP_URL"]
        assert app_url and app_url[0]["valueFrom"]["secretKeyRef"] == {"name": f"attain-db-{name}",
                                                                        "key": "DATABASE_APP_URL"}
        assert "DATABASE_URL" not in {e["name"] for e in app["env"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_each_service_waits_for_its_schema_as_its_own_role_before_starting(overlay: str, name: str) -> None:
    """Rollouts order themselves (issue 20): an init container runs `python -m shared.schema_wait <service>` with
    the app's image and the service's own DATABASE_APP_URL, so a new image's pods start only once the migration
    Job has brought the schema to the versions that image ships."""
    deployment = one(overlay, "Deployment", f"attain-{name}")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == ["python", "-m", "shared.schema_wait", name]
    assert init["image"] == container(deployment)["image"]
    env = {e["name"]: e for e in init["env"]}
    assert env["DATABASE_APP_URL"]["valueFrom"] == {"secretKeyRef": {"name": f"attain-db-{name}",
                                                                     "key": "DATABASE_APP_URL"}}
    assert secrets_read(init) == {f"attain-db-{name}"}, "the wait needs its working role and nothing else"
    assert "DATABASE_URL" not in env
    source = (ROOT / "shared" / "schema_wait.py").read_text()
    assert "database_app_url" in source and "database_url" not in source.replace("database_app_url", "")


def all_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    found: list[dict[str, Any]] = [*pod.get("initContainers", []), *pod["containers"]]
    return found


def secrets_read(each: dict[str, Any]) -> set[str]:
    """The Secrets a container reads, whole (envFrom) or by key (env)."""
    refs = {source["secretRef"]["name"] for source in each.get("envFrom", []) if "secretRef" in source}
    return refs | {e["valueFrom"]["secretKeyRef"]["name"] for e in each.get("env", [])
                   if "secretKeyRef" in e.get("valueFrom", {})}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_job_runs_once_with_a_deadline(overlay: str) -> None:
    (job,) = objects(overlay, "Job").values()
    spec = job["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["backoffLimit"] <= 3 and spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0
    assert container(job)["command"] == ["python", "-m", "shared.migrate"] and "args" not in container(job)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_first_rollout_step_applies_what_the_job_needs_and_no_service(overlay: str) -> None:
    """deploy/k8s/README.md: `kubectl apply -k ... -l 'app.kubernetes.io/component notin (api,consumer)'`."""
    first = [o for o in render(overlay)
             if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") not in {"api", "consumer"}]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in first}
    assert not {kind for kind, _ in kinds} & {"Deployment", "ScaledObject", "HorizontalPodAutoscaler"}
    (job,) = objects(overlay, "Job").values()
    pod = job["spec"]["template"]["spec"]
    assert ("Job", job["metadata"]["name"]) in kinds
    assert ("ServiceAccount", pod["serviceAccountName"]) in kinds
    for source in container(job)["envFrom"]:
        for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref in source and not (overlay == "overlays/prod" and kind == "Secret"):  # prod: created beforehand
                assert (kind, source[ref]["name"]) in kinds, f"{overlay}: the Job needs {kind} {source[ref]['name']}"


# --- network policies ----------------------------------------------------------------------------------

GATEWAY_NAMESPACE = {"kubernetes.io/metadata.name": "gateway-system"}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
EXPOSED = {"ingest", "kpi"}  # reached through the gateway (the HTTPRoute below); the others by kpi's dashboard
# What a service reaches outside the cluster, anywhere, beyond PostgreSQL: ingest the CRMs' APIs, notify the mail
# server and the Slack, Teams and tenants' webhook receivers.
OUT_ANYWHERE = {"ingest": {("TCP", 443)}, "notify": {("TCP", 443), ("TCP", 587), ("TCP", 465), ("TCP", 25)}}


def policies_for(overlay: str, labels: dict[str, str], direction: str) -> list[dict[str, Any]]:
    """The NetworkPolicy rules (`ingress` or `egress`) that apply to a pod with `labels`."""
    return [rule for policy in objects(overlay, "NetworkPolicy").values()
            if policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            for rule in policy["spec"].get(direction, [])]


def allowed_ports(rules: list[dict[str, Any]], peer: dict[str, Any] | None) -> set[tuple[str, int]]:
    """(protocol, port) the rules allow with exactly this peer (None: rules with no peer, i.e. anywhere)."""
    found = set()
    for rule in rules:
        peers = rule.get("from", rule.get("to"))
        if (peer is None and peers is None) or (peers is not None and peer in peers):
            found |= {(p["protocol"], p["port"]) for p in rule["ports"]}
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_attain_pod_is_denied_all_traffic_but_what_a_policy_allows(overlay: str) -> None:
    deny = one(overlay, "NetworkPolicy", "attain-default-deny")["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    for workload in workloads(overlay):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert deny["podSelector"]["matchLabels"].items() <= labels.items(), workload["metadata"]["name"]
    for policy in objects(overlay, "NetworkPolicy").values():
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            assert rule.get("ports"), f"{policy['metadata']['name']}: a rule that opens every port"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICES)
def test_each_service_is_reached_on_its_http_port_by_whom_it_serves_alone(overlay: str, name: str) -> None:
    deployment = one(overlay, "Deployment", f"attain-{name}")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    rules = policies_for(overlay, labels, "ingress")
    port = {("TCP", http_port(name))}
    gateway = {"namespaceSelector": {"matchLabels": GATEWAY_NAMESPACE}}
    assert allowed_ports(rules, PROMETHEUS) == port, f"{name}: Prometheus scrapes /metrics on the http port"
    assert allowed_ports(rules, gateway) == (port if name in EXPOSED else set()), name
    dashboard = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "kpi",
                                                 "app.kubernetes.io/part-of": "attain"}}}
    # the dashboard reads coaching and recognition, and writes through ingest (the control room, single sign-on) and
    # notify (the notification pages, the one-click unsubscribe)
    assert allowed_ports(rules, dashboard) == (
        port if name in {"coaching", "recognition", "ingest", "notify"} else set()), name
    peers = [peer for rule in rules for peer in rule["from"]]
    assert all(peer in (PROMETHEUS, gateway, dashboard) for peer in peers), f"{name}: allows {peers}"
    assert "ipBlock" not in json.dumps(rules)
    # the ServiceMonitor scrapes the port these rules open
    (monitor,) = objects(overlay, "ServiceMonitor").values()
    service_ports = {p["name"]: p["port"] for p in one(overlay, "Service", f"attain-{name}")["spec"]["ports"]}
    assert service_ports[monitor["spec"]["endpoints"][0]["port"]] == http_port(name)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_reach_dns_kafka_and_postgresql_and_nothing_else(overlay: str) -> None:
    cluster = {t["metadata"]["labels"]["strimzi.io/cluster"] for t in objects(overlay, "KafkaTopic").values()}
    kafka_port = int(config(overlay)["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    dns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
           "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    kafka = {"podSelector": {"matchLabels": {"strimzi.io/cluster": cluster.pop(), "strimzi.io/kind": "Kafka"}}}
    for workload in workloads(overlay):
        name = workload["metadata"]["labels"]["app.kubernetes.io/name"]
        rules = policies_for(overlay, workload["spec"]["template"]["metadata"]["labels"], "egress")
        assert allowed_ports(rules, dns) == {("UDP", 53), ("TCP", 53)}, name
        assert ("TCP", kafka_port) in allowed_ports(rules, kafka), f"{name}: the bootstrap port {kafka_port}"
        anywhere = allowed_ports(rules, None)
        # ingest: the CRMs' APIs over HTTPS; notify: SMTP (25, STARTTLS 587, TLS 465) and HTTPS (Slack, Teams, webhooks)
        assert anywhere == ({("TCP", 5432)} | OUT_ANYWHERE.get(name, set())), name
        others = [peer for rule in rules for peer in rule.get("to", []) if peer not in (dns, kafka)]
        if name == "kpi":  # the dashboard reads check-ins and celebrations
            env = {e["name"]: e.get("value", "") for e in container(workload)["env"]}
            for service, url in (("coaching", env["DASHBOARD_COACHING_URL"]),
                                 ("recognition", env["DASHBOARD_RECOGNITION_URL"]),
                                 ("ingest", env["DASHBOARD_INGEST_URL"]),
                                 ("notify", env["DASHBOARD_NOTIFY_URL"])):
                peer = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": service,
                                                        "app.kubernetes.io/part-of": "attain"}}}
                assert allowed_ports(rules, peer) == {("TCP", int(url.rsplit(":", 1)[1]))}, service
                others.remove(peer)
        assert not others, f"{name} may reach {others}"
    for url in (base64.b64decode(s["data"][key]).decode() for s in objects("base", "Secret").values()
                for key in ("DATABASE_URL", "DATABASE_APP_URL") if key in s["data"]):
        assert url.rsplit("@", 1)[1].split("/")[0].endswith(":5432"), url


# --- the HTTPRoute -------------------------------------------------------------------------------------

OPERATIONS_PATHS = ("/metrics", "/healthz", "/readyz", "/docs", "/redoc", "/openapi.json")


def routed_to(overlay: str, path: str) -> tuple[str, int] | None:
    """The backend (Service, port) the HTTPRoute sends `path` to, by Gateway API's precedence: an Exact match over
    a PathPrefix one, then the longest prefix; a prefix matches whole path segments."""
    best: tuple[tuple[bool, int], tuple[str, int]] | None = None
    for rule in one(overlay, "HTTPRoute", "attain")["spec"]["rules"]:
        (backend,) = rule["backendRefs"]
        for match in rule["matches"]:
            kind, value = match["path"]["type"], match["path"]["value"]
            hit = path == value if kind == "Exact" else (
                value == "/" or path == value.rstrip("/") or path.startswith(value.rstrip("/") + "/"))
            rank = (kind == "Exact", len(value))
            if hit and (best is None or rank > best[0]):
                best = (rank, (backend["name"], backend["port"]))
    return None if best is None else best[1]


def code_paths(name: str) -> set[str]:
    """The paths of a service's routers, path parameters filled in."""
    spec = SERVICES[name][0]
    return {re.sub(r"\{[^}]+\}", "p1", route.path) for router in spec.routers for route in router.routes
            if hasattr(route, "path")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_http_route_sends_every_public_path_of_the_code_to_its_service(overlay: str) -> None:
    """ingest's events API, webhooks, CRM mappings and tokens, kpi's read API and every dashboard page reach their
    Service's port; operations paths and the services behind the dashboard are not exposed."""
    route = one(overlay, "HTTPRoute", "attain")["spec"]
    services = {s["metadata"]["name"]: s for s in objects(overlay, "Service").values()}
    for rule in route["rules"]:
        for backend in rule["backendRefs"]:
            assert backend["port"] in {p["port"] for p in services[backend["name"]]["spec"]["ports"]}, backend
    for name in EXPOSED:
        paths = code_paths(name)
        assert paths, name
        for path in sorted(paths):
            assert routed_to(overlay, path) == (f"attain-{name}", http_port(name)), f"{path} of {name}"
    assert {"/v1/events", "/v1/webhooks/p1/p1", "/", "/leaderboard.csv", "/tv/share/p1", "/static/p1"} <= (
        code_paths("ingest") | code_paths("kpi"))
    for path in OPERATIONS_PATHS:
        assert routed_to(overlay, path) is None, f"{path} must not leave the cluster"
    assert {b["name"] for r in route["rules"] for b in r["backendRefs"]} == {f"attain-{n}" for n in EXPOSED}
    (parent,) = route["parentRefs"]
    assert parent["kind"] == "Gateway" and parent["name"] and parent["namespace"] == GATEWAY_NAMESPACE[
        "kubernetes.io/metadata.name"], "the NetworkPolicies let in the namespace the Gateway is in"


def test_an_overlay_patches_the_gateway_and_the_policies_peers(tmp_path: Path) -> None:
    """The documented patches (deploy/k8s/README.md, "Gateway and network policies") do what they say."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / "base", tmp_path)],
        "patches": [{"target": {"kind": "HTTPRoute", "name": "attain"}, "patch": yaml.safe_dump([
            {"op": "replace", "path": "/spec/parentRefs/0/name", "value": "public"},
            {"op": "replace", "path": "/spec/parentRefs/0/namespace", "value": "edge"},
            {"op": "add", "path": "/spec/hostnames", "value": ["attain.example.org"]}])},
            {"target": {"kind": "NetworkPolicy", "name": "attain-(ingest|kpi)-ingress"}, "patch": yaml.safe_dump([
                {"op": "replace", "path": "/spec/ingress/0/from/0/namespaceSelector/matchLabels",
                 "value": {"kubernetes.io/metadata.name": "edge"}}])}]}))
    command = _kustomize()
    assert command is not None
    done = subprocess.run([*command, "--load-restrictor", "LoadRestrictionsNone", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(done.stdout) if d}
    route = rendered["HTTPRoute", "attain"]["spec"]
    assert route["parentRefs"][0]["name"] == "public" and route["parentRefs"][0]["namespace"] == "edge"
    assert route["hostnames"] == ["attain.example.org"]
    for name in EXPOSED:
        ingress = rendered["NetworkPolicy", f"attain-{name}-ingress"]["spec"]["ingress"]
        assert ingress[0]["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "edge"}


# --- the production image ------------------------------------------------------------------------------


def test_prod_runs_the_released_image_tagged_with_the_projects_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {c["image"] for w in workloads("overlays/prod") for c in all_containers(w)}
    assert images == {f"ghcr.io/attain-sales/attain:{version}"}
    assert "registry.example.com" not in json.dumps(render("overlays/prod"))


# --- the first tenant (deploy/k8s/bootstrap) -------------------------------------------------------------

TENANT = {"@SLUG@": "acme", "@TIMEZONE@": "Europe/Berlin", "@COUNTRY@": "DE", "@CURRENCY@": "EUR",
          "@IMAGE@": "ghcr.io/attain-sales/attain:0.1.0"}


def bootstrap_job(values: dict[str, str] = TENANT) -> dict[str, Any]:
    text = (BOOTSTRAP / "first-tenant-job.yaml").read_text()
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    assert "@" not in re.sub(r"#.*", "", text.replace(values["@IMAGE@"], "")), "a placeholder left unfilled"
    job: dict[str, Any] = yaml.safe_load(text)
    return job


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_bootstrap_job_is_valid_kubernetes_and_applied_on_demand_only(version: str) -> None:
    job = bootstrap_job()
    assert not kubernetes_errors([job], version)
    for overlay in OVERLAYS:
        assert job["metadata"]["name"] not in objects(overlay, "Job"), f"{overlay} renders the bootstrap Job"
    for kustomization in K8S.rglob("kustomization.yaml"):
        listed = yaml.safe_load(kustomization.read_text()).get("resources", [])
        assert not [r for r in listed if "bootstrap" in r], f"{kustomization} applies the bootstrap Job"


def test_the_bootstrap_job_runs_the_tenants_cli_with_secrets_from_secrets_only() -> None:
    job = bootstrap_job()
    pod = job["spec"]["template"]["spec"]
    app = container(job)
    assert app["command"][:5] == ["python", "-m", "services.ingest", "tenants", "create"]
    args = tenants_cli.parser().parse_args(app["command"][4:])  # options the CLI has, none of them a secret
    assert (args.slug, args.timezone, args.country, args.currency) == ("acme", "Europe/Berlin", "DE", "EUR")
    assert args.token_file is None and not args.token_stdin and args.token_on_argv is None
    env = {e["name"]: e for e in app["env"]}
    for key, secret in (("DATABASE_URL", "attain-db-owner"), ("CRM_SECRET_KEYS", "attain-ingest-secrets"),
                        ("REGISTRY_SIGNING_KEY", "attain-ingest-secrets")):
        assert env[key]["valueFrom"] == {"secretKeyRef": {"name": secret, "key": key}}, key
    assert {name for name, e in env.items() if "value" in e} <= {"LOG_FORMAT", "LOG_LEVEL"}
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsUser"] == RUN_AS_USER
    assert app["securityContext"]["readOnlyRootFilesystem"] is True
    deny = one("base", "NetworkPolicy", "attain-default-deny")["spec"]["podSelector"]["matchLabels"]
    assert deny.items() <= pod.get("labels", job["spec"]["template"]["metadata"]["labels"]).items()


def test_the_first_tenant_script_fills_in_applies_waits_and_prints_the_log(tmp_path: Path) -> None:
    script = BOOTSTRAP / "first-tenant.sh"
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert shown.returncode == 0 and all(o in shown.stdout for o in ("--slug", "--timezone", "--country"))
    fake = tmp_path / "kubectl"
    fake.write_text("#!/usr/bin/env bash\n"
                    'echo "$*" >> "$FAKE_LOG"\n'
                    'case "$*" in\n'
                    '  *" apply -f -"*) cat > "$FAKE_APPLIED" ;;\n'
                    '  *" get deployment "*) printf "ghcr.io/attain-sales/attain:0.1.0" ;;\n'
                    '  *" get job "*) printf "1/" ;;\n'
                    '  *" logs "*) echo \'{"tenant": "acme", "token": "atn_x"}\' ;;\n'
                    "esac\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "log"),
           "FAKE_APPLIED": str(tmp_path / "applied.yaml")}
    done = subprocess.run([str(script), "--slug", "acme", "--timezone", "Europe/Berlin", "--country", "DE"],
                          capture_output=True, text=True, timeout=30, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert '"token": "atn_x"' in done.stdout
    assert yaml.safe_load((tmp_path / "applied.yaml").read_text()) == bootstrap_job()
    calls = (tmp_path / "log").read_text().splitlines()
    assert all("--namespace attain" in call for call in calls)
    assert calls[-1].startswith("--namespace attain delete job attain-first-tenant"), "the token must not linger"
    refused = subprocess.run([str(script), "--slug", "Acme; rm -rf /", "--timezone", "UTC", "--country", "DE"],
                             capture_output=True, text=True, timeout=30, check=False, env=env)
    assert refused.returncode == 2 and "--slug" in refused.stderr
