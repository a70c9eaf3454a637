"""shared/acls.py: each principal's Kafka grants follow from the code, and deploy/k8s/base/kafka-users.yaml is
what they render to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deploy import kafka_users
from services.coaching.app import SPEC as COACHING
from services.ingest.app import SPEC as INGEST
from services.kpi.app import SPEC as KPI
from services.notify.app import SPEC as NOTIFY
from services.recognition.app import SPEC as RECOGNITION
from shared import acls, topics
from shared.service import ServiceSpec

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name]
OUTPUTS = [topics.ATTAINMENT.name, topics.CONTESTS.name, topics.TASKS.name, topics.PLANS.name, topics.REVIEWS.name,
           topics.CELEBRATIONS.name]
BY_NAME = {p.name: p for p in acls.principals("attain", kafka_users.SERVICES)}


def test_the_checked_in_kafka_users_are_what_the_code_renders() -> None:
    assert kafka_users.CHECKED_IN.read_text() == kafka_users.render(), (
        "deploy/k8s/base/kafka-users.yaml is stale: python -m deploy.kafka_users --output"
        " deploy/k8s/base/kafka-users.yaml")
    parsed = [doc for doc in yaml.safe_load_all(kafka_users.CHECKED_IN.read_text()) if doc]  # a YAML parser agrees
    assert parsed == [kafka_users.kafka_user(p) for p in BY_NAME.values()]


@pytest.mark.parametrize("spec", kafka_users.SERVICES, ids=lambda s: s.name)
def test_every_topic_a_service_names_is_one_it_subscribes_to_publishes_or_reads(spec: ServiceSpec) -> None:
    """A topic named anywhere in a service's code but not declared in its spec would be refused by the ACLs in
    production: the declaration is what the grants come from."""
    named = set()
    for path in (ROOT / "services" / spec.name).rglob("*.py"):
        named |= {getattr(topics, attr).name for attr in re.findall(r"topics\\.([A-Z_]+)\\b", path.read_text())
                  if isinstance(getattr(topics, attr, None), topics.Topic)}
    declared = {t for sub in spec.subscriptions for t in sub.topics} | set(spec.publishes) | set(spec.reads)
    assert named <= declared, f"{spec.name} names {named - declared} without declaring it (ServiceSpec)"


def test_only_ingest_may_write_the_sales_topics_and_the_tenant_registry() -> None:
    for principal in BY_NAME.values():
        for name in [*SOURCES, topics.TENANTS.name]:
            assert principal.allowed("topic", name, "Write") == (principal.name == "attain-ingest"), (
                principal.name, name)


def test_kpi_reads_its_topics_in_its_group_and_writes_its_output_in_its_transaction() -> None:
    kpi = BY_NAME["attain-kpi"]
    for name in [*SOURCES, topics.TENANTS.name]:
        assert kpi.allowed("topic", name, "Read") and kpi.allowed("topic", f"{name}.dlq", "Write"), name
    assert kpi.allowed("group", "attain-kpi", "Read") and not kpi.allowed("group", "attain-coaching", "Read")
    assert kpi.allowed("transactionalId", "attain-outbox:attain/kpi", "Write")
    assert not kpi.allowed("transactionalId", "attain-outbox:attain/ingest", "Write")
    assert kpi.allowed("topic", topics.ATTAINMENT.name, "Write")
    assert kpi.allowed("topic", topics.OUTBOX_POSITIONS.name, "Write")
    assert kpi.allowed("topic", topics.CELEBRATIONS.name, "Read")  # the dashboard's live stream
    assert not kpi.allowed("topic", topics.CELEBRATIONS.name, "Write")
    assert kpi.allowed("cluster", acls.CLUSTER, "IdempotentWrite")


def test_each_output_topic_is_written_by_its_service_alone() -> None:
    writers = {name: sorted(p.name for p in BY_NAME.values() if p.allowed("topic", name, "Write")) for name in OUTPUTS}
    assert writers == {topics.ATTAINMENT.name: ["attain-kpi"], topics.CONTESTS.name: ["attain-kpi"],
                       topics.TASKS.name: ["attain-coaching"],
                       topics.PLANS.name: ["attain-coaching"], topics.REVIEWS.name: ["attain-coaching"],
                       topics.CELEBRATIONS.name: ["attain-recognition"]}


def test_the_subscriber_reads_the_outputs_in_its_own_groups_and_writes_nothing() -> None:
    subscriber = BY_NAME["attain-subscriber"]
    assert acls.output_topics(kafka_users.SERVICES) == sorted(OUTPUTS)
    assert all(subscriber.allowed("topic", name, "Read") for name in OUTPUTS)
    assert not any(subscriber.allowed("topic", name, "Read") for name in [*SOURCES, topics.TENANTS.name])
    assert not any("Write" in g.operations or "IdempotentWrite" in g.operations for g in subscriber.grants)
    assert subscriber.allowed("group", "attain-subscriber-crm-sync", "Read")
    assert not subscriber.allowed("group", "attain-kpi", "Read")


def test_notify_reads_what_it_delivers_in_its_group_and_writes_only_the_audit_log() -> None:
    notify = BY_NAME["attain-notify"]
    for name in [topics.TASKS.name, topics.REVIEWS.name, topics.PLANS.name, topics.CELEBRATIONS.name,
                 topics.ROSTER.name, topics.TENANTS.name]:
        assert notify.allowed("topic", name, "Read") and notify.allowed("topic", f"{name}.dlq", "Write"), name
        assert not notify.allowed("topic", name, "Write"), name
    assert notify.allowed("group", "attain-notify", "Read") and not notify.allowed("group", "attain-kpi", "Read")
    assert notify.allowed("transactionalId", "attain-outbox:attain/notify", "Write")
    assert notify.allowed("topic", topics.AUDIT.name, "Write")
    assert not notify.allowed("topic", topics.ATTAINMENT.name, "Read")  # nothing it does not deliver


def test_keda_only_describes() -> None:
    assert {op for g in BY_NAME["attain-keda"].grants for op in g.operations} == {"Describe"}


def test_another_prefix_names_other_groups_and_transactional_ids() -> None:
    kpi = acls.service_principal(KPI, "tenant-b")
    assert kpi.name == "tenant-b-kpi"
    assert kpi.allowed("group", "tenant-b-kpi", "Read") and not kpi.allowed("group", "attain-kpi", "Read")
    assert kpi.allowed("transactionalId", "attain-outbox:tenant-b/kpi", "Write")


def test_the_kafka_acls_arguments_say_the_same_as_the_grants() -> None:
    args = acls.kafka_acls_args(acls.service_principal(INGEST))
    assert ["--add", "--allow-principal", "User:attain-ingest", "--cluster", "--operation", "IdempotentWrite"] in args
    assert ["--add", "--allow-principal", "User:attain-ingest", "--topic", topics.TENANTS.name,
            "--resource-pattern-type", "literal", "--operation", "Describe", "--operation", "Write"] in args
    assert {COACHING.name, RECOGNITION.name, NOTIFY.name} <= {s.name for s in kafka_users.SERVICES}
