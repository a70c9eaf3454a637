"""kpi's PostgreSQL state: idempotent transitions (newest version wins) and the figures they feed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from shared.cloudevents import CloudEvent
from shared.events import ActivityLogged, DealDeleted, DealUpserted, RepUpserted, TargetSet


@dataclass(frozen=True, slots=True)
class WonAt:
    """Where a deal counted as won revenue: the rep and the moment it closed."""

    rep_id: str
    closed_at: datetime


@dataclass(frozen=True, slots=True)
class TenantCalendar:
    timezone: str
    fiscal_start_month: int


async def remember_tenant(conn: asyncpg.Connection, event: CloudEvent) -> None:
    tz = event.tenant_timezone
    if tz:
        fiscal = int(event.extensions.get("tenantfiscalstart", "1") or 1)
        await conn.execute(
            "INSERT INTO tenants (tenant, timezone, fiscal_start_month) VALUES ($1, $2, $3)"
            " ON CONFLICT (tenant) DO UPDATE SET timezone = EXCLUDED.timezone,"
            " fiscal_start_month = EXCLUDED.fiscal_start_month WHERE (tenants.timezone,"
            " tenants.fiscal_start_month) IS DISTINCT FROM (EXCLUDED.timezone, EXCLUDED.fiscal_start_month)",
            event.tenant, tz, fiscal,
        )


async def calendar(conn: asyncpg.Connection, tenant: str) -> TenantCalendar:
    row = await conn.fetchrow("SELECT timezone, fiscal_start_month FROM tenants WHERE tenant = $1", tenant)
    return TenantCalendar(row["timezone"], row["fiscal_start_month"]) if row else TenantCalendar("UTC", 1)


def _won(row: asyncpg.Record | None) -> WonAt | None:
    if row is None or row["deleted"] or row["stage"] != "won" or row["closed_at"] is None:
        return None
    return WonAt(row["rep_id"], row["closed_at"])


async def _current(conn: asyncpg.Connection, tenant: str, deal_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT rep_id, stage, closed_at, deleted, updated_at FROM deals"
        " WHERE tenant = $1 AND deal_id = $2 FOR UPDATE",
        tenant, deal_id,
    )


async def apply_deal(conn: asyncpg.Connection, tenant: str, deal: DealUpserted) -> list[WonAt]:
    """Store the deal if this version is newer; return where won revenue changed (old and new)."""
    old = await _current(conn, tenant, deal.deal_id)
    if old is not None and old["updated_at"] >= deal.updated_at:
        return []  # stale or repeated version: last writer (by updated_at) already won
    await conn.execute(
        "INSERT INTO deals (tenant, deal_id, rep_id, amount, currency, stage, created_at, closed_at,"
        " updated_at, deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false)"
        " ON CONFLICT (tenant, deal_id) DO UPDATE SET rep_id = EXCLUDED.rep_id, amount = EXCLUDED.amount,"
        " currency = EXCLUDED.currency, stage = EXCLUDED.stage, created_at = EXCLUDED.created_at,"
        " closed_at = EXCLUDED.closed_at, updated_at = EXCLUDED.updated_at, deleted = false",
        tenant, deal.deal_id, deal.rep_id, deal.amount, deal.currency, deal.stage.value,
        deal.created_at, deal.closed_at, deal.updated_at,
    )
    new = WonAt(deal.rep_id, deal.closed_at) if deal.stage == "won" and deal.closed_at else None
    return [w for w in (_won(old), new) if w is not None]


async def delete_deal(conn: asyncpg.Connection, tenant: str, deal: DealDeleted) -> list[WonAt]:
    """Tombstone the deal (even before its first upsert arrives, so a late older upsert stays dead)."""
    old = await _current(conn, tenant, deal.deal_id)
    if old is not None and old["updated_at"] >= deal.updated_at:
        return []
    await conn.execute(
        "INSERT INTO deals (tenant, deal_id, rep_id, amount, currency, stage, updated_at, deleted)"
        " VALUES ($1, $2, '', 0, 'XXX', 'open', $3, true)"
        " ON CONFLICT (tenant, deal_id) DO UPDATE SET deleted = true, updated_at = EXCLUDED.updated_at",
        tenant, deal.deal_id, deal.updated_at,
    )
    won = _won(old)
    return [won] if won else []


async def add_activity(conn: asyncpg.Connection, tenant: str, activity: ActivityLogged) -> bool:
    status = await conn.execute(
        "INSERT INTO activities (tenant, activity_id, rep_id, kind, occurred_at, deal_id, duration_s)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        tenant, activity.activity_id, activity.rep_id, activity.kind.value, activity.occurred_at,
        activity.deal_id, activity.duration_s,
    )
    return str(status).endswith(" 1")


async def upsert_rep(conn: asyncpg.Connection, tenant: str, rep: RepUpserted, version: datetime) -> None:
    await conn.execute(
        "INSERT INTO reps (tenant, rep_id, name, team_id, manager_id, timezone, active, version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (tenant, rep_id) DO UPDATE SET name = EXCLUDED.name, team_id = EXCLUDED.team_id,"
        " manager_id = EXCLUDED.manager_id, timezone = EXCLUDED.timezone, active = EXCLUDED.active,"
        " version = EXCLUDED.version WHERE reps.version <= EXCLUDED.version",
        tenant, rep.rep_id, rep.name, rep.team_id, rep.manager_id, rep.timezone, rep.active, version,
    )


async def set_target(conn: asyncpg.Connection, tenant: str, target: TargetSet, version: datetime) -> bool:
    status = await conn.execute(
        "INSERT INTO targets (tenant, scope, scope_id, metric, period, value, version)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (tenant, scope, scope_id, metric, period) DO UPDATE SET value = EXCLUDED.value,"
        " version = EXCLUDED.version WHERE targets.version <= EXCLUDED.version",
        tenant, target.scope.value, target.scope_id, target.metric.value, target.period, target.value, version,
    )
    return str(status).endswith(" 1")


async def rep_targets(conn: asyncpg.Connection, tenant: str, rep_id: str, metric: str) -> dict[str, Decimal]:
    rows = await conn.fetch(
        "SELECT period, value FROM targets WHERE tenant = $1 AND scope = 'rep' AND scope_id = $2 AND metric = $3",
        tenant, rep_id, metric,
    )
    return {r["period"]: r["value"] for r in rows}


async def won_revenue(conn: asyncpg.Connection, tenant: str, rep_id: str, start: datetime, end: datetime) -> Decimal:
    value: Decimal = await conn.fetchval(
        "SELECT COALESCE(sum(amount), 0) FROM deals WHERE tenant = $1 AND rep_id = $2 AND stage = 'won'"
        " AND NOT deleted AND closed_at >= $3 AND closed_at < $4",
        tenant, rep_id, start, end,
    )
    return value


async def rep_profile(conn: asyncpg.Connection, tenant: str, rep_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT name, team_id, manager_id FROM reps WHERE tenant = $1 AND rep_id = $2", tenant, rep_id
    )


async def save_figures(conn: asyncpg.Connection, tenant: str, key: tuple[str, str, str, str],
                       actual: Decimal, target: Decimal | None, at: datetime) -> int | None:
    """Store the figures for (scope, scope_id, period, metric); return the new revision, or None
    when they equal what was last emitted (nothing to tell anyone)."""
    scope, scope_id, period, metric = key
    revision: int | None = await conn.fetchval(
        "INSERT INTO attainment (tenant, scope, scope_id, period, metric, actual, target, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT (tenant, scope, scope_id, period, metric) DO UPDATE SET actual = EXCLUDED.actual,"
        " target = EXCLUDED.target, updated_at = EXCLUDED.updated_at, revision = attainment.revision + 1"
        " WHERE (attainment.actual, attainment.target) IS DISTINCT FROM (EXCLUDED.actual, EXCLUDED.target)"
        " RETURNING revision",
        tenant, scope, scope_id, period, metric, actual, target, at,
    )
    return revision
