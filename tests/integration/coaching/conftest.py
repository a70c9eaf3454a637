"""coaching replicas in-process on the real broker and a PostgreSQL database of their own, with a clock
the test moves: no sleeping for a due date, a cool-down or a Monday morning."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from services.coaching.app import SPEC
from services.coaching.settings import CoachingSettings
from services.coaching.timers import Tally, tick
from shared import topics
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent, encode, message_key
from shared.service import create_app
from tests.integration.conftest import BOOTSTRAP, fresh_database, open_watch

CONSUMED = [topics.ATTAINMENT.name, topics.ACTIVITIES.name, topics.DEALS.name, topics.ROSTER.name, topics.TENANTS.name]
OUT = [topics.TASKS.name, topics.PLANS.name, topics.REVIEWS.name]


async def start_group_at_end(group: str) -> None:
    """The new group reads from now on, not the broker's whole history of other tests' events."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(t, p) for t in CONSUMED for p in metadata.partitions_for_topic(t) or ()]
        ends = await consumer.end_offsets(parts)
        consumer.assign(parts)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()


class Replica:
    """One coaching process's worth: its app (pool, consumer, relay, API) started by its lifespan."""

    def __init__(self, settings: CoachingSettings, clock: FixedClock) -> None:
        self.settings, self.clock = settings, clock
        self.app: FastAPI = create_app(SPEC, settings, clock)
        self._life: Any = None
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://coaching")

    async def start(self) -> Replica:
        self._life = self.app.router.lifespan_context(self.app)
        await self._life.__aenter__()
        deadline = time.monotonic() + 60
        while (await self.http.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, (await self.http.get("/readyz")).text
            await asyncio.sleep(0.2)
        return self

    async def stop(self) -> None:
        if self._life is not None:
            life, self._life = self._life, None
            task = asyncio.ensure_future(life.__aexit__(None, None, None))
            done, _ = await asyncio.wait([task], timeout=20)
            if not done:  # a stop that hangs says where
                for t in asyncio.all_tasks():
                    print("TASK", t.get_name(), file=sys.stderr)
                    t.print_stack(file=sys.stderr)
                await task

    async def tick(self) -> Tally:
        rt = self.app.state.runtime
        done = await tick(rt.pool, self.clock.now(), self.settings.policy())
        rt.relay.wake()
        return done


@dataclass
class Org:
    """A tenant of this test: its events go to Kafka as ingest would publish them."""

    slug: str
    token: str
    producer: AIOKafkaProducer
    timezone: str = "Europe/Berlin"
    sent: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def send(self, topic: str, type_: str, key: str, data: dict[str, Any], at: datetime) -> None:
        event = CloudEvent(
            str(uuid.uuid4()),
            type_,
            "api",
            at,
            self.slug,
            data,
            {"tenanttimezone": self.timezone, "tenantfiscalstart": "1", "tenantcurrency": "EUR"},
        )
        value, headers = encode(event)
        await self.producer.send_and_wait(topic, value, key=message_key(self.slug, key), headers=headers)
        self.sent.append(event.id)


@dataclass
class Harness:
    db_url: str
    group_prefix: str
    clock: FixedClock
    producer: AIOKafkaProducer
    replicas: list[Replica] = field(default_factory=list)

    def settings(self, name: str) -> CoachingSettings:
        return CoachingSettings(
            database_url=self.db_url,
            kafka_bootstrap_servers=BOOTSTRAP,
            kafka_group_instance_id=f"{self.group_prefix}-{name}",
            kafka_consumer_group_prefix=self.group_prefix,
            coaching_evaluation_interval_s=3600,
            coaching_grace_s=0,
            outbox_poll_interval_s=0.2,
            log_format="text",
        )

    async def replica(self, name: str = "a") -> Replica:
        """A replica named like a pod: static group membership, so a restart under the same name takes
        its partitions back without a rebalance (and a stop sends no LeaveGroup that a rebalance in
        flight could hold up)."""
        started = await Replica(self.settings(name), self.clock).start()
        self.replicas.append(started)
        return started

    async def org(self) -> Org:
        token = f"atn_{uuid.uuid4().hex}"
        org = Org(f"c-{uuid.uuid4().hex[:10]}", token, self.producer)
        event = CloudEvent(
            str(uuid.uuid4()),
            "tenant.upserted",
            "attain/ingest",
            self.clock.now(),
            org.slug,
            {
                "tenant": org.slug,
                "timezone": org.timezone,
                "currency": "EUR",
                "fiscal_start_month": 1,
                "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                "active": True,
                "rates": [],
            },
        )
        value, headers = encode(event)
        await self.producer.send_and_wait(topics.TENANTS.name, value, key=message_key(org.slug), headers=headers)
        await self.until(lambda c: c.fetchval("SELECT 1 FROM coaching.tenants WHERE tenant = $1 AND active", org.slug))
        return org

    async def until(self, probe: Callable[[asyncpg.Connection], Awaitable[Any]], timeout: float = 30) -> Any:  # noqa: ASYNC109
        """Poll the database until `probe` returns something truthy (the consumer has caught up)."""
        deadline = time.monotonic() + timeout
        conn = await asyncpg.connect(self.db_url)
        try:
            while True:
                if found := await probe(conn):
                    return found
                assert time.monotonic() < deadline, "coaching did not get there in time"
                await asyncio.sleep(0.2)
        finally:
            await conn.close()

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.db_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()


@pytest.fixture(scope="module")
async def coaching_db(stack: None) -> str:
    return await fresh_database(f"coaching_{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def harness(coaching_db: str) -> AsyncIterator[Harness]:
    prefix = f"attain-coach-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(f"{prefix}-coaching")
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    h = Harness(coaching_db, prefix, FixedClock(datetime.fromisoformat("2026-11-18T10:00:00+00:00")), producer)
    try:
        yield h
    finally:
        for replica in h.replicas:
            await replica.stop()
            await replica.http.aclose()
        await producer.stop()


@pytest.fixture
async def out_watch() -> AsyncIterator[Callable[[str], Awaitable[Any]]]:
    opened: list[Any] = []

    async def _open(tenant: str) -> Any:
        w = await open_watch(tenant, *OUT)
        opened.append(w)
        return w

    yield _open
    for w in opened:
        await w.consumer.stop()
