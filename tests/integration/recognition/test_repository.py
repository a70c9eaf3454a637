"""recognition's repository on a real PostgreSQL: the in-memory fake the handler tests run on holds what
`PgRepository` holds after the same stream (so the handler tier tests what production does), and the
settings cache of two replicas sees every write path within one batch."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from services.recognition.app import SPEC
from services.recognition.config import ConfigCache
from services.recognition.handlers import handle_batch, settle_tenant
from services.recognition.repository import PgRepository
from shared import db
from shared.consumer import Incoming
from shared.events import AttainmentUpdated, TenantUpserted
from tests.integration.conftest import fresh_database
from tests.unit.services.recognition.fake import FakeRepository
from tests.unit.services.recognition.streams import (
    NOW,
    batches_of,
    figure,
    incoming,
    mixed_stream,
    tenant_id,
    won,
)

EXT = {"tenanttimezone": "Europe/Berlin", "tenantfiscalstart": "1", "tenantcurrency": "EUR"}


@pytest.fixture(scope="module")
async def pool(stack: None) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(await fresh_database(f"recog_repo_{uuid.uuid4().hex[:8]}"), SPEC.schema, max_size=3)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        yield pool
    finally:
        await pool.close()


async def apply(pool: asyncpg.Pool, cache: ConfigCache, batches: Sequence[Sequence[Incoming]]) -> None:
    for batch in batches:
        async with db.tenant_tx(pool, batch[0].event.tenant) as conn:
            await handle_batch(PgRepository(conn), cache, batch, NOW)


async def test_the_fake_holds_what_postgres_holds_after_the_same_batches(pool: asyncpg.Pool) -> None:
    tenant = tenant_id()
    stream = mixed_stream(tenant, random.Random(11))
    batches = batches_of(stream, random.Random(12))
    fake, cache = FakeRepository(), ConfigCache()
    for batch in batches:
        await handle_batch(fake, cache, batch, NOW)
    await apply(pool, ConfigCache(), batches)
    async with db.tenant_tx(pool, tenant) as conn:
        assert await settle_tenant(PgRepository(conn), ConfigCache(), tenant, NOW) == await settle_tenant(
            fake, cache, tenant, NOW)
        rows = await conn.fetch("SELECT celebration_id, scope_id, milestone, period, value, headline, status, facts"
                                " FROM celebrations WHERE tenant = $1", tenant)
        figures = await conn.fetch("SELECT scope, scope_id, period, metric, actual, attainment, as_of FROM attainment"
                                   " WHERE tenant = $1", tenant)
        deals = await conn.fetch("SELECT deal_id, rep_id, stage, amount, deleted, updated_at FROM deals"
                                 " WHERE tenant = $1", tenant)
        activities = await conn.fetch("SELECT activity_id FROM activities WHERE tenant = $1", tenant)
    assert len(rows) > 20
    assert {(str(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows} == {
        (row.celebration_id, k[2], k[3], k[4], row.entry.found.value, row.entry.headline, row.entry.status)
        for k, row in fake.ledger.items()}
    assert {(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in figures} == {
        (*k, f.actual, f.attainment, f.as_of) for (_, k), f in fake.attainment.items()}
    assert {tuple(r) for r in deals} == {(d.deal_id, d.rep_id, d.stage, d.amount, d.deleted, d.updated_at)
                                         for d in fake.deal_rows.values()}
    assert {r[0] for r in activities} == {k[1] for k in fake.activities}


def registry_entry(tenant: str, zone: str) -> Incoming:
    return incoming(tenant, "tenant.upserted", TenantUpserted(
        tenant=tenant, timezone=zone, currency="EUR", fiscal_start_month=1, token_sha256="cd" * 32, active=True),
        NOW)


async def config(pool: asyncpg.Pool, cache: ConfigCache, tenant: str) -> Any:
    async with db.tenant_tx(pool, tenant) as conn:
        return await cache.get(PgRepository(conn), tenant)


async def test_every_write_path_of_the_configuration_reaches_another_replica_at_its_next_batch(
        pool: asyncpg.Pool) -> None:
    tenant, first, second = tenant_id(), ConfigCache(), ConfigCache()  # two replicas' caches
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    await apply(pool, first, [[won(tenant, "d1", "rep-1", "10", at)]])  # a sales event's calendar: Berlin
    assert (await config(pool, second, tenant)).calendar.timezone.key == "Europe/Berlin"
    assert (await config(pool, second, tenant)) is (await config(pool, second, tenant))  # cached: no reload
    loads = second.loads

    async with db.tenant_tx(pool, tenant) as conn:  # what PUT /v1/recognition/settings does, on the first replica
        await PgRepository(conn).set_overrides(tenant, {"quota_thresholds": ["0.4"]})
    assert (await config(pool, second, tenant)).settings.quota_thresholds == (Decimal("0.4"),)

    await apply(pool, first, [[registry_entry(tenant, "Asia/Tokyo")]])  # the registry, applied by the first
    assert (await config(pool, second, tenant)).calendar.timezone.key == "Asia/Tokyo"

    await apply(pool, first, [[registry_entry(tenant, "Asia/Tokyo")]])  # the same entry again: nothing moved
    async with db.tenant_tx(pool, tenant) as conn:
        await PgRepository(conn).remember_calendar(tenant, EXT)  # a known tenant: ignored
    await config(pool, second, tenant)
    assert second.loads == loads + 2

    async with pool.acquire() as conn:  # a change by hand, outside the service
        await conn.execute("UPDATE settings SET overrides = '{\"streak_days\": 3}' WHERE tenant = $1", tenant)
    assert (await config(pool, second, tenant)).settings.streak_days == 3


async def test_a_configuration_read_in_a_rolled_back_batch_is_not_used_after_it(pool: asyncpg.Pool) -> None:
    tenant, cache = tenant_id(), ConfigCache()
    await apply(pool, cache, [[registry_entry(tenant, "Europe/Berlin")]])
    with pytest.raises(RuntimeError):
        async with db.tenant_tx(pool, tenant) as conn:
            repo = PgRepository(conn)
            await repo.upsert_tenants([TenantUpserted(tenant=tenant, timezone="Asia/Tokyo", currency="EUR",
                                                      fiscal_start_month=1, token_sha256="cd" * 32, active=True)])
            assert (await cache.get(repo, tenant)).calendar.timezone.key == "Asia/Tokyo"
            raise RuntimeError("the batch fails after the registry entry was applied")
    assert (await config(pool, cache, tenant)).calendar.timezone.key == "Europe/Berlin"


async def test_a_figure_older_than_the_stored_one_is_not_written_even_when_two_batches_race(
        pool: asyncpg.Pool) -> None:
    tenant = tenant_id()
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    await apply(pool, ConfigCache(), [[figure(tenant, "rep-1", "0.8", at + timedelta(minutes=5))]])
    async with db.tenant_tx(pool, tenant) as conn:
        late = figure(tenant, "rep-1", "0.2", at).data
        assert isinstance(late, AttainmentUpdated)
        await PgRepository(conn).save_figures(tenant, [late])
        assert await conn.fetchval("SELECT attainment FROM attainment WHERE tenant = $1", tenant) == Decimal("0.8")
