"""Forecasts through kpi's real handler into real PostgreSQL (issue 22, item 2): a won_revenue figure whose
period has not ended is published with what its open deals may add and the chance of reaching its target;
a change of an open deal alone (its probability) publishes the figure again; a deal without a CRM probability
is given the rep's own win rate in its stage; the team's forecast holds its members' deals.
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
from shared.events import DealUpserted, RepUpserted, TargetSet, TeamUpserted
from tests.integration.conftest import DATABASE_URL
from tests.odds import exhaustive, to_places

pytestmark = pytest.mark.integration
TZ = "Europe/Berlin"
NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)  # fixed: never today's date (2026-Q4 ends 31 December, Berlin)
EXT = {"tenanttimezone": TZ, "tenantfiscalstart": "1"}
IN_Q4 = datetime(2026, 12, 15, 10, tzinfo=UTC)
IN_Q1 = datetime(2027, 1, 15, 10, tzinfo=UTC)


def _msg(tenant: str, data: Any, type_: str, at: datetime = NOW) -> Incoming:
    return Incoming("t", 0, 0, CloudEvent(str(uuid.uuid4()), type_, "api", at, tenant, {}, EXT), data)


def _deal(tenant: str, deal: str, amount: str, *, stage: str = "open", label: str | None = None,
          closed: datetime | None = None, expected: datetime | None = None, p: str | None = None,
          category: str | None = None, updated: datetime = NOW - timedelta(hours=1)) -> Incoming:
    return _msg(tenant, DealUpserted(
        deal_id=deal, rep_id="ann", amount=Decimal(amount), currency="EUR", stage=stage, stage_label=label,
        created_at=datetime(2026, 3, 1, tzinfo=UTC), closed_at=closed, updated_at=updated, expected_close_at=expected,
        probability=None if p is None else Decimal(p), forecast_category=category), "deal.upserted")


def _chance(gap: Decimal, deals: list[tuple[Decimal, Decimal]]) -> Decimal:
    """Every outcome of every deal, counted (`tests/odds.py`): the reference the forecast's probability must equal."""
    return to_places(exhaustive(gap, deals))


async def _run(batches: list[list[Incoming]], tenant: str) -> list[list[dict[str, Any]]]:
    """Each batch's outbox: the events it published."""
    pool = await db.create_pool(DATABASE_URL, SPEC.schema, min_size=1, max_size=2)
    out = []
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        handler = make_handler(SimpleNamespace(clock=FixedClock(NOW)))  # type: ignore[arg-type]
        for batch in batches:
            async with pool.acquire() as conn, conn.transaction():
                await db.set_tenant(conn, tenant)
                await handler(conn, batch)
            async with pool.acquire() as conn:
                rows = await conn.fetch("DELETE FROM outbox WHERE tenant = $1 RETURNING seq, value", tenant)
            out.append([json.loads(bytes(r["value"])) for r in sorted(rows, key=lambda r: r["seq"])])
    finally:
        await pool.close()
    return out


def test_a_won_revenue_figure_carries_its_forecast_and_moves_with_its_open_deals(stack: None) -> None:
    tenant = f"fc-{uuid.uuid4().hex[:10]}"
    setup = [_msg(tenant, TeamUpserted(team_id="east", name="East", parent_team_id="emea"), "team.upserted"),
             _msg(tenant, RepUpserted(rep_id="ann", name="Ann", team_id="east", timezone=TZ), "rep.upserted",
                  at=datetime(2026, 1, 1, tzinfo=UTC))]
    setup += [_msg(tenant, TargetSet(scope=s, scope_id=i, metric="won_revenue", period="2026-Q4",
                                     value=Decimal("100000")), "target.set")
              for s, i in (("rep", "ann"), ("team", "east"))]
    # history: six closed deals that stood in "Proposal" (4 won), all 10,000-100,000, this year
    history = []
    for n, won in enumerate([True, True, True, True, False, False]):
        closed = datetime(2026, 6, 1 + n, tzinfo=UTC)
        history.append(_deal(tenant, f"h{n}", "20000", label="Proposal", updated=closed - timedelta(days=9)))
        history.append(_deal(tenant, f"h{n}", "20000", stage="won" if won else "lost", label="Closed",
                             closed=closed, updated=closed))
    pipeline = [
        _deal(tenant, "won1", "40000", stage="won", closed=datetime(2026, 10, 5, tzinfo=UTC)),
        _deal(tenant, "big", "50000", expected=IN_Q4, p="0.5", category="commit"),
        _deal(tenant, "mid", "30000", expected=IN_Q4, label="Proposal"),  # no probability: 4 of 6
        _deal(tenant, "small", "10000", expected=IN_Q4, p="0.9", category="best_case"),
        _deal(tenant, "later", "90000", expected=IN_Q1, p="0.9"),  # next quarter: not in Q4's
        _deal(tenant, "dropped", "70000", expected=IN_Q4, p="0.9", category="omitted"),
        _deal(tenant, "someday", "5000"),  # no expected close: undated
    ]
    edit = [_deal(tenant, "big", "50000", expected=IN_Q4, p="0.8", category="commit", updated=NOW)]
    _, _, published, edited = asyncio.run(_run([setup, history, pipeline, edit], tenant))

    quarter = {(e["scope"], e["scope_id"]): e for e in published if e["period"] == "2026-Q4"
               and e["metric"] == "won_revenue"}
    mine = quarter[("rep", "ann")]["forecast"]
    assert (mine["closed"], mine["commit"], mine["best_case"], mine["pipeline"]) == ("40000", "50000", "10000", "30000")
    assert (mine["gap"], mine["open_deals"], mine["estimated"], mine["undated"]) == ("60000", 3, 1, 1)
    assert Decimal(mine["weighted"]) == Decimal(40000 + 25000 + 9000) + Decimal(30000) * Decimal("0.6667")
    mid = next(d for d in mine["deals"] if d["deal_id"] == "mid")
    assert (mid["basis"], mid["probability"]) == ("history", "0.6667")
    assert [d["deal_id"] for d in mine["deals"]] == ["big", "mid", "small"]  # largest weighted first
    reference = _chance(Decimal(60000), [(Decimal(50000), Decimal("0.5")), (Decimal(30000), Decimal("0.6667")),
                                          (Decimal(10000), Decimal("0.9"))])
    assert (Decimal(mine["probability"]), mine["method"], mine["error"]) == (reference, "exact", "0")
    assert quarter[("team", "east")]["forecast"] == mine  # the team holds Ann's deals
    assert not any("forecast" in e and e["forecast"] for e in published if e["metric"] != "won_revenue")

    # only an open deal's probability changed: the figure is published again, same actual, new odds
    again = [e for e in edited if e["metric"] == "won_revenue" and e["period"] == "2026-Q4"]
    assert {(e["scope"], e["scope_id"]) for e in again} == {("rep", "ann"), ("team", "east")}
    now = next(e for e in again if e["scope"] == "rep")
    assert now["actual"] == "40000" and now["revision"] > quarter[("rep", "ann")]["revision"]
    assert Decimal(now["forecast"]["probability"]) == _chance(Decimal(60000), [
        (Decimal(50000), Decimal("0.8")), (Decimal(30000), Decimal("0.6667")), (Decimal(10000), Decimal("0.9"))])
