"""Contests through kpi's real handler, repository and clock into real PostgreSQL (issue 22, item 4): a contest
defined mid-way counts what its window already holds; a record that moves the standings publishes them once;
an edit or a deletion takes its part back; the clock starts and ends it, and its final standings stand.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from services.kpi import repository as repo
from services.kpi.app import SPEC
from services.kpi.contesting import refresh, tick
from services.kpi.contests import Contest
from services.kpi.handlers import make_handler
from services.kpi.ports import PgRepository
from shared import db
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent
from shared.consumer import Incoming
from shared.events import DealDeleted, DealUpserted, RepUpserted
from tests.integration.conftest import fresh_database

ROLE = "attain_contest_test"  # a working role of this test's own

pytestmark = pytest.mark.integration
TZ = "Europe/Berlin"
START = datetime(2026, 12, 1, tzinfo=UTC)
END = datetime(2026, 12, 15, tzinfo=UTC)
EXT = {"tenanttimezone": TZ, "tenantfiscalstart": "1"}


def _msg(tenant: str, data: Any, type_: str, at: datetime) -> Incoming:
    return Incoming("t", 0, 0, CloudEvent(str(uuid.uuid4()), type_, "api", at, tenant, {}, EXT), data)


def _won(tenant: str, deal: str, rep: str, amount: str, closed: datetime, version: int = 0) -> Incoming:
    return _msg(tenant, DealUpserted(deal_id=deal, rep_id=rep, amount=Decimal(amount), currency="EUR", stage="won",
                                     created_at=closed - timedelta(days=20), closed_at=closed,
                                     updated_at=closed + timedelta(minutes=version)), "deal.upserted", closed)


async def _drain(conn: Any, tenant: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("DELETE FROM outbox WHERE tenant = $1 AND topic = 'kpi.contests.v1' RETURNING seq, value",
                            tenant)
    return [json.loads(bytes(r["value"])) for r in sorted(rows, key=lambda r: r["seq"])]


async def _scenario() -> dict[str, Any]:
    tenant = f"contest-{uuid.uuid4().hex[:10]}"
    seen: dict[str, Any] = {}
    # as in production: the schema migrated by its owner, the work done by kpi's working role, which sees one
    # tenant at a time (row-level security): the contest clock must find the contests all the same
    url = await fresh_database(f"contests_{uuid.uuid4().hex[:8]}")
    owner = await db.create_pool(url, SPEC.schema, min_size=1, max_size=1)
    try:
        await db.migrate(owner, SPEC.schema, SPEC.migrations, grant_to=ROLE)
    finally:
        await owner.close()
    pool = await db.create_pool(db.app_dsn(url, ROLE), SPEC.schema, scope=None, create_schema=False, min_size=1,
                                max_size=2)
    try:

        async def batch(now: datetime, *records: Incoming) -> list[dict[str, Any]]:
            handler = make_handler(SimpleNamespace(clock=FixedClock(now)))  # type: ignore[arg-type]
            async with pool.acquire() as conn, conn.transaction():
                await db.set_tenant(conn, tenant)
                await handler(conn, list(records))
            async with db.tenant_tx(pool, tenant) as conn:
                return await _drain(conn, tenant)

        before = START + timedelta(days=2)
        await batch(before, *[_msg(tenant, RepUpserted(rep_id=r, name=r.title(), team_id="east", timezone=TZ),
                                   "rep.upserted", datetime(2026, 1, 1, tzinfo=UTC)) for r in ("ann", "bob")],
                    _won(tenant, "d1", "ann", "300", START + timedelta(days=1)),  # before the contest was defined
                    _won(tenant, "d0", "bob", "999", START - timedelta(minutes=1)))  # before its window
        # defined on day 2, after its start: it counts what the window already holds
        contest = Contest("push", "December push", "won_revenue", "reps", ("ann", "bob"), START, END,
                          prizes=("A weekend away", "Dinner"))
        async with pool.acquire() as conn, conn.transaction():
            await db.set_tenant(conn, tenant)
            assert await repo.put_contest(conn, tenant, contest, before)
            store = PgRepository(conn)
            await store.enqueue(await refresh(store, tenant, await store.books(tenant), ["push"], before))
        async with db.tenant_tx(pool, tenant) as conn:
            seen["defined"] = await _drain(conn, tenant)
        day3 = START + timedelta(days=3)
        seen["bob_leads"] = await batch(day3, _won(tenant, "d2", "bob", "500", day3))
        seen["outside"] = await batch(day3, _won(tenant, "d3", "bob", "500", END + timedelta(days=1)))
        seen["again"] = await batch(day3, _won(tenant, "d2", "bob", "500", day3))  # a redelivery
        seen["edited"] = await batch(day3, _won(tenant, "d2", "bob", "200", day3, version=1))  # ann leads again
        seen["deleted"] = await batch(day3, _msg(tenant, DealDeleted(deal_id="d1", updated_at=day3), "deal.deleted",
                                                 day3))
        seen["tie"] = await batch(day3, _won(tenant, "d4", "ann", "200", day3))
        # the clock: the end comes, then the settling time
        seen["ended_not_final"] = await tick(pool, END + timedelta(minutes=1)) or 0
        seen["final"] = await tick(pool, END + timedelta(minutes=15))
        async with db.tenant_tx(pool, tenant) as conn:
            seen["final_events"] = await _drain(conn, tenant)
        seen["late"] = await batch(END + timedelta(hours=1), _won(tenant, "d5", "bob", "50", END - timedelta(hours=1)))
        async with db.tenant_tx(pool, tenant) as conn:
            seen["stored"] = await conn.fetchrow("SELECT status, standings, revision FROM contests WHERE tenant = $1",
                                                 tenant)
    finally:
        await pool.close()
    return seen


def _board(events: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    [event] = events
    return [(s["participant_id"], s["rank"], s["value"]) for s in event["standings"]]


def test_a_contest_counts_its_window_moves_with_edits_and_deletions_and_its_final_standings_stand(stack: None) -> None:
    seen = asyncio.run(_scenario())
    assert _board(seen["defined"]) == [("ann", 1, "300"), ("bob", 2, "0")]
    assert seen["defined"][0]["status"] == "running" and seen["defined"][0]["leaders"] == ["ann"]
    assert _board(seen["bob_leads"]) == [("bob", 1, "500"), ("ann", 2, "300")]
    assert seen["outside"] == [] and seen["again"] == []  # nothing in the window moved: nothing to say
    assert _board(seen["edited"]) == [("ann", 1, "300"), ("bob", 2, "200")]
    assert _board(seen["deleted"]) == [("bob", 1, "200"), ("ann", 2, "0")]
    tie = seen["tie"][0]
    assert [(s["participant_id"], s["rank"], s["tied"]) for s in tie["standings"]] == [
        ("ann", 1, True), ("bob", 1, True)]
    assert tie["leaders"] == ["ann", "bob"]
    revisions = [e["revision"] for key in ("defined", "bob_leads", "edited", "deleted", "tie") for e in seen[key]]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
    assert seen["ended_not_final"] == 0  # ended, settling: late CRM syncs still count
    [final] = seen["final_events"]
    assert final["status"] == "final" and final["prizes"] == ["A weekend away", "Dinner"]
    assert seen["late"] == []  # final: frozen
    stored = seen["stored"]
    assert stored["status"] == "final" and stored["revision"] == final["revision"]
    assert [s["value"] for s in json.loads(stored["standings"])] == ["200", "200"]
