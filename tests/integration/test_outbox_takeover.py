"""A relay that dies between Kafka's commit and PostgreSQL's delete leaves rows Kafka already has; the
relay that takes over must forget them, not publish them again. Found as two `coaching.task.created`
events for one task in a CI run: `AIOKafkaProducer.start()` returns before the producer holds its
transactional id, so the successor read the last published position before the predecessor's commit
markers were written (a read_committed reader sees nothing past an unfinished transaction) and sent
that batch a second time."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.cloudevents import CloudEvent
from shared.db import create_pool, migrate
from shared.errors import TransientError
from shared.kafka import create_producer, last_position
from shared.outbox import OutboxRelay, enqueue_many
from shared.settings import ServiceSettings
from tests.integration.conftest import BOOTSTRAP, fresh_database

ROUNDS = 8
PER_ROUND = 5


class CrashAfterCommit:
    """The real producer, except that the process "dies" right after Kafka committed a batch."""

    def __init__(self, real: AIOKafkaProducer) -> None:
        self.real = real

    async def commit_transaction(self) -> None:
        await self.real.commit_transaction()
        raise RuntimeError("killed after the Kafka commit, before the outbox delete")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@dataclass
class Box:
    """A topic and a database (schema `box`, migrated) of the test's own, and how to make a relay for them."""

    topic: str
    pool: Any
    settings: ServiceSettings
    identity: str

    def relay(self) -> OutboxRelay:
        return OutboxRelay(self.pool, lambda: create_producer(self.settings, "test-outbox",
                                                              f"attain-outbox:{self.identity}"),
                           "box", 0.05, self.identity, lambda: last_position(self.settings, self.identity))

    async def write(self, names: list[str]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await enqueue_many(conn, [(self.topic, b"k", CloudEvent(name, "test.happened", "test", datetime.now(UTC),
                                                                    "t", {"name": name})) for name in names])

    async def outbox_rows(self) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM outbox"))


async def _box(name: str) -> Box:
    topic = f"test.outbox-{name}.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    db = await fresh_database(f"{name}_{uuid.uuid4().hex[:8]}")
    pool = await create_pool(db, "box")
    await migrate(pool, "box")
    return Box(topic, pool, ServiceSettings(kafka_bootstrap_servers=BOOTSTRAP, database_url=db),
               f"test-{name}-{uuid.uuid4().hex[:8]}/box")


async def _published(topic: str, expected: int) -> list[str]:
    """The ce_ids on `topic` (read_committed): once `expected` are there (or 10 s passed), and a second more."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen: list[str] = []
        deadline = asyncio.get_running_loop().time() + 10
        while len(seen) < expected and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [dict(r.headers)["ce_id"].decode() for r in records]
        for records in (await consumer.getmany(timeout_ms=1000)).values():  # and nothing after them
            seen += [dict(r.headers)["ce_id"].decode() for r in records]
        return seen
    finally:
        await consumer.stop()


async def _until_empty(box: Box, relay: OutboxRelay) -> None:
    """Run `relay` until the outbox is empty."""
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(300):
            if await box.outbox_rows() == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the relay did not empty the outbox")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_relay_taking_over_after_a_crash_publishes_nothing_twice(stack: None) -> None:
    box = await _box("takeover")
    dead: list[AIOKafkaProducer] = []
    names: list[str] = []
    try:
        for round_ in range(ROUNDS):
            batch = [f"r{round_}-e{i}" for i in range(PER_ROUND)]
            names += batch
            await box.write(batch)
            doomed = box.relay()
            real = doomed._factory()
            await real.start()
            dead.append(real)
            doomed._producer = CrashAfterCommit(real)  # type: ignore[assignment]
            with pytest.raises(TransientError, match="killed after the Kafka commit"):
                await doomed.publish_pending()  # Kafka has the batch; the outbox still has its rows
            await _until_empty(box, box.relay())  # at once, as a standby replica would
            await asyncio.sleep(0.3)  # a successor that re-sends has done so by now
    finally:
        for producer in dead:
            with contextlib.suppress(Exception):
                await producer.stop()
        await box.pool.close()

    seen = await _published(box.topic, len(names))
    twice = {name: n for name, n in Counter(seen).items() if n > 1}
    assert not twice, f"published more than once: {twice}"
    assert sorted(seen) == sorted(names)


async def test_after_a_point_in_time_restore_new_rows_under_old_seqs_are_published_not_forgotten(
        stack: None) -> None:
    """A point-in-time restore takes the database back to before a published batch: the seq sequence goes
    back with it, and the next rows take the seqs that batch had. The relay that starts then recovers from the
    last positions record, which names those seqs; before, it deleted the new rows unpublished (lost without
    a word). Now a row is forgotten only when its random tag matches too."""
    box = await _box("pitr")
    before, after = [f"before-{i}" for i in range(5)], [f"after-{i}" for i in range(5)]
    try:
        await box.write(before)
        async with box.pool.acquire() as conn:
            first = await conn.fetchval("SELECT min(seq) FROM outbox")
        await _until_empty(box, box.relay())  # published; the positions record names seqs first..first+4
        async with box.pool.acquire() as conn:  # the restore: the sequence back to before that batch
            await conn.execute("SELECT setval(pg_get_serial_sequence('outbox', 'seq'), $1, false)", first)
        await box.write(after)
        async with box.pool.acquire() as conn:
            assert await conn.fetchval("SELECT min(seq) FROM outbox") == first  # the same seqs again
        await _until_empty(box, box.relay())
    finally:
        await box.pool.close()

    seen = await _published(box.topic, len(before + after))
    assert sorted(seen) == sorted(before + after), f"lost after the restore: {sorted(set(after) - set(seen))}"
