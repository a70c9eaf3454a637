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


async def apply_deals(conn: asyncpg.Connection, tenant: str, deals: list[DealUpserted]) -> list[WonAt]:
    """`a deal's newest version for a whole batch in one statement: the newest version per deal, only where newer
    than what is stored; return where won revenue changed (the old and the new place of each)."""
    if not deals:
        return []
    cols = ([d.deal_id for d in deals], [d.rep_id for d in deals], [d.amount for d in deals],
            [d.currency for d in deals], [d.stage.value for d in deals], [d.created_at for d in deals],
            [d.closed_at for d in deals], [d.updated_at for d in deals])
    rows = await conn.fetch(
        "WITH incoming AS (SELECT DISTINCT ON (deal_id) * FROM unnest($2::text[], $3::text[], $4::numeric[],"
        "   $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[])"
        "   AS i(deal_id, rep_id, amount, currency, stage, created_at, closed_at, updated_at)"
        "   ORDER BY deal_id, updated_at DESC),"
        " old AS (SELECT d.deal_id, d.rep_id, d.stage, d.closed_at, d.deleted FROM deals d"
        "   JOIN incoming i ON d.tenant = $1 AND d.deal_id = i.deal_id FOR UPDATE OF d),"
        " changed AS (INSERT INTO deals (tenant, deal_id, rep_id, amount, currency, stage, created_at, closed_at,"
        "   updated_at, deleted) SELECT $1, deal_id, rep_id, amount, currency, stage, created_at, closed_at,"
        "   updated_at, false FROM incoming"
        "   ON CONFLICT (tenant, deal_id) DO UPDATE SET rep_id = EXCLUDED.rep_id, amount = EXCLUDED.amount,"
        "   currency = EXCLUDED.currency, stage = EXCLUDED.stage, created_at = EXCLUDED.created_at,"
        "   closed_at = EXCLUDED.closed_at, updated_at = EXCLUDED.updated_at, deleted = false"
        "   WHERE deals.updated_at < EXCLUDED.updated_at"
        "   RETURNING deal_id, rep_id, stage, closed_at, deleted)"
        " SELECT o.rep_id, o.stage, o.closed_at, o.deleted FROM old o JOIN changed c USING (deal_id)"
        " UNION ALL SELECT rep_id, stage, closed_at, deleted FROM changed",
        tenant, *cols,
    )
    return [w for w in (_won(r) for r in rows) if w is not None]


async def add_activities(conn: asyncpg.Connection, tenant: str, activities: list[ActivityLogged]) -> None:
    if activities:
        await conn.execute(
            "INSERT INTO activities (tenant, activity_id, rep_id, kind, occurred_at, deal_id, duration_s)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::int[])"
            " ON CONFLICT DO NOTHING",
            tenant, [a.activity_id for a in activities], [a.rep_id for a in activities],
            [a.kind.value for a in activities], [a.occurred_at for a in activities],
            [a.deal_id for a in activities], [a.duration_s for a in activities],
        )


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


async def targets_of(conn: asyncpg.Connection, tenant: str, rep_ids: list[str],
                     metric: str) -> dict[str, dict[str, Decimal]]:
    """Each rep's targets for `metric`, by period."""
    found: dict[str, dict[str, Decimal]] = {}
    for r in await conn.fetch(
        "SELECT scope_id, period, value FROM targets WHERE tenant = $1 AND scope = 'rep'"
        " AND scope_id = ANY($2::text[]) AND metric = $3", tenant, rep_ids, metric,
    ):
        found.setdefault(r["scope_id"], {})[r["period"]] = r["value"]
    return found


async def won_revenue_of(conn: asyncpg.Connection, tenant: str,
                         keys: list[tuple[str, str, datetime, datetime]]) -> dict[tuple[str, str], Decimal]:
    """Won revenue of each (rep, period) with the period's bounds, in one statement."""
    rows = await conn.fetch(
        "SELECT k.rep_id, k.period, COALESCE(sum(d.amount), 0) AS actual"
        " FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS k(rep_id, period, s, e)"
        " LEFT JOIN deals d ON d.tenant = $1 AND d.rep_id = k.rep_id AND d.stage = 'won' AND NOT d.deleted"
        "   AND d.closed_at >= k.s AND d.closed_at < k.e"
        " GROUP BY k.rep_id, k.period",
        tenant, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
    )
    return {(r["rep_id"], r["period"]): r["actual"] for r in rows}


async def profiles_of(conn: asyncpg.Connection, tenant: str, rep_ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch("SELECT rep_id, name, team_id, manager_id FROM reps WHERE tenant = $1"
                            " AND rep_id = ANY($2::text[])", tenant, rep_ids)
    return {r["rep_id"]: r for r in rows}


async def save_all_figures(conn: asyncpg.Connection, tenant: str, figures: list[tuple[str, str, str, str,
                           Decimal, Decimal | None]], at: datetime) -> dict[tuple[str, str, str, str], int]:
    """`save_figures` for many keys at once: the new revision of each key whose figures changed."""
    rows = await conn.fetch(
        "INSERT INTO attainment (tenant, scope, scope_id, period, metric, actual, target, updated_at)"
        " SELECT $1, * , $8::timestamptz FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],"
        "   $6::numeric[], $7::numeric[])"
        " ON CONFLICT (tenant, scope, scope_id, period, metric) DO UPDATE SET actual = EXCLUDED.actual,"
        " target = EXCLUDED.target, updated_at = EXCLUDED.updated_at, revision = attainment.revision + 1"
        " WHERE (attainment.actual, attainment.target) IS DISTINCT FROM (EXCLUDED.actual, EXCLUDED.target)"
        " RETURNING scope, scope_id, period, metric, revision",
        tenant, *([f[i] for f in figures] for i in range(6)), at,
    )
    return {(r["scope"], r["scope_id"], r["period"], r["metric"]): r["revision"] for r in rows}
