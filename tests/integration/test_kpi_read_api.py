"""kpi's read API: scorecards that explain themselves, leaderboards that page, ETags, tenant scoping."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx

from shared.periods import PeriodKind, period_of
from tests.factories import deal, rep, target
from tests.integration.conftest import create_tenant, post


async def _until_ok(client: httpx.AsyncClient, url: str, **kw: object) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        response = await client.get(url, **kw)  # type: ignore[arg-type]
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.3)


async def test_scorecards_leaderboards_and_explanations_are_tenant_scoped(services, tenant):
    quarter = period_of(PeriodKind.QUARTER, datetime.now(UTC), "Europe/Berlin").label
    at = datetime.now(UTC) - timedelta(hours=1)
    events = [rep("ana", team="north"), rep("bo", team="north"), target("ana", quarter, "1000"),
              deal("crm-17", "ana", "600", updated_at=at), deal("crm-18", "ana", "150", updated_at=at),
              deal("crm-19", "bo", "900", updated_at=at)]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    kpi = services["kpi"]
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        card = await _until_ok(client, f"{kpi}/v1/scorecards/ana?period={quarter}")
        assert card.status_code == 200, card.text
        won = next(f for f in card.json()["figures"] if f["metric"] == "won_revenue")
        while won["actual"] != "750":  # both deals may land in different batches
            card = await client.get(f"{kpi}/v1/scorecards/ana?period={quarter}")
            won = next(f for f in card.json()["figures"] if f["metric"] == "won_revenue")
        assert (won["target"], won["attainment"]) == ("1000", "0.7500")
        assert won["expected"] is not None and won["projected"] is not None

        why = (await client.get(won["explain"])).json()
        assert sorted(c["id"] for c in why) == ["crm-17", "crm-18"]

        again = await client.get(f"{kpi}/v1/scorecards/ana?period={quarter}",
                                 headers={"If-None-Match": card.headers["ETag"]})
        assert again.status_code in (200, 304)  # 200 only when as_of moved on: figures are "as of now"

        board = await _until_ok(client, f"{kpi}/v1/leaderboard?period={quarter}&metric=won_revenue&limit=1")
        first = board.json()
        assert [s["rep_id"] for s in first["standings"]] == ["bo"] and first["next_cursor"] == "1"
        second = (await client.get(f"{kpi}/v1/leaderboard?period={quarter}&metric=won_revenue&limit=1"
                                   f"&cursor={first['next_cursor']}")).json()
        assert [(s["rank"], s["rep_id"]) for s in second["standings"]] == [(2, "ana")]

        team = await _until_ok(client, f"{kpi}/v1/teams/north/scorecard?period={quarter}")
        team_won = next(f for f in team.json()["figures"] if f["metric"] == "won_revenue")
        assert team_won["actual"] == "1650"

    stranger = create_tenant()
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(100):  # the stranger's registry entry travels through Kafka first
            r = await client.get(f"{kpi}/v1/scorecards/ana?period={quarter}", headers=stranger.auth)
            if r.status_code != 401:
                break
            await asyncio.sleep(0.3)
        assert r.status_code == 404  # another tenant's rep does not exist for it
        nope = await client.get(f"{kpi}/v1/leaderboard", headers={"Authorization": "Bearer nope"})
        assert nope.status_code == 401
