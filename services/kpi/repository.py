"""kpi's PostgreSQL state: idempotent transitions (newest version wins) and the figures they feed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.kpi.metrics import Tally
from shared.cloudevents import CloudEvent
from shared.events import ActivityLogged, DealDeleted, DealUpserted, RepUpserted, TargetSet, TenantUpserted


@dataclass(frozen=True, slots=True)
class Touch:
    """A rep's figures changed at `moment` (a deal closed or was created, an activity happened)."""

    rep_id: str
    moment: datetime


@dataclass(frozen=True, slots=True)
class TenantCalendar:
    timezone: str
    fiscal_start_month: int


async def remember_tenant(conn: asyncpg.Connection, event: CloudEvent) -> None:
    tz = event.tenant_timezone
    if tz:
        fiscal = int(event.extensions.get("tenantfiscalstart", "1") or 1)
        currency = event.extensions.get("tenantcurrency") or None
        await conn.execute(
            "INSERT INTO tenants (tenant, timezone, fiscal_start_month, currency) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (tenant) DO UPDATE SET timezone = EXCLUDED.timezone,"
            " fiscal_start_month = EXCLUDED.fiscal_start_month, currency = EXCLUDED.currency"
            " WHERE (tenants.timezone, tenants.fiscal_start_month, tenants.currency)"
            " IS DISTINCT FROM (EXCLUDED.timezone, EXCLUDED.fiscal_start_month, EXCLUDED.currency)",
            event.tenant, tz, fiscal, currency,
        )


async def register_tenant(conn: asyncpg.Connection, entry: TenantUpserted) -> None:
    """The registry's word on a tenant: its token digest, whether it is active, its calendar and currency."""
    await conn.execute(
        "INSERT INTO tenants (tenant, timezone, fiscal_start_month, currency, token_sha256, active)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant) DO UPDATE SET timezone = EXCLUDED.timezone,"
        " fiscal_start_month = EXCLUDED.fiscal_start_month, currency = EXCLUDED.currency,"
        " token_sha256 = EXCLUDED.token_sha256, active = EXCLUDED.active",
        entry.tenant, entry.timezone, entry.fiscal_start_month, entry.currency,
        bytes.fromhex(entry.token_sha256), entry.active)


async def calendar(conn: asyncpg.Connection, tenant: str) -> TenantCalendar:
    row = await conn.fetchrow("SELECT timezone, fiscal_start_month FROM tenants WHERE tenant = $1", tenant)
    return TenantCalendar(row["timezone"], row["fiscal_start_month"]) if row else TenantCalendar("UTC", 1)


def _touches(row: asyncpg.Record | None) -> list[Touch]:
    """Where a deal version counts: at its close (won/lost) and at its creation (pipeline)."""
    if row is None or row["deleted"]:
        return []
    moments = [row["created_at"]] if row["created_at"] else []
    if row["stage"] in ("won", "lost") and row["closed_at"] is not None:
        moments.append(row["closed_at"])
    return [Touch(row["rep_id"], m) for m in moments]


async def _current(conn: asyncpg.Connection, tenant: str, deal_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT rep_id, stage, created_at, closed_at, deleted, updated_at, tiebreak FROM deals"
        " WHERE tenant = $1 AND deal_id = $2 FOR UPDATE",
        tenant, deal_id,
    )


async def apply_deals(conn: asyncpg.Connection, tenant: str,
                      deals: list[tuple[DealUpserted, str]]) -> list[Touch]:
    """Store each deal's newest version in one statement, only where newer than what is stored.

    "Newer" is (updated_at, tiebreak): equal `updated_at`s are ordered by the event id, so every
    delivery order ends in the same state. Returns where figures changed: the moments the old and
    the new version of each changed deal count at.
    """
    if not deals:
        return []
    cols = ([d.deal_id for d, _ in deals], [d.rep_id for d, _ in deals], [d.amount for d, _ in deals],
            [d.currency for d, _ in deals], [d.stage.value for d, _ in deals], [d.created_at for d, _ in deals],
            [d.closed_at for d, _ in deals], [d.updated_at for d, _ in deals], [t for _, t in deals])
    # Lock and read the stored versions first, in a statement of their own: a FOR UPDATE inside the
    # upsert's own WITH would skip rows the same statement updates, and lose their old side.
    old = {r["deal_id"]: r for r in await conn.fetch(
        "SELECT deal_id, rep_id, stage, created_at, closed_at, deleted FROM deals"
        " WHERE tenant = $1 AND deal_id = ANY($2::text[]) ORDER BY deal_id FOR UPDATE", tenant, cols[0])}
    changed = await conn.fetch(
        "WITH incoming AS (SELECT DISTINCT ON (deal_id) * FROM unnest($2::text[], $3::text[], $4::numeric[],"
        "   $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[])"
        "   AS i(deal_id, rep_id, amount, currency, stage, created_at, closed_at, updated_at, tiebreak)"
        "   ORDER BY deal_id, updated_at DESC, tiebreak COLLATE \"C\" DESC)"
        " INSERT INTO deals (tenant, deal_id, rep_id, amount, currency, stage, created_at, closed_at,"
        "   updated_at, tiebreak, deleted) SELECT $1, deal_id, rep_id, amount, currency, stage, created_at,"
        "   closed_at, updated_at, tiebreak, false FROM incoming"
        " ON CONFLICT (tenant, deal_id) DO UPDATE SET rep_id = EXCLUDED.rep_id, amount = EXCLUDED.amount,"
        "   currency = EXCLUDED.currency, stage = EXCLUDED.stage, created_at = EXCLUDED.created_at,"
        "   closed_at = EXCLUDED.closed_at, updated_at = EXCLUDED.updated_at, tiebreak = EXCLUDED.tiebreak,"
        "   deleted = false"
        " WHERE (deals.updated_at, deals.tiebreak) < (EXCLUDED.updated_at, EXCLUDED.tiebreak COLLATE \"C\")"
        " RETURNING deal_id, rep_id, stage, created_at, closed_at, deleted",
        tenant, *cols,
    )
    rows = [row for new in changed for row in (old.get(new["deal_id"]), new)]
    return [touch for row in rows for touch in _touches(row)]


async def add_activities(conn: asyncpg.Connection, tenant: str, activities: list[ActivityLogged]) -> list[Touch]:
    """Insert activities not seen before (by id); return where the new ones count."""
    if not activities:
        return []
    rows = await conn.fetch(
        "INSERT INTO activities (tenant, activity_id, rep_id, kind, occurred_at, deal_id, duration_s)"
        " SELECT DISTINCT ON (a) $1, a, r, k, o, d, s FROM unnest($2::text[], $3::text[], $4::text[],"
        "   $5::timestamptz[], $6::text[], $7::int[]) AS u(a, r, k, o, d, s)"
        " ON CONFLICT DO NOTHING RETURNING rep_id, occurred_at",
        tenant, [a.activity_id for a in activities], [a.rep_id for a in activities],
        [a.kind.value for a in activities], [a.occurred_at for a in activities],
        [a.deal_id for a in activities], [a.duration_s for a in activities],
    )
    return [Touch(r["rep_id"], r["occurred_at"]) for r in rows]


async def delete_deal(conn: asyncpg.Connection, tenant: str, deal: DealDeleted, tiebreak: str) -> list[Touch]:
    """Tombstone the deal (even before its first upsert arrives, so a late older upsert stays dead)."""
    old = await _current(conn, tenant, deal.deal_id)
    if old is not None and (old["updated_at"], old["tiebreak"]) >= (deal.updated_at, tiebreak):
        return []
    await conn.execute(
        "INSERT INTO deals (tenant, deal_id, rep_id, amount, currency, stage, updated_at, tiebreak, deleted)"
        " VALUES ($1, $2, '', 0, 'XXX', 'open', $3, $4, true)"
        # a tombstone keeps nothing of the deal, so its state does not depend on what arrived before it
        " ON CONFLICT (tenant, deal_id) DO UPDATE SET deleted = true, updated_at = EXCLUDED.updated_at,"
        " tiebreak = EXCLUDED.tiebreak, rep_id = '', amount = 0, currency = 'XXX', stage = 'open',"
        " created_at = NULL, closed_at = NULL",
        tenant, deal.deal_id, deal.updated_at, tiebreak,
    )
    return _touches(old)


async def add_membership(conn: asyncpg.Connection, tenant: str, rep: RepUpserted,
                         since: datetime) -> tuple[list[str], datetime]:
    """Record that `rep` is in its team from `since`; return the teams whose history this changes, and
    from when (the start of time for a rep's first team).

    A rep's first known team holds for all their history (the CRM just told us where they are);
    later changes are moves, from the time of the event on."""
    if not await conn.fetchval("SELECT 1 FROM memberships WHERE tenant = $1 AND rep_id = $2", tenant, rep.rep_id):
        since = datetime.min.replace(tzinfo=UTC)
    before = await conn.fetchval(
        "SELECT team_id FROM memberships WHERE tenant = $1 AND rep_id = $2 AND valid_from <= $3"
        " ORDER BY valid_from DESC LIMIT 1", tenant, rep.rep_id, since)
    if before == rep.team_id:
        return [], since
    await conn.execute(
        "INSERT INTO memberships (tenant, rep_id, valid_from, team_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant, rep_id, valid_from) DO UPDATE SET team_id = EXCLUDED.team_id",
        tenant, rep.rep_id, since, rep.team_id)
    return [t for t in (before, rep.team_id) if t], since


async def moments_since(conn: asyncpg.Connection, tenant: str, rep_id: str, since: datetime) -> list[Touch]:
    """Every minute from `since` on in which something of the rep counts (a roster change rewrites them)."""
    rows = await conn.fetch(
        "SELECT DISTINCT date_trunc('minute', m) AS m FROM ("
        "  SELECT closed_at AS m FROM deals WHERE tenant = $1 AND rep_id = $2 AND NOT deleted AND closed_at >= $3"
        "  UNION ALL SELECT created_at FROM deals WHERE tenant = $1 AND rep_id = $2 AND NOT deleted"
        "    AND created_at >= $3"
        "  UNION ALL SELECT occurred_at FROM activities WHERE tenant = $1 AND rep_id = $2 AND occurred_at >= $3"
        ") x", tenant, rep_id, since)
    return [Touch(rep_id, r["m"]) for r in rows]


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


async def targets_of(conn: asyncpg.Connection, tenant: str, scope: str,
                     scope_ids: list[str]) -> dict[tuple[str, str, str], Decimal]:
    """Targets of the given reps or teams, by (scope id, period, metric)."""
    rows = await conn.fetch(
        "SELECT scope_id, period, metric, value FROM targets WHERE tenant = $1 AND scope = $2"
        " AND scope_id = ANY($3::text[])", tenant, scope, scope_ids)
    return {(r["scope_id"], r["period"], r["metric"]): r["value"] for r in rows}


_KEYS = "unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS k(scope_id, period, s, e)"
# Who a row counts for at `moment`: the rep itself, or the team the rep belonged to at that moment.
_MEMBERS = ("(SELECT rep_id, team_id, valid_from, lead(valid_from, 1, 'infinity') OVER"
            " (PARTITION BY rep_id ORDER BY valid_from) AS valid_to FROM memberships WHERE tenant = $1)")


def _owner(scope: str, row: str, moment: str) -> str:
    if scope == "rep":
        return f"{row}.rep_id = k.scope_id"
    return (f"EXISTS (SELECT 1 FROM members m WHERE m.rep_id = {row}.rep_id AND m.team_id = k.scope_id"
            f" AND {row}.{moment} >= m.valid_from AND {row}.{moment} < m.valid_to)")


def _in_base(moment: str) -> str:
    """A deal's amount in the tenant's base currency at the rate valid on the (local) day of `moment`."""
    return (f"d.amount * CASE WHEN t.currency IS NULL OR d.currency = t.currency THEN 1 ELSE"
            f" (SELECT f.rate FROM fx_rates f WHERE f.tenant = d.tenant AND f.currency = d.currency"
            f"  AND f.valid_from <= ({moment} AT TIME ZONE t.timezone)::date ORDER BY f.valid_from DESC LIMIT 1) END")


def _reps_of(scope: str, column: str) -> str:
    """Only the rows of the reps in question (the scope ids, or the reps ever in those teams)."""
    if scope == "rep":
        return f"{column} = ANY($2::text[])"
    return f"{column} IN (SELECT rep_id FROM members WHERE team_id = ANY($2::text[]))"


def _tally_sql(scope: str) -> tuple[str, str, str]:
    base = (f"WITH k AS (SELECT * FROM {_KEYS}), members AS {_MEMBERS},"
            f" d AS (SELECT d.*, {_in_base('d.closed_at')} AS closed_base, {_in_base('d.created_at')} AS created_base"
            f"   FROM deals d LEFT JOIN tenants t ON t.tenant = d.tenant WHERE d.tenant = $1 AND NOT d.deleted"
            f"   AND {_reps_of(scope, 'd.rep_id')})")
    closed = (base + " SELECT k.scope_id, k.period,"
              " COALESCE(sum(d.closed_base) FILTER (WHERE d.stage = 'won'), 0) AS won_revenue,"
              " count(d.deal_id) FILTER (WHERE d.stage = 'won') AS deals_won,"
              " count(d.deal_id) FILTER (WHERE d.stage = 'lost') AS deals_lost,"
              " count(d.deal_id) FILTER (WHERE d.stage = 'won' AND d.closed_base IS NULL) AS unconverted"
              " FROM k LEFT JOIN d ON d.stage IN ('won', 'lost') AND d.closed_at >= k.s AND d.closed_at < k.e"
              f" AND {_owner(scope, 'd', 'closed_at')} GROUP BY k.scope_id, k.period")
    created = (base + " SELECT k.scope_id, k.period, COALESCE(sum(d.created_base), 0) AS pipeline_created,"
               " count(d.deal_id) FILTER (WHERE d.created_base IS NULL) AS unconverted"
               " FROM k LEFT JOIN d ON d.created_at >= k.s AND d.created_at < k.e"
               f" AND {_owner(scope, 'd', 'created_at')} GROUP BY k.scope_id, k.period")
    acts = (f"WITH k AS (SELECT * FROM {_KEYS}), members AS {_MEMBERS}"
            " SELECT k.scope_id, k.period, count(a.activity_id) FILTER (WHERE a.kind = 'call') AS calls,"
            " count(a.activity_id) FILTER (WHERE a.kind = 'email') AS emails,"
            " count(a.activity_id) FILTER (WHERE a.kind = 'meeting') AS meetings,"
            " count(a.activity_id) AS activities"
            " FROM k LEFT JOIN activities a ON a.tenant = $1 AND a.occurred_at >= k.s AND a.occurred_at < k.e"
            f" AND {_reps_of(scope, 'a.rep_id')} AND {_owner(scope, 'a', 'occurred_at')}"
            " GROUP BY k.scope_id, k.period")
    return closed, created, acts


TALLY_SQL = {scope: _tally_sql(scope) for scope in ("rep", "team")}


async def tallies(conn: asyncpg.Connection, tenant: str, scope: str,
                  keys: list[tuple[str, str, datetime, datetime]]) -> dict[tuple[str, str], Tally]:
    """Every metric's raw counts and sums for each (scope id, period) with the period's bounds."""
    args = (tenant, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys])
    closed_sql, created_sql, acts_sql = TALLY_SQL[scope]
    found: dict[tuple[str, str], dict[str, Any]] = {(k[0], k[1]): {} for k in keys}
    for sql in (closed_sql, created_sql, acts_sql):
        for row in await conn.fetch(sql, *args):
            parts = dict(row)
            key = (parts.pop("scope_id"), parts.pop("period"))
            found[key]["unconverted"] = found[key].get("unconverted", 0) + parts.pop("unconverted", 0)
            found[key].update(parts)
    return {key: Tally(**parts) for key, parts in found.items()}


async def teams_of(conn: asyncpg.Connection, tenant: str, rep_ids: list[str], start: datetime,
                   end: datetime) -> dict[str, set[str]]:
    """The teams each rep belonged to at some moment of [start, end)."""
    rows = await conn.fetch(
        f"SELECT m.rep_id, m.team_id FROM {_MEMBERS} m WHERE m.rep_id = ANY($2::text[])"
        " AND m.valid_from < $4 AND m.valid_to > $3", tenant, rep_ids, start, end)
    teams: dict[str, set[str]] = {}
    for r in rows:
        teams.setdefault(r["rep_id"], set()).add(r["team_id"])
    return teams


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
