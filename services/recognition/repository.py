"""recognition's PostgreSQL state: what it keeps of the topics, its settings, and the ledger.

The ledger's unique key (tenant, scope, scope id, milestone, period) and its primary key (the stable
celebration id) are the "once, ever" guarantee: a milestone is announced only by the transaction whose
insert created its row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from services.recognition.model import Found, Settings, Standing, WonDeal
from services.recognition.rules import celebration_id
from shared import registry
from shared.events import ActivityLogged, AttainmentUpdated, DealUpserted, RepUpserted

CELEBRATION_COLUMNS = ("celebration_id, scope, scope_id, milestone, period, value, headline, occurred_at, facts,"
                       " status, corrected_at")


async def calendar(conn: asyncpg.Connection, tenant: str) -> tuple[ZoneInfo, int, str | None]:
    row = await conn.fetchrow("SELECT timezone, fiscal_start_month, currency FROM tenants WHERE tenant = $1", tenant)
    return (ZoneInfo(row["timezone"]), row["fiscal_start_month"], row["currency"]) if row else (ZoneInfo("UTC"), 1,
                                                                                                  None)


async def upsert_rep(conn: asyncpg.Connection, tenant: str, rep: RepUpserted, version: datetime) -> None:
    await conn.execute(
        "INSERT INTO reps (tenant, rep_id, name, team_id, timezone, version) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (tenant, rep_id) DO UPDATE SET name = EXCLUDED.name, team_id = EXCLUDED.team_id,"
        " timezone = EXCLUDED.timezone, version = EXCLUDED.version WHERE reps.version <= EXCLUDED.version",
        tenant, rep.rep_id, rep.name, rep.team_id, rep.timezone, version)


async def rep(conn: asyncpg.Connection, tenant: str, rep_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT name, team_id, timezone FROM reps WHERE tenant = $1 AND rep_id = $2",
                               tenant, rep_id)


async def settings(conn: asyncpg.Connection, tenant: str) -> Settings:
    raw = await conn.fetchval("SELECT overrides FROM settings WHERE tenant = $1", tenant)
    return Settings.model_validate(json.loads(raw)) if raw else Settings()


async def overrides(conn: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    raw = await conn.fetchval("SELECT overrides FROM settings WHERE tenant = $1", tenant)
    return json.loads(raw) if raw else {}


async def set_overrides(conn: asyncpg.Connection, tenant: str, values: dict[str, Any]) -> None:
    await conn.execute("INSERT INTO settings (tenant, overrides) VALUES ($1, $2::jsonb) ON CONFLICT (tenant)"
                       " DO UPDATE SET overrides = EXCLUDED.overrides", tenant, json.dumps(values, default=str))


async def save_attainment(conn: asyncpg.Connection, tenant: str,
                          update: AttainmentUpdated) -> tuple[bool, Decimal | None]:
    """Keep the newer figure; returns whether it was newer and the attainment it replaced."""
    before = await conn.fetchrow(
        "SELECT attainment, as_of FROM attainment WHERE tenant = $1 AND scope = $2 AND scope_id = $3 AND period = $4"
        " AND metric = $5 FOR UPDATE", tenant, update.scope.value, update.scope_id, update.period,
        update.metric.value)
    if before is not None and before["as_of"] > update.as_of:
        return False, None  # an older figure arriving late changes nothing
    await conn.execute(
        "INSERT INTO attainment (tenant, scope, scope_id, period, metric, actual, target, attainment, name, as_of)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant, scope, scope_id, period, metric)"
        " DO UPDATE SET actual = EXCLUDED.actual, target = EXCLUDED.target, attainment = EXCLUDED.attainment,"
        " name = EXCLUDED.name, as_of = EXCLUDED.as_of",
        tenant, update.scope.value, update.scope_id, update.period, update.metric.value, update.actual,
        update.target, update.attainment, update.name, update.as_of)
    return True, before["attainment"] if before is not None else None


async def apply_deal(conn: asyncpg.Connection, tenant: str, deal: DealUpserted, tiebreak: str) -> bool:
    """Store the version if newer; True when it made the deal won (it was not won before)."""
    before = await conn.fetchval("SELECT stage = 'won' AND NOT deleted FROM deals WHERE tenant = $1 AND deal_id = $2"
                                 " FOR UPDATE", tenant, deal.deal_id)
    stage = await registry.store_deal(conn, tenant, deal, tiebreak)
    return stage == "won" and not before and deal.closed_at is not None


async def won_deals(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str],
                    start: datetime | None = None, end: datetime | None = None) -> list[WonDeal]:
    rows = await conn.fetch(
        "SELECT deal_id, rep_id, amount, currency, closed_at FROM deals WHERE tenant = $1 AND rep_id = ANY($2::text[])"
        " AND stage = 'won' AND NOT deleted AND closed_at IS NOT NULL AND ($3::timestamptz IS NULL OR closed_at >= $3)"
        " AND ($4::timestamptz IS NULL OR closed_at < $4)", tenant, list(rep_ids), start, end)
    return [WonDeal(r["deal_id"], r["rep_id"], r["amount"], r["currency"].strip(), r["closed_at"]) for r in rows]


async def add_activity(conn: asyncpg.Connection, tenant: str, activity: ActivityLogged) -> bool:
    return bool(await conn.fetchval(
        "INSERT INTO activities (tenant, activity_id, rep_id, occurred_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING 1", tenant, activity.activity_id, activity.rep_id, activity.occurred_at))


async def activity_moments(conn: asyncpg.Connection, tenant: str, rep_id: str, since: datetime,
                           until: datetime) -> list[datetime]:
    return [r[0] for r in await conn.fetch("SELECT occurred_at FROM activities WHERE tenant = $1 AND rep_id = $2"
                                           " AND occurred_at >= $3 AND occurred_at < $4", tenant, rep_id, since, until)]


async def record(conn: asyncpg.Connection, tenant: str, found: Found, headline: str, status: str = "celebrated",
                 metric: str | None = None) -> str | None:
    """Put a milestone in the ledger; its celebration id only for the transaction that created its row."""
    facts = json.dumps({k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in found.facts.items()},
                       default=str)
    cid = celebration_id(tenant, found.scope.value, found.scope_id, found.milestone, found.period)
    inserted = await conn.fetchval(
        "INSERT INTO celebrations (celebration_id, tenant, scope, scope_id, milestone, period, value, headline,"
        " occurred_at, facts, status, metric) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12)"
        " ON CONFLICT DO NOTHING RETURNING 1", cid, tenant, found.scope.value, found.scope_id, found.milestone,
        found.period, found.value, headline, found.occurred_at, facts, status, metric)
    return str(cid) if inserted is not None else None


async def mark_corrected(conn: asyncpg.Connection, tenant: str, scope: str, scope_id: str, period: str,
                         milestones: Sequence[str], at: datetime) -> list[asyncpg.Record]:
    """The celebrated milestones that now get their one correction."""
    return list(await conn.fetch(
        f"UPDATE celebrations SET corrected_at = $6 WHERE tenant = $1 AND scope = $2 AND scope_id = $3"
        f" AND period = $4 AND milestone = ANY($5::text[]) AND status = 'celebrated' AND corrected_at IS NULL"
        f" RETURNING {CELEBRATION_COLUMNS}", tenant, scope, scope_id, period, list(milestones), at))


async def celebrations(conn: asyncpg.Connection, tenant: str, *, scope_id: str | None, period: str | None,
                       limit: int, before: datetime | None = None) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        f"SELECT {CELEBRATION_COLUMNS} FROM celebrations WHERE tenant = $1 AND status = 'celebrated'"
        " AND ($2::text IS NULL OR scope_id = $2) AND ($3::text IS NULL OR period = $3)"
        " AND ($5::timestamptz IS NULL OR occurred_at < $5) ORDER BY occurred_at DESC, celebration_id LIMIT $4",
        tenant, scope_id, period, limit, before))


async def standings(conn: asyncpg.Connection, tenant: str, period: str, metric: str) -> dict[str, list[Standing]]:
    """Per team, its reps' final figures of `metric` in `period` (the team as the roster has it now)."""
    rows = await conn.fetch(
        "SELECT r.team_id, a.scope_id, coalesce(r.name, a.name) AS name, a.actual FROM attainment a JOIN reps r"
        " ON r.tenant = a.tenant AND r.rep_id = a.scope_id WHERE a.tenant = $1 AND a.scope = 'rep' AND a.period = $2"
        " AND a.metric = $3 AND r.team_id IS NOT NULL", tenant, period, metric)
    teams: dict[str, list[Standing]] = {}
    for r in rows:
        teams.setdefault(r["team_id"], []).append(Standing(r["scope_id"], r["name"], r["actual"]))
    return teams


async def team_members(conn: asyncpg.Connection, tenant: str) -> dict[str, list[str]]:
    teams: dict[str, list[str]] = {}
    for r in await conn.fetch("SELECT team_id, rep_id FROM reps WHERE tenant = $1 AND team_id IS NOT NULL"
                              " ORDER BY rep_id", tenant):
        teams.setdefault(r["team_id"], []).append(r["rep_id"])
    return teams
