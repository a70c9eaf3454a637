"""coaching replicas in-process on the real broker and a PostgreSQL database of their own, with a clock
the test moves: no sleeping for a due date, a cool-down or a Monday morning."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from services.coaching.app import SPEC
from services.coaching.settings import CoachingSettings
from services.coaching.timers import Tally, tick
from shared import db, topics
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent, encode, message_key
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, fresh_database

CONSUMED = [topics.ATTAINMENT.name, topics.ACTIVITIES.name, topics.DEALS.name, topics.ROSTER.name, topics.TENANTS.name]
OUT = [topics.TASKS.name, topics.PLANS.name, topics.REVIEWS.name]


@contextlib.asynccontextmanager
async def migrated_pool(prefix: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database with coaching's schema, for tests of its SQL without a replica."""
    pool = await db.create_pool(await fresh_database(f"{prefix}_{uuid.uuid4().hex[:8]}"), SPEC.schema, max_size=2)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        yield pool
    finally:
        await pool.close()


class Replica(inprocess.Replica):
    """One coaching process's worth, and its timer's work on demand."""

    def __init__(self, settings: CoachingSettings, clock: FixedClock) -> None:
        super().__init__(SPEC, settings, clock)
        self.policy = settings.policy()

    async def tick(self) -> Tally:
        done = await tick(self.pool, self.clock.now(), self.policy)
        self.wake()
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
        started = Replica(self.settings(name), self.clock)
        await started.start()
        self.replicas.append(started)
        return started

    async def org(self) -> Org:
        token = f"atn_{uuid.uuid4().hex}"
        org = Org(f"c-{uuid.uuid4().hex[:10]}", token, self.producer)
        await inprocess.register_tenant(self.producer, org.slug, token, org.timezone, self.clock.now())
        await self.until(lambda c: c.fetchval("SELECT 1 FROM coaching.tenants WHERE tenant = $1 AND active", org.slug))
        return org

    async def until(self, probe: Callable[[asyncpg.Connection], Awaitable[Any]], timeout: float = 30) -> Any:  # noqa: ASYNC109
        return await inprocess.until(self.db_url, probe, timeout)

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
    await inprocess.start_group_at_end(f"{prefix}-coaching", CONSUMED)
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
def out_watch(watch: Callable[..., Awaitable[Any]]) -> Callable[[str], Awaitable[Any]]:
    """A watch on coaching's output topics (the suite's `watch` fixture, which stops it after the test)."""
    return lambda tenant: watch(tenant, *OUT)
