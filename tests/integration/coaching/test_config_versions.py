"""The tenant configuration cache (`config.py`) on a real database: every write path of what it holds
gives the tenant a new version in the writer's transaction (migration 004's triggers), so a change
committed through one replica is seen by the next evaluation of every replica; a rolled-back write
changes nothing; and an evaluation whose tenant did not change reads one version row, nothing more."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from services.coaching import repository as repo
from services.coaching.checkins import Playbook
from services.coaching.config import ConfigCache
from services.coaching.intake import Calendar
from services.coaching.model import Policy
from services.coaching.repository import PgStore
from shared.db import tenant_tx
from shared.events import Holiday, Holidays, TenantUpserted, TimeOffSet
from tests.integration.coaching.conftest import migrated_pool

NOW = datetime(2026, 11, 18, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
async def pool(stack: None) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool("config_versions") as pool:
        yield pool


def entry(tenant: str, zone: str, holidays: Holidays | None = None) -> TenantUpserted:
    return TenantUpserted(tenant=tenant, timezone=zone, currency="EUR", fiscal_start_month=1,
                          token_sha256="00" * 32, active=True, holidays=holidays)


EVE = Holidays(added=[Holiday(day=date(2026, 12, 24), name="Christmas Eve")])


async def legacy_holiday(conn: asyncpg.Connection, tenant: str, day: date) -> None:
    """A day entered through coaching's API before the tenant calendar (still counted, still removable)."""
    await conn.execute("INSERT INTO holidays (tenant, day, name) VALUES ($1, $2, 'before')", tenant, day)


async def version(pool: asyncpg.Pool, tenant: str) -> Any:
    async with tenant_tx(pool, tenant) as conn:
        return await repo.config_version(conn, tenant)


async def test_every_write_path_of_the_configuration_gives_a_new_version(pool: asyncpg.Pool) -> None:
    t = f"t-{uuid.uuid4().hex[:8]}"
    writes: list[tuple[str, Callable[[asyncpg.Connection], Awaitable[None]]]] = [
        ("a sales event's calendar", lambda c: repo.remember_calendar(c, t, Calendar("Europe/Berlin", 1, "EUR"))),
        ("the registry", lambda c: repo.upsert_tenants(c, [entry(t, "Europe/Paris")])),
        ("a tenant policy", lambda c: repo.set_policy(c, t, "", {"pace_threshold": "0.5"})),
        ("a team policy", lambda c: repo.set_policy(c, t, "team-a", {"cooldown_days": 3})),
        ("a playbook", lambda c: repo.set_playbook(c, t, "no_activity", Playbook(("Call them",), ()))),
        ("the registry's holiday calendar", lambda c: repo.upsert_tenants(c, [entry(t, "Europe/Paris", EVE)])),
        ("a holiday of before", lambda c: legacy_holiday(c, t, date(2026, 12, 31))),
        ("a holiday of before removed", lambda c: repo.remove_holiday(c, t, date(2026, 12, 31))),
    ]
    seen = {await version(pool, t)}
    assert seen == {None}
    for what, write in writes:
        async with tenant_tx(pool, t) as conn:
            await write(conn)
        now = await version(pool, t)
        assert now not in seen, f"{what} left the version as it was"
        seen.add(now)
    before = await version(pool, t)
    async with tenant_tx(pool, t) as conn:  # already known: the calendar of a sales event writes nothing
        await repo.remember_calendar(conn, t, Calendar("Asia/Tokyo", 4, "JPY"))
        await repo.store_time_off(conn, t, [(TimeOffSet(time_off_id="l-1", rep_id="ann", first_day=date(2026, 12, 1),
                                                       last_day=date(2026, 12, 3)), datetime.now(UTC), "e-1")])
    assert await version(pool, t) == before


async def test_a_change_through_one_replica_reaches_the_next_evaluation_of_the_other(pool: asyncpg.Pool) -> None:
    t = f"t-{uuid.uuid4().hex[:8]}"
    first, second = ConfigCache(), ConfigCache()  # two processes
    async with tenant_tx(pool, t) as conn:
        await repo.upsert_tenants(conn, [entry(t, "Europe/Berlin")])
    for cache in (first, second):
        async with tenant_tx(pool, t) as conn:
            assert (await cache.get(PgStore(conn), t)).policy(Policy(), None).pace_threshold == Policy().pace_threshold
    async with tenant_tx(pool, t) as conn:  # the API of the first replica
        await repo.set_policy(conn, t, "", {"pace_threshold": "0.55"})
        await repo.upsert_tenants(conn, [entry(t, "Europe/Berlin", EVE)])  # (the registry, in fact)
    async with tenant_tx(pool, t) as conn:
        config = await second.get(PgStore(conn), t)
    assert config.policy(Policy(), "team-a").pace_threshold == Decimal("0.55")
    assert config.calendar.between(date(2026, 12, 1), date(2026, 12, 31)) == {date(2026, 12, 24): "Christmas Eve"}
    assert (first.loads, second.loads) == (1, 2)


async def test_a_rolled_back_write_leaves_the_cached_configuration_valid(pool: asyncpg.Pool) -> None:
    t = f"t-{uuid.uuid4().hex[:8]}"
    cache = ConfigCache()
    async with tenant_tx(pool, t) as conn:
        await repo.upsert_tenants(conn, [entry(t, "Europe/Berlin")])
    async with tenant_tx(pool, t) as conn:
        await cache.get(PgStore(conn), t)
    with pytest.raises(RuntimeError):
        async with tenant_tx(pool, t) as conn:
            await repo.set_policy(conn, t, "", {"pace_threshold": "0.1"})
            raise RuntimeError("the API request failed after the write")
    async with tenant_tx(pool, t) as conn:
        config = await cache.get(PgStore(conn), t)
    assert cache.loads == 1 and config.layers == {}


async def test_an_evaluation_of_an_unchanged_tenant_reads_only_its_version(pool: asyncpg.Pool) -> None:
    t = f"t-{uuid.uuid4().hex[:8]}"
    cache = ConfigCache()
    async with tenant_tx(pool, t) as conn:
        await repo.upsert_tenants(conn, [entry(t, "Europe/Berlin")])
        await repo.set_policy(conn, t, "", {"cooldown_days": 2})
    per_evaluation = []
    for _ in range(3):
        statements: list[str] = []
        async with tenant_tx(pool, t) as conn:
            def log(query: Any, into: list[str] = statements) -> None:
                into.append(query.query)
            conn.add_query_logger(log)
            await cache.get(PgStore(conn), t)
            conn.remove_query_logger(log)
        per_evaluation.append(statements)
    assert len(per_evaluation[0]) == 2  # the version, then the whole configuration in one statement
    assert per_evaluation[1] == per_evaluation[2] == per_evaluation[0][:1]
    assert cache.loads == 1
