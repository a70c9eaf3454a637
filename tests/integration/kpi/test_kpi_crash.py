"""kpi killed with SIGKILL in the middle of its work restarts to exactly the state one clean pass
over the same events gives: no loss, no double count, no duplicate ce_id.

Runs before any test that starts the shared services (pytest collects `kpi/` before the
`test_*.py` files beside it), so no other kpi emits for this test's tenant meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.kpi.app import SPEC
from services.kpi.handlers import MODELS, make_handler
from shared import db, topics
from shared.clock import SystemClock
from shared.cloudevents import CloudEvent, decode, encode, message_key
from shared.consumer import Incoming
from tests.integration.conftest import BOOTSTRAP, LOGS, ROOT, end_offsets, fresh_database
from tests.ports import free_ports

# every topic kpi consumes: its stored offsets are seeded at their ends and progress counts them all
SALES = [topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name, topics.TENANTS.name]
REPS = [f"rep-{i}" for i in range(40)]
NOW = datetime.now(UTC)


def _history(tenant: str, count: int) -> list[tuple[str, bytes, CloudEvent]]:
    """Deals with edits, reopens, losses and deletions, activities, a roster and targets."""
    rnd = random.Random(7)
    ext = {"tenanttimezone": "Europe/Berlin", "tenantfiscalstart": "1", "tenantcurrency": "EUR"}
    out: list[tuple[str, bytes, CloudEvent]] = []

    def add(topic: str, rep: str, type_: str, data: dict[str, Any], at: datetime) -> None:
        event = CloudEvent(str(uuid.uuid4()), type_, "api", at, tenant, data, ext)
        out.append((topic, message_key(tenant, rep), event))

    quarter_start = datetime(NOW.year, 3 * ((NOW.month - 1) // 3) + 1, 1, tzinfo=UTC)
    for i, rep in enumerate(REPS):
        add(topics.ROSTER.name, rep, "rep.upserted", {"rep_id": rep, "name": rep.title(), "team_id": f"team-{i % 4}",
                                                      "timezone": "Europe/Berlin"}, quarter_start)
        add(topics.TARGETS.name, rep, "target.set", {"scope": "rep", "scope_id": rep, "metric": "won_revenue",
                                                     "period": _quarter(NOW), "value": "50000"}, quarter_start)
    while len(out) < count:
        rep = rnd.choice(REPS)
        when = quarter_start + timedelta(minutes=rnd.randrange(0, 60 * 24 * 50))
        if rnd.random() < 0.45:
            deal = f"d-{rnd.randrange(3000)}"
            stage = rnd.choice(["open", "won", "won", "lost"])
            data = {"deal_id": deal, "rep_id": rep, "amount": f"{rnd.randrange(100, 9000)}.{rnd.randrange(100):02d}",
                    "currency": "EUR", "stage": stage, "created_at": (when - timedelta(days=3)).isoformat(),
                    "updated_at": when.isoformat()}
            if stage != "open":
                data["closed_at"] = when.isoformat()
            add(topics.DEALS.name, rep, "deal.upserted", data, when)
        elif rnd.random() < 0.05:
            add(topics.DEALS.name, rep, "deal.deleted",
                {"deal_id": f"d-{rnd.randrange(3000)}", "updated_at": when.isoformat()}, when)
        else:
            add(topics.ACTIVITIES.name, rep, "activity.logged",
                {"activity_id": f"a-{rnd.randrange(10**9)}", "rep_id": rep, "occurred_at": when.isoformat(),
                 "kind": rnd.choice(["call", "email", "meeting", "demo"])}, when)
    return out


def _quarter(moment: datetime) -> str:
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


async def _progress(url: str, group: str) -> int:
    conn = await asyncpg.connect(url, server_settings={"search_path": "kpi"})
    try:
        return int(await conn.fetchval("SELECT COALESCE(sum(next_offset), 0) FROM consumer_offsets"
                                       " WHERE group_id = $1", group) or 0)
    finally:
        await conn.close()


def _start_kpi(url: str, prefix: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "KAFKA_CONSUMER_GROUP_PREFIX": prefix, "HTTP_PORT": str(free_ports(1)[0]),
           "OUTBOX_POLL_INTERVAL_S": "0.2", "LOG_LEVEL": "INFO"}
    LOGS.mkdir(parents=True, exist_ok=True)
    log = (LOGS / "kpi-crash.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "services.kpi"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


async def _clean_pass(url: str, start: dict[TopicPartition, int], end: dict[TopicPartition, int]) -> None:
    """The reference: the same records from Kafka, applied once, in order, by the same handler."""
    pool = await db.create_pool(url, SPEC.schema, min_size=1, max_size=2)
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        handler = make_handler(type("Rt", (), {"clock": SystemClock()})())  # type: ignore[arg-type]
        parts = [tp for tp in end if end[tp] > start[tp]]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start[tp])
        left = {tp: end[tp] for tp in parts}
        while left:
            for tp, records in (await consumer.getmany(timeout_ms=1000, max_records=500)).items():
                batch = []
                for r in records:
                    if r.offset >= end[tp]:
                        continue
                    event = decode(r.headers, r.value)
                    if event.type in MODELS:
                        batch.append(Incoming(r.topic, r.partition, r.offset, event,
                                              MODELS[event.type].model_validate(event.data)))
                if batch:
                    async with pool.acquire() as conn, conn.transaction():
                        await handler(conn, batch)
            for tp in list(left):  # position, not the last record: transaction markers take offsets too
                if await consumer.position(tp) >= end[tp]:
                    left.pop(tp, None)
    finally:
        await consumer.stop()
        await pool.close()


def _meaningful(figures: dict[Any, tuple[Decimal, Decimal | None]]) -> dict[Any, tuple[Decimal, Decimal | None]]:
    """Figures without the zero rows a period keeps after an intermediate deal version left it: a run
    whose batches saw that version has a 0 there, a run whose batches skipped it has no row; both mean 0."""
    return {key: value for key, value in figures.items() if value != (0, None)}


async def _state(url: str, tenant: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url, server_settings={"search_path": "kpi"})
    try:
        return {
            "deals": [tuple(r) for r in await conn.fetch(
                "SELECT deal_id, rep_id, amount, stage, created_at, closed_at, updated_at, deleted FROM deals"
                " WHERE tenant = $1 ORDER BY deal_id", tenant)],
            "activities": [tuple(r) for r in await conn.fetch(
                "SELECT activity_id, rep_id, kind, occurred_at FROM activities WHERE tenant = $1"
                " ORDER BY activity_id", tenant)],
            "figures": _meaningful({(r["scope"], r["scope_id"], r["period"], r["metric"]): (r["actual"], r["target"])
                                    for r in await conn.fetch("SELECT * FROM attainment WHERE tenant = $1", tenant)}),
        }
    finally:
        await conn.close()


async def _emitted(tenant: str, start: dict[TopicPartition, int]) -> list[tuple[str, bytes, dict[str, Any]]]:
    end = await end_offsets([topics.ATTAINMENT.name])
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    out: list[tuple[str, bytes, dict[str, Any]]] = []
    try:
        parts = [tp for tp in end if end[tp] > start.get(tp, 0)]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start.get(tp, 0))
        left = set(parts)
        while left:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for r in records:
                    event = decode(r.headers, r.value)
                    if event.tenant == tenant and r.offset < end[tp]:
                        out.append((event.id, r.key or b"", dict(event.data)))
            for tp in list(left):
                if await consumer.position(tp) >= end[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return out


@pytest.mark.timeout(600)
async def test_kpi_killed_mid_batch_restarts_to_the_state_of_one_clean_pass(stack: None) -> None:
    tenant, run = f"crash-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    crashed_url, clean_url = await fresh_database("attain_crash"), await fresh_database("attain_clean")
    start = await end_offsets(SALES)
    attainment_start = await end_offsets([topics.ATTAINMENT.name])
    history = _history(tenant, 20_000)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(t, encode(e)[0], key=k, headers=encode(e)[1]) for t, k, e in history]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    end = await end_offsets(SALES)
    total = sum(end[tp] - start[tp] for tp in end)

    # The crashed run starts where this test's events start (its stored offsets say so).
    pool = await db.create_pool(crashed_url, SPEC.schema, min_size=1, max_size=1)
    await db.migrate(pool, SPEC.schema, SPEC.migrations)
    group = f"crash-{run}-kpi"
    await pool.executemany("INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
                           " VALUES ($1, $2, $3, $4)", [(group, tp.topic, tp.partition, o) for tp, o in start.items()])
    await pool.close()
    base = sum(start.values())

    kpi = _start_kpi(crashed_url, f"crash-{run}")
    killed_at = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        done = await _progress(crashed_url, group) - base
        if total * 0.3 <= done <= total * 0.7:
            kpi.send_signal(signal.SIGKILL)
            killed_at = done
            break
        assert kpi.poll() is None, "kpi died on its own; see .local/test-logs/kpi-crash.log"
        await asyncio.sleep(0.05)
    kpi.wait(timeout=10)
    assert 0 < killed_at < total, f"never caught kpi mid-way (progress {done} of {total})"

    kpi = _start_kpi(crashed_url, f"crash-{run}")
    try:
        deadline = time.monotonic() + 240
        while await _progress(crashed_url, group) - base < total:
            assert time.monotonic() < deadline, "kpi did not catch up after the restart"
            await asyncio.sleep(0.3)
        conn = await asyncpg.connect(crashed_url, server_settings={"search_path": "kpi"})
        while await conn.fetchval(  # noqa: ASYNC110 - polling another process
                "SELECT count(*) FROM outbox"):
            await asyncio.sleep(0.2)
        await conn.close()
    finally:
        kpi.send_signal(signal.SIGTERM)
        kpi.wait(timeout=30)

    await _clean_pass(clean_url, start, end)
    crashed, clean = await _state(crashed_url, tenant), await _state(clean_url, tenant)
    assert crashed["deals"] == clean["deals"]
    assert crashed["activities"] == clean["activities"]
    assert crashed["figures"] == clean["figures"]
    assert len(clean["figures"]) > 1000

    emitted = await _emitted(tenant, attainment_start)
    ids = [e[0] for e in emitted]
    assert len(ids) == len(set(ids)), "a ce_id was emitted twice"
    latest: dict[bytes, dict[str, Any]] = {}
    for _, key, data in emitted:
        latest[key] = data
    published = _meaningful({(d["scope"], d["scope_id"], d["period"], d["metric"]):
                             (Decimal(d["actual"]), Decimal(d["target"]) if d["target"] is not None else None)
                             for d in latest.values()})
    # the topic carries the figures with a target (CONTRACT section 3): their latest message is the state
    assert published == {key: value for key, value in crashed["figures"].items() if value[1] is not None}
    assert published
    print(f"killed after {killed_at} of {total} records; {len(emitted)} attainment events, all distinct")
