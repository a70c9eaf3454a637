"""A target dated 2099 must not win forever: ingest refuses it (422, naming `time` and the bound), and the
correction with a normal date that follows is what kpi keeps.

Before the bound, the 2099 version was accepted, and kpi (newest version wins) ignored every later correction.
ingest and kpi run in-process on the real broker and a database of their own, on a fixed clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.clock import FixedClock
from tests.factories import target
from tests.integration import inprocess
from tests.integration.conftest import fresh_database

NOW = datetime(2026, 11, 18, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
async def database(stack: None) -> str:
    return await fresh_database(f"versions_future_{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def replicas(database: str) -> AsyncIterator[tuple[inprocess.Replica, inprocess.Replica]]:
    prefix = f"attain-future-{uuid.uuid4().hex[:8]}"
    async with inprocess.ingest_and_kpi(database, prefix, FixedClock(NOW),
                                        kafka_group_instance_id=f"{prefix}-a") as replicas:
        yield replicas


async def test_a_target_dated_2099_is_refused_and_the_correction_that_follows_applies(
        database: str, replicas: tuple[inprocess.Replica, inprocess.Replica]) -> None:
    ingest, kpi = replicas
    slug, token = await inprocess.create_tenant(database, "f")
    auth = {"authorization": f"Bearer {token}"}

    future = target("rep-1", "2026-Q4", "999999", at=datetime(2099, 1, 1, tzinfo=UTC))
    response = await ingest.http.post("/v1/events", json=future, headers=auth)
    assert response.status_code == 422, response.text
    [result] = response.json()["results"]
    assert result["status"] == "rejected"
    assert result["reason"] == ("time: must not be later than 2026-11-19T10:00:00+00:00 (ingest's clock plus"
                                " MAX_EVENT_AHEAD_S); got 2099-01-01T00:00:00+00:00")

    correction = target("rep-1", "2026-Q4", "50000", at=NOW - timedelta(hours=1))
    response = await ingest.http.post("/v1/events", json=correction, headers=auth)
    assert response.status_code == 200, response.text
    ingest.wake()

    stored = await inprocess.until(kpi.settings.database_url, lambda c: c.fetchrow(
        "SELECT value, version FROM kpi.targets WHERE tenant = $1 AND scope_id = 'rep-1' AND value = 50000", slug),
        timeout=20)
    assert (stored["value"], stored["version"]) == (Decimal(50000), NOW - timedelta(hours=1))
