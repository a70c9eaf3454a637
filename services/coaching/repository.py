"""coaching's PostgreSQL state: what it keeps of the sales topics, and its tasks, plans and reviews.
Every SQL statement of the service is here; `PgStore` is the `store.Store` the handlers use.

Every transition is guarded in SQL (newest version wins, insert-if-absent, update-where-status), so
replicas and redeliveries cannot apply one twice; the caller commits it with the batch's offsets.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from services.coaching.checkins import Playbook
from services.coaching.config import TenantConfig
from services.coaching.effect import FOLLOW_UP_DAYS, FollowUp
from services.coaching.intake import Calendar
from services.coaching.model import ActivityLog, ClosedDeal, Figure, OpenDeal, RepView
from services.coaching.outbound import SOURCE
from services.coaching.reviews import ForecastFacts
from services.coaching.rules import LiveTask
from services.coaching.store import Close, Gate, NewActivity, Outgoing
from shared import leaves, token_store
from shared.cloudevents import CloudEvent, message_key
from shared.events import (
    SUPERSEDES_SQL,
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    Forecast,
    RepUpserted,
    TaskClosed,
    TaskCreated,
    TenantUpserted,
    TimeOffSet,
    supersedes,
)
from shared.outbox import enqueue_many
from shared.workdays import HolidayCalendar, local_midnight

HISTORY = timedelta(days=180)  # how far back rules look (win-rate baseline); older activities may be pruned
TASK_COLUMNS = ("task_id, rep_id, rep_name, team_id, manager_id, rule, severity, summary, evidence, suggested_actions,"
                " training, details, status, created_at, due_at, acknowledged_at, completed_at, outcome,"
                " escalated_at, escalated_to, closed_at, close_reason")


# --- what coaching keeps of the sales topics -------------------------------------------------------


async def upsert_tenants(conn: asyncpg.Connection, entries: Sequence[TenantUpserted]) -> None:
    """The registry's word on each tenant (one entry per tenant): calendar, currency, token digest, active."""
    if not entries:
        return
    await conn.execute(
        "INSERT INTO tenants (tenant, timezone, fiscal_start_month, currency, token_sha256, active, holidays)"
        " SELECT u.t, u.z, u.f, u.c, u.s, u.a, u.h::jsonb FROM unnest($1::text[], $2::text[], $3::int[], $4::text[],"
        " $5::bytea[], $6::bool[], $7::text[]) AS u(t, z, f, c, s, a, h)"
        " ON CONFLICT (tenant) DO UPDATE SET timezone = EXCLUDED.timezone,"
        " fiscal_start_month = EXCLUDED.fiscal_start_month, currency = EXCLUDED.currency,"
        " token_sha256 = EXCLUDED.token_sha256, active = EXCLUDED.active, holidays = EXCLUDED.holidays",
        [e.tenant for e in entries], [e.timezone for e in entries], [e.fiscal_start_month for e in entries],
        [e.currency for e in entries], [bytes.fromhex(e.token_sha256) for e in entries], [e.active for e in entries],
        [e.holidays.model_dump_json() if e.holidays is not None else None for e in entries])
    await token_store.replace(conn, entries)


async def store_time_off(conn: asyncpg.Connection, tenant: str,
                         items: Sequence[tuple[TimeOffSet, datetime, str]]) -> None:
    """Each `time_off.set`, with its reason (`shared.leaves.store`)."""
    await leaves.store(conn, tenant, items, with_reason=True)


# the time off of each rep: what `time_off.set` said (not cancelled), and what coaching's API took before
_TIME_OFF = ("SELECT rep_id, first_day, last_day FROM leaves WHERE tenant = $1 AND NOT cancelled"
             " UNION ALL SELECT rep_id, first_day, last_day FROM time_off WHERE tenant = $1")


async def remember_calendar(conn: asyncpg.Connection, tenant: str, calendar: Calendar) -> None:
    """A tenant seen on a sales event before its registry entry: keep its zone and currency from the event."""
    await conn.execute(
        "INSERT INTO tenants (tenant, timezone, fiscal_start_month, currency) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant) DO NOTHING", tenant, calendar.timezone, calendar.fiscal_start_month,
        calendar.currency)


async def upsert_reps(conn: asyncpg.Connection, tenant: str, reps: Sequence[tuple[RepUpserted, datetime]]) -> None:
    """Roster entries (at most one per rep), each applied when its version is at least the stored one."""
    if not reps:
        return
    await conn.execute(
        "INSERT INTO reps (tenant, rep_id, name, team_id, manager_id, timezone, active, version, known_since)"
        " SELECT $1, r, n, t, m, z, a, v, v FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::bool[], $8::timestamptz[]) AS u(r, n, t, m, z, a, v)"
        " ON CONFLICT (tenant, rep_id) DO UPDATE SET name = EXCLUDED.name, team_id = EXCLUDED.team_id,"
        " manager_id = EXCLUDED.manager_id, timezone = EXCLUDED.timezone, active = EXCLUDED.active,"
        " version = EXCLUDED.version, known_since = LEAST(reps.known_since, EXCLUDED.known_since)"
        " WHERE reps.version <= EXCLUDED.version",
        tenant, [r.rep_id for r, _ in reps], [r.name for r, _ in reps], [r.team_id for r, _ in reps],
        [r.manager_id for r, _ in reps], [r.timezone for r, _ in reps], [r.active for r, _ in reps],
        [v for _, v in reps])


async def seen_reps(conn: asyncpg.Connection, tenant: str, seen: Mapping[str, datetime]) -> None:
    """Reps known from a sales event before (or without) a roster entry: known since then (earliest wins)."""
    if not seen:
        return
    await conn.execute(
        "INSERT INTO reps (tenant, rep_id, version, known_since)"
        " SELECT $1, r, '-infinity', k FROM unnest($2::text[], $3::timestamptz[]) AS u(r, k)"
        " ON CONFLICT (tenant, rep_id) DO UPDATE SET known_since = LEAST(reps.known_since, EXCLUDED.known_since)"
        " WHERE reps.known_since > EXCLUDED.known_since", tenant, list(seen), list(seen.values()))


async def insert_activities(conn: asyncpg.Connection, tenant: str,
                            activities: Sequence[ActivityLogged]) -> list[asyncpg.Record]:
    """Insert the activities (distinct ids) not seen before; the new ones (activity_id, rep_id, deal_id,
    occurred_at)."""
    if not activities:
        return []
    return list(await conn.fetch(
        "INSERT INTO activities (tenant, activity_id, rep_id, kind, occurred_at, deal_id)"
        " SELECT $1, a, r, k, o, d FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])"
        " AS u(a, r, k, o, d) ON CONFLICT DO NOTHING RETURNING activity_id, rep_id, deal_id, occurred_at",
        tenant, [a.activity_id for a in activities], [a.rep_id for a in activities],
        [a.kind.value for a in activities], [a.occurred_at for a in activities], [a.deal_id for a in activities]))


async def touch_deals(conn: asyncpg.Connection, tenant: str, touches: Sequence[tuple[str, datetime]]) -> None:
    """Move each stored deal's last touch to the latest of its (deal_id, moment) pairs."""
    if touches:
        await conn.execute(
            "UPDATE deals SET last_activity_at = GREATEST(deals.last_activity_at, t.at)"
            " FROM (SELECT d, max(o) AS at FROM unnest($2::text[], $3::timestamptz[]) AS u(d, o) GROUP BY d) AS t"
            " WHERE deals.tenant = $1 AND deals.deal_id = t.d",
            tenant, [d for d, _ in touches], [o for _, o in touches])


_NEWER = " WHERE (deals.updated_at, deals.tiebreak) < (EXCLUDED.updated_at, EXCLUDED.tiebreak COLLATE \"C\")"


async def store_deals(conn: asyncpg.Connection, tenant: str, deals: Sequence[tuple[DealUpserted, str]]) -> None:
    """Keep each version (one per deal; tiebreak: its event id) that is newer than the stored one."""
    if not deals:
        return
    await conn.execute(
        "INSERT INTO deals (tenant, deal_id, rep_id, stage, amount, currency, closed_at, updated_at, tiebreak)"
        " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::numeric[], $6::text[],"
        " $7::timestamptz[], $8::timestamptz[], $9::text[]) ON CONFLICT (tenant, deal_id) DO UPDATE SET"
        " rep_id = EXCLUDED.rep_id, stage = EXCLUDED.stage, amount = EXCLUDED.amount, currency = EXCLUDED.currency,"
        " closed_at = EXCLUDED.closed_at, updated_at = EXCLUDED.updated_at, tiebreak = EXCLUDED.tiebreak,"
        " deleted = false" + _NEWER,
        tenant, [d.deal_id for d, _ in deals], [d.rep_id for d, _ in deals], [d.stage.value for d, _ in deals],
        [d.amount for d, _ in deals], [d.currency for d, _ in deals], [d.closed_at for d, _ in deals],
        [d.updated_at for d, _ in deals], [t for _, t in deals])


async def tombstone_deals(conn: asyncpg.Connection, tenant: str, deals: Sequence[tuple[DealDeleted, str]]) -> None:
    """Mark deals deleted (even before their first version arrives, so a late older one stays dead)."""
    if not deals:
        return
    await conn.execute(
        "INSERT INTO deals (tenant, deal_id, rep_id, stage, amount, currency, updated_at, tiebreak, deleted)"
        " SELECT $1, d, '', 'open', 0, 'XXX', u, t, true FROM unnest($2::text[], $3::timestamptz[], $4::text[])"
        " AS x(d, u, t) ON CONFLICT (tenant, deal_id) DO UPDATE SET"
        " deleted = true, updated_at = EXCLUDED.updated_at, tiebreak = EXCLUDED.tiebreak" + _NEWER,
        tenant, [d.deal_id for d, _ in deals], [d.updated_at for d, _ in deals], [t for _, t in deals])


async def save_attainments(conn: asyncpg.Connection, updates: Sequence[tuple[str, AttainmentUpdated]],
                           now: datetime) -> set[tuple[str, str]]:
    """Keep kpi's latest figures per (scope, id, period, metric), the newest by kpi's revision winning
    (`supersedes`: by `as_of` for figures without one), so that redeliveries, replays and a kpi replica's
    skewed clock change nothing, in one statement; `first_seen_at` is coaching's own. A figure's forecast
    goes with it: a newer figure without one (its period ended) clears the one held. Returns the (tenant,
    rep) whose figures were written."""
    newest: dict[tuple[str, str, str, str, str], AttainmentUpdated] = {}
    for tenant, u in updates:  # one row per key and statement; in batch order, a later equal one wins
        key = (tenant, u.scope.value, u.scope_id, u.period, u.metric)
        held = newest.get(key)
        if held is None or supersedes(held.revision, held.as_of, u.revision, u.as_of):
            newest[key] = u
    if not newest:
        return set()
    keys, rows = list(newest), list(newest.values())
    written = await conn.fetch(
        "INSERT INTO attainment (tenant, scope, scope_id, period, metric, actual, target, name, manager_id,"
        " period_start, period_end, as_of, revision, forecast, first_seen_at)"
        " SELECT t, s, i, p, m, a, g, n, mg, ps, pe, ao, r, f, $15 FROM unnest($1::text[], $2::text[], $3::text[],"
        " $4::text[], $5::text[], $6::numeric[], $7::numeric[], $8::text[], $9::text[], $10::timestamptz[],"
        " $11::timestamptz[], $12::timestamptz[], $13::bigint[], $14::jsonb[])"
        " AS u(t, s, i, p, m, a, g, n, mg, ps, pe, ao, r, f)"
        " ON CONFLICT (tenant, scope, scope_id, period, metric) DO UPDATE SET actual = EXCLUDED.actual,"
        " target = EXCLUDED.target, name = EXCLUDED.name, manager_id = EXCLUDED.manager_id,"
        " as_of = EXCLUDED.as_of, revision = EXCLUDED.revision, forecast = EXCLUDED.forecast"
        f" WHERE {SUPERSEDES_SQL.format(held='attainment')} RETURNING tenant, scope, scope_id",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
        [k[4] for k in keys], [u.actual for u in rows], [u.target for u in rows], [u.name for u in rows],
        [u.manager_id for u in rows], [u.period_start for u in rows], [u.period_end for u in rows],
        [u.as_of for u in rows], [u.revision for u in rows],
        [None if u.forecast is None else u.forecast.model_dump_json() for u in rows], now)
    return {(r["tenant"], r["scope_id"]) for r in written if r["scope"] == "rep"}


async def owe_evaluation(conn: asyncpg.Connection, reps: Sequence[tuple[str, str]], now: datetime) -> None:
    """Remember that these (tenant, rep)s must be evaluated; a rep already owed keeps its older `since`."""
    if reps:
        await conn.execute(
            "INSERT INTO owed_evaluations (tenant, rep_id, since) SELECT t, r, $3 FROM unnest($1::text[], $2::text[])"
            " AS u(t, r) ON CONFLICT DO NOTHING", [t for t, _ in reps], [r for _, r in reps], now)


async def take_owed(conn: asyncpg.Connection, limit: int) -> list[tuple[str, str]]:
    """Up to `limit` owed evaluations, oldest first, deleted in this transaction (another replica skips the
    rows this one holds); (tenant, rep) in tenant and rep order."""
    rows = await conn.fetch("SELECT tenant, rep_id FROM sweep_take_owed($1)", limit)  # every tenant's: 005_sweeps.sql
    return sorted((r["tenant"], r["rep_id"]) for r in rows)


# --- the rules' view of a rep ------------------------------------------------------------------------


async def active_reps(conn: asyncpg.Connection, tenant: str | None = None) -> list[tuple[str, str]]:
    """The tenant's active reps, or (None) every tenant's, through the owner's sweep (005_sweeps.sql)."""
    if tenant is None:
        rows = await conn.fetch("SELECT tenant, rep_id FROM sweep_active_reps()")
    else:
        rows = await conn.fetch("SELECT tenant, rep_id FROM reps WHERE active AND tenant = $1 ORDER BY rep_id", tenant)
    return [(r["tenant"], r["rep_id"]) for r in rows]


async def days_off(conn: asyncpg.Connection, tenant: str, rep_id: str | None, first: date,
                   last: date) -> frozenset[date]:
    """The tenant's holidays (its calendar, and days entered through coaching's API before) and, for a rep,
    their time off, between `first` and `last`, as local dates."""
    raw = await conn.fetchval("SELECT holidays FROM tenants WHERE tenant = $1", tenant)
    rows = await conn.fetch(
        "SELECT day FROM holidays WHERE tenant = $1 AND day BETWEEN $3 AND $4"
        f" UNION SELECT generate_series(GREATEST(o.first_day, $3), LEAST(o.last_day, $4), '1 day')::date"
        f" FROM ({_TIME_OFF}) o WHERE o.rep_id = $2 AND o.last_day >= $3 AND o.first_day <= $4",
        tenant, rep_id, first, last)
    return frozenset(r[0] for r in rows) | frozenset(HolidayCalendar.of(raw).between(first, last))


async def rep_zone(conn: asyncpg.Connection, tenant: str, rep_id: str) -> ZoneInfo | None:
    """The rep's own zone, else the tenant's (as in `RepView.timezone`); None for a rep coaching does not know."""
    zone = await conn.fetchval("SELECT coalesce(r.timezone, t.timezone, 'UTC') FROM reps r LEFT JOIN tenants t"
                               " USING (tenant) WHERE r.tenant = $1 AND r.rep_id = $2", tenant, rep_id)
    return ZoneInfo(zone) if zone else None


def _activity_log(rows: Sequence[asyncpg.Record], days: Sequence[date]) -> ActivityLog:
    """A rep's `ActivityLog` from `rep_views`' counts by (kind, day bucket) over the local `days`."""
    counts = sorted((days[r["day"] - 1], r["kind"], r["n"]) for r in rows if 1 <= r["day"] < len(days))
    return ActivityLog(tuple(counts), max((r["last"] for r in rows), default=None))


def _forecast(raw: str | None) -> Forecast | None:
    """A stored forecast (jsonb, as asyncpg reads it: text), validated as the event carried it."""
    return None if raw is None else Forecast.model_validate_json(raw)


def _group(rows: Sequence[asyncpg.Record], key: str = "rep_id") -> dict[str, list[asyncpg.Record]]:
    out: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        out.setdefault(row[key], []).append(row)
    return out


async def rep_views(conn: asyncpg.Connection, tenant: str | TenantConfig, rep_ids: Sequence[str], now: datetime,
                    activity_days: int) -> dict[str, RepView]:
    """The rules' view of each rep of `rep_ids` known to coaching: six queries whatever their number.

    Activities arrive counted, per rep, kind and local day of the tenant's zone over the last
    `activity_days` days and today, with each rep's last one (`ActivityLog`): what a batch of reps
    holds in memory follows their number, not how much they logged. The day boundaries are computed
    here, with the zone database the rules use, and PostgreSQL only sorts instants between them."""
    config = tenant if isinstance(tenant, TenantConfig) else await load_config(conn, tenant, None)
    tenant = config.tenant
    ids = sorted(set(rep_ids))
    reps = await conn.fetch(
        "SELECT rep_id, name, team_id, manager_id, timezone, known_since FROM reps"
        " WHERE tenant = $1 AND rep_id = ANY($2::text[])", tenant, ids)
    if not reps:
        return {}
    ids = [r["rep_id"] for r in reps]
    figures = _group(await conn.fetch(
        "SELECT scope_id AS rep_id, period, metric, actual, target, period_start, period_end, first_seen_at,"
        " forecast FROM attainment WHERE tenant = $1 AND scope = 'rep' AND scope_id = ANY($2::text[])"
        " AND period_start <= $3 AND period_end > $3", tenant, ids, now))
    since = now - HISTORY
    tenant_zone = config.timezone
    today = now.astimezone(tenant_zone).date()
    days = [today - timedelta(days=activity_days - i) for i in range(activity_days + 2)]  # .. today, tomorrow
    # width_bucket: 0 before the first day, i for the i-th day (its midnight <= occurred_at < the next's)
    activities = _group(await conn.fetch(
        "SELECT rep_id, kind, width_bucket(occurred_at, $5::timestamptz[]) AS day, count(*) AS n,"
        " max(occurred_at) AS last FROM activities WHERE tenant = $1 AND rep_id = ANY($2::text[])"
        " AND occurred_at >= $3 AND occurred_at <= $4 GROUP BY 1, 2, 3",
        tenant, ids, since, now, [local_midnight(day, tenant_zone) for day in days]))
    deals = _group(await conn.fetch(
        "SELECT rep_id, deal_id, stage, amount, currency, closed_at, GREATEST(updated_at, last_activity_at) AS touch"
        " FROM deals WHERE tenant = $1 AND rep_id = ANY($2::text[]) AND NOT deleted"
        " AND (stage = 'open' OR closed_at >= $3)", tenant, ids, since))
    ranges: dict[str, tuple[date, date]] = {}
    for rep_id in ids:
        mine = figures.get(rep_id, [])
        earliest = min([f["period_start"] for f in mine] + [since]).astimezone(tenant_zone).date()
        latest = max([f["period_end"] for f in mine] + [now + timedelta(days=60)]).astimezone(tenant_zone).date()
        ranges[rep_id] = (min(earliest, today - timedelta(days=180)), latest)
    first, last = min(a for a, _ in ranges.values()), max(b for _, b in ranges.values())
    holidays = sorted(config.holidays | set(config.calendar.between(first, last)))
    time_off = _group(await conn.fetch(
        f"SELECT rep_id, first_day, last_day FROM ({_TIME_OFF}) o WHERE o.rep_id = ANY($2::text[])"
        " AND o.last_day >= $3 AND o.first_day <= $4", tenant, ids, first, last))
    views = {}
    for rep in reps:
        rep_id = rep["rep_id"]
        lo, hi = ranges[rep_id]
        off = {d for d in holidays if lo <= d <= hi}
        for leave in time_off.get(rep_id, []):
            day = max(leave["first_day"], lo)
            while day <= min(leave["last_day"], hi):
                off.add(day)
                day += timedelta(days=1)
        mine_deals = deals.get(rep_id, [])
        views[rep_id] = RepView(
            tenant=tenant, rep_id=rep_id, name=rep["name"], manager_id=rep["manager_id"], team_id=rep["team_id"],
            timezone=ZoneInfo(rep["timezone"]) if rep["timezone"] else tenant_zone, tenant_timezone=tenant_zone,
            known_since=rep["known_since"],
            figures=tuple(Figure(f["period"], f["metric"], f["actual"], f["target"], f["period_start"],
                                 f["period_end"], f["first_seen_at"], _forecast(f["forecast"]))
                          for f in figures.get(rep_id, [])),
            activities=_activity_log(activities.get(rep_id, []), days),
            open_deals=tuple(OpenDeal(d["deal_id"], d["amount"], d["currency"], d["touch"])
                             for d in mine_deals if d["stage"] == "open"),
            closed_deals=tuple(ClosedDeal(d["stage"] == "won", d["closed_at"]) for d in mine_deals
                               if d["stage"] != "open" and d["closed_at"] is not None),
            days_off=frozenset(off),
            base_currency=config.currency,
        )
    return views


async def config_version(conn: asyncpg.Connection, tenant: str) -> UUID | None:
    """The tenant's configuration version (`config.py`); None before anything of it was written."""
    found: UUID | None = await conn.fetchval("SELECT version FROM config_versions WHERE tenant = $1", tenant)
    return found


async def load_config(conn: asyncpg.Connection, tenant: str, version: UUID | None) -> TenantConfig:
    """Everything a `TenantConfig` holds, read in one statement (tagged with `version`, read just before)."""
    row = await conn.fetchrow(
        "SELECT t.timezone, t.fiscal_start_month, t.currency,"
        " (SELECT coalesce(jsonb_object_agg(team_id, overrides), '{}') FROM policies WHERE tenant = $1) AS layers,"
        " (SELECT coalesce(jsonb_object_agg(rule, jsonb_build_array(suggested_actions, training)), '{}')"
        "  FROM catalogue WHERE tenant = $1) AS catalogue,"
        " (SELECT coalesce(array_agg(day), '{}') FROM holidays WHERE tenant = $1) AS holidays,"
        " t.holidays AS calendar"
        " FROM (SELECT $1::text AS tenant) AS k LEFT JOIN tenants t USING (tenant)", tenant)
    book = json.loads(row["catalogue"])
    return TenantConfig(
        tenant=tenant, version=version, timezone=ZoneInfo(row["timezone"] or "UTC"),
        fiscal_start_month=row["fiscal_start_month"] or 1, currency=row["currency"],
        layers=json.loads(row["layers"]),
        catalogue={rule: Playbook(tuple(actions), tuple(training)) for rule, (actions, training) in book.items()},
        holidays=frozenset(row["holidays"]), calendar=HolidayCalendar.of(row["calendar"]))


async def tenant_policy_layers(conn: asyncpg.Connection, tenant: str) -> dict[str, dict[str, Any]]:
    """Every override of the tenant, by team id ('' for the tenant's own)."""
    rows = await conn.fetch("SELECT team_id, overrides FROM policies WHERE tenant = $1", tenant)
    return {r["team_id"]: json.loads(r["overrides"]) for r in rows}


async def policy_layers(conn: asyncpg.Connection, tenant: str, team_id: str | None) -> list[dict[str, Any]]:
    """The tenant's overrides, then the team's (each a partial `Policy`)."""
    return layers_for(await tenant_policy_layers(conn, tenant), team_id)


def layers_for(layers: Mapping[str, dict[str, Any]], team_id: str | None) -> list[dict[str, Any]]:
    """Of a tenant's overrides by team id (`tenant_policy_layers`), the tenant's own, then the team's."""
    return [layers[k] for k in ["", *([team_id] if team_id else [])] if k in layers]


async def set_policy(conn: asyncpg.Connection, tenant: str, team_id: str, overrides: Mapping[str, Any]) -> None:
    await conn.execute("INSERT INTO policies (tenant, team_id, overrides) VALUES ($1, $2, $3::jsonb)"
                       " ON CONFLICT (tenant, team_id) DO UPDATE SET overrides = EXCLUDED.overrides",
                       tenant, team_id, json.dumps(dict(overrides), default=str))


async def catalogue(conn: asyncpg.Connection, tenant: str) -> dict[str, Playbook]:
    rows = await conn.fetch("SELECT rule, suggested_actions, training FROM catalogue WHERE tenant = $1", tenant)
    return {r["rule"]: Playbook(tuple(json.loads(r["suggested_actions"])), tuple(json.loads(r["training"])))
            for r in rows}


async def set_playbook(conn: asyncpg.Connection, tenant: str, rule: str, playbook: Playbook) -> None:
    await conn.execute(
        "INSERT INTO catalogue (tenant, rule, suggested_actions, training) VALUES ($1, $2, $3::jsonb, $4::jsonb)"
        " ON CONFLICT (tenant, rule) DO UPDATE SET suggested_actions = EXCLUDED.suggested_actions,"
        " training = EXCLUDED.training", tenant, rule, json.dumps(list(playbook.suggested_actions)),
        json.dumps(list(playbook.training)))


# --- tasks -------------------------------------------------------------------------------------------


async def pass_gates(conn: asyncpg.Connection, tenant: str, gates: Sequence[Gate],
                     now: datetime) -> set[tuple[str, str]]:
    """The cool-down gate, atomically, for many (rep, rule)s (each at most once): the (rep, rule)s for which
    no task of the rule went to the rep inside its cool-down, or the last one was less severe. Rows are
    taken in the given order (callers sort by rep), so concurrent evaluations queue instead of deadlocking;
    one statement per distinct cool-down."""
    passed: set[tuple[str, str]] = set()
    for days in sorted({g.cooldown_days for g in gates}):
        mine = [g for g in gates if g.cooldown_days == days]
        rows = await conn.fetch(
            "INSERT INTO cooldowns (tenant, rep_id, rule, last_task_at, severity)"
            " SELECT $1, r, u, $2, s FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS x(r, u, s, n)"
            " ORDER BY n ON CONFLICT (tenant, rep_id, rule) DO UPDATE SET last_task_at = EXCLUDED.last_task_at,"
            " severity = EXCLUDED.severity WHERE cooldowns.last_task_at <= EXCLUDED.last_task_at - $6::interval"
            "    OR (CASE cooldowns.severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END)"
            "     < (CASE EXCLUDED.severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END)"
            " RETURNING rep_id, rule", tenant, now, [g.rep_id for g in mine], [g.rule for g in mine],
            [g.severity for g in mine], timedelta(days=days))
        passed |= {(r["rep_id"], r["rule"]) for r in rows}
    return passed


async def insert_tasks(conn: asyncpg.Connection, tenant: str, tasks: Sequence[TaskCreated], now: datetime) -> set[str]:
    """Insert the tasks (in order) whose id is new; their ids."""
    if not tasks:
        return set()
    rows = await conn.fetch(
        "INSERT INTO tasks (task_id, tenant, rep_id, rep_name, team_id, manager_id, rule, severity, summary,"
        " evidence, suggested_actions, training, details, created_at, due_at)"
        " SELECT i, $1, r, rn, tm, m, u, s, su, e, sa, tr, d, $2, du FROM unnest($3::uuid[], $4::text[], $5::text[],"
        " $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::jsonb[], $13::jsonb[],"
        " $14::jsonb[], $15::timestamptz[]) WITH ORDINALITY AS x(i, r, rn, tm, m, u, s, su, e, sa, tr, d, du, n)"
        " ORDER BY n ON CONFLICT DO NOTHING RETURNING task_id",
        tenant, now, [UUID(t.task_id) for t in tasks], [t.rep_id for t in tasks], [t.rep_name for t in tasks],
        [t.team_id for t in tasks], [t.manager_id for t in tasks], [t.rule for t in tasks],
        [t.severity for t in tasks], [t.summary for t in tasks], [t.evidence.model_dump_json() for t in tasks],
        [json.dumps(t.suggested_actions) for t in tasks], [json.dumps(t.training) for t in tasks],
        [json.dumps(t.details, default=str) for t in tasks], [t.due_at for t in tasks])
    return {str(r["task_id"]) for r in rows}


async def live_tasks(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str]) -> dict[str, list[LiveTask]]:
    """Each rep's tasks still waiting for someone (open, acknowledged), oldest first."""
    rows = await conn.fetch("SELECT rep_id, task_id, rule, severity FROM tasks WHERE tenant = $1"
                            " AND rep_id = ANY($2::text[]) AND status IN ('open', 'acknowledged') ORDER BY created_at",
                            tenant, list(rep_ids))
    out: dict[str, list[LiveTask]] = {}
    for r in rows:
        out.setdefault(r["rep_id"], []).append(LiveTask(str(r["task_id"]), r["rule"], r["severity"]))
    return out


async def close_tasks(conn: asyncpg.Connection, tenant: str, closes: Sequence[Close],
                      now: datetime) -> list[TaskClosed]:
    """Close live tasks (each once: one closed before is left out), locked in task id order; what to announce,
    in the order of `closes`."""
    if not closes:
        return []
    rows = await conn.fetch(
        "WITH x AS (SELECT * FROM unnest($3::uuid[], $4::text[], $5::text[]) AS x(id, reason, outcome)),"
        " locked AS (SELECT task_id FROM tasks WHERE tenant = $1 AND task_id IN (SELECT id FROM x)"
        "  AND status IN ('open', 'acknowledged') ORDER BY task_id FOR UPDATE)"
        " UPDATE tasks SET status = CASE WHEN x.reason = 'completed' THEN 'completed' ELSE 'closed' END,"
        " closed_at = $2, close_reason = x.reason, outcome = x.outcome,"
        " completed_at = CASE WHEN x.reason = 'completed' THEN $2::timestamptz END"
        " FROM x WHERE tasks.task_id = x.id AND tasks.task_id IN (SELECT task_id FROM locked)"
        " RETURNING tasks.task_id, tasks.rep_id, tasks.manager_id, tasks.rule",
        tenant, now, [UUID(c.task_id) for c in closes], [c.reason for c in closes], [c.outcome for c in closes])
    found = {str(r["task_id"]): r for r in rows}
    return [TaskClosed(task_id=c.task_id, rep_id=r["rep_id"], manager_id=r["manager_id"], rule=r["rule"],
                       reason=c.reason, outcome=c.outcome, closed_at=now)
            for c in closes if (r := found.get(c.task_id)) is not None]


async def close_task(conn: asyncpg.Connection, tenant: str, task_id: Any, reason: str, now: datetime,
                     outcome: str | None = None) -> asyncpg.Record | None:
    """Close a live task (once: a second caller gets None)."""
    status = "completed" if reason == "completed" else "closed"
    return await conn.fetchrow(
        f"UPDATE tasks SET status = $3::text, closed_at = $4::timestamptz, close_reason = $5, outcome = $6,"
        f" completed_at = CASE WHEN $3::text = 'completed' THEN $4::timestamptz END"
        f" WHERE tenant = $1 AND task_id = $2 AND status IN ('open', 'acknowledged') RETURNING {TASK_COLUMNS}",
        tenant, task_id, status, now, reason, outcome)


async def acknowledge(conn: asyncpg.Connection, tenant: str, task_id: Any, now: datetime) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"UPDATE tasks SET status = 'acknowledged', acknowledged_at = $3 WHERE tenant = $1 AND task_id = $2"
        f" AND status = 'open' RETURNING {TASK_COLUMNS}", tenant, task_id, now)


async def task(conn: asyncpg.Connection, tenant: str, task_id: Any) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {TASK_COLUMNS} FROM tasks WHERE tenant = $1 AND task_id = $2",
                               tenant, task_id)


async def tasks(conn: asyncpg.Connection, tenant: str, *, rep_id: str | None, status: str | None,
                manager_id: str | None, after: Any, limit: int,
                among: Collection[str] | None = None) -> list[asyncpg.Record]:
    """`among`: only the check-ins of these reps (what a rep or manager token may see); None: every rep's."""
    return list(await conn.fetch(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE tenant = $1 AND ($2::text IS NULL OR rep_id = $2)"
        " AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR manager_id = $4)"
        " AND ($5::uuid IS NULL OR task_id > $5) AND ($7::text[] IS NULL OR rep_id = ANY($7::text[]))"
        " ORDER BY task_id LIMIT $6",
        tenant, rep_id, status, manager_id, after, limit, None if among is None else sorted(among)))


async def overdue_unacknowledged(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Tasks nobody acknowledged by their due date and not escalated yet, locked for this transaction
    (another replica skips them)."""
    return list(await conn.fetch(f"SELECT tenant, {TASK_COLUMNS} FROM sweep_overdue($1, $2)", now, limit))


async def mark_escalated_many(conn: asyncpg.Connection, tenant: str, escalations: Sequence[tuple[Any, str | None]],
                              now: datetime) -> None:
    """Mark tasks escalated, each to the given manager (None: nobody above)."""
    if escalations:
        await conn.execute("UPDATE tasks SET escalated_at = $2, escalated_to = u.m FROM unnest($3::uuid[], $4::text[])"
                           " AS u(t, m) WHERE tenant = $1 AND task_id = u.t", tenant, now,
                           [t for t, _ in escalations], [m for _, m in escalations])


async def manager_tasks(conn: asyncpg.Connection, tenant: str, manager_id: str, start: datetime,
                        end: datetime) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT created_at, due_at, acknowledged_at, completed_at, escalated_at, status FROM tasks"
        " WHERE tenant = $1 AND manager_id = $2 AND created_at >= $3 AND created_at < $4",
        tenant, manager_id, start, end))


async def team_figure(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], period: str,
                      metric: str) -> tuple[Decimal | None, Decimal | None]:
    """The sum of actual and target of `metric` over those of the reps that have a target for it in `period`
    (kpi publishes targeted figures only, CONTRACT.md section 3: a rep without a target adds nothing to
    either sum, so their ratio compares like with like)."""
    row = await conn.fetchrow(
        "SELECT sum(actual) AS actual, sum(target) AS target FROM attainment WHERE tenant = $1 AND scope = 'rep'"
        " AND scope_id = ANY($2::text[]) AND period = $3 AND metric = $4", tenant, list(rep_ids), period, metric)
    return (row["actual"], row["target"]) if row else (None, None)


# --- the API's own reads and writes ---------------------------------------------------------------


async def holidays(conn: asyncpg.Connection, tenant: str) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT day, name FROM holidays WHERE tenant = $1 ORDER BY day", tenant))


async def remove_holiday(conn: asyncpg.Connection, tenant: str, day: date) -> bool:
    """Whether there was such a day to remove."""
    status = await conn.execute("DELETE FROM holidays WHERE tenant = $1 AND day = $2", tenant, day)
    return not status.endswith(" 0")


async def time_off(conn: asyncpg.Connection, tenant: str, rep_id: str) -> list[asyncpg.Record]:
    """The rep's time off in force: `time_off.set` (with its id) and what coaching's API took before."""
    return list(await conn.fetch(
        "SELECT time_off_id, first_day, last_day, reason FROM leaves WHERE tenant = $1 AND rep_id = $2"
        " AND NOT cancelled UNION ALL SELECT NULL, first_day, last_day, reason FROM time_off WHERE tenant = $1"
        " AND rep_id = $2 ORDER BY first_day", tenant, rep_id))


async def own_overrides(conn: asyncpg.Connection, tenant: str, team_id: str) -> dict[str, Any]:
    """The overrides stored for the tenant ('') or one team, alone."""
    raw = await conn.fetchval("SELECT overrides FROM policies WHERE tenant = $1 AND team_id = $2", tenant, team_id)
    return json.loads(raw) if raw else {}


async def calendar_of(conn: asyncpg.Connection, tenant: str) -> tuple[ZoneInfo, int]:
    """The tenant's zone and fiscal start month (UTC and January when coaching does not know it)."""
    row = await conn.fetchrow("SELECT timezone, fiscal_start_month FROM tenants WHERE tenant = $1", tenant)
    return (ZoneInfo(row["timezone"]), row["fiscal_start_month"]) if row else (ZoneInfo("UTC"), 1)


async def reviews(conn: asyncpg.Connection, tenant: str, scope_id: str | None, week: str | None,
                  limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT body FROM reviews WHERE tenant = $1 AND ($2::text IS NULL OR scope_id = $2)"
                            " AND ($3::text IS NULL OR week = $3) ORDER BY week DESC, scope, scope_id LIMIT $4",
                            tenant, scope_id, week, limit)
    return [json.loads(r["body"]) for r in rows]


# --- weekly reviews and scorecards (digests.py) ------------------------------------------------------


async def active_tenants(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT tenant, timezone, fiscal_start_month FROM tenants WHERE active"))


async def named_reps(conn: asyncpg.Connection, tenant: str) -> list[asyncpg.Record]:
    """The tenant's active reps with a roster entry (rep_id, team_id), in rep order: who gets a review."""
    return list(await conn.fetch("SELECT rep_id, team_id FROM reps WHERE tenant = $1 AND active"
                                 " AND name IS NOT NULL ORDER BY rep_id", tenant))


async def reviewed(conn: asyncpg.Connection, tenant: str, week: str) -> set[tuple[str, str]]:
    """The (scope, id)s whose review of `week` is out."""
    return {(r["scope"], r["scope_id"]) for r in await conn.fetch(
        "SELECT scope, scope_id FROM reviews WHERE tenant = $1 AND week = $2", tenant, week)}


async def insert_review(conn: asyncpg.Connection, tenant: str, scope: str, scope_id: str, week: str,
                        review_id: UUID, body: str, now: datetime) -> bool:
    """Insert a review unless one of that (scope, id, week) exists; True when this call inserted it."""
    inserted = await conn.fetchval(
        "INSERT INTO reviews (tenant, scope, scope_id, week, review_id, body, published_at)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT DO NOTHING RETURNING 1",
        tenant, scope, scope_id, week, review_id, body, now)
    return inserted is not None


async def figures_of(conn: asyncpg.Connection, tenant: str, scope: str, scope_id: str,
                     periods: Sequence[str]) -> list[asyncpg.Record]:
    """The scope's figures (period, metric, actual, target) of `periods`, by period and metric."""
    return list(await conn.fetch(
        "SELECT period, metric, actual, target FROM attainment WHERE tenant = $1 AND scope = $2 AND scope_id = $3"
        " AND period = ANY($4::text[]) ORDER BY period, metric", tenant, scope, scope_id, list(periods)))


async def forecasts_of(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str],
                       periods: Sequence[str]) -> list[ForecastFacts]:
    """The reps' won-revenue figures of `periods` that carry a forecast, with the rep's name."""
    rows = await conn.fetch(
        "SELECT a.scope_id, r.name, a.period, a.target, a.forecast FROM attainment a LEFT JOIN reps r"
        " ON r.tenant = a.tenant AND r.rep_id = a.scope_id WHERE a.tenant = $1 AND a.scope = 'rep'"
        " AND a.scope_id = ANY($2::text[]) AND a.period = ANY($3::text[]) AND a.metric = 'won_revenue'"
        " AND a.forecast IS NOT NULL ORDER BY a.scope_id, a.period", tenant, list(rep_ids), list(periods))
    return [ForecastFacts(r["scope_id"], r["name"], r["period"], r["target"], Forecast.model_validate_json(
        r["forecast"])) for r in rows]


async def profile(conn: asyncpg.Connection, tenant: str, rep_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT name, manager_id FROM reps WHERE tenant = $1 AND rep_id = $2", tenant, rep_id)


async def team_members(conn: asyncpg.Connection, tenant: str, team_id: str) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT rep_id, manager_id FROM reps WHERE tenant = $1 AND team_id = $2 AND active"
                                 " ORDER BY rep_id", tenant, team_id))


async def managed_reps(conn: asyncpg.Connection, tenant: str, manager_id: str) -> list[str]:
    return [r[0] for r in await conn.fetch(
        "SELECT rep_id FROM reps WHERE tenant = $1 AND manager_id = $2 AND active", tenant, manager_id)]


async def activity_weeks(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], start: datetime,
                         end: datetime) -> tuple[int, int]:
    """Activities of the reps in [start, end), and in the as long span before it."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE occurred_at >= $3) AS week, count(*) FILTER (WHERE occurred_at < $3)"
        " AS before FROM activities WHERE tenant = $1 AND rep_id = ANY($2::text[]) AND occurred_at >= $4"
        " AND occurred_at < $5", tenant, list(rep_ids), start, start - (end - start), end)
    return row["week"], row["before"]


async def live_task_counts(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str],
                           now: datetime) -> tuple[int, int]:
    """The reps' live check-ins, and how many of them are past due."""
    row = await conn.fetchrow(
        "SELECT count(*) AS open, count(*) FILTER (WHERE due_at <= $3) AS overdue FROM tasks WHERE tenant = $1"
        " AND rep_id = ANY($2::text[]) AND status IN ('open', 'acknowledged')", tenant, list(rep_ids), now)
    return row["open"], row["overdue"]


# --- action plans (action_plans.py) ---------------------------------------------------------------


PLAN_COLUMNS = "plan_id, rep_id, task_id, title, status, created_at"
STEP_COLUMNS = "step_id, plan_id, position, title, metric, target, starts_at, due_at, progress, status, settled_at"
ACTIVITY_KINDS = {"calls": "call", "emails": "email", "meetings": "meeting", "activities": None}


async def insert_plan(conn: asyncpg.Connection, tenant: str, plan_id: UUID, rep_id: str, task_id: str | None,
                      title: str, steps: Sequence[tuple[UUID, int, str, str, Decimal, datetime]],
                      now: datetime) -> None:
    """A plan and its steps (step_id, position, title, metric, target, due_at), each starting `now`."""
    await conn.execute("INSERT INTO action_plans (plan_id, tenant, rep_id, task_id, title, created_at)"
                       " VALUES ($1, $2, $3, $4, $5, $6)", plan_id, tenant, rep_id, task_id, title, now)
    await conn.execute(
        "INSERT INTO plan_steps (step_id, plan_id, position, title, metric, target, starts_at, due_at)"
        " SELECT s, $1, p, t, m, g, $2, d FROM unnest($3::uuid[], $4::int[], $5::text[], $6::text[],"
        " $7::numeric[], $8::timestamptz[]) AS u(s, p, t, m, g, d)",
        plan_id, now, *([s[i] for s in steps] for i in range(6)))


async def open_steps(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str]) -> list[asyncpg.Record]:
    """The reps' open steps, each with its progress recounted now (`counted`) from coaching's own activities
    and deals (activities of the metric's kind; deals won, or their amount), in one statement."""
    return list(await conn.fetch(
        f"SELECT p.rep_id, s.{STEP_COLUMNS.replace(', ', ', s.')},"
        " CASE WHEN s.metric = ANY($3::text[]) THEN (SELECT count(*) FROM activities a WHERE a.tenant = $1"
        "   AND a.rep_id = p.rep_id AND a.occurred_at >= s.starts_at AND a.occurred_at < s.due_at"
        "   AND (k.kind IS NULL OR a.kind = k.kind))"
        " WHEN s.metric = 'deals_won' THEN (SELECT count(*) FROM deals d WHERE d.tenant = $1 AND d.rep_id = p.rep_id"
        "   AND NOT d.deleted AND d.stage = 'won' AND d.closed_at >= s.starts_at AND d.closed_at < s.due_at)"
        " ELSE (SELECT coalesce(sum(amount), 0) FROM deals d WHERE d.tenant = $1 AND d.rep_id = p.rep_id"
        "   AND NOT d.deleted AND d.stage = 'won' AND d.closed_at >= s.starts_at AND d.closed_at < s.due_at) END"
        " AS counted"
        " FROM plan_steps s JOIN action_plans p USING (plan_id)"
        " LEFT JOIN unnest($3::text[], $4::text[]) AS k(metric, kind) ON k.metric = s.metric"
        " WHERE p.tenant = $1 AND p.rep_id = ANY($2::text[]) AND s.status = 'open'"
        " ORDER BY p.rep_id, s.plan_id, s.position", tenant, sorted(set(rep_ids)), list(ACTIVITY_KINDS),
        list(ACTIVITY_KINDS.values())))


async def set_progress(conn: asyncpg.Connection, progress: Sequence[tuple[UUID, Decimal]]) -> None:
    """New progress of steps still open."""
    if progress:
        await conn.execute("UPDATE plan_steps SET progress = u.p FROM unnest($1::uuid[], $2::numeric[]) AS u(s, p)"
                           " WHERE step_id = u.s AND status = 'open'",
                           [s for s, _ in progress], [p for _, p in progress])


async def settle_steps(conn: asyncpg.Connection, settled: Sequence[tuple[UUID, Decimal, str]],
                       now: datetime) -> set[UUID]:
    """Settle steps (step_id, progress, status) still open, each once; the ones this call settled."""
    if not settled:
        return set()
    rows = await conn.fetch(
        "UPDATE plan_steps SET progress = u.p, status = u.st, settled_at = $4 FROM unnest($1::uuid[],"
        " $2::numeric[], $3::text[]) AS u(s, p, st) WHERE step_id = u.s AND status = 'open' RETURNING step_id",
        [s for s, _, _ in settled], [p for _, p, _ in settled], [st for _, _, st in settled], now)
    return {r["step_id"] for r in rows}


async def plan_step_statuses(conn: asyncpg.Connection, plan_ids: Sequence[UUID]) -> dict[UUID, list[tuple[UUID, Any]]]:
    """Each plan's (step_id, status)s, in step order."""
    rows = await conn.fetch("SELECT plan_id, step_id, status FROM plan_steps WHERE plan_id = ANY($1::uuid[])"
                            " ORDER BY plan_id, position", list(plan_ids))
    out: dict[UUID, list[tuple[UUID, Any]]] = {}
    for r in rows:
        out.setdefault(r["plan_id"], []).append((r["step_id"], r["status"]))
    return out


async def set_plan_statuses(conn: asyncpg.Connection, statuses: Mapping[UUID, str]) -> None:
    if statuses:
        await conn.execute("UPDATE action_plans SET status = u.st FROM unnest($1::uuid[], $2::text[]) AS u(p, st)"
                           " WHERE plan_id = u.p", list(statuses), list(statuses.values()))


async def managers_of(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str]) -> dict[str, str | None]:
    return {r["rep_id"]: r["manager_id"] for r in await conn.fetch(
        "SELECT rep_id, manager_id FROM reps WHERE tenant = $1 AND rep_id = ANY($2::text[])", tenant, list(rep_ids))}


async def plans(conn: asyncpg.Connection, tenant: str, rep_id: str | None, status: str | None,
                plan_id: UUID | None = None) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """Up to 500 plans (oldest first) and their steps."""
    rows = await conn.fetch(
        f"SELECT {PLAN_COLUMNS} FROM action_plans WHERE tenant = $1 AND ($2::text IS NULL OR rep_id = $2)"
        " AND ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR plan_id = $4)"
        " ORDER BY created_at, plan_id LIMIT 500", tenant, rep_id, status, plan_id)
    steps = await conn.fetch(f"SELECT {STEP_COLUMNS} FROM plan_steps WHERE plan_id = ANY($1::uuid[])"
                             " ORDER BY plan_id, position", [r["plan_id"] for r in rows])
    return list(rows), list(steps)


async def due_plan_reps(conn: asyncpg.Connection, now: datetime) -> list[tuple[str, str]]:
    """Reps with an open step past its due date (the timer settles them)."""
    rows = await conn.fetch("SELECT tenant, rep_id FROM sweep_due_plan_reps($1)", now)
    return [(r["tenant"], r["rep_id"]) for r in rows]


# --- the timers' bookkeeping ----------------------------------------------------------------------


async def live_tasks_by_rule(conn: asyncpg.Connection) -> dict[str, int]:
    """Live check-ins of every tenant, by rule (a gauge)."""
    return {r["rule"]: r["n"] for r in await conn.fetch("SELECT rule, n FROM sweep_live_tasks_by_rule()")}


async def owed_count(conn: asyncpg.Connection) -> int:
    found: int = await conn.fetchval("SELECT sweep_owed_count()")
    return found


async def peek_owed(conn: asyncpg.Connection, limit: int) -> list[tuple[str, str]]:
    """The oldest owed evaluations, left in place."""
    return [(r["tenant"], r["rep_id"]) for r in await conn.fetch("SELECT tenant, rep_id FROM sweep_peek_owed($1)",
                                                                  limit)]


async def drop_owed(conn: asyncpg.Connection, tenant: str, rep_id: str) -> None:
    await conn.execute("DELETE FROM owed_evaluations WHERE tenant = $1 AND rep_id = $2", tenant, rep_id)


# --- did it help? follow-ups of check-ins and comparison findings (effect.py) --------------------------

_FOLLOW_UP_COLUMNS = ("f.subject_id, f.kind, f.reason, f.rep_id, f.manager_id, f.team_id, f.rule, f.metric, f.period,"
                      " f.opened_at, f.pace_0, f.pace_7, f.pace_14, f.pace_30, f.recovered_at, f.recovered_days,"
                      " f.measured")


def _follow_up(r: Mapping[str, Any], response: str = "none") -> FollowUp:
    return FollowUp(r["subject_id"], r["kind"], r["reason"], r["rep_id"], r["manager_id"], r["team_id"], r["rule"],
                    r["metric"], r["period"], r["opened_at"],
                    {0: r["pace_0"], 7: r["pace_7"], 14: r["pace_14"], 30: r["pace_30"]}, r["recovered_at"],
                    r["recovered_days"], response, r["measured"])


async def open_follow_ups(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str],
                          now: datetime) -> dict[str, list[FollowUp]]:
    """The reps' follow-ups with a milestone or the recovery still to record (opened in the last
    `effect.FOLLOW_UP_DAYS`: a finding not recovered by then stays so)."""
    rows = await conn.fetch(f"SELECT {_FOLLOW_UP_COLUMNS} FROM follow_ups f WHERE f.tenant = $1"
                            " AND f.rep_id = ANY($2::text[]) AND (f.measured < 30 OR f.recovered_at IS NULL)"
                            " AND f.opened_at > $3", tenant, list(rep_ids), now - timedelta(days=FOLLOW_UP_DAYS))
    out: dict[str, list[FollowUp]] = {}
    for r in rows:
        out.setdefault(r["rep_id"], []).append(_follow_up(r))
    return out


async def record_follow_ups(conn: asyncpg.Connection, tenant: str, rows: Sequence[FollowUp],
                            dropped: Sequence[str] = ()) -> None:
    """New follow-ups, one statement (a subject already followed is left as it is); the `dropped` ones go."""
    if dropped:
        await conn.execute("DELETE FROM follow_ups WHERE tenant = $1 AND subject_id = ANY($2::text[])",
                           tenant, list(dropped))
    if not rows:
        return
    await conn.execute(
        "INSERT INTO follow_ups (tenant, subject_id, kind, reason, rep_id, manager_id, team_id, rule, metric, period,"
        " opened_at, pace_0) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::numeric[])"
        " ON CONFLICT (tenant, subject_id) DO NOTHING",
        tenant, [r.subject_id for r in rows], [r.kind for r in rows], [r.reason for r in rows],
        [r.rep_id for r in rows], [r.manager_id for r in rows], [r.team_id for r in rows], [r.rule for r in rows],
        [r.metric for r in rows], [r.period for r in rows], [r.opened_at for r in rows],
        [r.pace.get(0) for r in rows])


async def advance_follow_ups(conn: asyncpg.Connection, tenant: str, rows: Sequence[FollowUp]) -> None:
    """The milestones measured and the recoveries seen now, one statement; a value recorded before stays."""
    if not rows:
        return
    await conn.execute(
        "UPDATE follow_ups f SET pace_7 = coalesce(f.pace_7, u.p7), pace_14 = coalesce(f.pace_14, u.p14),"
        " pace_30 = coalesce(f.pace_30, u.p30), recovered_at = coalesce(f.recovered_at, u.r),"
        " recovered_days = coalesce(f.recovered_days, u.d), measured = greatest(f.measured, u.m)"
        " FROM unnest($2::text[], $3::numeric[], $4::numeric[], $5::numeric[], $6::timestamptz[], $7::int[],"
        " $8::int[]) AS u(s, p7, p14, p30, r, d, m) WHERE f.tenant = $1 AND f.subject_id = u.s",
        tenant, [r.subject_id for r in rows], [r.pace.get(7) for r in rows], [r.pace.get(14) for r in rows],
        [r.pace.get(30) for r in rows], [r.recovered_at for r in rows], [r.recovered_days for r in rows],
        [r.measured for r in rows])


async def follow_ups(conn: asyncpg.Connection, tenant: str, since: datetime, until: datetime,
                     rep_ids: Sequence[str] | None = None) -> list[FollowUp]:
    """The follow-ups opened in ``[since, until)`` (of ``rep_ids`` only, when given), each check-in with the
    manager's response: an action plan made from it, completed, acknowledged, or none."""
    rows = await conn.fetch(
        f"SELECT {_FOLLOW_UP_COLUMNS}, CASE WHEN f.kind = 'comparison' THEN 'comparison'"
        "  WHEN EXISTS (SELECT 1 FROM action_plans p WHERE p.tenant = f.tenant AND p.task_id = t.task_id)"
        "  THEN 'plan' WHEN t.completed_at IS NOT NULL THEN 'completed'"
        "  WHEN t.acknowledged_at IS NOT NULL THEN 'acknowledged' ELSE 'none' END AS response"
        " FROM follow_ups f LEFT JOIN tasks t ON t.tenant = f.tenant"
        "  AND t.task_id = CASE WHEN f.kind = 'check_in' THEN f.subject_id::uuid END"
        " WHERE f.tenant = $1 AND f.opened_at >= $2 AND f.opened_at < $3"
        " AND ($4::text[] IS NULL OR f.rep_id = ANY($4::text[])) ORDER BY f.opened_at, f.subject_id",
        tenant, since, until, None if rep_ids is None else list(rep_ids))
    return [_follow_up(r, r["response"]) for r in rows]


# --- the handlers' view: `store.Store` over one connection ------------------------------------------


class PgStore:
    """`store.Store` on PostgreSQL, inside the caller's transaction (`conn`)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def upsert_tenants(self, entries: Sequence[TenantUpserted]) -> None:
        await upsert_tenants(self.conn, entries)

    async def remember_calendar(self, tenant: str, calendar: Calendar) -> None:
        await remember_calendar(self.conn, tenant, calendar)

    async def upsert_reps(self, tenant: str, reps: Sequence[tuple[RepUpserted, datetime]]) -> None:
        await upsert_reps(self.conn, tenant, reps)

    async def seen_reps(self, tenant: str, seen: Mapping[str, datetime]) -> None:
        await seen_reps(self.conn, tenant, seen)

    async def insert_activities(self, tenant: str, activities: Sequence[ActivityLogged]) -> list[NewActivity]:
        rows = await insert_activities(self.conn, tenant, activities)
        return [NewActivity(r["activity_id"], r["rep_id"], r["deal_id"], r["occurred_at"]) for r in rows]

    async def touch_deals(self, tenant: str, touches: Sequence[tuple[str, datetime]]) -> None:
        await touch_deals(self.conn, tenant, touches)

    async def store_deals(self, tenant: str, deals: Sequence[tuple[DealUpserted, str]]) -> None:
        await store_deals(self.conn, tenant, deals)

    async def store_time_off(self, tenant: str, leaves: Sequence[tuple[TimeOffSet, datetime, str]]) -> None:
        await store_time_off(self.conn, tenant, leaves)

    async def tombstone_deals(self, tenant: str, deals: Sequence[tuple[DealDeleted, str]]) -> None:
        await tombstone_deals(self.conn, tenant, deals)

    async def save_attainments(self, tenant: str, figures: Sequence[AttainmentUpdated], now: datetime) -> set[str]:
        return {rep for _, rep in await save_attainments(self.conn, [(tenant, f) for f in figures], now)}

    async def owe_evaluation(self, tenant: str, rep_ids: Sequence[str], now: datetime) -> None:
        await owe_evaluation(self.conn, [(tenant, rep) for rep in rep_ids], now)

    async def config_version(self, tenant: str) -> UUID | None:
        return await config_version(self.conn, tenant)

    async def load_config(self, tenant: str, version: UUID | None) -> TenantConfig:
        return await load_config(self.conn, tenant, version)

    async def rep_views(self, config: TenantConfig, rep_ids: Sequence[str], now: datetime,
                        activity_days: int) -> dict[str, RepView]:
        return await rep_views(self.conn, config, rep_ids, now, activity_days)

    async def live_tasks(self, tenant: str, rep_ids: Sequence[str]) -> dict[str, list[LiveTask]]:
        return await live_tasks(self.conn, tenant, rep_ids)

    async def pass_gates(self, tenant: str, gates: Sequence[Gate], now: datetime) -> set[tuple[str, str]]:
        return await pass_gates(self.conn, tenant, gates, now)

    async def insert_tasks(self, tenant: str, tasks: Sequence[TaskCreated], now: datetime) -> set[str]:
        return await insert_tasks(self.conn, tenant, tasks, now)

    async def close_tasks(self, tenant: str, closes: Sequence[Close], now: datetime) -> list[TaskClosed]:
        return await close_tasks(self.conn, tenant, closes, now)

    async def open_follow_ups(self, tenant: str, rep_ids: Sequence[str], now: datetime) -> dict[str, list[FollowUp]]:
        return await open_follow_ups(self.conn, tenant, rep_ids, now)

    async def record_follow_ups(self, tenant: str, rows: Sequence[FollowUp], dropped: Sequence[str] = ()) -> None:
        await record_follow_ups(self.conn, tenant, rows, dropped)

    async def advance_follow_ups(self, tenant: str, rows: Sequence[FollowUp]) -> None:
        await advance_follow_ups(self.conn, tenant, rows)

    async def publish(self, tenant: str, events: Sequence[Outgoing], now: datetime) -> None:
        await enqueue_many(self.conn, [
            (e.topic.name, message_key(tenant, e.key_id),
             CloudEvent(id=e.event_id, type=e.type, source=SOURCE, time=now, tenant=tenant,
                        data=e.data.model_dump(mode="json")))
            for e in events])
