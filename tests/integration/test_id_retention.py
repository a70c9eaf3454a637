"""The id store is bounded: ids past the retention window are forgotten, newer ones kept."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import asyncpg

from services.ingest.retention import prune_once
from tests.integration.conftest import DATABASE_URL


async def test_ids_older_than_the_retention_are_pruned_and_newer_ones_kept(services, tenant):
    pool = await asyncpg.create_pool(DATABASE_URL, server_settings={"search_path": "ingest"})
    try:
        async with pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO accepted_events (tenant, source, event_id, accepted_at)"
                " VALUES ($1, 'api', $2, now() - $3::interval)",
                [(tenant.slug, "old-1", timedelta(days=40)), (tenant.slug, "old-2", timedelta(days=36)),
                 (tenant.slug, "fresh", timedelta(days=1))])
        removed = await prune_once(SimpleNamespace(pool=pool), timedelta(days=35))  # type: ignore[arg-type]
        async with pool.acquire() as conn:
            left = await conn.fetch("SELECT event_id FROM accepted_events WHERE tenant = $1", tenant.slug)
    finally:
        await pool.close()
    assert removed >= 2
    assert [r["event_id"] for r in left] == ["fresh"]
