"""The chart's values: what deploy/helm_chart.py collected while templating the base (each default is the base's),
written as a commented values.yaml and as values.schema.json, with the meaning of each in DOCS.
"""

from __future__ import annotations

import importlib
import json
import re
import textwrap
from dataclasses import dataclass
from typing import Any

# PyYAML has no type hints (and this project installs no stubs for it): typed as Any, explicitly.
yaml: Any = importlib.import_module("yaml")


@dataclass(frozen=True)
class Chart:
    """What the chart's files besides the templates are made of (deploy/helm_chart.py's `generate`)."""

    version: str  # pyproject.toml's project version: the chart's and the app's
    license: str
    kube_floor: str  # "1.30"
    defaults: dict[str, Any]  # dotted values path -> default
    config_comments: dict[str, str]  # attain-config key -> its comment in the base's kustomization.yaml
    secrets: list[tuple[str, list[str]]]  # the base's placeholder Secrets: name, keys
    jobs: list[str]  # the base's Jobs' names
    bootstrap: str  # the script that creates the first tenant, relative to the repository ("" when none)
    prefix: str  # the base's name prefix ("attain")


# What each value means (values.yaml comments, the schema's descriptions, the README's table). `*` = any key.
DOCS: dict[str, str] = {
    "nameOverride": "Replaces the chart's name (attain) in the full name and in the chart-wide objects' "
                    "app.kubernetes.io/name label.",
    "fullnameOverride": "The prefix of every object's name. Default: the release's name (or <release>-attain when "
                        "it does not contain attain). Install as release `attain` (or set this to attain) to get "
                        "the Kustomize base's names, which the Secrets, the docs and the runbooks use.",
    "image": "The one image of the services and the Jobs, built from deploy/Dockerfile (runs as uid 10001).",
    "image.repository": "Registry and repository.",
    "image.tag": "Pin a release tag in production, never a moving one. Empty: the chart's appVersion.",
    "image.digest": "sha256:...; when set, the image is pulled by digest and the tag is ignored.",
    "image.pullPolicy": "Always, IfNotPresent or Never.",
    "kafka": "The Strimzi Kafka cluster the services, the topics and the users belong to.",
    "kafka.clusterName": "Its name: the strimzi.io/cluster label of the KafkaTopics and KafkaUsers.",
    "kafka.bootstrapServers": "KAFKA_BOOTSTRAP_SERVERS of every service and of KEDA's triggers: Strimzi's "
                              "<cluster>-kafka-bootstrap Service (9092 plain, 9093 TLS).",
    "kafka.topics": "The KafkaTopics of shared/topics.py, for the Topic Operator.",
    "kafka.topics.create": "Render them (false: the topics are made another way).",
    "kafka.topics.replicas": "Copies of every partition: 3 in production, 1 on a one-broker cluster.",
    "kafka.topics.minInsyncReplicas": "min.insync.replicas of every topic: an acks=all write needs this many "
                                      "copies. At most replicas; 2 of 3 in production.",
    "kafka.users": "The KafkaUsers (SCRAM-SHA-512, with the ACLs of shared/acls.py), for the User Operator.",
    "kafka.users.create": "Render them.",
    "services": "Per service.",
    "services.*.replicas": "The autoscaler's bounds: KEDA on the group's lag for a consumer (its max at most the "
                           "smallest partition count of its topics), CPU for ingest. Without KEDA a consumer "
                           "runs `min` replicas.",
    "services.*.resources": "Requests and limits of the service's container.",
    "services.*.disruptionBudget": "The PodDisruptionBudget's one limit: maxUnavailable or minAvailable; minAvailable "
                                   "wins when both are set. Keep it below the replicas, or a drain can never evict.",
    "jobs": "Per Job.",
    "jobs.*.helmHook": "Run as a Helm hook, after install and before every upgrade (recreated each time: a Job's "
                       "template is immutable). false: a plain object; delete the finished Job before an upgrade.",
    "jobs.*.resources": "Requests and limits of the Job's container.",
    "config": "Non-secret settings, in the ConfigMap <fullname>-config that every service and Job reads (names: "
              "shared/settings.py's fields, upper-cased; add any other setting). A change rolls the pods.",
    "placeholderSecrets": "Render the Secrets with CHANGE-ME placeholders, as the dev overlay does. false (as in "
                          "production): create them before installing (README, NOTES).",
    "keda": "KEDA 2.x scales the consumers on their groups' lag.",
    "keda.enabled": "Render the ScaledObjects and the TriggerAuthentication.",
    "monitoring": "prometheus-operator's objects.",
    "monitoring.serviceMonitor": "Scrape /metrics of every service.",
    "monitoring.serviceMonitor.enabled": "Render the ServiceMonitor.",
    "monitoring.prometheusRule": "The alerts.",
    "monitoring.prometheusRule.enabled": "Render the PrometheusRule.",
    "monitoring.labels": "Labels added to both, for your Prometheus's selectors (e.g. release: kube-prometheus-stack).",
    "networkPolicy": "The NetworkPolicies.",
    "networkPolicy.enabled": "Render them (your CNI must enforce them).",
    "networkPolicy.gatewayNamespace": "The namespace of the Gateway (or ingress controller) that reaches ingest and "
                                      "kpi.",
    "networkPolicy.prometheusNamespace": "The namespace of Prometheus, which scrapes every service.",
    "httpRoute": "The Gateway API HTTPRoute.",
    "httpRoute.enabled": "Render it.",
    "httpRoute.parentRefs": "The Gateway(s) it attaches to.",
    "httpRoute.hostnames": "The host names it answers.",
}
ORDER = ("nameOverride", "fullnameOverride", "image", "image.repository", "image.tag", "image.digest",
         "image.pullPolicy", "kafka", "kafka.clusterName", "kafka.bootstrapServers", "kafka.topics",
         "kafka.topics.create", "kafka.topics.replicas", "kafka.users", "services", "services.*.replicas",
         "services.*.replicas.min", "services.*.resources", "jobs", "jobs.*.helmHook", "config", "placeholderSecrets",
         "keda", "monitoring", "monitoring.serviceMonitor", "monitoring.prometheusRule", "networkPolicy", "httpRoute",
         "httpRoute.enabled")
_QUANTITY = {"type": ["string", "integer", "number"]}
_RESOURCES = {"type": "object", "additionalProperties": False, "properties": {
    part: {"type": "object", "additionalProperties": _QUANTITY} for part in ("requests", "limits")}}
_BUDGET = {"type": "object", "additionalProperties": False, "minProperties": 1,
           "properties": {key: {"type": ["integer", "string"]} for key in ("maxUnavailable", "minAvailable")}}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
SCHEMAS: dict[str, dict[str, Any]] = {
    "image.repository": {"type": "string", "minLength": 1},
    "image.pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
    "image.digest": {"type": "string", "pattern": "^(sha256:[0-9a-f]{64})?$"},
    "kafka.bootstrapServers": {"type": "string", "minLength": 1},
    "kafka.clusterName": {"type": "string", "minLength": 1},
    "networkPolicy.*Namespace": {"type": "string", "minLength": 1},
    "kafka.topics.replicas": {"type": "integer", "minimum": 1},
    "kafka.topics.minInsyncReplicas": {"type": "integer", "minimum": 1},
    "services.*.replicas.min": {"type": "integer", "minimum": 1},
    "services.*.replicas.max": {"type": "integer", "minimum": 1},
    "services.*.resources": _RESOURCES,
    "jobs.*.resources": _RESOURCES,
    "services.*.disruptionBudget": _BUDGET,
    "config": {"type": "object", "additionalProperties": {"type": "string"},
               "propertyNames": {"not": {"enum": ["KAFKA_BOOTSTRAP_SERVERS"]}}},  # it is kafka.bootstrapServers
    "monitoring.labels": _LABELS,
    "httpRoute.parentRefs": {"type": "array", "items": {"type": "object", "required": ["name"]}},
    "httpRoute.hostnames": {"type": "array", "items": {"type": "string"}},
}
_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def _lookup(table: dict[str, Any], path: str) -> Any:
    for pattern, found in table.items():
        if re.fullmatch(re.escape(pattern).replace(r"\*", r"[^.]+"), path):
            return found
    return None


def _rank(path: str) -> tuple[int, str]:
    for i, pattern in enumerate(ORDER):
        if re.fullmatch(re.escape(pattern).replace(r"\*", r"[^.]+"), path):
            return i, path
    return len(ORDER), path


def levels(path: str) -> list[tuple[int, str]]:
    """Each level of `path` ranked: a parent's place decides its children's."""
    parts = path.split(".")
    return [_rank(".".join(parts[:i + 1])) for i in range(len(parts))]


class _Leaf:
    def __init__(self, value: Any) -> None:
        self.value = value


def tree(defaults: dict[str, Any]) -> dict[str, Any]:
    """Dotted paths -> nested dicts, leaves wrapped, every level in ORDER's order."""
    root: dict[str, Any] = {}
    for path in sorted(defaults, key=levels):
        node = root
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = _Leaf(defaults[path])
    return root


def _scalar(value: Any) -> str:
    return str(yaml.safe_dump(value, default_flow_style=True, width=4096)).removesuffix("\n...\n").strip()


def comment(chart: Chart, path: str) -> str:
    if path.startswith("config."):
        return chart.config_comments.get(path.removeprefix("config."), "")
    return str(_lookup(DOCS, path) or "")


def _emit(chart: Chart, node: Any, path: str, indent: int) -> list[str]:
    lines: list[str] = []
    pad = " " * indent
    for key, child in node.items():
        here = f"{path}.{key}" if path else key
        if indent == 0 and lines:
            lines.append("")
        if doc := comment(chart, here):
            lines.extend(textwrap.wrap(doc, 116 - indent, initial_indent=pad + "# ", subsequent_indent=pad + "# "))
        value = child.value if isinstance(child, _Leaf) else child
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{key}:")
            lines.extend(_emit(chart, value, here, indent + 2))
        elif isinstance(value, list) and value:
            dumped = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=4096)
            lines.append(f"{pad}{key}:")
            lines.extend(pad + "  " + line for line in dumped.splitlines())
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def values_yaml(chart: Chart) -> str:
    head = ("# The chart's values. GENERATED by `python -m deploy.helm_chart` from deploy/k8s/base: the defaults are\n"
            "# the base's, so the chart with these values renders what `kubectl kustomize deploy/k8s/base` does\n"
            "# (but for placeholderSecrets). values.schema.json rejects a wrong type or an unknown key.\n\n")
    return head + "\n".join(_emit(chart, tree(chart.defaults), "", 0)) + "\n"


def _schema(node: Any, path: str) -> dict[str, Any]:
    if isinstance(node, _Leaf):
        schema = _lookup(SCHEMAS, path) or {"type": _TYPES[type(node.value)]}
    else:
        schema = {"type": "object", "additionalProperties": False,
                  "properties": {key: _schema(child, f"{path}.{key}" if path else key) for key, child in node.items()}}
    if doc := _lookup(DOCS, path):
        schema = {"description": doc, **schema}
    return dict(schema)


def values_schema(chart: Chart) -> str:
    schema = {"$schema": "https://json-schema.org/draft-07/schema#", "title": "attain chart values",
              **_schema(tree(chart.defaults), "")}
    schema["properties"]["global"] = {"type": "object"}  # what Helm passes a subchart
    return json.dumps(schema, indent=2) + "\n"
