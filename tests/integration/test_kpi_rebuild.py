"""`python -m services.kpi rebuild`: replays the topics into a fresh schema, with kpi's own code, and
finds the live state equal; when the live state was damaged, it says where, and `--replace` is refused
while kpi runs, and when the rebuilt state differs unless `--force` is given."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import asyncpg
import pytest

from services.kpi.app import SPEC
from shared import db, topics
from tests.factories import activity, deal, rep, target, this_quarter
from tests.integration.conftest import (
    DATABASE_URL,
    GROUP_PREFIX,
    ROOT,
    Tenant,
    _service_env,
    end_offsets,
    fresh_database,
    post,
)

# A rebuild replays every topic from its start: run before the rest of the suite fills them (conftest.py).
pytestmark = pytest.mark.early


def _rebuild(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    env = {**_service_env("kpi"), "KAFKA_CONSUMER_GROUP_PREFIX": GROUP_PREFIX, **(env or {})}
    done = subprocess.run([sys.executable, "-m", "services.kpi", "rebuild", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    return done.returncode, done.stdout + done.stderr


async def _settled(conn: asyncpg.Connection, tenant: str, deals: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stored = await conn.fetchval("SELECT count(*) FROM kpi.deals WHERE tenant = $1", tenant)
        owed = await conn.fetchval("SELECT count(*) FROM kpi.outbox")
        if stored == deals and not owed:
            return
        await asyncio.sleep(0.3)
    raise AssertionError("kpi did not apply the test's events within 60 s")


async def test_a_rebuild_from_the_topics_equals_the_live_state_and_finds_damage(
        services: dict[str, str], tenant: Tenant) -> None:
    quarter, at = this_quarter(timedelta(hours=2))
    events = [rep("ana", team="north"), rep("bo", team="south"), target("ana", quarter, "1000"),
              deal("r-1", "ana", "600.50", updated_at=at), deal("r-2", "bo", "150", updated_at=at),
              deal("r-1", "ana", "700", updated_at=at + timedelta(minutes=5)),  # an edit
              deal("r-3", "bo", "80", stage="lost", updated_at=at),
              rep("bo", team="north"),  # a move: bo's history from now on counts for north
              activity("a-1", "ana", "call", at), activity("a-1", "ana", "call", at)]  # and a duplicate
    assert (await post(services["ingest"], tenant, events)).status_code == 200
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await _settled(conn, tenant.slug, 3)

        code, out = _rebuild("--tenant", tenant.slug)
        assert code == 0, out
        assert "rebuilt state equals the live state (9 tables compared)" in out, out
        rebuilt = await conn.fetchval("SELECT won_revenue FROM kpi_rebuild.period_tallies WHERE tenant = $1"
                                      " AND scope = 'rep' AND scope_id = 'ana' AND period = $2", tenant.slug, quarter)
        assert rebuilt == 700

        await conn.execute("UPDATE kpi.period_tallies SET won_revenue = won_revenue + 1 WHERE tenant = $1"
                           " AND scope = 'team' AND scope_id = 'north' AND period = $2", tenant.slug, quarter)
        try:
            code, out = _rebuild("--tenant", tenant.slug, "--schema", "kpi_rebuild_damaged")
        finally:
            await conn.execute("UPDATE kpi.period_tallies SET won_revenue = won_revenue - 1 WHERE tenant = $1"
                               " AND scope = 'team' AND scope_id = 'north' AND period = $2", tenant.slug, quarter)
        assert code == 1, out
        assert "period_tallies" in out and "only live:" in out and "'north'" in out, out
        assert "differs from the live state in 1 table(s)" in out, out
    finally:
        await conn.close()

    code, out = _rebuild("--replace", "--tenant", tenant.slug)
    assert code == 2 and "--replace needs a full rebuild" in out, out


@pytest.mark.timeout(900)  # three full replays of the shared broker's topics (refused, forced, checked)
async def test_replace_swaps_a_full_rebuild_in_and_keeps_the_old_schema(stack: None) -> None:
    """A deployment whose kpi state is lost (an empty schema) but whose group stands at the topics' ends:
    `--replace` refuses the different rebuilt state; `--replace --force` rebuilds everything, swaps it in,
    and a second check finds it equal."""
    url = await fresh_database("attain_rebuild_replace")
    prefix = f"attain-replace-{uuid.uuid4().hex[:8]}"
    ends = await end_offsets([t.name for t in (topics.DEALS, topics.ACTIVITIES, topics.ROSTER, topics.TARGETS,
                                                topics.TENANTS)])
    pool = await db.create_pool(url, SPEC.schema, min_size=1, max_size=1)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        await pool.executemany("INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
                               " VALUES ($1, $2, $3, $4)",
                               [(f"{prefix}-kpi", tp.topic, tp.partition, o) for tp, o in ends.items() if o])
        await pool.execute("INSERT INTO outbox (topic, key, value, headers) VALUES ('t', 'k', 'v', '[]')")
    finally:
        await pool.close()
    env = {"DATABASE_URL": url, "KAFKA_CONSUMER_GROUP_PREFIX": prefix}

    # a difference is refused without --force: the live schema stays, nothing is swapped
    code, out = _rebuild("--replace", env=env)
    assert code == 1, out
    assert "differs from the live state" in out and "refusing to --replace" in out and "replaced:" not in out, out
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM kpi.deals") == 0
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'kpi_replaced_%'") == 0
    finally:
        await conn.close()

    code, out = _rebuild("--replace", "--force", env=env)
    assert code == 0, out
    assert "differs from the live state" in out and "replaced: the rebuilt state is now schema 'kpi'" in out, out
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM kpi.deals") > 0
        assert await conn.fetchval("SELECT count(*) FROM kpi.outbox") == 0  # the replay's figures are not resent
        kept = await conn.fetchval("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'kpi_replaced_%'")
        assert kept and await conn.fetchval(f'SELECT count(*) FROM "{kept}".deals') == 0
        # numbering goes on from the live schema's last row (1), not from the replay's thousands of figures
        assert await conn.fetchval("SELECT nextval('kpi.outbox_seq_seq')") == 2
    finally:
        await conn.close()

    code, out = _rebuild(env=env)
    assert code == 0 and "rebuilt state equals the live state" in out, out


async def test_a_database_without_kpi_state_is_named_not_a_missing_table(stack: None) -> None:
    """A rebuild before kpi ever ran here says so, instead of failing on the first table it reads."""
    url = await fresh_database(f"attain_rebuild_empty_{uuid.uuid4().hex[:8]}")
    code, out = await asyncio.to_thread(_rebuild, env={"DATABASE_URL": url})
    assert code == 2, out
    assert "there is no live kpi state to rebuild" in out and "does not exist" not in out, out


async def test_a_kpi_that_consumed_nothing_yet_rebuilds_to_an_equal_empty_state(stack: None) -> None:
    """Migrated, but no offset committed: nothing to replay, and the (empty) states are equal. This used to crash
    inside aiokafka, which cannot stop a consumer that was never assigned a partition."""
    url = await fresh_database(f"attain_rebuild_unread_{uuid.uuid4().hex[:8]}")
    migrated = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "shared.migrate", "kpi"], cwd=ROOT,
                                       env={**_service_env("kpi"), "DATABASE_URL": url}, capture_output=True,
                                       text=True, timeout=120, check=False)
    assert migrated.returncode == 0, migrated.stderr
    code, out = await asyncio.to_thread(_rebuild, env={"DATABASE_URL": url,
                                                       "KAFKA_CONSUMER_GROUP_PREFIX": f"unread-{uuid.uuid4().hex[:6]}"})
    assert code == 0, out
    assert "Traceback" not in out, out
