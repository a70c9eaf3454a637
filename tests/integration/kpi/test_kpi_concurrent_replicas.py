"""Two kpi replicas applying batches at the same time, on real PostgreSQL: nothing counted twice.

The `zombie` chaos scenario once double-counted a deal's `pipeline_created` for its first owner and that
owner's teams (`3,000.19` too high in every period). The cause: a deal whose owner changes travels on two
partitions (the key is `<tenant>:<rep_id>`), so two replicas can apply versions of the same deal at the same
time. When the deal is new, replica A inserts its first version; replica B, applying the next version, read
"no stored version" before A committed, then its upsert waited for A's row and overwrote it. B took out
nothing (it had seen no old version) and put its version in: A's version stayed counted too. A paused and
resumed replica (the zombie) holds its transaction open for seconds and makes that window wide; the deadlock
retries seen in its logs came from the same two replicas touching the same rows.

These tests build that interleaving deterministically: A's batch is applied and left uncommitted, B's batch
starts and is seen waiting for A's lock, then A commits (or fails with a deadlock and is retried), then B.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

from services.kpi.app import SPEC
from services.kpi.handlers import make_handler
from shared import db
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent
from shared.consumer import Incoming
from shared.events import DealDeleted, DealUpserted, RepUpserted
from tests.integration.conftest import DATABASE_URL

pytestmark = pytest.mark.integration

TZ = "Europe/Berlin"
NOW = datetime(2026, 10, 20, 12, tzinfo=UTC)  # a fixed moment: the test never reads today's date
CREATED = datetime(2026, 10, 5, 9, tzinfo=UTC)
AMOUNT = Decimal("3000.19")
EXT = {"tenanttimezone": TZ, "tenantfiscalstart": "1"}


def _incoming(tenant: str, data: Any, type_: str, partition: int, offset: int) -> Incoming:
    event = CloudEvent(str(uuid.uuid4()), type_, "api", NOW, tenant, {}, EXT)
    return Incoming("sales.deals.v1", partition, offset, event, data)


def _version(tenant: str, rep: str, minutes: int, partition: int) -> Incoming:
    deal = DealUpserted(deal_id="d-1", rep_id=rep, amount=AMOUNT, currency="EUR", stage="open",
                        created_at=CREATED, updated_at=CREATED + timedelta(minutes=minutes))
    return _incoming(tenant, deal, "deal.upserted", partition, minutes)


async def _setup(pool: asyncpg.Pool, tenant: str) -> Any:
    """The tenant's calendar and roster, committed before the race (as in a running deployment)."""
    handler = make_handler(SimpleNamespace(clock=FixedClock(NOW)))
    roster = [_incoming(tenant, RepUpserted(rep_id=rep, name=rep, team_id=team, timezone=TZ), "rep.upserted", 0, i)
              for i, (rep, team) in enumerate((("rep-010", "team-01"), ("rep-011", "team-02")))]
    async with pool.acquire() as conn, conn.transaction():
        await db.set_tenant(conn, tenant)
        await handler(conn, roster)
    return handler


async def _waiting_for_a_lock(pool: asyncpg.Pool, pid: int) -> bool:
    async with pool.acquire() as conn:
        return bool(await conn.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid))


async def _race(first: list[Incoming], second: list[Incoming], *, deadlock_first: bool = False,
                b_must_wait: bool = True) -> dict[str, Any]:
    tenant = f"race-{uuid.uuid4().hex[:10]}"
    pool = await db.create_pool(DATABASE_URL, SPEC.schema, min_size=3, max_size=4)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        handler = await _setup(pool, tenant)
        first = [_retag(m, tenant) for m in first]
        second = [_retag(m, tenant) for m in second]
        a, b = await pool.acquire(), await pool.acquire()
        try:
            tx_a = a.transaction()
            await tx_a.start()
            await db.set_tenant(a, tenant)
            await handler(a, first)  # replica A: applied, not yet committed

            async def replica_b() -> None:
                async with b.transaction():
                    await db.set_tenant(b, tenant)
                    await handler(b, second)

            task = asyncio.create_task(replica_b())
            for _ in range(200):  # B must be blocked behind A's lock before A finishes
                if await _waiting_for_a_lock(pool, b.get_server_pid()) or task.done():
                    break
                await asyncio.sleep(0.02)
            assert not (b_must_wait and task.done()), "replica B did not wait for replica A: the race was not built"
            if deadlock_first:  # A is chosen as the deadlock victim: rolled back, and retried after B
                await tx_a.rollback()
                await task
                async with a.transaction():
                    await db.set_tenant(a, tenant)
                    await handler(a, first)
            else:
                await tx_a.commit()
                await task
        finally:
            await pool.release(a)
            await pool.release(b)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT scope, scope_id, period, metric, actual FROM attainment"
                                    " WHERE tenant = $1 AND metric = 'pipeline_created'", tenant)
    finally:
        await pool.close()
    return {f"{r['scope']}:{r['scope_id']}:{r['period']}": r["actual"] for r in rows}


def _retag(msg: Incoming, tenant: str) -> Incoming:
    event = CloudEvent(msg.event.id, msg.event.type, msg.event.source, msg.event.time, tenant, {}, EXT)
    return Incoming(msg.topic, msg.partition, msg.offset, event, msg.data)


PLACEHOLDER = "placeholder"


def test_a_new_deal_moved_to_another_owner_on_another_replica_is_counted_once(stack: None) -> None:
    first = [_version(PLACEHOLDER, "rep-010", 1, partition=0)]   # created by rep-010: replica A
    second = [_version(PLACEHOLDER, "rep-011", 2, partition=1)]  # handed to rep-011: replica B
    figures = asyncio.run(_race(first, second))
    assert figures.get("rep:rep-010:2026-10", Decimal(0)) == 0, figures
    assert figures.get("team:team-01:2026-Q4", Decimal(0)) == 0, figures
    assert figures["rep:rep-011:2026-10"] == AMOUNT
    assert figures["team:team-02:2026"] == AMOUNT


def test_a_new_deal_deleted_on_another_replica_while_being_created_counts_for_nothing(stack: None) -> None:
    first = [_version(PLACEHOLDER, "rep-010", 1, partition=0)]
    gone = DealDeleted(deal_id="d-1", updated_at=CREATED + timedelta(minutes=2))
    second = [_incoming(PLACEHOLDER, gone, "deal.deleted", 1, 2)]
    figures = asyncio.run(_race(first, second))
    assert all(value == 0 for value in figures.values()), figures


def test_a_batch_rolled_back_by_a_deadlock_and_retried_counts_once(stack: None) -> None:
    first = [_version(PLACEHOLDER, "rep-010", 1, partition=0)]
    second = [_version(PLACEHOLDER, "rep-011", 2, partition=1)]
    figures = asyncio.run(_race(first, second, deadlock_first=True))
    assert figures.get("rep:rep-010:2026-10", Decimal(0)) == 0, figures
    assert figures["rep:rep-011:2026-Q4"] == AMOUNT
    assert figures["team:team-02:2026-10"] == AMOUNT


def test_a_deal_applied_on_another_replica_while_its_rep_moves_counts_for_the_new_team(stack: None) -> None:
    """Replica A applies rep-010's move to team-02 from 10 October (reads the rep's history, re-attributes it)
    and has not committed; replica B applies a deal rep-010 won on 12 October. Before, B went ahead with the
    memberships it read before the move (team-01), and A had read the history before B's deal was there: the
    deal stayed counted for team-01 for good (the zombie chaos scenario: team figures short by a deal and an
    activity). Now a roster change holds the tenant's kpi lock alone: B waits, then reads the move."""
    moved = datetime(2026, 10, 10, tzinfo=UTC)
    move = RepUpserted(rep_id="rep-010", name="rep-010", team_id="team-02", timezone=TZ)
    first = [Incoming("sales.roster.v1", 0, 9, CloudEvent(str(uuid.uuid4()), "rep.upserted", "api", moved,
                                                          PLACEHOLDER, {}, EXT), move)]
    won = DealUpserted(deal_id="d-9", rep_id="rep-010", amount=AMOUNT, currency="EUR", stage="won",
                       created_at=moved + timedelta(days=1), closed_at=moved + timedelta(days=2),
                       updated_at=moved + timedelta(days=2))
    second = [_incoming(PLACEHOLDER, won, "deal.upserted", 1, 1)]
    figures = asyncio.run(_race(first, second, b_must_wait=False))
    assert figures.get("team:team-01:2026-10", Decimal(0)) == 0, figures
    assert figures["team:team-02:2026-10"] == AMOUNT, figures
