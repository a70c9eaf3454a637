"""The outbox relay against real Kafka and PostgreSQL: woken by NOTIFY (not by its safety poll), listening
again after its connection dropped; a record Kafka refuses for good (too large, missing topic) goes to
`outbox_dead` and does not hold back the rows after it; rows written before the header migration are still
published. The safety poll is set far longer than any wait here, so a row that arrives can only have been
sent because the relay was notified."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from shared.cloudevents import CloudEvent, encode
from shared.db import SHARED_MIGRATIONS, create_pool, migrate
from shared.kafka import create_producer, last_position
from shared.outbox import OutboxRelay, enqueue_many
from shared.settings import ServiceSettings
from tests.integration.conftest import BOOTSTRAP, database_url, fresh_database

SAFETY_POLL_S = 120.0  # the relay's poll: nothing in these tests waits half as long
WITHIN_S = SAFETY_POLL_S / 4  # how long a row may take before the test gives up on it


@dataclass
class Box:
    pool: asyncpg.Pool
    relay: OutboxRelay
    topic: str
    tenant: str


async def _topic(configs: dict[str, str] | None = None) -> str:
    name = f"test.outbox-relay.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, topic_configs=configs or {})])
    finally:
        await admin.close()
    return name


@contextlib.asynccontextmanager
async def _box(topic_configs: dict[str, str] | None = None, migrated: bool = True) -> AsyncIterator[Box]:
    """A fresh database with schema `box`, a topic of its own and a relay for it (not yet running)."""
    name = f"relay_{uuid.uuid4().hex[:8]}"
    db = await fresh_database(name)
    pool = await create_pool(db, "box")
    settings = ServiceSettings(kafka_bootstrap_servers=BOOTSTRAP, database_url=db)
    identity = f"test-relay-{uuid.uuid4().hex[:8]}/box"
    relay = OutboxRelay(pool, lambda: create_producer(settings, "test-outbox", f"attain-outbox:{identity}"),
                        "box", SAFETY_POLL_S, identity, lambda: last_position(settings, identity))
    try:
        if migrated:
            await migrate(pool, "box")
        yield Box(pool, relay, await _topic(topic_configs), f"t-{uuid.uuid4().hex[:8]}")
    finally:
        await pool.close()
        admin = await asyncpg.connect(database_url("postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def _running(relay: OutboxRelay) -> AsyncIterator[None]:
    task = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(condition: Callable[[], Awaitable[bool]], what: str, within_s: float = WITHIN_S) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within_s} s: {what}"
        await asyncio.sleep(0.02)


def _event(name: str, tenant: str, pad: int = 0) -> CloudEvent:
    return CloudEvent(f"{name}-{uuid.uuid4().hex[:6]}", "test.happened", "test", datetime.now(UTC), tenant,
                      {"name": name, "pad": "x" * pad})


@contextlib.asynccontextmanager
async def _reader(topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


Seen = list[tuple[bytes, dict[str, bytes]]]


async def _read(consumer: AIOKafkaConsumer, count: int, within_s: float = WITHIN_S) -> Seen:
    """`count` records (key, headers) as they come, then whatever else arrives within a second."""
    seen: Seen = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while len(seen) < count and loop.time() < deadline:
        for records in (await consumer.getmany(timeout_ms=100)).values():
            seen += [(r.key, dict(r.headers)) for r in records]
    for records in (await consumer.getmany(timeout_ms=1000)).values():
        seen += [(r.key, dict(r.headers)) for r in records]
    return seen


def _idle(relay: OutboxRelay) -> Callable[[], Awaitable[bool]]:
    async def idle() -> bool:
        return relay.idle
    return idle


def _emptied(pool: asyncpg.Pool) -> Callable[[], Awaitable[bool]]:
    async def empty() -> bool:
        async with pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM outbox") == 0)
    return empty


async def _listening_pids(pool: asyncpg.Pool) -> set[int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                " AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()")
    return {row["pid"] for row in rows}


async def test_a_committed_row_is_published_on_its_notification_not_at_the_safety_poll(stack: None) -> None:
    async with _box() as box, _running(box.relay), _reader(box.topic) as consumer:
        await _until(_idle(box.relay), "the relay waits for work")
        event = _event("quiet", box.tenant)
        async with box.pool.acquire() as conn, conn.transaction():
            await enqueue_many(conn, [(box.topic, b"k", event)])
        # The relay went idle with a safety poll of SAFETY_POLL_S; it can only have sent this row because
        # the commit notified it
        seen = await _read(consumer, 1)
        assert [headers["ce_id"] for _, headers in seen] == [event.id.encode()]


async def test_a_record_kafka_refuses_goes_to_outbox_dead_and_the_rows_after_it_are_published(stack: None) -> None:
    async with _box({"max.message.bytes": "20000"}) as box:
        events = {
            "a1": _event("a1", box.tenant),
            "big": _event("big", box.tenant, pad=50_000),  # over the topic's limit: the broker refuses it
            "a2": _event("a2", box.tenant),
            "huge": _event("huge", box.tenant, pad=1_200_000),  # over any produce request: refused before sending
            "a3": _event("a3", box.tenant),
        }
        other = _event("b1", box.tenant)
        async with box.pool.acquire() as conn, conn.transaction():
            await enqueue_many(conn, [(box.topic, b"k", event) for event in events.values()]
                               + [(box.topic, b"j", other)])
        async with _running(box.relay), _reader(box.topic) as consumer:
            seen = await _read(consumer, 4)
            await _until(_emptied(box.pool), "the outbox settled")
        assert [(key, headers["ce_id"].decode()) for key, headers in seen] == [
            (b"k", events["a1"].id), (b"k", events["a2"].id), (b"k", events["a3"].id), (b"j", other.id)]
        async with box.pool.acquire() as conn:
            dead = await conn.fetch("SELECT tenant, topic, error, value FROM outbox_dead ORDER BY seq")
        assert [(row["tenant"], row["topic"], row["value"]) for row in dead] == [
            (box.tenant, box.topic, encode(events["big"])[0]), (box.tenant, box.topic, encode(events["huge"])[0])]
        assert all("MessageSizeTooLargeError" in row["error"] for row in dead)
        assert REGISTRY.get_sample_value("attain_outbox_dead_total",
                                         {"topic": box.topic, "error": "MessageSizeTooLargeError"}) == 2


OLD_INSERT = ("INSERT INTO outbox (topic, key, value, headers)"
              " SELECT t, k, v, h::jsonb FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[])"
              " WITH ORDINALITY AS u(t, k, v, h, n) ORDER BY n")  # enqueue_many before migration 002


async def test_rows_written_before_the_header_migration_are_published_with_their_headers(stack: None) -> None:
    async with _box(migrated=False) as box:
        old = [_event(f"old{i}", box.tenant) for i in range(3)]
        async with box.pool.acquire() as conn:
            await conn.execute((SHARED_MIGRATIONS / "001_outbox_offsets_inbox.sql").read_text())
            encoded = [encode(event) for event in old]
            await conn.execute(OLD_INSERT, [box.topic] * len(old), [b"k"] * len(old), [v for v, _ in encoded],
                               [json.dumps([[name, raw.decode()] for name, raw in h]) for _, h in encoded])
        await migrate(box.pool, "box")  # the upgrade: 002 applied over the old rows
        async with box.pool.acquire() as conn:
            assert await conn.fetchval("SELECT array_agg(DISTINCT tenant) FROM outbox") == [box.tenant]
        new = _event("new", box.tenant)
        async with box.pool.acquire() as conn, conn.transaction():
            await enqueue_many(conn, [(box.topic, b"k", new)])
        async with _running(box.relay), _reader(box.topic) as consumer:
            seen = await _read(consumer, 4)
        assert [list(headers.items()) for _, headers in seen] == [encode(event)[1] for event in [*old, new]]


async def test_the_relay_listens_again_after_its_connection_dropped(stack: None) -> None:
    async with _box() as box, _running(box.relay), _reader(box.topic) as consumer:
        await _until(_idle(box.relay), "the relay waits for work")
        (first,) = await _listening_pids(box.pool)
        async with box.pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", first)

        async def listening_again() -> bool:
            pids = await _listening_pids(box.pool)
            return bool(pids - {first}) and box.relay.idle

        await _until(listening_again, "the relay listens on a new connection")
        event = _event("after-drop", box.tenant)
        async with box.pool.acquire() as conn, conn.transaction():
            await enqueue_many(conn, [(box.topic, b"k", event)])
        seen = await _read(consumer, 1)
        assert [headers["ce_id"] for _, headers in seen] == [event.id.encode()]



async def test_rows_for_a_topic_that_does_not_exist_go_to_outbox_dead_and_the_others_are_published(
        stack: None) -> None:
    async with _box() as box:
        identity = f"test-relay-{uuid.uuid4().hex[:8]}/box"
        settings = ServiceSettings(kafka_bootstrap_servers=BOOTSTRAP, database_url="postgresql://unused")
        # the relay's usual producer but for the metadata wait: a missing topic is given up on after 2 s
        relay = OutboxRelay(box.pool, lambda: AIOKafkaProducer(
            bootstrap_servers=BOOTSTRAP, enable_idempotence=True, acks="all", request_timeout_ms=2000,
            transactional_id=f"attain-outbox:{identity}"), "box", SAFETY_POLL_S, identity,
            lambda: last_position(settings, identity))
        missing = f"test.outbox-relay.missing.{uuid.uuid4().hex[:8]}"
        kept = [_event("kept1", box.tenant), _event("kept2", box.tenant)]
        lost = _event("lost", box.tenant)
        async with box.pool.acquire() as conn, conn.transaction():
            await enqueue_many(conn, [(box.topic, b"k", kept[0]), (missing, b"k", lost), (box.topic, b"k", kept[1])])
        async with _running(relay), _reader(box.topic) as consumer:
            seen = await _read(consumer, 2)
            await _until(_emptied(box.pool), "the outbox settled")
        assert [headers["ce_id"] for _, headers in seen] == [event.id.encode() for event in kept]
        async with box.pool.acquire() as conn:
            dead = await conn.fetch("SELECT topic, error FROM outbox_dead")
        assert [row["topic"] for row in dead] == [missing]
        assert "UnknownTopicOrPartitionError" in dead[0]["error"]


async def _ends(topic: str, isolation: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, isolation_level=isolation)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def test_a_relay_stopped_between_its_sends_and_its_commit_leaves_no_open_transaction(stack: None) -> None:
    """Readers downstream (read_committed) must not be held back for the broker's transaction timeout by a
    relay that stopped mid-batch: it aborts what it has open."""
    async with _box() as box:
        reached = asyncio.Event()
        made = box.relay._factory

        def stalling() -> AIOKafkaProducer:
            producer = made()

            async def commit_never() -> None:  # the batch is sent; the stop comes before its commit
                reached.set()
                await asyncio.Event().wait()
            producer.commit_transaction = commit_never  # type: ignore[method-assign]
            return producer

        box.relay._factory = stalling
        async with box.pool.acquire() as conn, conn.transaction():
            await enqueue_many(conn, [(box.topic, b"k", _event("mid", box.tenant))])
        async with _running(box.relay):
            async with asyncio.timeout(WITHIN_S):
                await reached.wait()
            assert await _ends(box.topic, "read_uncommitted") > await _ends(box.topic, "read_committed")
        # stopped: the open transaction was aborted, so the last stable offset is the end again at once
        await _until(lambda: _same_ends(box.topic), "the aborted transaction frees the partition", within_s=5)
        async with box.pool.acquire() as conn:  # and the row is still there for the next leader
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 1


async def _same_ends(topic: str) -> bool:
    return await _ends(topic, "read_committed") == await _ends(topic, "read_uncommitted")
