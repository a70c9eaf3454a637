"""SQL of the `tokens` table every service keeps (shared/migrations/008_tokens.sql) and of the roster reads
that object-level checks need (kpi and coaching keep `reps` with `manager_id`).

In kpi, coaching and recognition the tokens are a copy of the registry's list: `replace` writes what a
`tenant.upserted` says. In ingest they are the record (services/ingest/tokens.py writes them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from shared.authz import Principal
from shared.events import TenantUpserted

# The id of the token a tenant was created with (and of the one token of a registry entry from before
# per-person tokens): an admin token.
INITIAL = "initial"


def digest(token: str) -> bytes:
    return hashlib.sha256(token.strip().encode()).digest()


async def replace(conn: asyncpg.Connection, entries: Sequence[TenantUpserted]) -> None:
    """Each entry's tenant's tokens become exactly those it lists (none for a revoked tenant); an entry from
    before per-person tokens gives its one digest as the admin token. Set-based: one DELETE, one INSERT."""
    if not entries:
        return
    latest = {e.tenant: e for e in entries}  # in order: the last word on each tenant wins
    rows: list[tuple[str, str, bytes, str, str | None, str | None, datetime | None]] = []
    for e in latest.values():
        if not e.active:
            continue
        if e.tokens is None:
            rows.append((e.tenant, INITIAL, bytes.fromhex(e.token_sha256), "admin", None, None, None))
            continue
        rows += [(e.tenant, g.token_id, bytes.fromhex(g.token_sha256), g.role, g.rep_id, g.manager_id, g.expires_at)
                 for g in e.tokens]
    await conn.execute("DELETE FROM tokens WHERE tenant = ANY($1::text[])", list(latest))
    if rows:
        columns = list(zip(*rows, strict=True))
        await conn.execute(
            "INSERT INTO tokens (tenant, token_id, token_sha256, role, rep_id, manager_id, expires_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[],"
            " $7::timestamptz[]) ON CONFLICT DO NOTHING", *map(list, columns))


async def principal(conn: asyncpg.Connection, token: str, now: datetime) -> Principal | None:
    """Who holds `token` (looked up by its digest): a token of an active tenant, not revoked, not expired."""
    row = await conn.fetchrow(
        "SELECT k.tenant, k.role, k.token_id, k.rep_id, k.manager_id FROM tokens k"
        " JOIN tenants t ON t.tenant = k.tenant AND t.active"
        " WHERE k.token_sha256 = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)",
        digest(token), now)
    return Principal(row["tenant"], row["role"], row["token_id"], row["rep_id"], row["manager_id"]) if row else None


async def reps_under(conn: asyncpg.Connection, tenant: str, manager_id: str) -> set[str]:
    """The reps whose manager is `manager_id`, directly or further up the roster as it stands now (a cycle in
    the roster ends the walk). kpi's and coaching's `reps` tables."""
    rows = await conn.fetch(
        "WITH RECURSIVE under(rep_id) AS ("
        " SELECT rep_id FROM reps WHERE tenant = $1 AND manager_id = $2"
        " UNION SELECT r.rep_id FROM reps r JOIN under u ON r.tenant = $1 AND r.manager_id = u.rep_id)"
        " SELECT rep_id FROM under", tenant, manager_id)
    return {r["rep_id"] for r in rows}


async def viewer_by_id(conn: asyncpg.Connection, tenant: str, token_id: str, now: datetime) -> Principal | None:
    """The live `viewer` token `token_id` of an active `tenant` (a share link's), or None."""
    row = await conn.fetchrow(
        "SELECT k.tenant, k.role, k.token_id FROM tokens k JOIN tenants t ON t.tenant = k.tenant AND t.active"
        " WHERE k.tenant = $1 AND k.token_id = $2 AND k.role = 'viewer' AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > $3)", tenant, token_id, now)
    return Principal(row["tenant"], "viewer", row["token_id"]) if row else None
