"""What PostgreSQL counts for the rules (`repository.rep_views`) equals what `ActivityLog.of` counts from
the same activities in Python: per local day of the tenant's zone, across DST changes and zones whose
offsets are not whole hours, with every instant at or next to a local midnight."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.coaching import repository as repo
from services.coaching.model import ActivityLog
from shared.workdays import local_midnight
from tests.integration.coaching.conftest import migrated_pool

US = timedelta(microseconds=1)


@pytest.fixture(scope="module")
async def pool(stack: None) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool("activity_counts") as pool:
        yield pool


def _moments(zone: ZoneInfo, now: datetime, days: int) -> list[tuple[datetime, str]]:
    """Each local midnight from before the window to after now, a microsecond either side of it, and
    the local noon; every hour of the day before and of today (DST changes fall there); kinds in turn."""
    today = now.astimezone(zone).date()
    out: list[datetime] = []
    for i in range(-2, days + 3):
        midnight = local_midnight(today - timedelta(days=i), zone)
        out += [midnight - US, midnight, midnight + US, midnight + timedelta(hours=12)]
    start = local_midnight(today - timedelta(days=1), zone)
    out += [start + timedelta(minutes=30 * k) for k in range(96)]
    out.append(now - timedelta(days=100))  # before the window, inside the history: only `last` could see it
    kinds = ("call", "email", "meeting")
    return [(at.astimezone(UTC), kinds[n % 3]) for n, at in enumerate(sorted(set(out)))]


@pytest.mark.parametrize(("zone", "now"), [
    ("Europe/Berlin", datetime(2026, 10, 26, 9, tzinfo=UTC)),  # the day after the clocks went back
    ("Europe/Berlin", datetime(2026, 3, 30, 9, tzinfo=UTC)),  # the day after they went forward
    ("America/St_Johns", datetime(2026, 11, 2, 15, tzinfo=UTC)),  # -3:30, the day after its change
    ("Asia/Kathmandu", datetime(2026, 11, 23, 4, tzinfo=UTC)),  # +5:45
    ("Pacific/Chatham", datetime(2026, 9, 28, 2, tzinfo=UTC)),  # +12:45 / +13:45
])
@pytest.mark.parametrize("days", [1, 7, 14])
async def test_postgres_counts_what_python_counts(pool: asyncpg.Pool, zone: str, now: datetime, days: int) -> None:
    tenant, tz = f"t-{uuid.uuid4().hex[:6]}", ZoneInfo(zone)
    moments = _moments(tz, now, days)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO tenants (tenant, timezone) VALUES ($1, $2)", tenant, zone)
        await conn.executemany(
            "INSERT INTO reps (tenant, rep_id, version, known_since) VALUES ($1, $2, $3, $3)",
            [(tenant, "ann", now - timedelta(days=400)), (tenant, "bob", now - timedelta(days=400))])
        await conn.executemany(
            "INSERT INTO activities (tenant, activity_id, rep_id, kind, occurred_at) VALUES ($1, $2, 'ann', $3, $4)",
            [(tenant, f"a{n}", kind, at) for n, (at, kind) in enumerate(moments)])
        views = await repo.rep_views(conn, tenant, ["ann", "bob"], now, days)

    today = now.astimezone(tz).date()
    logged = [(at, kind) for at, kind in moments if at <= now]  # a later one has not happened yet
    everything = ActivityLog.of(logged, tz)
    first = today - timedelta(days=days)
    expected = ActivityLog(tuple(d for d in everything.days if first <= d[0] <= today), everything.last_at)
    assert views["ann"].activities == expected
    assert sum(n for _, _, n in expected.days) > 4 * days  # the case is not empty
    assert any(at > now for at, _ in moments)  # and it has a future activity to leave out
    assert views["bob"].activities == ActivityLog()
