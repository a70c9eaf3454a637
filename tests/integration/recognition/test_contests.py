"""recognition's contests on a real PostgreSQL, through the real handler, timer and repository: a contest's
revisions (kpi.contests.v1) applied one batch at a time with the lead timer ticking in between (two replicas'
timers racing at each tick), then the whole stream again in one batch and in two, and the timer again: the
start, each lasting lead and the winners are each in the ledger once and in the outbox once. The in-memory
fake the handler tier runs on holds the same ledger after the same stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from services.recognition.app import SPEC
from services.recognition.config import ConfigCache
from services.recognition.handlers import handle_batch, settle_contest_leads, settle_leads
from services.recognition.repository import PgRepository
from shared import db
from shared.consumer import Incoming
from tests.integration.conftest import fresh_database
from tests.unit.services.recognition.fake import FakeRepository
from tests.unit.services.recognition.streams import TICKS, minutes, race, tenant_id


@pytest.fixture(scope="module")
async def pool(stack: None) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(await fresh_database(f"recog_contest_{uuid.uuid4().hex[:8]}"), SPEC.schema,
                                max_size=4)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        yield pool
    finally:
        await pool.close()


async def apply(pool: asyncpg.Pool, cache: ConfigCache, batch: Sequence[Incoming], now: datetime) -> int:
    async with db.tenant_tx(pool, batch[0].event.tenant) as conn:
        return await handle_batch(PgRepository(conn), cache, batch, now)


async def tick(pool: asyncpg.Pool, now: datetime) -> int:
    """The lead timer of two replicas at the same instant, at once (each with its own settings cache)."""
    made = await asyncio.gather(settle_contest_leads(pool, now, ConfigCache()),
                                settle_contest_leads(pool, now, ConfigCache()))
    return sum(made)


async def ledger(pool: asyncpg.Pool, tenant: str) -> dict[str, tuple[Any, ...]]:
    """celebration id -> (scope, scope id, milestone, period, occasion, value, headline, status)."""
    async with db.tenant_tx(pool, tenant) as conn:
        rows = await conn.fetch("SELECT celebration_id, scope, scope_id, milestone, period, occasion, value, headline,"
                                " status FROM celebrations WHERE tenant = $1", tenant)
    return {str(r[0]): tuple(r[1:]) for r in rows}


async def outbox(pool: asyncpg.Pool, tenant: str) -> list[str]:
    """The celebration ids of the tenant's outbox rows (no relay runs here: every row stays)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT value FROM outbox WHERE tenant = $1 ORDER BY seq", tenant)
    return [json.loads(r[0])["celebration_id"] for r in rows]


async def test_a_contests_moments_are_celebrated_once_however_often_its_revisions_and_the_timer_come(
        pool: asyncpg.Pool) -> None:
    tenant, cache = tenant_id(), ConfigCache()
    stream = race(tenant)
    made, ticks = 0, list(TICKS)
    for m, record in stream:
        while ticks and ticks[0] < m:
            made += await tick(pool, minutes(ticks.pop(0)))
        made += await apply(pool, cache, [record], minutes(m))
    for m in ticks:
        made += await tick(pool, minutes(m))
    assert made == 6
    records = [record for _, record in stream]
    replayed = [await apply(pool, ConfigCache(), batch, minutes(200))
                for batch in (records, records[:5], records[5:])]
    assert replayed == [0, 0, 0]
    assert await tick(pool, minutes(200)) + await tick(pool, minutes(200)) == 0

    rows = await ledger(pool, tenant)
    assert sorted((r[1], r[2], r[4]) for r in rows.values()) == sorted([
        ("c-1", "contest_started", ""), ("ann", "contest_lead", minutes(9).isoformat()),
        ("bob", "contest_lead", minutes(70).isoformat()), ("ann", "contest_lead", minutes(90).isoformat()),
        ("ann", "contest_won", ""), ("bob", "contest_won", "")])
    assert {r[0] for r in rows.values()} == {"contest", "rep"}
    assert all(r[7] == "celebrated" for r in rows.values())
    sent = await outbox(pool, tenant)
    assert len(sent) == len(set(sent)) == 6 and set(sent) == set(rows)

    # the handler tier's fake holds the same after the same stream and ticks
    fake, made_by_fake, ticks = FakeRepository(), 0, list(TICKS)
    for m, record in stream:
        while ticks and ticks[0] < m:
            made_by_fake += await settle_leads(fake, cache, tenant, minutes(ticks.pop(0)))
        made_by_fake += await handle_batch(fake, cache, [record], minutes(m))
    for m in ticks:
        made_by_fake += await settle_leads(fake, cache, tenant, minutes(m))
    assert made_by_fake == 6
    assert {row.celebration_id: (str(k[1]), k[2], k[3], k[4], k[5], row.entry.found.value, row.entry.headline,
                                 row.entry.status) for k, row in fake.ledger.items()} == rows


async def test_a_timer_pass_rolled_back_celebrates_nothing_and_the_next_one_celebrates_the_lead_once(
        pool: asyncpg.Pool) -> None:
    tenant, cache = tenant_id(), ConfigCache()
    for m, record in race(tenant):
        if m <= 9:
            await apply(pool, cache, [record], minutes(m))
    with pytest.raises(RuntimeError):
        async with db.tenant_tx(pool, tenant) as conn:  # a crash after the ledger and outbox writes
            assert await settle_leads(PgRepository(conn), cache, tenant, minutes(19)) == 1
            raise RuntimeError("killed before the commit")
    assert [r[2] for r in (await ledger(pool, tenant)).values()] == ["contest_started"]
    assert await tick(pool, minutes(19)) == 1
    assert await tick(pool, minutes(20)) == 0
    assert sorted(r[2] for r in (await ledger(pool, tenant)).values()) == ["contest_lead", "contest_started"]
    assert len(await outbox(pool, tenant)) == 2
