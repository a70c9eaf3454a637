"""The local stack (deploy/local/stack.py) against the real broker and PostgreSQL it runs.

Brings the stack up if it is not (a no-op when it is), and leaves it up for the other tests.
Also proves that aiokafka talks to the pinned Kafka 4.x: an idempotent producer with
acks=all, a consumer group with static membership and committed offsets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.local import stack
from shared.topics import all_with_dlq

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return stack.up()


@pytest.fixture
async def admin(env: dict[str, str]) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def scratch_topic(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    """A throw-away topic (auto-creation is off on the local broker)."""
    name = f"test.local-stack.{uuid.uuid4().hex[:8]}"
    await admin.create_topics([NewTopic(name, 3, 1)])
    try:
        yield name
    finally:
        await admin.delete_topics([name])


def test_up_again_is_a_fast_no_op(env: dict[str, str]) -> None:
    started = time.monotonic()
    assert stack.up() == env
    assert time.monotonic() - started < 15


def test_status_says_every_part_answers(env: dict[str, str]) -> None:
    found = stack.status()
    assert found["ok"], found
    assert found["topics"]["missing"] == []


async def test_contract_topics_have_their_layout(admin: AIOKafkaAdminClient) -> None:
    wanted = {t.name: t for t in all_with_dlq()}
    described = {t["topic"]: t for t in await admin.describe_topics(list(wanted))}
    for name, topic in wanted.items():
        assert described[name]["error_code"] == 0, name
        assert len(described[name]["partitions"]) == topic.partitions, name
    resources = [ConfigResource(ConfigResourceType.TOPIC, n, {"cleanup.policy": None}) for n in wanted]
    [response] = await admin.describe_configs(resources)
    policies = {row[3]: {entry[0]: entry[1] for entry in row[4]}["cleanup.policy"] for row in response.resources}
    assert policies == {name: topic.cleanup for name, topic in wanted.items()}


async def test_idempotent_produce_then_consume_in_a_group(env: dict[str, str], scratch_topic: str) -> None:
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(scratch_topic, f"value-{i}".encode(), key=f"k{i}".encode()) for i in range(5)
        ]
    finally:
        await producer.stop()
    assert all(meta.offset >= 0 for meta in sent)

    group = f"test-local-stack-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        scratch_topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        group_instance_id=f"{group}-0",  # static membership, as the services may use
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        received: dict[bytes, bytes] = {}
        deadline = time.monotonic() + 30
        while len(received) < 5 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                received.update({r.key: r.value for r in records if r.key and r.value})
        await consumer.commit()
        committed = {p: await consumer.committed(TopicPartition(scratch_topic, p)) for p in range(3)}
    finally:
        await consumer.stop()
    assert received == {f"k{i}".encode(): f"value-{i}".encode() for i in range(5)}
    assert sum(offset or 0 for offset in committed.values()) == 5


async def test_database_answers_with_test_tuning(env: dict[str, str]) -> None:
    conn = await asyncpg.connect(env["DATABASE_URL"], timeout=10)
    try:
        assert await conn.fetchval("SELECT current_database()") == env["DATABASE_URL"].rsplit("/", 1)[1]
        if stack.status()["postgres"]["local_pid"]:  # our own cluster, so our settings
            assert await conn.fetchval("SHOW max_connections") == "200"
    finally:
        await conn.close()
