"""kpi's read API: scorecards that explain themselves, leaderboards that page, ETags, tenant scoping."""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from shared.periods import PeriodKind, period_bounds, period_of
from tests.factories import deal, rep, target, team, this_quarter
from tests.integration.conftest import create_tenant, post, tenant_cli, token_cli


async def _until_ok(client: httpx.AsyncClient, url: str, **kw: object) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        response = await client.get(url, **kw)  # type: ignore[arg-type]
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.3)


async def test_scorecards_leaderboards_and_explanations_are_tenant_scoped(services, tenant):
    quarter, at = this_quarter(timedelta(hours=1))
    events = [rep("ana", team="north"), rep("bo", team="north"), target("ana", quarter, "1000"),
              deal("crm-17", "ana", "600", updated_at=at), deal("crm-18", "ana", "150", updated_at=at),
              deal("crm-19", "bo", "900", updated_at=at)]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    kpi = services["kpi"]
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        card = await _until_ok(client, f"{kpi}/v1/scorecards/ana?period={quarter}")
        assert card.status_code == 200, card.text
        won = next(f for f in card.json()["figures"] if f["metric"] == "won_revenue")
        while (won["actual"], won["target"]) != ("750", "1000"):  # deals and target: different topics, batches
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


async def test_nested_teams_roll_up_into_regions_and_a_re_parented_team_moves_its_figures(services, tenant):
    quarter, at = this_quarter(timedelta(hours=1))
    events = [team("north", "emea"), team("south", "emea"), team("emea", "acme"), team("apac", "acme"),
              rep("ana", team="north"), rep("bo", team="south"),
              deal("n-1", "ana", "600", updated_at=at), deal("n-2", "bo", "150.25", updated_at=at)]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    kpi = services["kpi"]

    async def won(client: httpx.AsyncClient, team_id: str, expected: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            response = await client.get(f"{kpi}/v1/teams/{team_id}/scorecard?period={quarter}")
            figures = response.json().get("figures", []) if response.status_code == 200 else []
            actual = next((f["actual"] for f in figures if f["metric"] == "won_revenue"), None)
            if actual == expected:
                return
            assert time.monotonic() < deadline, f"{team_id}: won_revenue {actual}, expected {expected}"
            await asyncio.sleep(0.3)

    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        await won(client, "north", "600")
        await won(client, "emea", "750.25")
        await won(client, "acme", "750.25")
        # south moves from EMEA to APAC: its figures move with it, everywhere above
        assert (await post(services["ingest"], tenant, [team("south", "apac")])).status_code == 200
        await won(client, "apac", "150.25")
        await won(client, "emea", "600")
        await won(client, "acme", "750.25")


async def test_an_exchange_rate_set_for_a_tenant_converts_its_foreign_deals(services, tenant):
    quarter, at = this_quarter(timedelta(hours=1))
    events = [rep("cy", team="west"), deal("fx-1", "cy", "200", updated_at=at, currency="USD"),
              deal("fx-2", "cy", "10.50", updated_at=at)]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    kpi = services["kpi"]

    async def won(client: httpx.AsyncClient, expected: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            response = await client.get(f"{kpi}/v1/scorecards/cy?period={quarter}")
            figures = response.json().get("figures", []) if response.status_code == 200 else []
            actual = next((f["actual"] for f in figures if f["metric"] == "won_revenue"), None)
            if actual is not None and Decimal(actual) == Decimal(expected):
                return
            assert time.monotonic() < deadline, f"won_revenue {actual}, expected {expected}"
            await asyncio.sleep(0.3)

    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        await won(client, "10.50")  # no USD rate yet: the USD deal is left out, not added as euros
        answer = tenant_cli("set-rate", tenant.slug, "USD", "0.9215")
        assert answer["status"] == "rate set"
        await won(client, "194.80")  # 200 x 0.9215 + 10.50, recounted when the registry said so
        # a later rate applies from its day on: the deal closed before keeps the old one
        tenant_cli("set-rate", tenant.slug, "USD", "2", "--from", (datetime.now(UTC) + timedelta(days=2)).date()
                   .isoformat())
        await asyncio.sleep(2)
        await won(client, "194.80")
    with pytest.raises(subprocess.CalledProcessError) as refused:
        tenant_cli("set-rate", tenant.slug, "EUR", "1.1")
    assert "base currency" in refused.value.stderr


async def test_leaderboards_rank_by_amount_or_by_share_of_target_with_ties_and_team_against_team(services, tenant):
    """Issue 18, item 6: a rep with less money can lead by % of target; equal figures share a rank."""
    quarter, at = this_quarter(timedelta(hours=1))
    team_target = [{**target("x", quarter, value), "data": {"scope": "team", "scope_id": team_id,
                                                            "metric": "won_revenue", "period": quarter,
                                                            "value": value}}
                   for team_id, value in (("north", "3000"), ("south", "1000"))]
    events = [rep("ana", team="north"), rep("bo", team="north"), rep("cy", team="south"),
              target("ana", quarter, "1000"), target("cy", quarter, "1200"), *team_target,
              deal("t-1", "ana", "750", updated_at=at), deal("t-2", "bo", "900", updated_at=at),
              deal("t-3", "cy", "900", updated_at=at)]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    kpi = services["kpi"]
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        deadline = time.monotonic() + 30
        while True:
            amount = (await client.get(f"{kpi}/v1/leaderboard?period={quarter}")).json()
            teams = (await client.get(f"{kpi}/v1/leaderboard/teams?period={quarter}")).json()
            if (len(amount.get("standings", [])) == 3 and len(teams.get("standings", [])) == 2
                    and all(t["target"] for t in teams["standings"])) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        # by amount: bo and cy both won 900 and share first place; ana is third, not second
        assert [(s["rep_id"], s["rank"], s["tied"]) for s in amount["standings"]] == [
            ("bo", 1, True), ("cy", 1, True), ("ana", 3, False)]
        share = (await client.get(f"{kpi}/v1/leaderboard?period={quarter}&rank_by=attainment")).json()
        # by share: ana 750 of 1,000 and cy 900 of 1,200 are both 75 %; bo has no target and no rank
        assert share["rank_by"] == "attainment"
        assert [(s["rep_id"], s["rank"], s["tied"], s["attainment"]) for s in share["standings"]] == [
            ("ana", 1, True, "0.7500"), ("cy", 1, True, "0.7500"), ("bo", None, False, None)]
        # team against team, by share (the default): south's 900 of 1,000 beats north's 1,650 of 3,000
        assert [(t["team_id"], t["rank"], t["actual"]) for t in teams["standings"]] == [
            ("south", 1, "900"), ("north", 2, "1650")]
        by_amount = (await client.get(f"{kpi}/v1/leaderboard/teams?period={quarter}&rank_by=amount")).json()
        assert [t["team_id"] for t in by_amount["standings"]] == ["north", "south"]
        bad = await client.get(f"{kpi}/v1/leaderboard?rank_by=luck")
        assert bad.status_code == 422 and "rank_by" in bad.text


def _open(deal_id: str, rep_id: str, amount: str, at: datetime, p: str, category: str) -> dict[str, object]:
    event = deal(deal_id, rep_id, amount, "open", updated_at=at)
    event["data"].update(expected_close_at=event["data"]["updated_at"], probability=p,  # type: ignore[attr-defined]
                         forecast_category=category)
    return event


async def test_a_forecast_on_the_scorecard_and_explained_deal_by_deal_for_whoever_may_see_them(services, tenant):
    """Issue 22 item 2 through the real stack: CRM probabilities in, the chance of reaching the target out, on the
    scorecard and explained deal by deal (each deal's swing); a rep sees the team's totals, not others' deals."""
    quarter, at = this_quarter(timedelta(hours=1))
    events = [rep("ana", team="north", manager="mia"), rep("bo", team="north", manager="mia"),
              target("ana", quarter, "1000"), deal("f-won", "ana", "600", updated_at=at),
              _open("f-1", "ana", "300", at, "0.5", "commit"), _open("f-2", "ana", "200", at, "0.5", "pipeline"),
              _open("f-3", "bo", "50", at, "0.2", "best_case")]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    kpi = services["kpi"]
    bo = await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", "rep", "--rep", "bo")
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        deadline = time.monotonic() + 30
        while True:
            card = await client.get(f"{kpi}/v1/scorecards/ana?period={quarter}")
            won = next((f for f in card.json()["figures"] if f["metric"] == "won_revenue"), None) \
                if card.status_code == 200 else None
            if won and won["target"] == "1000" and won["forecast"] and won["forecast"]["open_deals"] == 2:
                break
            assert time.monotonic() < deadline, card.text
            await asyncio.sleep(0.3)
        # 400 to go: only winning both open deals (300 + 200) gets there, 0.5 x 0.5
        assert (won["forecast"]["probability"], won["forecast"]["gap"], won["forecast"]["weighted"]) == (
            "0.2500", "400", "850.0000")
        view = (await client.get(f"{kpi}/v1/scorecards/ana/forecast?period={quarter}")).json()
        assert [(d["deal_id"], d["swing"], d["basis"]) for d in view["deals"]] == [
            ("f-1", "0.5000", "crm"), ("f-2", "0.5000", "crm")]  # equal swings: the larger weighted first
        assert view["how"].startswith("exact") and view["forecast"]["commit"] == "300"
        team = (await client.get(f"{kpi}/v1/teams/north/forecast?period={quarter}")).json()
        assert (team["forecast"]["open_deals"], team["hidden_deals"]) == (3, 0)
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {bo['token']}"}) as client:
        for _ in range(100):  # the token's grant travels through Kafka first
            mine = await client.get(f"{kpi}/v1/teams/north/forecast?period={quarter}")
            if mine.status_code != 401:
                break
            await asyncio.sleep(0.3)
        seen = mine.json()
        assert (seen["forecast"]["open_deals"], seen["hidden_deals"], [d["deal_id"] for d in seen["deals"]]) == (
            3, 2, ["f-3"])
        assert (await client.get(f"{kpi}/v1/scorecards/ana/forecast?period={quarter}")).status_code == 404


async def test_without_a_period_reads_and_pages_show_the_latest_quarter_that_has_figures(services, tenant):
    """A tenant whose last deals were won in the quarter before this one (a new quarter's first days, a demo
    played in the past): a read without `period`, the leaderboard page and the TV show that quarter, not an
    empty one; once this quarter has figures it is the one shown."""
    quarter, at = this_quarter(timedelta(hours=1))
    start = period_bounds(quarter, "Europe/Berlin")[0]
    earlier = period_of(PeriodKind.QUARTER, start - timedelta(days=1), "Europe/Berlin").label
    events = [rep("ana", team="north"), deal("old-1", "ana", "400", updated_at=start - timedelta(days=3))]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    kpi = services["kpi"]
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        await _until_ok(client, f"{kpi}/v1/scorecards/ana?period={earlier}")
        card = (await client.get(f"{kpi}/v1/scorecards/ana")).json()
        won = next(f for f in card["figures"] if f["metric"] == "won_revenue")
        assert card["period"] == earlier and won["actual"] == "400"
        board = (await client.get(f"{kpi}/v1/leaderboard?metric=won_revenue")).json()
        assert board["period"] == earlier and [s["rep_id"] for s in board["standings"]] == ["ana"]
        signed = await client.post(f"{kpi}/signin", content=f"token={tenant.token}",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        cookies = signed.cookies
        page = await client.get(f"{kpi}/leaderboard", cookies=cookies)
        assert f"Leaderboard · Won revenue · {earlier}" in page.text and "No figures" not in page.text
        tv = await client.get(f"{kpi}/tv", cookies=cookies)
        assert f"period={earlier}" in tv.text

        assert (await post(services["ingest"], tenant, [deal("new-1", "ana", "50", updated_at=at)])).status_code == 200
        await _until_ok(client, f"{kpi}/v1/scorecards/ana?period={quarter}")
        assert (await client.get(f"{kpi}/v1/scorecards/ana")).json()["period"] == quarter
        page = await client.get(f"{kpi}/leaderboard", cookies=cookies)
        assert f"Leaderboard · Won revenue · {quarter}" in page.text
