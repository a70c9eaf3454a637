"""The inbox stays bounded (issue 16, item 7): every service forgets derived-event ids applied longer ago
than INBOX_RETENTION_DAYS, every tenant's, through the owner's `sweep_expired_inbox` (its working role
cannot span tenants on its own), and keeps the rest; a duplicate inside the window is still refused."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.recognition.app import SPEC as RECOGNITION
from services.recognition.settings import RecognitionSettings
from shared import db, inbox
from shared.cloudevents import CloudEvent
from shared.service import create_app
from tests.integration.conftest import fresh_database

ROLE = "attain_inbox_test"


@pytest.fixture
async def database(stack: None) -> AsyncIterator[str]:
    url = await fresh_database(f"inbox_{uuid.uuid4().hex[:8]}")
    owner = await db.create_pool(url, RECOGNITION.schema, max_size=1)
    try:
        await db.migrate(owner, RECOGNITION.schema, RECOGNITION.migrations, grant_to=ROLE)
    finally:
        await owner.close()
    yield url


def _event(tenant: str, n: int) -> CloudEvent:
    return CloudEvent(f"e-{n}", "kpi.attainment.updated", "attain/kpi", datetime(2026, 11, 2, tzinfo=UTC), tenant,
                      {})


async def test_expired_ids_of_every_tenant_are_forgotten_and_recent_ones_kept(database: str) -> None:
    owner = await asyncpg.connect(database)
    try:  # two tenants, each with ids applied 40 days ago and 1 day ago (retention: 35 days)
        await owner.execute(
            "INSERT INTO recognition.inbox (tenant, source, event_id, received_at)"
            " SELECT t, 'attain/kpi', 'e-' || n, now() - (CASE WHEN n < 25 THEN 40 ELSE 1 END) * interval '1 day'"
            " FROM unnest(ARRAY['in-a', 'in-b']) AS t, generate_series(0, 49) AS n")
    finally:
        await owner.close()
    pool = await db.create_pool(db.app_dsn(database, ROLE), RECOGNITION.schema, scope=None, create_schema=False)
    try:
        removed = await inbox.prune_once(pool, timedelta(days=35), batch=7)  # several batches
        assert removed == 50
        assert await inbox.prune_once(pool, timedelta(days=35)) == 0
        for tenant in ("in-a", "in-b"):
            async with db.tenant_tx(pool, tenant) as conn:
                kept = sorted(int(r[0][2:]) for r in await conn.fetch("SELECT event_id FROM inbox"))
                assert kept == list(range(25, 50)), tenant
                # inside the window a redelivery is still a duplicate; a forgotten id is new again
                assert await inbox.claim_many(conn, [_event(tenant, 30), _event(tenant, 3)]) == [False, True]
    finally:
        await pool.close()


async def test_a_service_prunes_its_inbox_from_the_moment_it_starts(database: str) -> None:
    """The timer `create_app` starts next to the relay and the watchdog (shared/service.py), in every service."""
    owner = await asyncpg.connect(database)
    try:
        await owner.execute("INSERT INTO recognition.inbox (tenant, source, event_id, received_at)"
                            " VALUES ('in-c', 'attain/kpi', 'old', now() - interval '3 days'),"
                            " ('in-c', 'attain/kpi', 'new', now())")
        settings = RecognitionSettings(database_url=database, inbox_retention_days=2, log_format="text",
                                       kafka_consumer_group_prefix=f"inbox-{uuid.uuid4().hex[:6]}")
        app = create_app(RECOGNITION, settings)
        async with app.router.lifespan_context(app):
            assert "inbox-retention" in {task.get_name() for task in asyncio.all_tasks()}
            deadline = time.monotonic() + 20
            while await owner.fetchval("SELECT count(*) FROM recognition.inbox WHERE tenant = 'in-c'") != 1:
                assert time.monotonic() < deadline, "the expired id was not pruned"
                await asyncio.sleep(0.1)
        assert await owner.fetchval("SELECT event_id FROM recognition.inbox WHERE tenant = 'in-c'") == "new"
    finally:
        await owner.close()
