"""`/metrics` answers whoever reaches a service's port, without a token: once a tenant's figures exist, no
metric names the tenant, its teams or reps, or carries one of its figures.

ingest and kpi run in-process on the real broker with a database of their own; the tenant is created with
ingest's CLI and its events go in through ingest's API, as in production. In-process, the `/metrics` of either
is every metric of this process, both services' included.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.clock import FixedClock
from tests.factories import deal, rep, target, this_quarter
from tests.integration import inprocess
from tests.integration.conftest import fresh_database

# Amounts no histogram bucket or counter would show by chance; the attainment is 7319.47 / 12345.67.
WON, TEAM_TARGET, ATTAINMENT = "7319.47", "12345.67", "0.5929"
BUSINESS_LABELS = {"tenant", "team", "team_id", "rep", "rep_id", "manager", "manager_id", "scope_id"}


@pytest.fixture(scope="module")
async def pair(stack: None) -> AsyncIterator[tuple[inprocess.Replica, inprocess.Replica]]:
    db = await fresh_database(f"exposure_m_{uuid.uuid4().hex[:8]}")
    async with inprocess.ingest_and_kpi(db, f"attain-exposure-{uuid.uuid4().hex[:8]}",
                                        FixedClock(datetime.now(UTC))) as replicas:
        yield replicas


def team_target(team_id: str, period: str, value: str) -> dict[str, Any]:
    event = target(team_id, period, value)
    event["data"]["scope"] = "team"
    return event


async def test_metrics_name_no_tenant_team_or_rep_and_carry_no_figure(
        pair: tuple[inprocess.Replica, inprocess.Replica]) -> None:
    ingest, kpi = pair
    tenant, token = await inprocess.create_tenant(kpi.settings.database_url, "x")
    auth = {"Authorization": f"Bearer {token}"}
    quarter, moment = this_quarter(timedelta(hours=1))
    team_id, rep_id = f"team-{uuid.uuid4().hex[:8]}", f"rep-{uuid.uuid4().hex[:8]}"
    events = [rep(rep_id, team=team_id), team_target(team_id, quarter, TEAM_TARGET), target(rep_id, quarter, WON),
              deal(f"deal-{uuid.uuid4().hex[:8]}", rep_id, WON, updated_at=moment)]
    deadline = time.monotonic() + 60
    while (sent := await ingest.http.post("/v1/events", json=events, headers=auth)).status_code == 401:
        assert time.monotonic() < deadline, sent.text  # the CLI's tenant reaches ingest's table at once; kept safe
        await asyncio.sleep(0.3)
    assert sent.status_code == 200, sent.text

    won: dict[str, Any] | None = None
    while won is None or won["actual"] != WON or won["attainment"] is None:  # kpi computed the team's figure
        assert time.monotonic() < deadline, f"kpi has no figure for {team_id} yet: {won}"
        await asyncio.sleep(0.3)
        card = await kpi.http.get(f"/v1/teams/{team_id}/scorecard?period={quarter}", headers=auth)
        figures = card.json().get("figures", []) if card.status_code == 200 else []
        won = next((f for f in figures if f["metric"] == "won_revenue"), None)
    assert won["attainment"] == ATTAINMENT

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=kpi.app, client=("198.51.100.9", 9)),
                                 base_url="http://kpi") as anyone:  # no token: /metrics asks for none
        exposed = {"kpi": (await anyone.get("/metrics")).text, "ingest": (await ingest.http.get("/metrics")).text}
    for name, text in exposed.items():
        for secret in (tenant, team_id, rep_id, WON, TEAM_TARGET, ATTAINMENT, "0.592"):
            assert secret not in text, f"{name}'s /metrics shows {secret!r}"
        labels = {label for line in text.splitlines() if line and not line.startswith("#")
                  for label in re.findall(r'[{,]([a-zA-Z_][a-zA-Z0-9_]*)="', line)}
        assert not labels & BUSINESS_LABELS, f"{name}'s /metrics labels series by {sorted(labels & BUSINESS_LABELS)}"
