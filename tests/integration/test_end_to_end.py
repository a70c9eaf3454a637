"""A CRM event goes in over HTTP and comes out as attainment, a check-in and a celebration."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from shared import topics
from shared.periods import PeriodKind, period_of
from tests.factories import deal, rep, target, this_quarter
from tests.integration.conftest import COACHING_GRACE_S, DATABASE_URL, post


def current_quarter() -> str:
    return period_of(PeriodKind.QUARTER, datetime.now(UTC), "Europe/Berlin").label


async def _attainment(tenant: str, rep_id: str, period: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        return await conn.fetchrow(
            "SELECT actual, target, revision FROM kpi.published_figures WHERE tenant = $1 AND scope_id = $2"
            " AND period = $3 AND metric = 'won_revenue'", tenant, rep_id, period)
    finally:
        await conn.close()


async def _until_known(tenant: str, rep_id: str) -> None:
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        for _ in range(120):
            if await conn.fetchval("SELECT 1 FROM kpi.reps WHERE tenant = $1 AND rep_id = $2", tenant, rep_id):
                return
            await asyncio.sleep(0.25)
        raise AssertionError(f"kpi never learned rep {rep_id}")
    finally:
        await conn.close()


async def _deal_seen(tenant: str, deal_id: str) -> bool:
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        return await conn.fetchval("SELECT 1 FROM kpi.deals WHERE tenant = $1 AND deal_id = $2",
                                   tenant, deal_id) is not None
    finally:
        await conn.close()


async def test_a_won_deal_meeting_its_target_is_celebrated_once_however_often_it_arrives(services, tenant, watch):
    w = await watch(tenant.slug, topics.CELEBRATIONS.name, topics.ATTAINMENT.name)
    (period, won_at), now = this_quarter(timedelta(minutes=1)), datetime.now(UTC)  # won in this quarter, always
    won = deal("d-1", "ana", "50000.50", updated_at=won_at)
    events = [rep("ana"), target("ana", period, "50000.50"), won]

    # The roster, the targets and the deals are three topics: nothing orders them against each other. Let kpi
    # know Ana first, so that the figure its celebration is made from carries her name.
    assert (await post(services["ingest"], tenant, [rep("ana")])).status_code == 200
    await _until_known(tenant.slug, "ana")
    first = await post(services["ingest"], tenant, events)
    assert first.status_code == 200, first.text
    assert [r["status"] for r in first.json()["results"]] == ["accepted"] * 3

    celebration = await w.wait_for(lambda m: m["type"] == "recognition.milestone.reached"
                                   and m["data"]["milestone"] == "quota_100")
    assert celebration["data"]["scope_id"] == "ana"
    assert celebration["data"]["period"] == period
    assert "Ana" in celebration["data"]["headline"]
    figures = await _attainment(tenant.slug, "ana", period)
    assert figures["actual"] == Decimal("50000.50") and figures["target"] == Decimal("50000.50")

    # The same events again, then out of order: an older open version of the deal under a new
    # event id, and the won version re-sent by the CRM under another id.
    again = await post(services["ingest"], tenant, events)
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 3
    stale = deal("d-1", "ana", "10.00", "open", updated_at=now - timedelta(hours=5))
    resent = copy.deepcopy(won)
    resent["id"] = "crm-retry-of-d-1"
    # lost, not open: an open deal would move ana's won-revenue forecast (one more deal with no close date)
    sentinel = deal("d-sentinel", "ana", "1.00", "lost", updated_at=now)
    later = await post(services["ingest"], tenant, [stale, resent, target("ana", period, "50000.50"), sentinel])
    assert [r["status"] for r in later.json()["results"]] == ["accepted"] * 4

    # The sentinel shares the deal partition (same rep key) and comes last: once kpi stored it,
    # it had processed everything before it.
    for _ in range(60):
        if await _deal_seen(tenant.slug, "d-sentinel"):
            break
        await w.poll(0.5)
    await w.poll(3)  # time for any (wrong) derived event to travel through recognition
    assert await _attainment(tenant.slug, "ana", period) == figures
    celebrations = [m for m in w.seen if m["type"] == "recognition.milestone.reached"]
    # the 50% and 100% thresholds crossed at once, the first win ever and of the quarter: each once, in two
    # cheers (the deal's milestones, then the figure's that kpi published)
    assert sorted(m["data"]["milestones"] for m in celebrations) == [["first_win_ever", "first_win"],
                                                                     ["quota_100", "quota_50"]]
    attainment_updates = [m for m in w.seen if m["type"] == "kpi.attainment.updated"
                          and m["data"]["metric"] == "won_revenue" and m["data"]["scope"] == "rep"
                          and m["data"]["period"] == period]
    assert [m["data"]["actual"] for m in attainment_updates][-1] == "50000.50"


async def test_a_rep_behind_pace_who_sends_nothing_gets_a_check_in(services, tenant, watch):
    w = await watch(tenant.slug, topics.TASKS.name, topics.ATTAINMENT.name)
    period = current_quarter()
    response = await post(services["ingest"], tenant, [rep("bo", manager="mgr-9"), target("bo", period, "90000")])
    assert response.status_code == 200, response.text

    update = await w.wait_for(lambda m: m["type"] == "kpi.attainment.updated"
                              and m["data"]["metric"] == "won_revenue" and m["data"]["scope"] == "rep")
    assert update["data"]["actual"] == "0" and update["data"]["target"] == "90000"
    task = await w.wait_for(lambda m: m["type"] == "coaching.task.created" and m["data"]["rule"] == "behind_pace",
                            timeout=30)
    data = task["data"]
    assert data["rep_id"] == "bo" and data["manager_id"] == "mgr-9" and data["rule"] == "behind_pace"
    assert data["evidence"]["period"] == period and data["evidence"]["actual"] == "0"
    assert "Bo" in data["summary"]

    # It came from the timer: coaching saw the attainment first and waited out the grace.
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        row = await conn.fetchrow(
            "SELECT t.created_at, a.first_seen_at FROM coaching.tasks t JOIN coaching.attainment a"
            " ON a.tenant = t.tenant AND a.scope_id = t.rep_id WHERE t.tenant = $1 AND t.rule = 'behind_pace'",
            tenant.slug)
    finally:
        await conn.close()
    assert row["created_at"] - row["first_seen_at"] >= timedelta(seconds=COACHING_GRACE_S)

    # Inside the cool-down nothing is repeated, however often the timer runs.
    await w.poll(3)
    # (no deals at all: stalled pipeline finds 0 of 90,000 covered too, once)
    created = [m["data"]["rule"] for m in w.seen if m["type"] == "coaching.task.created"]
    assert sorted(created) == ["behind_pace", "stalled_pipeline"]


async def test_an_imported_year_of_history_gives_exact_figures_and_no_celebration(services, tenant, watch):
    """Connecting a CRM imports its past: every figure comes out exact, nothing old is celebrated (issue 18)."""
    w = await watch(tenant.slug, topics.CELEBRATIONS.name)
    now = datetime.now(UTC).replace(microsecond=0)
    year = [now - timedelta(days=360 - 30 * i) for i in range(12)]  # a won deal a month, the last 30 days ago
    quarters: dict[str, Decimal] = {}
    for at in year:
        label = period_of(PeriodKind.QUARTER, at, "Europe/Berlin").label
        quarters[label] = quarters.get(label, Decimal(0)) + Decimal("10000.25")
    events = [rep("ivy"), *(target("ivy", q, "15000") for q in quarters),
              *(deal(f"old-{i}", "ivy", "10000.25", updated_at=at) for i, at in enumerate(year))]
    assert (await post(services["ingest"], tenant, [rep("ivy")])).status_code == 200
    await _until_known(tenant.slug, "ivy")
    response = await post(services["ingest"], tenant, events)
    assert response.status_code == 200, response.text
    assert {r["status"] for r in response.json()["results"]} == {"accepted"}

    # every quarter's figure is exact (kpi counts history like anything else) ...
    for label, total in quarters.items():
        for _ in range(120):
            if (row := await _attainment(tenant.slug, "ivy", label)) is not None and row["actual"] == total:
                break
            await asyncio.sleep(0.25)
        assert row is not None and (row["actual"], row["target"]) == (total, Decimal("15000")), (label, row)
    # ... and recognition put what history reached in its ledger quietly: the first win ever, the thresholds of
    # each quarter with two deals or more (20,000.50 of 15,000)
    reached = [q for q, total in quarters.items() if total >= 15000]
    assert len(reached) >= 3
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        for _ in range(120):
            rows = await conn.fetch("SELECT milestone, period, status FROM recognition.celebrations"
                                    " WHERE tenant = $1 AND scope_id = 'ivy'", tenant.slug)
            milestones = {(r["milestone"], r["period"]) for r in rows}
            if ("first_win_ever", "ever") in milestones and all(("quota_100", q) in milestones for q in reached):
                break
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
    assert ("first_win_ever", "ever") in milestones and all(("quota_100", q) in milestones for q in reached)
    assert {r["status"] for r in rows} == {"history"}, rows
    await w.poll(3)  # time for any (wrong) celebration to reach the topic
    assert [m for m in w.seen if m["type"] == "recognition.milestone.reached"] == []
