"""What the core hardening tests share: a topic and a database of their own, a consumer that applies
`test.happened` events into a table, records as the broker would deliver them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import BaseModel

from shared.cloudevents import CloudEvent, encode
from shared.consumer import Handler, Incoming, TransactionalConsumer
from shared.db import create_pool, migrate
from tests.integration.conftest import BOOTSTRAP, fresh_database

TYPE = "test.happened"
TENANT = "t-hardening"


class Happened(BaseModel):
    name: str


def event(name: str) -> CloudEvent:
    return CloudEvent(f"id-{name}", TYPE, "test", datetime.now(UTC), TENANT, {"name": name})


def delivered(topic: str, partition: int, offset: int, name: str) -> ConsumerRecord[bytes, bytes]:
    """The record carrying `event(name)` at `offset`, as a consumer would receive it."""
    value, headers = encode(event(name))
    return ConsumerRecord(topic=topic, partition=partition, offset=offset, timestamp=0, timestamp_type=0,
                          key=b"k", value=value, checksum=None, serialized_key_size=1,
                          serialized_value_size=len(value), headers=headers)


async def new_topic(prefix: str, partitions: int = 1) -> str:
    topic = f"test.{prefix}.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return topic


async def new_database(prefix: str, schema: str) -> tuple[str, asyncpg.Pool]:
    """A fresh database with the shared migrations in `schema` and a table `happened` (name, times applied)."""
    url = await fresh_database(f"{prefix}_{uuid.uuid4().hex[:8]}")
    pool = await create_pool(url, schema)
    await migrate(pool, schema)
    await pool.execute("CREATE TABLE happened (name text PRIMARY KEY, times int NOT NULL)")
    return url, pool


def counting(seen: list[str] | None = None) -> Handler:
    """A handler that counts each event's name in `happened` (a second application shows as times = 2)."""

    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        names = [m.data.name for m in batch if isinstance(m.data, Happened)]
        if seen is not None:
            seen.extend(names)
        await conn.execute("INSERT INTO happened (name, times) SELECT unnest($1::text[]), 1"
                           " ON CONFLICT (name) DO UPDATE SET times = happened.times + 1", names)

    return handle


class RecordingProducer:
    """Stands for the service's producer, which a consumer uses for dead letters only: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes, **_: Any) -> None:
        self.sent.append((topic, value))


def consumer(pool: asyncpg.Pool, group: str, handler: Handler, producer: Any = None) -> TransactionalConsumer:
    return TransactionalConsumer(pool=pool, producer=producer or RecordingProducer(), group_id=group,
                                 service="hardening", models={TYPE: Happened}, handler=handler)


async def applied(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["name"]: r["times"] for r in await pool.fetch("SELECT name, times FROM happened")}
