"""What coaching and recognition both keep of ingest's topics, in tables of the same shape in their own
schemas: the tenant registry (`tenants`: fed by `tenant.upserted`, and by a sales event's tenant
extensions until then) and each deal's newest version (`deals`: tenant, deal_id, rep_id, stage,
amount, currency, closed_at, updated_at, tiebreak, deleted; newest `(updated_at, event id)` wins, so
every delivery order ends in the same state). kpi keeps richer state of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from shared.events import DealDeleted, DealUpserted, TenantUpserted


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


_NEWER = " WHERE (deals.updated_at, deals.tiebreak) < (EXCLUDED.updated_at, EXCLUDED.tiebreak COLLATE \"C\")"


async def store_deal(conn: asyncpg.Connection, tenant: str, deal: DealUpserted, tiebreak: str) -> str | None:
    """Keep this version if it is newer than the stored one; its stage when it was kept, else None."""
    stage: str | None = await conn.fetchval(
        "INSERT INTO deals (tenant, deal_id, rep_id, stage, amount, currency, closed_at, updated_at, tiebreak)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant, deal_id) DO UPDATE SET"
        " rep_id = EXCLUDED.rep_id, stage = EXCLUDED.stage, amount = EXCLUDED.amount, currency = EXCLUDED.currency,"
        " closed_at = EXCLUDED.closed_at, updated_at = EXCLUDED.updated_at, tiebreak = EXCLUDED.tiebreak,"
        " deleted = false" + _NEWER + " RETURNING stage",
        tenant, deal.deal_id, deal.rep_id, deal.stage.value, deal.amount, deal.currency, deal.closed_at,
        deal.updated_at, tiebreak)
    return stage


async def tombstone_deal(conn: asyncpg.Connection, tenant: str, deal: DealDeleted, tiebreak: str) -> None:
    """Mark the deal deleted (even before its first version arrives, so a late older one stays dead)."""
    await conn.execute(
        "INSERT INTO deals (tenant, deal_id, rep_id, stage, amount, currency, updated_at, tiebreak, deleted)"
        " VALUES ($1, $2, '', 'open', 0, 'XXX', $3, $4, true) ON CONFLICT (tenant, deal_id) DO UPDATE SET"
        " deleted = true, updated_at = EXCLUDED.updated_at, tiebreak = EXCLUDED.tiebreak" + _NEWER,
        tenant, deal.deal_id, deal.updated_at, tiebreak)
