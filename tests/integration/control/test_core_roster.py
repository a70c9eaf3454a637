"""The control room's roster (issue 17, item 5) against the real stack: moving a rep to another team with the date
the move takes effect. The page sends the `rep.upserted` dated that day's midnight in the tenant's zone, and kpi
moves what the rep did from then on into the new team; a day the events cannot say (in the future, or before
the rep's last roster change) is refused with the reason and sends nothing. Dated in the previous quarter, so
the test holds on any day."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx

from services.kpi.dashboard.control_core_rules import previous_period
from services.kpi.dashboard.web import csrf_token
from shared.periods import PeriodKind, period_bounds, period_of
from tests.factories import deal, rep, team
from tests.integration.conftest import Tenant, create_tenant, post

BERLIN = ZoneInfo("Europe/Berlin")


async def _won(kpi: str, tenant: Tenant, team_id: str, period: str) -> Decimal | None:
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        answer = await client.get(f"{kpi}/v1/teams/{team_id}/scorecard", params={"period": period})
    if answer.status_code != 200:
        return None
    found = [f["actual"] for f in answer.json()["figures"] if f["metric"] == "won_revenue"]
    return Decimal(found[0]) if found else None


async def _until_won(kpi: str, tenant: Tenant, period: str, wanted: dict[str, Decimal | None],
                     timeout: float = 60) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while (got := {t: await _won(kpi, tenant, t, period) for t in wanted}) != wanted:
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.3)


async def _move(kpi: str, tenant: Tenant, effective: str) -> dict[str, list[str]]:
    """The roster page's form: ana to team south from `effective`; what the page said (its redirect's query)."""
    form = {"csrf": csrf_token(tenant.token), "rep_id": "ana", "name": "Ana", "team_id": "south",
            "manager_id": "mia", "timezone": "Europe/Berlin", "active": "on", "effective": effective}
    async with httpx.AsyncClient(timeout=15, cookies={"attain_dashboard": tenant.token}) as client:
        answer = await client.post(f"{kpi}/admin/roster/rep", data=form)
    assert answer.status_code == 303, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query)


async def test_a_move_dated_in_the_past_moves_what_the_rep_did_from_that_day(services: dict[str, str]) -> None:
    kpi = services["kpi"]
    tenant = await asyncio.to_thread(create_tenant)
    now = datetime.now(UTC)
    quarter = previous_period(period_of(PeriodKind.QUARTER, now, BERLIN).label)
    start, _ = period_bounds(quarter, BERLIN)
    early, late = start + timedelta(days=5, hours=10), start + timedelta(days=40, hours=10)
    events = [team("north", None), team("south", None),
              rep("ana", team="north", manager="mia", name="Ana", at=start - timedelta(days=10)),
              deal("d-early", "ana", "4000", updated_at=early, closed_at=early),
              deal("d-late", "ana", "2500", updated_at=late, closed_at=late)]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    await _until_won(kpi, tenant, quarter, {"north": Decimal(6500), "south": None})

    # what the events cannot say is refused, by its reason, and nothing is sent
    tomorrow = (now.astimezone(BERLIN) + timedelta(days=1)).date().isoformat()
    assert "in the future" in (await _move(kpi, tenant, tomorrow))["error"][0]
    too_early = (start - timedelta(days=20)).astimezone(BERLIN).date().isoformat()
    assert "not after this rep's last roster change" in (await _move(kpi, tenant, too_early))["error"][0]

    # from the 20th day of the quarter: the early deal stays with north, the late one moves to south
    day = (start + timedelta(days=20)).astimezone(BERLIN).date()
    said = await _move(kpi, tenant, day.isoformat())
    assert said.get("said", [""])[0].startswith(f"Rep ana moved to team south from {day.isoformat()}"), said
    await _until_won(kpi, tenant, quarter, {"north": Decimal(4000), "south": Decimal(2500)})


async def test_a_rep_added_and_renamed_on_the_page_is_on_the_roster(services: dict[str, str]) -> None:
    kpi = services["kpi"]
    tenant = await asyncio.to_thread(create_tenant)
    assert (await post(services["ingest"], tenant, [team("north", None)])).status_code == 200
    form = {"csrf": csrf_token(tenant.token), "rep_id": "cy", "name": "Cy Clark", "team_id": "north",
            "manager_id": "mia", "timezone": "Europe/Berlin", "active": "on", "effective": ""}
    async with httpx.AsyncClient(timeout=15, cookies={"attain_dashboard": tenant.token}) as client:
        added = await client.post(f"{kpi}/admin/roster/rep", data=form)
        assert parse_qs(urlsplit(added.headers["location"]).query)["said"][0].startswith("Rep cy added"), added.headers
        deadline = time.monotonic() + 60
        while "Cy Clark" not in (page := await client.get(f"{kpi}/admin/roster")).text:
            assert time.monotonic() < deadline, page.text[-2000:]
            await asyncio.sleep(0.3)
        renamed = await client.post(f"{kpi}/admin/roster/rep", data={**form, "name": "Cy Clarke-Berg"})
        assert parse_qs(urlsplit(renamed.headers["location"]).query)["said"][0].startswith("Rep cy changed")
        while "Cy Clarke-Berg" not in (page := await client.get(f"{kpi}/admin/roster")).text:
            assert time.monotonic() < deadline, page.text[-2000:]
            await asyncio.sleep(0.3)
