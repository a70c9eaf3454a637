"""kpi publishes the figures people act on (those with a target), and keeps every figure exact on its read side.

Through kpi's real handler into real PostgreSQL: the outbox rows a batch writes are the targeted figures it
changed, once each however many records moved them; `KPI_PUBLISH_ALL_FIGURES` publishes every changed figure;
the `attainment` view shows every figure either way.
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

from services.kpi.app import SPEC
from services.kpi.handlers import make_handler
from shared import db
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent
from shared.consumer import Incoming
from shared.events import ActivityLogged, DealUpserted, RepUpserted, TargetSet
from tests.integration.conftest import DATABASE_URL

pytestmark = pytest.mark.integration

TZ = "Europe/Berlin"
NOW = datetime(2026, 10, 20, 12, tzinfo=UTC)  # fixed: never today's date
EXT = {"tenanttimezone": TZ, "tenantfiscalstart": "1"}


def _msg(tenant: str, data: Any, type_: str, at: datetime = NOW) -> Incoming:
    return Incoming("t", 0, 0, CloudEvent(str(uuid.uuid4()), type_, "api", at, tenant, {}, EXT), data)


def _won(tenant: str, deal: str, amount: str, day: int) -> Incoming:
    closed = datetime(2026, 10, day, 10, tzinfo=UTC)
    return _msg(tenant, DealUpserted(deal_id=deal, rep_id="ann", amount=Decimal(amount), currency="EUR", stage="won",
                                     created_at=closed - timedelta(days=3), closed_at=closed, updated_at=closed),
                "deal.upserted")


async def _published(publish_all: bool) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], Decimal]]:
    tenant = f"lean-{uuid.uuid4().hex[:10]}"
    pool = await db.create_pool(DATABASE_URL, SPEC.schema, min_size=1, max_size=2)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        rt = SimpleNamespace(clock=FixedClock(NOW), settings=SimpleNamespace(kpi_publish_all_figures=publish_all))
        handler = make_handler(rt)
        setup = [_msg(tenant, RepUpserted(rep_id="ann", name="Ann", team_id="east", timezone=TZ), "rep.upserted"),
                 _msg(tenant, TargetSet(scope="rep", scope_id="ann", metric="won_revenue", period="2026-Q4",
                                        value=Decimal("10000")), "target.set")]
        batch = [_won(tenant, "d1", "1000.50", 5), _won(tenant, "d2", "2000.25", 6),
                 _msg(tenant, ActivityLogged(activity_id="a1", rep_id="ann", kind="call",
                                             occurred_at=datetime(2026, 10, 7, 9, tzinfo=UTC)), "activity.logged")]
        for part in (setup, batch):
            async with pool.acquire() as conn, conn.transaction():
                await db.set_tenant(conn, tenant)
                await conn.execute("DELETE FROM outbox WHERE tenant = $1", tenant)
                await handler(conn, part)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT value FROM outbox WHERE tenant = $1 ORDER BY seq", tenant)
            await conn.execute("DELETE FROM outbox WHERE tenant = $1", tenant)
            shown = await conn.fetch("SELECT scope_id, period, metric, actual FROM attainment WHERE tenant = $1",
                                     tenant)
    finally:
        await pool.close()
    return ([json.loads(bytes(r["value"])) for r in rows],
            {(r["scope_id"], r["period"], r["metric"]): r["actual"] for r in shown})


def test_a_batch_publishes_only_the_targeted_figures_it_changed_once_each(stack: None) -> None:
    events, shown = asyncio.run(_published(publish_all=False))
    assert [(e["scope_id"], e["period"], e["metric"], e["actual"]) for e in events] == [
        ("ann", "2026-Q4", "won_revenue", "3000.75")]  # two wins in one batch: one update, the latest figures
    assert events[0]["target"] == "10000" and events[0]["attainment"] == "0.3001"
    # every figure is still exact on the read side, targeted or not
    assert shown[("ann", "2026-10", "won_revenue")] == Decimal("3000.75")
    assert shown[("ann", "2026-Q4", "avg_deal_size")] == Decimal("1500.3750")
    assert shown[("ann", "2026-10", "calls")] == 1
    assert shown[("east", "2026", "deals_won")] == 2
    assert shown[("ann", "2026-10", "win_rate")] == Decimal("1.0000")


def test_an_operator_may_publish_every_changed_figure(stack: None) -> None:
    events, _ = asyncio.run(_published(publish_all=True))
    keys = {(e["scope"], e["scope_id"], e["period"], e["metric"]) for e in events}
    assert ("rep", "ann", "2026-Q4", "won_revenue") in keys
    assert ("rep", "ann", "2026-10", "calls") in keys and ("team", "east", "2026", "deals_won") in keys
    assert len(keys) == len(events)  # once per key per batch
    by_key = {(e["scope"], e["scope_id"], e["period"], e["metric"]): e for e in events}
    assert by_key[("rep", "ann", "2026-10", "calls")]["target"] is None

