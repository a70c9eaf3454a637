"""Outbox rows commit out of `seq` order (two replicas' batches, a timer, the API): a row with a smaller
`seq` that becomes visible while a later one is being published must still be published, not deleted
with it. Found as a celebration missing from the topic in a two-replica fresh-clone run."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.cloudevents import CloudEvent
from shared.db import create_pool, migrate
from shared.outbox import OutboxRelay, enqueue
from tests.integration.conftest import fresh_database


class Batch:
    """Stands in for aiokafka's BatchBuilder: takes every record."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    def append(self, *, key: bytes, value: bytes, timestamp: None, headers: Any) -> Batch:
        self.values.append(value)
        return self


class HeldProducer:
    """Stands in for the transactional producer: records what is sent and, once, holds the batch inside
    its Kafka transaction (at its commit) until the test lets it go."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.sending, self.release = asyncio.Event(), asyncio.Event()

    async def begin_transaction(self) -> None:
        pass

    async def commit_transaction(self) -> None:
        if not self.release.is_set():
            self.sending.set()
            await self.release.wait()

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> asyncio.Future[None]:
        self.sent += [(topic, value) for value in batch.values]
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered


def _event(name: str) -> CloudEvent:
    return CloudEvent(name, "test.happened", "test", datetime.now(UTC), "t", {"name": name})


async def test_a_row_committed_while_a_batch_is_published_is_published_next_not_deleted(stack: None) -> None:
    db = await fresh_database(f"outbox_{uuid.uuid4().hex[:8]}")
    pool = await create_pool(db, "box")
    try:
        await migrate(pool, "box")
        held = HeldProducer()
        relay = OutboxRelay(pool, lambda: None, "box", 0.1, "box-test", lambda: asyncio.sleep(0, None))  # type: ignore[arg-type]
        relay._producer = held  # type: ignore[assignment]

        early = await pool.acquire()
        transaction = early.transaction()
        await transaction.start()
        await enqueue(early, "topic", b"k", _event("early"))  # takes the smaller seq, commits later
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, "topic", b"k", _event("late"))

        publishing = asyncio.create_task(relay.publish_pending())
        await held.sending.wait()  # the relay read the late row and is inside its Kafka transaction
        await transaction.commit()  # the early row becomes visible now
        await pool.release(early)
        held.release.set()
        assert await publishing == 1
        assert await relay.publish_pending() == 1  # the early row: published, not deleted with the late one
        assert await relay.publish_pending() == 0
        values = [value for topic, value in held.sent if topic == "topic"]
        assert [b'"late"' in values[0], b'"early"' in values[1]] == [True, True]
        positions = [value for topic, value in held.sent if topic != "topic"]
        assert len(positions) == 2 and all(b"," not in p for p in positions)  # one seq per batch here
    finally:
        await pool.close()
