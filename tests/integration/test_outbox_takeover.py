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


async def test_a_relay_taking_over_after_a_crash_publishes_nothing_twice(stack: None) -> None:
    topic = f"test.outbox-takeover.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    db = await fresh_database(f"takeover_{uuid.uuid4().hex[:8]}")
    pool = await create_pool(db, "box")
    settings = ServiceSettings(kafka_bootstrap_servers=BOOTSTRAP, database_url=db)
    identity = f"test-takeover-{uuid.uuid4().hex[:8]}/box"

    def relay() -> OutboxRelay:
        return OutboxRelay(pool, lambda: create_producer(settings, "test-outbox", f"attain-outbox:{identity}"),
                           "box", 0.05, identity, lambda: last_position(settings, identity))

    dead: list[AIOKafkaProducer] = []
    names: list[str] = []
    try:
        await migrate(pool, "box")
        for round_ in range(ROUNDS):
            batch = [f"r{round_}-e{i}" for i in range(PER_ROUND)]
            names += batch
            async with pool.acquire() as conn, conn.transaction():
                await enqueue_many(conn, [(topic, b"k", CloudEvent(name, "test.happened", "test", datetime.now(UTC),
                                                                   "t", {"name": name})) for name in batch])
            doomed = relay()
            real = doomed._factory()
            await real.start()
            dead.append(real)
            doomed._producer = CrashAfterCommit(real)  # type: ignore[assignment]
            with pytest.raises(TransientError, match="killed after the Kafka commit"):
                await doomed.publish_pending()  # Kafka has the batch; the outbox still has its rows
            successor = asyncio.create_task(relay().run())  # at once, as a standby replica would
            try:
                async with pool.acquire() as conn:
                    for _ in range(300):
                        if await conn.fetchval("SELECT count(*) FROM outbox") == 0:
                            break
                        await asyncio.sleep(0.05)
                    assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
                await asyncio.sleep(0.3)  # a successor that re-sends has done so by now
            finally:
                successor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await successor
    finally:
        for producer in dead:
            with contextlib.suppress(Exception):
                await producer.stop()
        await pool.close()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen: list[str] = []
        deadline = asyncio.get_running_loop().time() + 10
        while len(seen) < len(names) and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [dict(r.headers)["ce_id"].decode() for r in records]
        for records in (await consumer.getmany(timeout_ms=1000)).values():  # and nothing after them
            seen += [dict(r.headers)["ce_id"].decode() for r in records]
    finally:
        await consumer.stop()
    twice = {name: n for name, n in Counter(seen).items() if n > 1}
    assert not twice, f"published more than once: {twice}"
    assert sorted(seen) == sorted(names)


async def _relay_until_empty(pool: Any, relay: OutboxRelay) -> None:
    task = asyncio.create_task(relay.run())
    try:
        async with pool.acquire() as conn:
            for _ in range(300):
                if await conn.fetchval("SELECT count(*) FROM outbox") == 0:
                    return
                await asyncio.sleep(0.05)
        raise AssertionError("the relay did not empty the outbox")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_after_a_point_in_time_restore_new_rows_under_old_seqs_are_published_not_forgotten(
        stack: None) -> None:
    """A point-in-time restore takes the database back to before a published batch: the seq sequence goes
    back with it, and the next rows take the seqs that batch had. The relay that starts then recovers from the
    last positions record, which names those seqs; before, it deleted the new rows unpublished (lost without
    a word). Now a row is forgotten only when its random tag matches too."""
    topic = f"test.outbox-pitr.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    db = await fresh_database(f"pitr_{uuid.uuid4().hex[:8]}")
    pool = await create_pool(db, "box")
    settings = ServiceSettings(kafka_bootstrap_servers=BOOTSTRAP, database_url=db)
    identity = f"test-pitr-{uuid.uuid4().hex[:8]}/box"

    def relay() -> OutboxRelay:
        return OutboxRelay(pool, lambda: create_producer(settings, "test-outbox", f"attain-outbox:{identity}"),
                           "box", 0.05, identity, lambda: last_position(settings, identity))

    async def write(names: list[str]) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue_many(conn, [(topic, b"k", CloudEvent(name, "test.happened", "test", datetime.now(UTC),
                                                               "t", {"name": name})) for name in names])

    before, after = [f"before-{i}" for i in range(5)], [f"after-{i}" for i in range(5)]
    try:
        await migrate(pool, "box")
        await write(before)
        async with pool.acquire() as conn:
            first = await conn.fetchval("SELECT min(seq) FROM outbox")
        await _relay_until_empty(pool, relay())  # published; the positions record names seqs first..first+4
        async with pool.acquire() as conn:  # the restore: the sequence back to before that batch
            await conn.execute("SELECT setval(pg_get_serial_sequence('outbox', 'seq'), $1, false)", first)
        await write(after)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT min(seq) FROM outbox") == first  # the same seqs again
        await _relay_until_empty(pool, relay())
    finally:
        await pool.close()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen: list[str] = []
        deadline = asyncio.get_running_loop().time() + 10
        while len(seen) < len(before + after) and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [dict(r.headers)["ce_id"].decode() for r in records]
    finally:
        await consumer.stop()
    assert sorted(seen) == sorted(before + after), f"lost after the restore: {sorted(set(after) - set(seen))}"
