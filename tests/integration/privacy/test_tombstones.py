"""A tombstone (a record with no value: an erasure's, on a compacted topic) is no poison: every consumer
acknowledges it, counts it (`attain_tombstones_skipped_total{topic}`) and moves on; nothing reaches `.dlq`.
Before issue 16 item 7 it had no CloudEvents headers and was dead-lettered. On a topic that is not compacted
(deals, activities) a record without a value is still a broken producer's: dead-lettered, not silently dropped
(the chaos runs' `null-value` poison on the input topics found the first version skipping it).

The topic is the test's own compacted copy of the roster topic (kpi's models read it): the suite's and other
checkouts' services read the real one and would dead-letter a tombstone there with the code they run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from services.kpi.handlers import MODELS
from shared.consumer import Incoming, TransactionalConsumer
from tests.integration.conftest import BOOTSTRAP


async def _topic_pair(policy: str) -> AsyncIterator[str]:
    name = f"test-tomb-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs={"cleanup.policy": policy}),
                                   NewTopic(f"{name}.dlq", 1, 1)])
        yield name
        await admin.delete_topics([name, f"{name}.dlq"])
    finally:
        await admin.close()


@pytest.fixture
async def compacted(stack: None) -> AsyncIterator[str]:
    async for name in _topic_pair("compact"):
        yield name


@pytest.fixture
async def not_compacted(stack: None) -> AsyncIterator[str]:
    async for name in _topic_pair("delete"):
        yield name


async def _records_at(tp: TopicPartition, offset: int, count: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        found: list[ConsumerRecord] = []
        while len(found) < count:
            for rs in (await consumer.getmany(tp, timeout_ms=2000)).values():
                found += rs
        return found[:count]
    finally:
        await consumer.stop()


async def _dlq_keys(tp: TopicPartition, start: int) -> list[bytes | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start)
        keys: list[bytes | None] = []
        while await consumer.position(tp) < end:
            for rs in (await consumer.getmany(tp, timeout_ms=1000)).values():
                keys += [r.key for r in rs]
        return keys
    finally:
        await consumer.stop()


@dataclass
class Delivered:
    """A record without a value, sent to a topic and processed by a kpi consumer."""

    key: bytes
    offset: int
    applied: list[Incoming]
    dead: list[bytes | None]  # the keys `.dlq` received meanwhile
    stored: int | None  # the consumer's stored next offset for the record's partition
    consumer: TransactionalConsumer


async def _deliver_without_value(pool: asyncpg.Pool, topic: str, compacted: Sequence[str]) -> Delivered:
    key = f"tomb-{uuid.uuid4().hex[:8]}:rep-1".encode()
    applied: list[Incoming] = []

    async def handler(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        applied.extend(batch)

    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True)
    await producer.start()
    try:
        dlq = TopicPartition(f"{topic}.dlq", 0)
        dlq_start = await _dlq_end(dlq)
        sent = await producer.send_and_wait(topic, None, key=key)
        tp = TopicPartition(topic, sent.partition)
        records = await _records_at(tp, sent.offset, 1)
        assert records[0].value is None and records[0].key == key
        consumer = TransactionalConsumer(pool=pool, producer=producer, group_id=f"tomb-{uuid.uuid4().hex[:6]}",
                                         service="kpi", models=MODELS, handler=handler, compacted=compacted)
        await consumer.process(records)
        if compacted:  # and when a batch is re-applied record by record (a handler failed)
            await consumer._apply_in_one_transaction(records, failure="handler failed: boom")
    finally:
        await producer.stop()
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2"
                                     " AND partition = $3", consumer.group_id, tp.topic, tp.partition)
    return Delivered(key, sent.offset, applied, await _dlq_keys(dlq, dlq_start), stored, consumer)


async def _dlq_end(tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await consumer.start()
    try:
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def test_a_tombstone_on_a_compacted_topic_is_acknowledged_and_never_dead_lettered(
        kpi_pool: asyncpg.Pool, compacted: str) -> None:
    before = REGISTRY.get_sample_value("attain_tombstones_skipped_total", {"topic": compacted}) or 0
    got = await _deliver_without_value(kpi_pool, compacted, [compacted])
    assert got.applied == []
    assert got.key not in got.dead
    assert got.stored == got.offset + 1  # acknowledged: the offset moved past it
    after = REGISTRY.get_sample_value("attain_tombstones_skipped_total", {"topic": compacted})
    assert after == before + 1


async def test_a_record_without_a_value_on_a_topic_that_is_not_compacted_is_dead_lettered(
        kpi_pool: asyncpg.Pool, not_compacted: str) -> None:
    got = await _deliver_without_value(kpi_pool, not_compacted, [])
    assert got.applied == []
    assert got.dead == [got.key]
    assert got.stored == got.offset + 1  # dead-lettered, and the batch went on
