"""The control room's targets (issue 17, item 5) against the real stack, through the dashboard's forms: copying
the previous quarter's targets into this one keeps what is already set; a cell ingest refuses is shown with
ingest's reason. Every change is a `target.set` posted to ingest with the admin's own token."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx

from services.kpi.dashboard.control_core_rules import previous_period
from services.kpi.dashboard.web import csrf_token
from shared.periods import PeriodKind, period_of
from tests.factories import rep, target, team
from tests.integration.conftest import Tenant, create_tenant, post

BERLIN = ZoneInfo("Europe/Berlin")


async def _form(kpi: str, tenant: Tenant, path: str, fields: dict[str, str]) -> dict[str, list[str]]:
    async with httpx.AsyncClient(timeout=15, cookies={"attain_dashboard": tenant.token}) as client:
        answer = await client.post(f"{kpi}{path}", data={"csrf": csrf_token(tenant.token), **fields})
    assert answer.status_code == 303, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query)


async def _targets(kpi: str, tenant: Tenant, rep_id: str, period: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        answer = await client.get(f"{kpi}/v1/scorecards/{rep_id}", params={"period": period})
    if answer.status_code != 200:
        return {}
    return {f["metric"]: Decimal(f["target"]) for f in answer.json()["figures"] if f["target"] is not None}


async def _until_targets(kpi: str, tenant: Tenant, rep_id: str, period: str, wanted: dict[str, Decimal],
                         timeout: float = 60) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while (got := await _targets(kpi, tenant, rep_id, period)) != wanted:
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.3)


async def test_copying_last_quarter_fills_only_what_is_not_set_yet(services: dict[str, str]) -> None:
    kpi = services["kpi"]
    tenant = await asyncio.to_thread(create_tenant)
    quarter = period_of(PeriodKind.QUARTER, datetime.now(UTC), BERLIN).label
    before = previous_period(quarter)
    calls = {**target("ana", before, "40"), "data": {"scope": "rep", "scope_id": "ana", "metric": "calls",
                                                     "period": before, "value": "40"}}
    kept = {**target("ana", quarter, "55"), "data": {"scope": "rep", "scope_id": "ana", "metric": "calls",
                                                     "period": quarter, "value": "55"}}
    events = [team("north", None), rep("ana", team="north"), rep("bo", team="north"),
              target("ana", before, "100000"), target("bo", before, "80000"), calls, kept]
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    await _until_targets(kpi, tenant, "ana", quarter, {"calls": Decimal(55)})
    await _until_targets(kpi, tenant, "ana", before, {"calls": Decimal(40), "won_revenue": Decimal(100000)})
    await _until_targets(kpi, tenant, "bo", before, {"won_revenue": Decimal(80000)})

    said = await _form(kpi, tenant, "/admin/targets/copy", {"period": quarter})
    assert said["said"] == [f"Copied 2 targets from {before} into {quarter}; kept 1 already set in {quarter}."], said
    await _until_targets(kpi, tenant, "ana", quarter, {"calls": Decimal(55), "won_revenue": Decimal(100000)})
    await _until_targets(kpi, tenant, "bo", quarter, {"won_revenue": Decimal(80000)})


async def test_a_cell_ingest_refuses_is_shown_with_its_reason(services: dict[str, str]) -> None:
    kpi = services["kpi"]
    tenant = await asyncio.to_thread(create_tenant)
    quarter = period_of(PeriodKind.QUARTER, datetime.now(UTC), BERLIN).label
    assert (await post(services["ingest"], tenant, [rep("ana", team="north")])).status_code == 200
    long_id = "x" * 201  # no such rep can be on the roster: ingest refuses the id's length
    said = await _form(kpi, tenant, "/admin/targets", {
        "period": quarter, "v:rep:won_revenue:ana": "1000", "was:rep:won_revenue:ana": "",
        f"v:rep:won_revenue:{long_id}": "5", f"was:rep:won_revenue:{long_id}": ""})
    assert said["said"] == [f"Saved 1 target for {quarter}."], said
    assert said["error"][0].startswith(f"Refused: rep {long_id}, won_revenue, {quarter}: data.scope_id"), said
    await _until_targets(kpi, tenant, "ana", quarter, {"won_revenue": Decimal(1000)})


async def test_a_change_replaces_a_target_dated_ahead_of_the_clock(services: dict[str, str]) -> None:
    """A CRM whose clock runs 12 hours ahead set the target: a change made now must still win (kpi keeps the
    newest version), so the control room dates it just after the version kpi holds."""
    kpi = services["kpi"]
    tenant = await asyncio.to_thread(create_tenant)
    quarter = period_of(PeriodKind.QUARTER, datetime.now(UTC), BERLIN).label
    ahead = target("ana", quarter, "700", at=datetime.now(UTC) + timedelta(hours=12))
    assert (await post(services["ingest"], tenant, [rep("ana", team="north"), ahead])).status_code == 200
    await _until_targets(kpi, tenant, "ana", quarter, {"won_revenue": Decimal(700)})
    said = await _form(kpi, tenant, "/admin/targets", {
        "period": quarter, "v:rep:won_revenue:ana": "900", "was:rep:won_revenue:ana": "700"})
    assert said["said"] == [f"Saved 1 target for {quarter}."], said
    await _until_targets(kpi, tenant, "ana", quarter, {"won_revenue": Decimal(900)})
