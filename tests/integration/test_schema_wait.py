"""shared/schema_wait.py against the real PostgreSQL: a pod's init container, connected as the working role, waits
while the schema misses a migration and lets the pod start the moment the owner (the migration Job) applies it.

Uses its own schema and role, dropped after, on the test database of tests/integration/conftest.py; needs only
PostgreSQL (not the whole stack).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from shared import db
from shared.schema_wait import pending, wait
from tests.integration.conftest import DATABASE_URL


@pytest.fixture
async def owner() -> AsyncIterator[tuple[asyncpg.Pool, str, str]]:
    schema = f"wait_{uuid.uuid4().hex[:12]}"
    role = f"attain_wait_{uuid.uuid4().hex[:12]}"
    pool = await db.create_pool(DATABASE_URL, schema, min_size=1, max_size=1)
    try:
        yield pool, schema, role
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        await pool.close()


async def test_the_working_role_waits_until_the_owner_applies_the_images_migrations(
        owner: tuple[asyncpg.Pool, str, str], tmp_path: Path) -> None:
    pool, schema, role = owner
    password = secrets.token_hex(12)
    (tmp_path / "001_first.sql").write_text("CREATE TABLE first (tenant text NOT NULL, id int PRIMARY KEY);")
    # The Job of the previous release: the first migration applied, the working role created and granted.
    await db.migrate(pool, schema, tmp_path, grant_to=role, grant_password=password)
    parts = urlsplit(DATABASE_URL)
    app_url = urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port or 5432}"))
    assert await pending(app_url, schema, tmp_path) == []

    # The new image ships a second migration: its pods wait, as the working role, until the Job applies it.
    (tmp_path / "002_second.sql").write_text("CREATE TABLE second (tenant text NOT NULL, id int PRIMARY KEY);")
    assert await pending(app_url, schema, tmp_path) == [f"{schema}:002_second"]
    heard: list[object] = []
    waiting = asyncio.create_task(wait(lambda: pending(app_url, schema, tmp_path), timeout_s=4.0, interval_s=0.1,
                                       report=heard.append))
    await asyncio.sleep(0.4)
    assert not waiting.done() and heard
    await db.migrate(pool, schema, tmp_path, grant_to=role, grant_password=password)
    outcome = await asyncio.wait_for(waiting, timeout=4.0)
    assert outcome.ready

    async with pool.acquire() as conn:  # it did so as the working role, which owns nothing and is no superuser
        row = await conn.fetchrow("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", role)
    assert row is not None and not row["rolsuper"] and not row["rolbypassrls"]
