"""The tenant registry as coaching and recognition keep it: a `tenants` table in their own schema, fed
by `tenant.upserted` (ingest's registry topic), and by a sales event's tenant extensions until then.

Same columns in both schemas: tenant, timezone, fiscal_start_month, currency, token_sha256, active.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from shared.events import TenantUpserted


async def upsert_tenant(conn: asyncpg.Connection, entry: TenantUpserted) -> None:
    """The registry's word on a tenant: its calendar, base currency, token digest and whether it is active."""
    await conn.execute(
        "INSERT INTO tenants (tenant, timezone, fiscal_start_month, currency, token_sha256, active)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant) DO UPDATE SET timezone = EXCLUDED.timezone,"
        " fiscal_start_month = EXCLUDED.fiscal_start_month, currency = EXCLUDED.currency,"
        " token_sha256 = EXCLUDED.token_sha256, active = EXCLUDED.active",
        entry.tenant, entry.timezone, entry.fiscal_start_month, entry.currency, bytes.fromhex(entry.token_sha256),
        entry.active)


async def remember_calendar(conn: asyncpg.Connection, tenant: str, extensions: Mapping[str, str]) -> None:
    """A tenant seen on a sales event before its registry entry: keep its zone and currency from the event."""
    if not extensions.get("tenanttimezone"):
        return
    await conn.execute(
        "INSERT INTO tenants (tenant, timezone, fiscal_start_month, currency) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant) DO NOTHING", tenant, extensions["tenanttimezone"],
        int(extensions.get("tenantfiscalstart") or 1), extensions.get("tenantcurrency") or None)
