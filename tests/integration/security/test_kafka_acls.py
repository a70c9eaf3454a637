"""The Kafka ACLs of shared/acls.py on a real broker that enforces them (StandardAuthorizer, SASL_SSL with a SCRAM
user per principal, tests/integration/security/broker.py): each principal can do its work, and no more. ingest
writes the sales topics and the tenant registry; kpi reads them in its group, runs its outbox transaction and
writes its output, but is refused writing the registry or a sales topic; a subscriber reads outputs and writes
nothing.

The ACLs are applied as an operator would, with the Admin client as a super user (CreateAcls.java: the pinned
Kafka's jars carry no kafka-acls tool and aiokafka has no CreateAcls).
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from deploy.kafka_users import SERVICES
from deploy.local.kafka_setup import KAFKA_LIBS, toolchain
from deploy.local.topics import ensure_topics
from shared import acls, topics
from shared.kafka import client_kwargs
from shared.settings import ServiceSettings
from tests.integration.conftest import database_url, fresh_database, running
from tests.integration.security.broker import SecureBroker, free_ports, secure_broker
from tests.integration.security.end_to_end import deal_to_scorecard_cheer_and_check_in, tenant_on

HERE = Path(__file__).resolve().parent
PREFIX = f"acl-{uuid.uuid4().hex[:6]}"
ADMIN = "attain-acl-admin"
PRINCIPALS = {p.name: p for p in acls.principals(PREFIX, SERVICES)}
PASSWORDS = {name: uuid.uuid4().hex for name in [*PRINCIPALS, ADMIN]}
JAVA_TYPES = {"topic": "TOPIC", "group": "GROUP", "cluster": "CLUSTER", "transactionalId": "TRANSACTIONAL_ID"}
JAVA_OPERATIONS = {"Read": "READ", "Write": "WRITE", "Describe": "DESCRIBE", "IdempotentWrite": "IDEMPOTENT_WRITE"}
SOURCES = [topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name]


@dataclass(frozen=True)
class AclBroker:
    broker: SecureBroker

    def settings(self, user: str) -> ServiceSettings:
        return ServiceSettings(kafka_bootstrap_servers=f"127.0.0.1:{self.broker.sasl_ssl_port}",
                               kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                               kafka_sasl_username=user, kafka_sasl_password=PASSWORDS[user],
                               kafka_ssl_cafile=str(self.broker.ca_file))

    def env(self, user: str) -> dict[str, str]:
        """What a service started as `user` has in its environment to reach this broker."""
        return {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.broker.sasl_ssl_port}",
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "KAFKA_SASL_USERNAME": user, "KAFKA_SASL_PASSWORD": PASSWORDS[user],
                "KAFKA_SSL_CAFILE": str(self.broker.ca_file), "KAFKA_CONSUMER_GROUP_PREFIX": PREFIX}

    def client(self, user: str) -> dict[str, Any]:
        return client_kwargs(self.settings(user))

    def producer(self, service: str, transactional: bool = False) -> AIOKafkaProducer:
        """A producer as `service`'s principal; transactional: with its outbox relay's transactional id."""
        tx = f"attain-outbox:{PREFIX}/{service}" if transactional else None
        return AIOKafkaProducer(**self.client(f"{PREFIX}-{service}"), enable_idempotence=True, acks="all",
                                transactional_id=tx, request_timeout_ms=15_000)


def bindings(principal: acls.Principal) -> list[str]:
    """The principal's grants as CreateAcls.java reads them: one binding (one operation) a line."""
    return ["\t".join((f"User:{principal.name}", JAVA_TYPES[g.type], g.name,
                       "PREFIXED" if g.pattern == "prefix" else "LITERAL", JAVA_OPERATIONS[op]))
            for g in principal.grants for op in g.operations]


def apply_acls(broker: SecureBroker) -> None:
    """Every principal's ACLs created on `broker` by the admin (a super user), with the Admin client."""
    java, _ = toolchain()
    config = broker.folder / "admin.properties"
    config.write_text(
        f"bootstrap.servers=127.0.0.1:{broker.sasl_ssl_port}\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        f"sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{ADMIN}\""
        f" password=\"{PASSWORDS[ADMIN]}\";\nssl.truststore.type=PEM\nssl.truststore.location={broker.ca_file}\n")
    lines = [line for principal in PRINCIPALS.values() for line in bindings(principal)]
    done = subprocess.run([java, "-Xmx256m", "-cp", f"{KAFKA_LIBS}/*", str(HERE / "CreateAcls.java"), str(config)],
                          input="\n".join(lines), capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]


@pytest.fixture(scope="module")
def secured(stack: None) -> Iterator[AclBroker]:
    with secure_broker(scram_users=PASSWORDS, super_users=[ADMIN]) as broker:
        apply_acls(broker)
        yield AclBroker(broker)


@pytest.fixture(scope="module")
async def with_topics(secured: AclBroker) -> AsyncIterator[AclBroker]:
    """Every topic of the code, created by the admin (the services create none)."""
    admin = secured.settings(ADMIN)
    await ensure_topics(admin.kafka_bootstrap_servers, security=client_kwargs(admin))
    yield secured


async def refused(producer: AIOKafkaProducer, topic: str) -> KafkaError:
    try:
        await producer.send_and_wait(topic, b"{}", key=b"t:x")
    except KafkaError as err:
        return err
    raise AssertionError(f"the broker took a record for {topic}")


async def _relay(broker: AclBroker, service: str, output: str, key: bytes) -> None:
    """What `service`'s outbox relay does: a record of `output` and its position, in one transaction."""
    relay = broker.producer(service, transactional=True)
    await relay.start()
    try:
        async with relay.transaction():
            await relay.send(output, b"{}", key=key)
            await relay.send(topics.OUTBOX_POSITIONS.name, b"1:x", key=b"acl-test", partition=0)
    finally:
        await relay.stop()


async def test_ingest_writes_the_sales_topics_and_the_registry_and_reads_nothing(with_topics: AclBroker) -> None:
    producer = with_topics.producer("ingest")
    await producer.start()
    try:
        for name in SOURCES:
            await producer.send_and_wait(name, b"{}", key=b"t:rep")
    finally:
        await producer.stop()
    await _relay(with_topics, "ingest", topics.TENANTS.name, b"t")  # the registry goes out through its outbox
    consumer = AIOKafkaConsumer(topics.DEALS.name, **with_topics.client(f"{PREFIX}-ingest"),
                                group_id=f"{PREFIX}-ingest", auto_offset_reset="earliest")
    with pytest.raises((TopicAuthorizationFailedError, GroupAuthorizationFailedError)):
        try:  # start() inside: a refused start must still stop the client
            await consumer.start()
            await consumer.getmany(timeout_ms=5000)
        finally:
            await consumer.stop()


async def test_kpi_consumes_in_its_group_writes_its_output_in_its_transaction_and_nothing_else(
        with_topics: AclBroker) -> None:
    ingest = with_topics.producer("ingest")
    await ingest.start()
    try:
        sent = await ingest.send_and_wait(topics.DEALS.name, b'{"from":"ingest"}', key=b"t:rep")
    finally:
        await ingest.stop()
    consumer = AIOKafkaConsumer(*SOURCES, topics.TENANTS.name, **with_topics.client(f"{PREFIX}-kpi"),
                                group_id=f"{PREFIX}-kpi", auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        seen: list[bytes] = []
        for _ in range(40):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [r.value for r in records if r.topic == topics.DEALS.name and r.offset == sent.offset]
            if seen:
                break
        assert seen == [b'{"from":"ingest"}']
        await consumer.commit()  # the hint kpi commits to Kafka, in its own group
    finally:
        await consumer.stop()

    await _relay(with_topics, "kpi", topics.ATTAINMENT.name, b"t:rep")

    plain = with_topics.producer("kpi")  # the producer kpi dead-letters with
    await plain.start()
    try:
        await plain.send_and_wait(f"{topics.DEALS.name}.dlq", b"{}", key=b"t:rep")
        for name in (topics.TENANTS.name, topics.DEALS.name, topics.CELEBRATIONS.name):
            assert isinstance(await refused(plain, name), TopicAuthorizationFailedError), name
    finally:
        await plain.stop()

    borrowed = AIOKafkaProducer(**with_topics.client(f"{PREFIX}-kpi"),
                                transactional_id=f"attain-outbox:{PREFIX}/ingest")
    with pytest.raises(TransactionalIdAuthorizationFailed):  # ingest's relay identity is not kpi's to take
        await borrowed.start()
    await borrowed.stop()


async def test_a_subscriber_reads_the_outputs_in_its_groups_and_writes_nothing(with_topics: AclBroker) -> None:
    kpi = with_topics.producer("kpi", transactional=True)
    await kpi.start()
    try:
        async with kpi.transaction():
            await kpi.send(topics.ATTAINMENT.name, b'{"for":"subscribers"}', key=b"t:sub")
    finally:
        await kpi.stop()
    user = f"{PREFIX}-subscriber"
    consumer = AIOKafkaConsumer(topics.ATTAINMENT.name, **with_topics.client(user),
                                group_id=f"{PREFIX}-subscriber-crm-sync", auto_offset_reset="earliest",
                                isolation_level="read_committed")
    await consumer.start()
    try:
        seen: list[bytes] = []
        for _ in range(40):
            seen += [r.value for rs in (await consumer.getmany(timeout_ms=500)).values() for r in rs]
            if b'{"for":"subscribers"}' in seen:
                break
        assert b'{"for":"subscribers"}' in seen
    finally:
        await consumer.stop()
    producer = AIOKafkaProducer(**with_topics.client(user), acks="all")
    await producer.start()
    try:
        for name in (topics.ATTAINMENT.name, topics.TENANTS.name, topics.DEALS.name):
            assert isinstance(await refused(producer, name), TopicAuthorizationFailedError), name
    finally:
        await producer.stop()
    sources = AIOKafkaConsumer(topics.DEALS.name, **with_topics.client(user), group_id=f"{PREFIX}-subscriber-x",
                               auto_offset_reset="earliest")
    with pytest.raises(TopicAuthorizationFailedError):  # the sources are not an output
        try:  # start() inside: a refused start must still stop the client
            await sources.start()
            await sources.getmany(timeout_ms=5000)
        finally:
            await sources.stop()


async def test_the_five_services_run_end_to_end_each_as_its_own_principal(with_topics: AclBroker) -> None:
    """The grants are enough for the real thing: ingest, kpi, coaching, recognition and notify, each with its own
    SCRAM user and nothing but its ACLs, take a deal from ingest's API to a scorecard, a celebration and a task,
    and notify turns the celebration and the check-in into deliveries."""
    db = f"attain_acl_{uuid.uuid4().hex[:6]}"
    await fresh_database(db)
    common = {"DATABASE_URL": database_url(db)}
    tenant = await asyncio.to_thread(tenant_on, {**common, **with_topics.env(f"{PREFIX}-ingest")})
    ports = dict(zip(("ingest", "kpi", "coaching", "recognition", "notify"), free_ports(5), strict=True))
    env_of = {name: with_topics.env(f"{PREFIX}-{name}") for name in ports}
    with running(ports, extra_env=common, log_suffix="-acl", env_of=env_of) as urls:
        await deal_to_scorecard_cheer_and_check_in(urls, tenant)
        async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
            deadline = asyncio.get_running_loop().time() + 60
            wanted = {"recognition.milestone.reached", "coaching.task.created"}
            while True:
                answer = await client.get(f"{urls['notify']}/v1/notify/deliveries")
                assert answer.status_code == 200, answer.text
                if wanted <= {d["event_type"] for d in answer.json()["deliveries"]}:
                    break
                assert asyncio.get_running_loop().time() < deadline, answer.text
                await asyncio.sleep(0.5)
