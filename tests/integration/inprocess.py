"""A service's replicas in-process, on the real broker and a PostgreSQL database of the test's own, with a
clock the test moves (coaching's due dates and cool-downs, recognition's period closes)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from deploy.local import crm_keys, registry_keys
from services.ingest.app import SPEC as INGEST
from services.ingest.settings import IngestSettings
from services.ingest.tenants import signed
from services.kpi.app import SPEC as KPI
from services.kpi.settings import KpiSettings
from shared import topics
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent, encode, message_key
from shared.registry_signing import RegistrySigner, parse_private_key
from shared.service import ServiceSpec, create_app
from shared.settings import ServiceSettings
from tests.integration.conftest import BOOTSTRAP, ROOT


async def start_group_at_end(group: str, names: Sequence[str]) -> None:
    """The new group reads from now on, not the broker's whole history of other tests' events."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(t, p) for t in names for p in metadata.partitions_for_topic(t) or ()]
        ends = await consumer.end_offsets(parts)
        consumer.assign(parts)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()


def awaiting(task: asyncio.Task[Any]) -> list[str]:
    """Where `task` waits: file, line and function of every coroutine down its chain of awaits."""
    chain: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            chain.append(repr(coro)[:200])
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return chain


class Replica:
    """One process's worth of a service: its app (pool, consumers, relay, timers, API) started by its lifespan."""

    def __init__(self, spec: ServiceSpec, settings: ServiceSettings, clock: FixedClock) -> None:
        self.settings, self.clock = settings, clock
        self.app: FastAPI = create_app(spec, settings, clock)
        self._life: Any = None
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=f"http://{spec.name}")

    @property
    def pool(self) -> asyncpg.Pool:
        return self.app.state.runtime.pool

    def wake(self) -> None:
        self.app.state.runtime.relay.wake()

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
            if not done:  # a stop that hangs says where: each task's whole chain of awaits, not its top frame
                for t in asyncio.all_tasks():
                    print("TASK", t.get_name(), t, *awaiting(t), sep="\n    ", file=sys.stderr)
                await task


async def register_tenant(producer: AIOKafkaProducer, slug: str, token: str, timezone: str, at: datetime,
                          locale: str | None = None, holidays: dict[str, Any] | None = None) -> None:
    """What `ingest tenants create` announces on the registry topic, signed with the local key as ingest signs it,
    so the read APIs know the token (without `locale`, an entry as ingest announced them before tenants had one;
    `holidays` as `shared.events.Holidays`' JSON)."""
    data: dict[str, Any] = {
        "tenant": slug, "timezone": timezone, "currency": "EUR", "fiscal_start_month": 1,
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(), "active": True, "rates": []}
    if locale is not None:
        data["locale"] = locale
    if holidays is not None:
        data["holidays"] = holidays
    event = CloudEvent(str(uuid.uuid4()), "tenant.upserted", "attain/ingest", at, slug, data)
    key = message_key(slug)
    value, headers = encode(signed(event, key, RegistrySigner(parse_private_key(registry_keys.signing_key()))))
    await producer.send_and_wait(topics.TENANTS.name, value, key=key, headers=headers)


async def until(db_url: str, probe: Callable[[asyncpg.Connection], Awaitable[Any]], timeout: float = 30) -> Any:  # noqa: ASYNC109
    """Poll the database until `probe` returns something truthy (the consumer has caught up)."""
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(db_url)
    try:
        while True:
            if found := await probe(conn):
                return found
            assert time.monotonic() < deadline, "the service did not get there in time"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


# What kpi consumes: a kpi replica started "at the end" of these sees only what its test sends.
KPI_CONSUMES = [topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name,
                topics.TENANTS.name]


@contextlib.asynccontextmanager
async def ingest_and_kpi(database_url: str, prefix: str, clock: FixedClock,
                         **kpi_settings: Any) -> AsyncIterator[tuple[Replica, Replica]]:
    """ingest and kpi in-process on `database_url`, kpi's group (`<prefix>-kpi`) starting at the topics' end;
    `kpi_settings` on top of kpi's. Stopped on exit."""
    await start_group_at_end(f"{prefix}-kpi", KPI_CONSUMES)
    common: dict[str, Any] = {"database_url": database_url, "kafka_bootstrap_servers": BOOTSTRAP,
                              "kafka_consumer_group_prefix": prefix, "outbox_poll_interval_s": 0.2,
                              "log_format": "text"}
    ingest = await Replica(INGEST, IngestSettings(**common, crm_secret_keys=crm_keys.crm_secret_keys(),
                                             registry_signing_key=registry_keys.signing_key()), clock).start()
    kpi = await Replica(KPI, KpiSettings(**common, **kpi_settings), clock).start()
    try:
        yield ingest, kpi
    finally:
        for replica in (kpi, ingest):
            await replica.stop()
            await replica.http.aclose()


async def create_tenant(database_url: str, prefix: str, timezone: str = "Europe/Berlin",
                        *options: str) -> tuple[str, str]:
    """`python -m services.ingest tenants create` on `database_url`, as an operator runs it (with `options`,
    e.g. `--country DE`): slug and token."""
    slug = f"{prefix}-{uuid.uuid4().hex[:10]}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ingest", "tenants", "create", slug, "--timezone", timezone, *options,
        cwd=ROOT,
        env={**os.environ, **crm_keys.env(), **registry_keys.env(),
             "DATABASE_URL": database_url}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    created: dict[str, str] = json.loads(out)
    return created["tenant"], created["token"]
