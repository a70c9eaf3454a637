"""`repository.rep_zone`: the rep's own zone, else the tenant's, else UTC; None for an unknown rep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.coaching import repository as repo
from tests.integration.coaching.conftest import migrated_pool

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
async def pool(stack: None) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool("rep_zone") as pool:
        yield pool


async def test_the_reps_zone_then_the_tenants_then_utc(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO tenants (tenant, timezone) VALUES ('t', 'Asia/Kathmandu')")
        await conn.executemany("INSERT INTO reps (tenant, rep_id, timezone, version, known_since)"
                               " VALUES ($1, $2, $3, $4, $4)",
                               [("t", "own", "America/St_Johns", AT), ("t", "plain", None, AT),
                                ("orphan", "lone", None, AT)])
        assert await repo.rep_zone(conn, "t", "own") == ZoneInfo("America/St_Johns")
        assert await repo.rep_zone(conn, "t", "plain") == ZoneInfo("Asia/Kathmandu")
        assert await repo.rep_zone(conn, "orphan", "lone") == ZoneInfo("UTC")  # no tenant row yet
        assert await repo.rep_zone(conn, "t", "nobody") is None
