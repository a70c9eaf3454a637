"""The handlers' two stores agree: the same batches through `handlers.store_batch` and `handlers.evaluate`
on PostgreSQL (`repository.PgStore`) and on the handler tests' in-memory fake leave the same reps, deals,
activities and owed reps, and raise, close and announce the same check-ins. What the handler tier proves
on the fake therefore holds for the SQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from services.coaching.config import ConfigCache
from services.coaching.handlers import evaluate, store_batch
from services.coaching.model import Policy
from services.coaching.repository import PgStore
from shared.db import tenant_tx
from shared.events import DealDeleted
from tests.integration.coaching.conftest import migrated_pool
from tests.unit.services.coaching import test_handlers as h
from tests.unit.services.coaching.fake import FakeStore

NOW = h.NOW
POLICY = Policy(new_target_grace_s=0)


@pytest.fixture(scope="module")
async def pool(stack: None) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool("store_parity") as pool:
        yield pool


def batches() -> list[list[Any]]:
    t = [NOW - timedelta(hours=n) for n in range(10)]
    first = [h.rep("ann", h.LONG_AGO + timedelta(days=2), "Ann B"), h.rep("ann", h.LONG_AGO, "Stale"),
             h.rep("bob", h.LONG_AGO), h.call("a-1", "ann", t[5], "d-2"), h.call("a-1", "bob", t[4]),
             h.deal("d-1", "ann", t[8], "100", "e1"), h.deal("d-1", "ann", t[6], "300", "e3"),
             h.msg("deal.deleted", DealDeleted(deal_id="d-1", updated_at=t[7]), event_id="e2"),
             h.deal("d-2", "ann", NOW - timedelta(days=20), "50000"), h.call("a-2", "ann", t[3], "d-2"),
             h.figure("ann", "20000"), h.figure("bob", "0"), h.figure("ann", "10000", as_of=NOW - timedelta(days=1)),
             h.figure("cy", "40000", forecast=h.short_forecast("cy")), h.rep("cy"),
             h.deal("d-c", "cy", t[2], "160000")]  # enough pipeline overall: the forecast's check-in is its own
    second = [h.call("a-3", "bob", t[2], "d-1"), h.msg("deal.deleted", DealDeleted(deal_id="d-9", updated_at=t[1])),
              h.deal("d-9", "bob", t[9], "7"), h.rep("ann", h.LONG_AGO + timedelta(days=1), "Older"),
              h.deal("d-1", "ann", t[9], "1", "e0"), h.call("a-4", "ann", t[9], "d-2"),  # older than what is stored
              h.call("a-1", "ann", NOW),  # a redelivered id: nothing
              h.figure("cy", "40000", as_of=NOW + timedelta(hours=1))]  # without its forecast: forecast_short recovers
    return [first, second]


async def _state_pg(conn: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    reps = {r["rep_id"]: (r["name"], r["known_since"]) for r in await conn.fetch(
        "SELECT rep_id, name, known_since FROM reps WHERE tenant = $1", tenant)}
    deals = {r["deal_id"]: (r["deleted"], None if r["deleted"] else r["amount"], r["last_activity_at"])
             for r in await conn.fetch("SELECT * FROM deals WHERE tenant = $1", tenant)}
    acts = {r["activity_id"]: r["rep_id"] for r in await conn.fetch(
        "SELECT activity_id, rep_id FROM activities WHERE tenant = $1", tenant)}
    owed = {r["rep_id"] for r in await conn.fetch("SELECT rep_id FROM owed_evaluations WHERE tenant = $1", tenant)}
    tasks = sorted((r["rep_id"], r["rule"], r["severity"], r["status"], r["close_reason"]) for r in await conn.fetch(
        "SELECT * FROM tasks WHERE tenant = $1", tenant))
    return {"reps": reps, "deals": deals, "activities": acts, "owed": owed, "tasks": tasks}


def _state_fake(fake: FakeStore) -> dict[str, Any]:
    return {
        "reps": {r.rep_id: (r.name, r.known_since) for r in fake.reps.values()},
        "deals": {k: (d.deleted, None if d.deleted or d.deal is None else d.deal.amount, d.last_activity_at)
                  for k, d in fake.deals.items()},
        "activities": {k: a.rep_id for k, a in fake.activities.items()},
        "owed": set(fake.owed),
        "tasks": sorted((t["rep_id"], t["rule"], t["severity"], t["status"], t.get("close_reason"))
                        for t in fake.tasks.values()),
    }


async def test_the_fake_and_postgresql_keep_and_decide_the_same(pool: asyncpg.Pool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = f"p-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(h, "T", tenant)  # the helpers stamp this tenant on their events
    fake, fake_configs, pg_configs = FakeStore(), ConfigCache(), ConfigCache()
    for i, batch in enumerate(batches()):
        now = NOW + timedelta(hours=i)
        await store_batch(fake, tenant, batch, now)
        async with tenant_tx(pool, tenant) as conn:
            await store_batch(PgStore(conn), tenant, batch, now)
        await evaluate(fake, tenant, ["ann", "bob", "cy"], now, POLICY, fake_configs)
        async with tenant_tx(pool, tenant) as conn:
            await evaluate(PgStore(conn), tenant, ["ann", "bob", "cy"], now, POLICY, pg_configs)
    async with tenant_tx(pool, tenant) as conn:
        pg = await _state_pg(conn, tenant)
    assert pg == _state_fake(fake)
    assert pg["tasks"], "the batches raise check-ins"
    assert ("cy", "forecast_short", "critical", "closed", "recovered") in pg["tasks"]  # a forecast stored, then cleared
    assert pg["deals"]["d-1"][1] == Decimal(300) and pg["deals"]["d-9"][0]
