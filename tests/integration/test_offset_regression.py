"""A recreated topic does not lose records silently (issue 16, item 3): its new records start below the
offsets PostgreSQL stored for the group, which used to skip them as replays. The consumer now pauses such
a partition (readiness fails, `attain_consumer_offset_regression` is 1, nothing applied or skipped), and
`python -m shared.offsets reset` then a restart resumes it from the new topic's start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY
from pydantic import BaseModel

from services.recognition.app import SPEC as RECOGNITION
from shared import db
from shared.cloudevents import CloudEvent, encode
from shared.consumer import ConsumerLoop, Handler, Incoming, TransactionalConsumer
from shared.settings import ServiceSettings
from tests.integration.conftest import BOOTSTRAP, ROOT, fresh_database


class Ping(BaseModel):
    n: int


async def _send(producer: AIOKafkaProducer, topic: str, ns: Sequence[int], run: str) -> None:
    for n in ns:
        value, headers = encode(CloudEvent(f"{run}-{n}-{uuid.uuid4().hex[:6]}", "test.ping", "test", datetime.now(UTC),
                                           "t-regress", {"n": n}))
        await producer.send_and_wait(topic, value, key=b"k", headers=headers)


async def _until(check: object, timeout: float = 30) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


@dataclass
class Sandbox:
    """A consumer group's own world: a one-partition topic, a group id, a fresh database migrated with
    recognition's schema (the shared consumer tables come with it), an admin client and a producer."""

    topic: str
    group: str
    database: str
    pool: asyncpg.Pool
    admin: AIOKafkaAdminClient
    producer: AIOKafkaProducer

    def loop(self, handler: Handler) -> ConsumerLoop:
        processor = TransactionalConsumer(pool=self.pool, producer=self.producer, group_id=self.group,
                                          service="test", models={"test.ping": Ping}, handler=handler)
        return ConsumerLoop(ServiceSettings(kafka_bootstrap_servers=BOOTSTRAP), [self.topic], processor)


@contextlib.asynccontextmanager
async def sandbox(name: str, pool_size: int = 2) -> AsyncIterator[Sandbox]:
    """A `Sandbox` whose topic exists; all of it closed and deleted after."""
    database = await fresh_database(f"{name}_{uuid.uuid4().hex[:8]}")
    pool = await db.create_pool(database, RECOGNITION.schema, max_size=pool_size)
    await db.migrate(pool, RECOGNITION.schema, RECOGNITION.migrations)
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    box = Sandbox(f"attain-test-{name}-{uuid.uuid4().hex[:8]}", f"attain-test-{name}-{uuid.uuid4().hex[:8]}",
                  database, pool, admin, producer)
    try:
        await admin.create_topics([NewTopic(box.topic, num_partitions=1, replication_factor=1)])
        yield box
    finally:
        await producer.stop()
        await admin.delete_topics([box.topic])
        await admin.close()
        await pool.close()


async def test_a_recreated_topic_is_paused_not_skipped_and_resumes_after_a_reset(stack: None) -> None:
    applied: list[int] = []

    async def handler(_conn: asyncpg.Connection, part: Sequence[Incoming]) -> None:
        applied.extend(item.data.n for item in part)  # type: ignore[attr-defined]

    async def running(consumer: ConsumerLoop, check: object) -> None:
        task = asyncio.create_task(consumer.run())
        try:
            await _until(check)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async with sandbox("regress") as box:
        topic, group, admin, producer, pool = box.topic, box.group, box.admin, box.producer, box.pool
        await _send(producer, topic, [1, 2, 3, 4, 5], "old")
        await running(box.loop(handler), lambda: applied == [1, 2, 3, 4, 5])

        await admin.delete_topics([topic])  # the topic is recreated: its offsets start again at 0
        await asyncio.sleep(1)
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        await _send(producer, topic, [6, 7], "new")
        paused = box.loop(handler)
        await running(paused, lambda: paused.regressed)
        await asyncio.sleep(1)  # give it the time to (wrongly) skip or apply anything
        assert applied == [1, 2, 3, 4, 5]  # before: 6 and 7 were skipped as replays, with no word
        assert not paused.ready
        assert REGISTRY.get_sample_value("attain_consumer_offset_regression",
                                         {"group": group, "topic": topic, "partition": "0"}) == 1
        async with pool.acquire() as conn:  # nothing moved: the stored offset still says 5
            assert await conn.fetchval("SELECT next_offset FROM consumer_offsets WHERE group_id = $1", group) == 5

        out = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "shared.offsets", "reset", "recognition", group, topic, "--to", "0"],
            cwd=ROOT, check=True, capture_output=True, text=True, env={**os.environ, "DATABASE_URL": box.database})
        assert json.loads(out.stdout) == {"group_id": group, "topic": topic, "partition": 0, "next_offset": 0}
        await running(box.loop(handler), lambda: applied == [1, 2, 3, 4, 5, 6, 7])  # the restart resumes from the start
