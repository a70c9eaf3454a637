"""PostgreSQL access: one asyncpg pool per service, bound to the service's own schema, and the
migration runner that brings that schema up to date at start-up.

Each service owns one schema (ARCHITECTURE.md) and sets it as the pool's `search_path`, so its SQL
never names a schema. Migrations are plain `.sql` files applied in name order, each in its own
transaction, under an advisory lock so replicas starting together do not race.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

SHARED_MIGRATIONS = Path(__file__).with_name("migrations")


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see `schema` first (created if missing)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    except asyncpg.UniqueViolationError:
        pass  # two replicas created it at the same moment
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"attain-{schema}"},
    )
    assert pool is not None
    return pool


def _lock_key(schema: str) -> int:
    return zlib.crc32(f"attain-migrations:{schema}".encode())


async def migrate(pool: asyncpg.Pool, schema: str, *folders: Path) -> list[str]:
    """Apply the shared migrations, then the service's own; return the versions applied now."""
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for folder in (SHARED_MIGRATIONS, *folders):
                prefix = "shared" if folder == SHARED_MIGRATIONS else schema
                for path in sorted(folder.glob("*.sql")):
                    version = f"{prefix}:{path.stem}"
                    if version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(path.read_text())
                        await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                    applied_now.append(version)
                    log.info("migration applied", extra={"schema": schema, "version": version})
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
    return applied_now
