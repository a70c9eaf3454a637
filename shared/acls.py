"""Kafka ACLs: what each principal of a deployment may do, derived from the code (issue 16, item 5).

Each service runs as a principal of its own, named `<prefix>-<service>` (`attain-kpi` with the default
KAFKA_CONSUMER_GROUP_PREFIX). Its grants come from its `ServiceSpec`:

- the topics its subscriptions read (`subscriptions`) and those it reads without a group (`reads`): Read,
  Describe; its consumer groups `<prefix>-<group>`: Read, Describe;
- the `.dlq` of every topic it subscribes to (the consumer dead-letters there): Write, Describe;
- the topics it publishes (`publishes`): Write, Describe. Only ingest publishes the sales topics and the tenant
  registry (`attain.tenants.v1`): a principal that could write them could speak for any tenant;
- its outbox relay: the transactional id `attain-outbox:<prefix>/<schema>` (Write, Describe), and
  `attain.outbox-positions.v1` (Read, Write, Describe: it reads where its predecessor stopped);
- the cluster: IdempotentWrite (every producer is idempotent; brokers before Kafka 3.0 ask for it).

A subscriber (`subscriber`) reads the output topics with groups of its own prefix and writes nothing.
KEDA (`keda`) reads the services' groups' lag: Describe on their groups and the topics they read.

`render` writes the principals as Strimzi `KafkaUser` resources (SCRAM-SHA-512, simple authorization);
`deploy/k8s/base/kafka-users.yaml` is its output for the five services (`python -m deploy.kafka_users`, which
imports them: this module takes their specs and imports none; `tests/unit/shared/test_acls.py` checks the file
is current). `kafka_acls_args` gives the same grants as `kafka-acls.sh` arguments, for a cluster Strimzi does
not manage (and the integration test's broker).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared import topics
from shared.service import ServiceSpec

ResourceType = Literal["topic", "group", "transactionalId", "cluster"]
PatternType = Literal["literal", "prefix"]
Operation = Literal["Read", "Write", "Describe", "IdempotentWrite"]
CLUSTER = "kafka-cluster"  # the one name Kafka gives the cluster resource
DEFAULT_PREFIX = "attain"
STRIMZI_CLUSTER = "attain"  # the Kafka resource's name (deploy/k8s/README.md)


@dataclass(frozen=True, order=True)
class Grant:
    """Operations allowed on one resource (a name, or every name with a prefix)."""

    type: ResourceType
    name: str
    pattern: PatternType
    operations: tuple[Operation, ...]


@dataclass(frozen=True)
class Principal:
    """A Kafka user and everything it is allowed (anything else is denied by the authorizer)."""

    name: str
    grants: tuple[Grant, ...]
    description: str

    def allowed(self, type_: ResourceType, name: str, operation: Operation) -> bool:
        """Whether a grant covers `operation` on the resource, exactly as granted (Kafka would also imply Describe
        from Read or Write; the grants here name Describe wherever they give either)."""
        return any(g.type == type_ and operation in g.operations and (
            g.name == name if g.pattern == "literal" else name.startswith(g.name)) for g in self.grants)


def _merge(grants: Iterable[Grant]) -> tuple[Grant, ...]:
    """One grant per resource, its operations united and sorted: the rendered YAML is stable."""
    merged: dict[tuple[ResourceType, str, PatternType], set[Operation]] = {}
    for g in grants:
        merged.setdefault((g.type, g.name, g.pattern), set()).update(g.operations)
    return tuple(sorted(Grant(t, n, p, tuple(sorted(ops))) for (t, n, p), ops in merged.items()))


def _topic(name: str, *operations: Operation) -> Grant:
    return Grant("topic", name, "literal", (*operations, "Describe"))


def service_principal(spec: ServiceSpec, prefix: str = DEFAULT_PREFIX) -> Principal:
    """The grants of the service `spec` describes, under KAFKA_CONSUMER_GROUP_PREFIX `prefix`."""
    grants: list[Grant] = [Grant("cluster", CLUSTER, "literal", ("IdempotentWrite",)),
                           Grant("transactionalId", f"attain-outbox:{prefix}/{spec.schema}", "literal",
                                 ("Write", "Describe")),
                           _topic(topics.OUTBOX_POSITIONS.name, "Read", "Write")]
    for sub in spec.subscriptions:
        grants.append(Grant("group", f"{prefix}-{sub.group}", "literal", ("Read", "Describe")))
        for name in sub.topics:
            grants += [_topic(name, "Read"), _topic(f"{name}.dlq", "Write")]
    grants += [_topic(name, "Read") for name in spec.reads]
    grants += [_topic(name, "Write") for name in spec.publishes]
    return Principal(f"{prefix}-{spec.name}", _merge(grants), f"the {spec.name} service")


def output_topics(specs: Sequence[ServiceSpec]) -> list[str]:
    """What the services publish for others: every topic published except what ingest publishes (the sources,
    the registry) and the services' own bookkeeping."""
    sources = {name for spec in specs if spec.name == "ingest" for name in spec.publishes}
    return sorted({name for spec in specs for name in spec.publishes} - sources)


def subscriber(specs: Sequence[ServiceSpec], prefix: str = DEFAULT_PREFIX) -> Principal:
    """An example subscriber: reads the output topics with groups named `<prefix>-subscriber-...`, writes nothing."""
    grants = [_topic(name, "Read") for name in output_topics(specs)]
    grants.append(Grant("group", f"{prefix}-subscriber-", "prefix", ("Read", "Describe")))
    return Principal(f"{prefix}-subscriber", _merge(grants), "an example subscriber of the output topics")


def keda(specs: Sequence[ServiceSpec], prefix: str = DEFAULT_PREFIX) -> Principal:
    """KEDA's kafka scaler: the lag of each service's group (Describe on the groups and on the topics they read)."""
    grants = [Grant("group", f"{prefix}-{sub.group}", "literal", ("Describe",))
              for spec in specs for sub in spec.subscriptions]
    grants += [Grant("topic", name, "literal", ("Describe",))
               for spec in specs for sub in spec.subscriptions for name in sub.topics]
    return Principal(f"{prefix}-keda", _merge(grants), "KEDA, reading the consumer groups' lag")


def principals(prefix: str, services: Sequence[ServiceSpec]) -> list[Principal]:
    """Every principal of a deployment: each service's, KEDA's and the example subscriber's."""
    return [*(service_principal(spec, prefix) for spec in services), keda(services, prefix),
            subscriber(services, prefix)]


def kafka_user(principal: Principal, cluster: str = STRIMZI_CLUSTER) -> dict[str, Any]:
    """`principal` as a Strimzi KafkaUser (kafka.strimzi.io/v1): SCRAM-SHA-512 (the User Operator makes the
    password, in a Secret named after the user), simple authorization with these ACLs."""
    acls = []
    for g in principal.grants:
        resource: dict[str, str] = {"type": g.type}
        if g.type != "cluster":
            resource |= {"name": g.name, "patternType": g.pattern}
        acls.append({"resource": resource, "operations": list(g.operations), "host": "*"})
    return {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
            "metadata": {"name": principal.name, "labels": {"strimzi.io/cluster": cluster,
                                                             "app.kubernetes.io/part-of": "attain"}},
            "spec": {"authentication": {"type": "scram-sha-512"},
                     "authorization": {"type": "simple", "acls": acls}}}


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9._/-]*")
_KEYWORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _scalar(value: Any) -> str:
    """A plain word as it is; anything else as JSON, whose double-quoted strings YAML reads the same."""
    if isinstance(value, str) and _PLAIN.fullmatch(value) and value.lower() not in _KEYWORDS:
        return value
    return json.dumps(value)


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML of plain data: deterministic, and without a YAML library at run time.

    >>> print(to_yaml({"a": [{"b": "x:y", "c": ["R", "*"]}], "d": {}, "e": "true"}), end="")
    a:
      - b: "x:y"
        c:
          - R
          - "*"
    d: {}
    e: "true"
    """
    pad = "  " * indent
    if isinstance(value, dict) and value:
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_scalar(key)}:\n{to_yaml(item, indent + 1)}")
            else:
                lines.append(f"{pad}{_scalar(key)}: {to_yaml(item).strip()}\n")
        return "".join(lines)
    if isinstance(value, list) and value:
        out = []
        for item in value:
            text = to_yaml(item, indent + 1)
            out.append(f"{pad}- {text[len(pad) + 2:]}" if isinstance(item, dict | list) and item
                       else f"{pad}- {text.strip()}\n")
        return "".join(out)
    return f"{pad}{_scalar(value)}\n"


def render(principals_: Sequence[Principal], header: str = "") -> str:
    """The KafkaUsers of `principals_` as one YAML stream, after `header` (comment lines)."""
    return header + "".join("---\n" + to_yaml(kafka_user(p)) for p in principals_)


def kafka_acls_args(principal: Principal) -> list[list[str]]:
    """`kafka-acls.sh --add` arguments (after the connection options), one list per grant."""
    out = []
    for g in principal.grants:
        args = ["--add", "--allow-principal", f"User:{principal.name}"]
        args += {"topic": ["--topic", g.name], "group": ["--group", g.name],
                 "transactionalId": ["--transactional-id", g.name], "cluster": ["--cluster"]}[g.type]
        if g.type != "cluster":
            args += ["--resource-pattern-type", "prefixed" if g.pattern == "prefix" else "literal"]
        for operation in g.operations:
            args += ["--operation", operation]
        out.append(args)
    return out
