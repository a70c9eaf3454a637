"""kpi as it is built to run (`create_app`: its pool, consumer and routes), asked by clients at different
addresses: one that guesses tokens is refused with 429 past the limit, the others are not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from services.kpi.app import SPEC as KPI
from services.kpi.settings import KpiSettings
from shared import topics
from shared.clock import FixedClock
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, fresh_database

BURST = 5
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
async def kpi(stack: None) -> AsyncIterator[inprocess.Replica]:
    db = await fresh_database(f"exposure_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-exposure-{uuid.uuid4().hex[:8]}"
    await inprocess.start_group_at_end(f"{prefix}-kpi", [topics.DEALS.name, topics.ACTIVITIES.name,
                                                        topics.ROSTER.name, topics.TARGETS.name, topics.TENANTS.name])
    # a bucket that does not refill while the test runs, however slow the machine: the limit is exactly BURST
    settings = KpiSettings(database_url=db, kafka_bootstrap_servers=BOOTSTRAP, kafka_consumer_group_prefix=prefix,
                           outbox_poll_interval_s=0.2, log_format="text", auth_failure_burst=BURST,
                           auth_failure_rate_per_s=0.0001)
    replica = await inprocess.Replica(KPI, settings, FixedClock(datetime.now(UTC))).start()
    try:
        yield replica
    finally:
        await replica.stop()
        await replica.http.aclose()


def at(replica: inprocess.Replica, address: str) -> httpx.AsyncClient:
    """A client of the replica's app whose requests come from `address`."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=replica.app, client=(address, 50_000)),
                             base_url="http://kpi")


async def test_a_burst_of_bad_tokens_gets_429_past_the_limit_and_another_address_is_unaffected(
        kpi: inprocess.Replica) -> None:
    async with at(kpi, "203.0.113.7") as guesser, at(kpi, "198.51.100.2") as other:
        statuses = [(await guesser.get("/v1/leaderboard", headers={"Authorization": f"Bearer guess-{i}"})).status_code
                    for i in range(BURST + 3)]
        assert statuses == [401] * BURST + [429] * 3
        refused = await guesser.get("/v1/scorecards/ana", headers={"Authorization": "Bearer another-guess"})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1

        assert (await other.get("/v1/leaderboard", headers={"Authorization": "Bearer nope"})).status_code == 401
        assert (await other.post("/signin", content="token=nope&next=/", headers=FORM)).status_code == 401
        assert (await other.get("/healthz")).status_code == 200
    metrics = (await kpi.http.get("/metrics")).text
    assert 'attain_http_throttled_total{reason="failed_authentication"}' in metrics
    assert "203.0.113.7" not in metrics  # no address is a label


async def test_guessing_the_dashboards_cookie_counts_as_guessing_a_bearer_token(kpi: inprocess.Replica) -> None:
    async with at(kpi, "192.0.2.44") as guesser:
        statuses = [(await guesser.get("/leaderboard", headers={"Cookie": f"attain_dashboard=guess-{i}"})).status_code
                    for i in range(BURST + 2)]
    assert statuses == [303] * BURST + [429] * 2  # to the sign-in page, until the address is in debt


async def test_guessing_through_the_sign_in_form_is_limited_too(kpi: inprocess.Replica) -> None:
    async with at(kpi, "192.0.2.45") as guesser:
        statuses = [(await guesser.post("/signin", content=f"token=guess-{i}&next=/", headers=FORM)).status_code
                    for i in range(BURST + 2)]
    assert statuses == [401] * BURST + [429] * 2
