"""What kpi's read side (the API and the dashboard pages) reads from kpi's own tables: figures, standings,
the deals and activities behind them (money converted into the base currency exactly as the tallies
do, through `Books.in_base`), a figure's forecast, contests, and the KPIs the tenant defined.

A metric is named by its string: a built-in one (`Metric`) or a KPI's id, which the `attainment` view holds
like a built-in metric's name. Only the built-in additive metrics have a series of points (`ADDITIVE`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from services.kpi import repository as repo
from services.kpi.contributions import Books
from services.kpi.custom import KpiDefinition
from services.kpi.forecast import MAX_STATES, SAMPLES
from services.kpi.forecasting import LIVE_SAMPLES, LIVE_STATES, explained
from services.kpi.outlook import Explained
from services.kpi.pace import calendar_of
from services.kpi.ports import PgRepository
from services.kpi.repository import StoredContest
from shared.events import Metric
from shared.workdays import NO_CALENDAR, HolidayCalendar

# Metrics a cumulative chart and a recent gain make sense for (a ratio has no running sum).
ADDITIVE = {Metric.WON_REVENUE, Metric.DEALS_WON, Metric.PIPELINE_CREATED, Metric.CALLS, Metric.EMAILS,
            Metric.MEETINGS, Metric.ACTIVITIES}
MONEY = {Metric.WON_REVENUE, Metric.PIPELINE_CREATED, Metric.AVG_DEAL_SIZE}
KINDS = {Metric.CALLS: ["call"], Metric.EMAILS: ["email"], Metric.MEETINGS: ["meeting"],
         Metric.ACTIVITIES: ["call", "email", "meeting", "demo", "task", "other"]}


@dataclass(frozen=True)
class Tenant:
    slug: str
    timezone: ZoneInfo
    fiscal_start_month: int
    currency: str | None
    locale: str
    holidays: HolidayCalendar = NO_CALENDAR  # the days off of every pace the pages show (with a rep's time off)
    shown: str | None = None  # the quarter shown when a page names none (`shown_quarter`); None: the current one


async def tenant(conn: asyncpg.Connection, slug: str) -> Tenant:
    row = await conn.fetchrow("SELECT timezone, fiscal_start_month, currency, locale, holidays FROM tenants"
                              " WHERE tenant = $1", slug)
    if row is None:
        return Tenant(slug, ZoneInfo("UTC"), 1, None, "en")
    return Tenant(slug, ZoneInfo(row["timezone"]), row["fiscal_start_month"],
                  row["currency"].strip() if row["currency"] else None, row["locale"],
                  calendar_of(row["holidays"], slug))


async def shown_quarter(conn: asyncpg.Connection, tenant: str, current: str) -> str:
    """The quarter a page or a read shows when none is asked for: `current` (the quarter running now) once it
    has figures; else the latest earlier quarter that has (the first days of a new quarter, or a demo played
    into the past, show the quarter with numbers rather than an empty one); else `current`. One backward step
    of the `period_tallies_board` index: quarter labels (`2026-Q4`) sort after the months of their year and
    before its weeks, and a counted record has rows in every period it falls in."""
    found = await conn.fetchval(
        "SELECT period FROM period_tallies WHERE tenant = $1 AND period <= $2 AND period ~ '^[0-9]{4}-Q[1-4]$'"
        " ORDER BY period DESC LIMIT 1", tenant, current)
    return str(found) if found is not None else current


async def time_off(conn: asyncpg.Connection, tenant: str, rep_ids: list[str], first: date,
                   last: date) -> dict[str, list[tuple[date, date]]]:
    """The reps' time off overlapping the local days `first` to `last` (`repository.time_off`)."""
    return await repo.time_off(conn, tenant, rep_ids, first, last)


async def standings(conn: asyncpg.Connection, tenant: str, period: str, metric: str,
                    team_id: str | None = None) -> list[asyncpg.Record]:
    """Every rep's figure of `metric` in `period` (of one team when `team_id` is given), unordered: the read
    API's leaderboard and the dashboard's rank them (`ranking.ranked`, by amount or by attainment)."""
    return list(await conn.fetch(
        "SELECT a.scope_id AS rep_id, a.actual, a.target, r.name, r.team_id, t.name AS team_name FROM attainment a"
        " LEFT JOIN reps r ON r.tenant = a.tenant AND r.rep_id = a.scope_id"
        " LEFT JOIN teams t ON t.tenant = r.tenant AND t.team_id = r.team_id"
        " WHERE a.tenant = $1 AND a.scope = 'rep' AND a.period = $2 AND a.metric = $3"
        " AND ($4::text IS NULL OR r.team_id = $4)",
        tenant, period, metric, team_id))


async def team_standings(conn: asyncpg.Connection, tenant: str, period: str, metric: str) -> list[asyncpg.Record]:
    """Every team's figure of `metric` in `period` (what its reps did while in it), with its name: team
    against team."""
    return list(await conn.fetch(
        "SELECT a.scope_id AS team_id, a.actual, a.target, t.name FROM attainment a"
        " LEFT JOIN teams t ON t.tenant = a.tenant AND t.team_id = a.scope_id"
        " WHERE a.tenant = $1 AND a.scope = 'team' AND a.period = $2 AND a.metric = $3",
        tenant, period, metric))


async def figures_of(conn: asyncpg.Connection, tenant: str, scope: str, scope_id: str,
                     period: str) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT metric, actual, target FROM attainment WHERE tenant = $1 AND scope = $2"
                                 " AND scope_id = $3 AND period = $4 ORDER BY metric", tenant, scope, scope_id,
                                 period))


async def profile(conn: asyncpg.Connection, tenant: str, rep_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT r.rep_id, r.name, r.team_id, r.manager_id, t.name AS team_name FROM reps r"
        " LEFT JOIN teams t ON t.tenant = r.tenant AND t.team_id = r.team_id"
        " WHERE r.tenant = $1 AND r.rep_id = $2", tenant, rep_id)
    return row


async def teams(conn: asyncpg.Connection, tenant: str, period: str) -> list[asyncpg.Record]:
    """Every team with reps or figures, its name, head count, manager (the one most of its reps report
    to) and won revenue in `period`."""
    return list(await conn.fetch(
        "WITH ids AS (SELECT team_id FROM reps WHERE tenant = $1 AND active UNION"
        "  SELECT scope_id FROM attainment WHERE tenant = $1 AND scope = 'team' AND period = $2)"
        " SELECT i.team_id, t.name, t.parent_id,"
        "  (SELECT count(*) FROM reps r WHERE r.tenant = $1 AND r.team_id = i.team_id AND r.active) AS reps,"
        "  (SELECT r.manager_id FROM reps r WHERE r.tenant = $1 AND r.team_id = i.team_id AND r.active"
        "    AND r.manager_id IS NOT NULL GROUP BY r.manager_id ORDER BY count(*) DESC, r.manager_id LIMIT 1)"
        "    AS manager_id,"
        "  a.actual, a.target FROM ids i"
        " LEFT JOIN teams t ON t.tenant = $1 AND t.team_id = i.team_id"
        " LEFT JOIN attainment a ON a.tenant = $1 AND a.scope = 'team' AND a.scope_id = i.team_id"
        "  AND a.period = $2 AND a.metric = 'won_revenue'"
        " ORDER BY i.team_id", tenant, period))


async def team(conn: asyncpg.Connection, tenant: str, team_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT $2::text AS team_id, t.name, t.parent_id,"
        " (SELECT r.manager_id FROM reps r WHERE r.tenant = $1 AND r.team_id = $2 AND r.active"
        "   AND r.manager_id IS NOT NULL GROUP BY r.manager_id ORDER BY count(*) DESC, r.manager_id LIMIT 1)"
        "   AS manager_id"
        " FROM (SELECT 1) one LEFT JOIN teams t ON t.tenant = $1 AND t.team_id = $2", tenant, team_id)
    return row


async def points(conn: asyncpg.Connection, tenant: str, books: Books, rep_ids: list[str], metric: Metric,
                 start: datetime, end: datetime) -> list[tuple[str, datetime, Decimal]]:
    """(rep, moment, amount) of everything that adds to an additive `metric` in [start, end), money in the
    base currency at the rate of the local day (a deal without a rate is left out, as in the tallies)."""
    if metric in KINDS:
        rows = await conn.fetch(
            "SELECT rep_id, occurred_at FROM activities WHERE tenant = $1 AND rep_id = ANY($2::text[])"
            " AND kind = ANY($3::text[]) AND occurred_at >= $4 AND occurred_at < $5",
            tenant, rep_ids, KINDS[metric], start, end)
        return [(r["rep_id"], r["occurred_at"], Decimal(1)) for r in rows]
    moment = "created_at" if metric is Metric.PIPELINE_CREATED else "closed_at"
    won = "true" if metric is Metric.PIPELINE_CREATED else "stage = 'won'"
    rows = await conn.fetch(
        f"SELECT rep_id, amount, currency, {moment} AS at FROM deals WHERE tenant = $1"
        f" AND rep_id = ANY($2::text[]) AND NOT deleted AND {won} AND {moment} >= $3 AND {moment} < $4",
        tenant, rep_ids, start, end)
    out: list[tuple[str, datetime, Decimal]] = []
    for r in rows:
        if metric is Metric.DEALS_WON:
            out.append((r["rep_id"], r["at"], Decimal(1)))
            continue
        base = books.in_base(r["amount"], r["currency"].strip(), r["at"].astimezone(books.timezone).date())
        if base is not None:
            out.append((r["rep_id"], r["at"], base))
    return out


async def contributions(conn: asyncpg.Connection, tenant: str, rep_id: str, metric: Metric, start: datetime,
                        end: datetime, limit: int = 50) -> list[dict[str, Any]]:
    """The newest deals (or activities) behind a figure, with the CRM's own ids."""
    if metric in KINDS:
        rows = await conn.fetch(
            "SELECT activity_id AS id, kind AS detail, occurred_at AS at, NULL::numeric AS amount,"
            " NULL::text AS currency FROM activities WHERE tenant = $1 AND rep_id = $2 AND kind = ANY($3::text[])"
            " AND occurred_at >= $4 AND occurred_at < $5 ORDER BY occurred_at DESC, activity_id LIMIT $6",
            tenant, rep_id, KINDS[metric], start, end, limit)
    else:
        moment = "created_at" if metric is Metric.PIPELINE_CREATED else "closed_at"
        condition = {Metric.WIN_RATE: "stage IN ('won', 'lost')", Metric.PIPELINE_CREATED: "true"}.get(
            metric, "stage = 'won'")
        rows = await conn.fetch(
            f"SELECT deal_id AS id, stage AS detail, {moment} AS at, amount, currency FROM deals"
            f" WHERE tenant = $1 AND rep_id = $2 AND NOT deleted AND {condition} AND {moment} >= $3"
            f" AND {moment} < $4 ORDER BY {moment} DESC, deal_id LIMIT $5", tenant, rep_id, start, end, limit)
    return [dict(r) for r in rows]


async def books_of(conn: asyncpg.Connection, tenant: str) -> Books:
    return await repo.books(conn, tenant)


# Where a deal metric's contributions are: which deals count, and at which of their moments.
DEAL_METRICS: dict[Metric, tuple[str, str]] = {
    Metric.WON_REVENUE: ("stage = 'won'", "closed_at"), Metric.DEALS_WON: ("stage = 'won'", "closed_at"),
    Metric.AVG_DEAL_SIZE: ("stage = 'won'", "closed_at"), Metric.WIN_RATE: ("stage IN ('won', 'lost')", "closed_at"),
    Metric.PIPELINE_CREATED: ("true", "created_at"),
}


async def contributing_deals(conn: asyncpg.Connection, tenant: str, rep_id: str, metric: Metric, start: datetime,
                             end: datetime, limit: int) -> list[asyncpg.Record]:
    """The rep's live deals that count for `metric` in [start, end), by their moment (`at`)."""
    condition, moment = DEAL_METRICS[metric]
    return list(await conn.fetch(
        f"SELECT deal_id, amount, currency, stage, {moment} AS at FROM deals WHERE tenant = $1"
        f" AND rep_id = $2 AND NOT deleted AND {condition} AND {moment} >= $3 AND {moment} < $4"
        f" ORDER BY {moment}, deal_id LIMIT $5", tenant, rep_id, start, end, limit))


async def contributing_activities(conn: asyncpg.Connection, tenant: str, rep_id: str, metric: Metric,
                                  start: datetime, end: datetime, limit: int) -> list[asyncpg.Record]:
    """The rep's activities that count for `metric` in [start, end)."""
    return list(await conn.fetch(
        "SELECT activity_id, kind, occurred_at FROM activities WHERE tenant = $1 AND rep_id = $2"
        " AND kind = ANY($3::text[]) AND occurred_at >= $4 AND occurred_at < $5 ORDER BY occurred_at,"
        " activity_id LIMIT $6", tenant, rep_id, KINDS[metric], start, end, limit))


async def activity_counts(conn: asyncpg.Connection, tenant: str, scope: str, scope_id: str, since: datetime,
                          until: datetime) -> dict[str, int]:
    """Activities per kind in [since, until) of a rep, or of the reps of a team as the roster has it now."""
    return dict(await conn.fetch(
        "SELECT kind, count(*) FROM activities WHERE tenant = $1 AND occurred_at >= $2 AND occurred_at < $3"
        " AND (($4 = 'rep' AND rep_id = $5) OR ($4 = 'team' AND rep_id IN"
        "   (SELECT rep_id FROM reps WHERE tenant = $1 AND team_id = $5))) GROUP BY kind",
        tenant, since, until, scope, scope_id))


async def targeted_metrics(conn: asyncpg.Connection, tenant: str, period: str) -> list[str]:
    """The metrics (built-in or KPIs) someone set a target for in `period`."""
    return [r["metric"] for r in await conn.fetch(
        "SELECT DISTINCT metric FROM targets WHERE tenant = $1 AND period = $2 ORDER BY metric", tenant, period)]


async def forecast_of(conn: asyncpg.Connection, tenant: str, scope: str, scope_id: str, period: str,
                      rows: Sequence[Mapping[str, Any]], bounds: tuple[datetime, datetime], now: datetime, *,
                      full: bool = True) -> Explained:
    """The won_revenue figure's forecast now (`forecasting.explained`), from the figure's row among `rows`
    (`figures_of`; none: nothing closed, no target): with the full budget and each deal's swing, as the read
    API explains it and the dashboard shows it, or (`full` False) the handler's budget, as a scorecard carries it."""
    won = next((r for r in rows if r["metric"] == Metric.WON_REVENUE.value), None)
    closed, target = (won["actual"], won["target"]) if won else (Decimal(0), None)
    found = await explained(PgRepository(conn), tenant, await repo.books(conn, tenant),
                            [(scope, scope_id, period, closed, target)], {period: bounds}, now,
                            states=MAX_STATES if full else LIVE_STATES, samples=SAMPLES if full else LIVE_SAMPLES,
                            swings=full)
    return found[(scope, scope_id, period)]


async def rep_names(conn: asyncpg.Connection, tenant: str, rep_ids: list[str]) -> dict[str, str | None]:
    """The roster's names of `rep_ids` (a rep without one is missing or None)."""
    return await repo.names_of(conn, tenant, "reps", rep_ids)


async def kpi_definitions(conn: asyncpg.Connection, tenant: str) -> dict[str, KpiDefinition]:
    """The KPIs the tenant defined, by id (`repository.kpi_definitions`): one read per page."""
    return {kpi_id: definition for kpi_id, definition, _ in await repo.kpi_definitions(conn, tenant)}


async def contests(conn: asyncpg.Connection, tenant: str, contest_id: str | None = None) -> list[StoredContest]:
    """The tenant's contests (or one) as last published, newest start first (`repository.contests_of`)."""
    return await repo.contests_of(conn, tenant, contest_id)


# --- the control room's core sections (control_core.py) ----------------------------------------------------


async def targets_in(conn: asyncpg.Connection, tenant: str, periods: Sequence[str]) -> list[asyncpg.Record]:
    """Every target kpi holds for `periods` (scope, scope_id, metric, period, value, and `version`: the `time`
    of the event that set it, which a new one must pass to replace it)."""
    return list(await conn.fetch(
        "SELECT scope, scope_id, metric, period, value, version FROM targets WHERE tenant = $1"
        " AND period = ANY($2::text[])"
        " ORDER BY scope, scope_id, metric", tenant, list(periods)))


async def roster(conn: asyncpg.Connection, tenant: str) -> list[asyncpg.Record]:
    """Every rep as the roster stands now (active or not), with their team's name and the time of their newest
    roster version (`version`: a move dated before it would be undone by it)."""
    return list(await conn.fetch(
        "SELECT r.rep_id, r.name, r.team_id, t.name AS team_name, r.manager_id, r.timezone, r.active,"
        " greatest(r.version, (SELECT max(v.at) FROM roster_versions v WHERE v.tenant = r.tenant"
        "   AND v.rep_id = r.rep_id)) AS version"
        " FROM reps r LEFT JOIN teams t ON t.tenant = r.tenant AND t.team_id = r.team_id"
        " WHERE r.tenant = $1 ORDER BY r.active DESC, lower(r.name), r.rep_id", tenant))


async def all_teams(conn: asyncpg.Connection, tenant: str) -> list[asyncpg.Record]:
    """Every team kpi knows: announced with `team.upserted`, or named by a rep's row (then without a name)."""
    return list(await conn.fetch(
        "WITH ids AS (SELECT team_id FROM teams WHERE tenant = $1 UNION SELECT team_id FROM reps WHERE tenant = $1)"
        " SELECT i.team_id, t.name, t.parent_id,"
        "  (SELECT count(*) FROM reps r WHERE r.tenant = $1 AND r.team_id = i.team_id AND r.active) AS reps"
        " FROM ids i LEFT JOIN teams t ON t.tenant = $1 AND t.team_id = i.team_id ORDER BY i.team_id", tenant))
