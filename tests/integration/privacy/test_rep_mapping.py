"""The export and erasure of a rep reach every table that can hold a rep's rows: each table of the four
schemas with a rep-like column (services/privacy/subjects.py `rep_like`) is declared in `REP_ROWS` or, with a
reason, in `NOT_A_REPS_ROW`; a new table that is neither fails here. Every declared name still exists, and
every tenant table tells its tenant."""

from __future__ import annotations

import uuid

import asyncpg

from services.privacy import repository
from services.privacy.subjects import MENTIONS, NOT_A_REPS_ROW, REP_ROWS, SCHEMAS, known
from shared import db
from shared.migrate import spec_of
from tests.integration.conftest import fresh_database


async def test_every_table_with_a_rep_like_column_is_declared(stack: None) -> None:
    url = await fresh_database(f"privmap_{uuid.uuid4().hex[:8]}")
    for name in SCHEMAS:
        spec = spec_of(name)
        pool = await db.create_pool(url, spec.schema, min_size=1, max_size=1)
        try:
            await db.migrate(pool, spec.schema, spec.migrations)
        finally:
            await pool.close()
    conn = await asyncpg.connect(url)
    try:
        tables, _ = await repository.catalogue(conn)
        undeclared = [t.qualified for t in tables if not known(t)]
        assert not undeclared, f"declare in services/privacy/subjects.py (REP_ROWS, NOT_A_REPS_ROW): {undeclared}"
        names = {t.qualified for t in tables}
        stale = (set(REP_ROWS) | set(MENTIONS) | set(NOT_A_REPS_ROW)) - names
        assert not stale, f"declared in services/privacy/subjects.py but no such table: {sorted(stale)}"
        for table in tables:
            assert table.tenant_predicate  # raises when it cannot tell
            await conn.execute("SELECT set_config('search_path', $1, false)", table.schema)
            # every predicate is valid SQL on its table
            await conn.fetch(f"EXPLAIN SELECT * FROM {table.qualified} WHERE {table.tenant_predicate}", "t")
            if (predicate := table.rep_predicate(mentions=True)) is not None:
                await conn.fetch(f"EXPLAIN SELECT * FROM {table.qualified} WHERE {predicate}", "t", "r")
    finally:
        await conn.close()
