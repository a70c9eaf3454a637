"""Kafka security for real clusters, shown on a real broker that only speaks SASL_SSL and mutual TLS
(tests/integration/security/broker.py): every client the services build reads its protocol, mechanism,
credentials and certificates from the environment, and the four services run end to end on it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.local import crm_keys, registry_keys
from deploy.local.kafka import kafka_probe
from deploy.local.procs import ROOT
from deploy.local.topics import ensure_topics
from shared import topics
from shared.kafka import broker_reachable, client_kwargs, create_producer, last_position
from shared.settings import ServiceSettings
from tests.integration.conftest import database_url, fresh_database, running
from tests.integration.security.broker import SecureBroker, free_ports, issue, pem, secure_broker
from tests.integration.security.end_to_end import deal_to_scorecard_cheer_and_check_in, tenant_on

CLIENTS = [("SASL_SSL", "PLAIN"), ("SASL_SSL", "SCRAM-SHA-256"), ("SASL_SSL", "SCRAM-SHA-512"), ("SSL", None)]


@pytest.fixture(scope="module")
def broker(stack: None) -> Iterator[SecureBroker]:
    with secure_broker() as started:
        yield started


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    """The settings a service would read with `env` as its environment."""
    for name in ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CERTFILE",
                 "KAFKA_SSL_KEYFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ServiceSettings()


@pytest.mark.parametrize(("protocol", "mechanism"), CLIENTS, ids=[f"{p}-{m or 'mTLS'}" for p, m in CLIENTS])
async def test_every_client_of_a_service_works_with_each_protocol_and_mechanism(
        broker: SecureBroker, monkeypatch: pytest.MonkeyPatch, protocol: str, mechanism: str | None) -> None:
    settings = settings_from(broker.env(protocol, mechanism), monkeypatch)
    security = client_kwargs(settings)
    topic = f"test.secure.{uuid.uuid4().hex[:8]}"
    assert await ensure_topics(settings.kafka_bootstrap_servers, security=security) == len(topics.all_with_dlq())
    names, why = await kafka_probe(settings.kafka_bootstrap_servers, security=security)
    assert names is not None and topics.DEALS.name in names, why
    admin = AIOKafkaAdminClient(**security)  # type: ignore[arg-type]
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()

    # the outbox relay's transactional producer, its position record and the read that recovers it
    key = f"test-secure-{uuid.uuid4().hex[:8]}"
    producer = create_producer(settings, "test-secure", transactional_id=f"attain-outbox:{key}")
    await producer.start()
    try:
        assert await broker_reachable(producer)  # what /readyz asks
        async with producer.transaction():
            await producer.send(topic, b"over " + protocol.encode(), key=b"k")
            await producer.send(topics.OUTBOX_POSITIONS.name, b"1,2,3", key=key.encode())
    finally:
        await producer.stop()
    assert await last_position(settings, key) == "1,2,3"

    # a consumer in a group, committing its offset: what every consume loop does
    group = f"test-secure-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(topic, **security, group_id=group, enable_auto_commit=False,  # type: ignore[arg-type]
                                isolation_level="read_committed", auto_offset_reset="earliest")
    await consumer.start()
    try:
        got = await consumer.getone()
        assert got.value == b"over " + protocol.encode()
        await consumer.commit()
        assert await consumer.committed(TopicPartition(topic, 0)) == 1
    finally:
        await consumer.stop()


async def test_a_wrong_password_or_an_untrusted_broker_is_refused_and_said_so(
        broker: SecureBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = settings_from(broker.env("SASL_SSL", "SCRAM-SHA-512", password="not-the-password"), monkeypatch)
    names, why = await kafka_probe(wrong.kafka_bootstrap_servers, security=client_kwargs(wrong))
    assert names is None and "Authentication failed" in why, why

    stranger_ca = broker.folder / "other-ca.pem"
    stranger_ca.write_bytes(pem(issue("someone-else", None)[0]))
    untrusting = settings_from({**broker.env("SASL_SSL", "SCRAM-SHA-512"), "KAFKA_SSL_CAFILE": str(stranger_ca)},
                               monkeypatch)
    names, why = await kafka_probe(untrusting.kafka_bootstrap_servers, security=client_kwargs(untrusting))
    assert names is None and "CERTIFICATE_VERIFY_FAILED" in why, why

    # a service with the wrong password stops at start-up and its log says why (Kubernetes shows the
    # crash loop and the reason, rather than a pod that looks ready and moves nothing)
    env = {**broker.env("SASL_SSL", "SCRAM-SHA-512", password="not-the-password"), "HTTP_PORT": str(free_ports(1)[0]),
           "DATABASE_URL": await fresh_database(f"secure_wrong_{uuid.uuid4().hex[:6]}")}
    out = await asyncio.to_thread(_run, ["-m", "services.ingest"], env)
    assert out.returncode != 0
    assert "Authentication failed" in out.stdout + out.stderr, (out.stdout + out.stderr)[-2000:]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, **crm_keys.env(), **registry_keys.env(),
                                                               **env},
                          capture_output=True, text=True, timeout=120, check=False)


async def test_the_four_services_run_end_to_end_on_sasl_ssl_with_scram(broker: SecureBroker) -> None:
    env = broker.env("SASL_SSL", "SCRAM-SHA-512")
    db = f"attain_secure_{uuid.uuid4().hex[:6]}"
    await fresh_database(db)
    env |= {"DATABASE_URL": database_url(db), "KAFKA_CONSUMER_GROUP_PREFIX": f"attain-secure-{uuid.uuid4().hex[:6]}"}
    # the topics job (docker-compose's init container) on the secured cluster, as its operators run it
    made = await asyncio.to_thread(_run, ["-m", "deploy.local.stack", "topics", "--timeout", "30"], env)
    assert made.returncode == 0, made.stdout + made.stderr
    tenant = await asyncio.to_thread(tenant_on, env)
    ports = dict(zip(("ingest", "kpi", "coaching", "recognition"), free_ports(4), strict=True))
    with running(ports, extra_env=env, log_suffix="-sasl-ssl") as urls:
        _, cheers, tasks = await deal_to_scorecard_cheer_and_check_in(urls, tenant)
        assert {c["milestone"] for c in cheers["celebrations"]} >= {"quota_100", "first_win_ever"}
        assert all(t["manager_id"] == "mgr-1" for t in tasks["tasks"])
