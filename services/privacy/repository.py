"""The SQL of export and erasure, run as the schemas' owner (`DATABASE_URL`) in one tenant's scope: the
tenant policy lets the owner see that tenant's rows, as it lets a working role (shared/db.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.privacy.subjects import KEPT, SCHEMAS, Table
from shared import db
from shared.cloudevents import message_key


async def catalogue(conn: asyncpg.Connection) -> tuple[list[Table], dict[str, frozenset[str]]]:
    """Every table of the four schemas that holds tenants' rows (a `tenant` column, or a tenant rule of
    shared/db.py), and the jsonb columns of each (by `schema.table`)."""
    rows = await conn.fetch(
        "SELECT c.table_schema AS schema, c.table_name AS name,"
        " array_agg(c.column_name::text ORDER BY c.ordinal_position) AS columns,"
        " array_agg(c.column_name::text) FILTER (WHERE c.data_type = 'jsonb') AS jsonb"
        " FROM information_schema.columns c JOIN information_schema.tables t"
        "  ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'"
        " WHERE c.table_schema = ANY($1::text[]) GROUP BY 1, 2 ORDER BY 1, 2", list(SCHEMAS))
    tables, jsonb = [], {}
    for r in rows:
        columns = tuple(r["columns"])
        if r["name"] in KEPT:
            continue
        if "tenant" in columns or r["name"] in db.TENANT_COLUMN or r["name"] in db.VIA_PARENT:
            table = Table(r["schema"], r["name"], columns)
            tables.append(table)
            jsonb[table.qualified] = frozenset(r["jsonb"] or ())
    return tables, jsonb


async def now(conn: asyncpg.Connection) -> datetime:
    """The database's clock (the moment an erasure is recorded at, an export is read at)."""
    moment: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return moment


async def scope(conn: asyncpg.Connection, schema: str, tenant: str) -> None:
    """The rest of this transaction works in `schema` (unqualified names of the predicates) for `tenant`."""
    await conn.execute("SELECT set_config('search_path', $1, true)", schema)
    await db.set_tenant(conn, tenant)


def _where(table: Table, rep: str | None, *, mentions: bool) -> tuple[str, list[str]] | None:
    if rep is None:
        return table.tenant_predicate, []
    predicate = table.rep_predicate(mentions=mentions)
    return (predicate, [rep]) if predicate else None


async def rows_of(conn: asyncpg.Connection, table: Table, tenant: str, rep: str | None) -> list[dict[str, Any]]:
    """The rows of `tenant` (or of its `rep`, and the rows naming the rep) in `table`."""
    where = _where(table, rep, mentions=True)
    if where is None:
        return []
    predicate, args = where
    found = await conn.fetch(f'SELECT * FROM "{table.schema}"."{table.name}" WHERE {predicate}', tenant, *args)
    return [dict(r) for r in found]


async def count(conn: asyncpg.Connection, table: Table, tenant: str, rep: str | None) -> int:
    """How many rows `delete` would delete."""
    where = _where(table, rep, mentions=False)
    if where is None:
        return 0
    predicate, args = where
    return int(await conn.fetchval(f'SELECT count(*) FROM "{table.schema}"."{table.name}" WHERE {predicate}',
                                   tenant, *args))


async def delete(conn: asyncpg.Connection, table: Table, tenant: str, rep: str | None) -> int:
    """Delete the rows of `tenant` (or of its `rep`) from `table`; how many."""
    where = _where(table, rep, mentions=False)
    if where is None:
        return 0
    predicate, args = where
    status = await conn.execute(f'DELETE FROM "{table.schema}"."{table.name}" WHERE {predicate}', tenant, *args)
    return int(status.rsplit(" ", 1)[-1])


async def record_erasure(conn: asyncpg.Connection, schema: str, tenant: str, rep: str, at: datetime) -> None:
    """Remember in `schema` that `tenant` (rep '' ) or its `rep` was erased at `at` (the latest erasure wins)."""
    await conn.execute(f'INSERT INTO "{schema}".erasures (tenant, rep_id, erased_at) VALUES ($1, $2, $3)'
                       " ON CONFLICT (tenant, rep_id) DO UPDATE SET erased_at = EXCLUDED.erased_at", tenant, rep, at)


async def revoke(conn: asyncpg.Connection, tenant: str) -> bool:
    """Refuse the tenant's token from now on (ingest's registry); False when it was revoked or gone already."""
    status = await conn.execute("UPDATE ingest.tenants SET revoked_at = now() WHERE slug = $1 AND revoked_at IS NULL",
                                tenant)
    return bool(status.endswith(" 1"))


async def keys(conn: asyncpg.Connection, tenant: str, rep: str | None) -> dict[str, set[bytes]]:
    """The record keys Kafka's compacted topics hold for `tenant` (or its `rep`), by kind (`roster`,
    `targets`, `attainment`), as kpi (which published the figures and applied the roster and targets) and
    coaching and recognition (which received the figures) know them; in the tenant's scope."""
    rep_only = "" if rep is None else " AND scope = 'rep' AND scope_id = $2"
    args = [tenant] if rep is None else [tenant, rep]
    figures = " UNION ".join(
        f"SELECT scope, scope_id, period, metric FROM {schema}.{table} WHERE tenant = $1{rep_only}"
        for schema, table in (("kpi", "published_figures"), ("kpi", "attainment"), ("coaching", "attainment"),
                              ("recognition", "attainment")))
    out: dict[str, set[bytes]] = {
        "attainment": {message_key(tenant, r["scope"], r["scope_id"], r["period"], r["metric"])
                       for r in await conn.fetch(figures, *args)},
        "targets": {message_key(tenant, r["scope_id"] if r["scope"] == "rep" else f"team/{r['scope_id']}")
                    for r in await conn.fetch(f"SELECT scope, scope_id FROM kpi.targets WHERE tenant = $1{rep_only}",
                                              *args)},
    }
    if rep is None:
        out["roster"] = {message_key(tenant, r[0]) for r in await conn.fetch(
            "SELECT rep_id FROM kpi.reps WHERE tenant = $1 UNION SELECT rep_id FROM coaching.reps WHERE tenant = $1"
            " UNION SELECT rep_id FROM recognition.reps WHERE tenant = $1", tenant)}
        out["roster"] |= {message_key(tenant, f"team/{r[0]}") for r in await conn.fetch(
            "SELECT team_id FROM kpi.teams WHERE tenant = $1", tenant)}
    else:  # the rep's own key, whether or not a service still has the rep (a rerun writes it again)
        out["roster"] = {message_key(tenant, rep)}
        out["targets"].add(message_key(tenant, rep))
    # each period of time off has a key of its own on the roster topic (`time-off/<rep>/<id>`)
    rep_time_off = "" if rep is None else " AND rep_id = $2"
    out["roster"] |= {message_key(tenant, f"time-off/{r[0]}/{r[1]}") for r in await conn.fetch(
        f"SELECT rep_id, time_off_id FROM coaching.leaves WHERE tenant = $1{rep_time_off}"
        f" UNION SELECT rep_id, time_off_id FROM recognition.leaves WHERE tenant = $1{rep_time_off}", *args)}
    return out
