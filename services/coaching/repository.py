"""coaching's PostgreSQL state: what it keeps of the sales topics, and its tasks, plans and reviews.

Every transition is guarded in SQL (newest version wins, insert-if-absent, update-where-status), so
replicas and redeliveries cannot apply one twice; the caller commits it with the batch's offsets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from services.coaching.calendar import local_midnight
from services.coaching.checkins import Playbook
from services.coaching.model import ActivityLog, ClosedDeal, Figure, OpenDeal, Policy, RepView
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    Metric,
    RepUpserted,
    TaskCreated,
)

HISTORY = timedelta(days=180)  # how far back rules look (win-rate baseline); older activities may be pruned
TASK_COLUMNS = ("task_id, rep_id, rep_name, team_id, manager_id, rule, severity, summary, evidence, suggested_actions,"
                " training, details, status, created_at, due_at, acknowledged_at, completed_at, outcome,"
                " escalated_at, escalated_to, closed_at, close_reason")


# --- what coaching keeps of the sales topics -------------------------------------------------------


async def upsert_rep(conn: asyncpg.Connection, tenant: str, rep: RepUpserted, version: datetime) -> None:
    await conn.execute(
        "INSERT INTO reps (tenant, rep_id, name, team_id, manager_id, timezone, active, version, known_since)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
        " ON CONFLICT (tenant, rep_id) DO UPDATE SET name = EXCLUDED.name, team_id = EXCLUDED.team_id,"
        " manager_id = EXCLUDED.manager_id, timezone = EXCLUDED.timezone, active = EXCLUDED.active,"
        " version = EXCLUDED.version, known_since = LEAST(reps.known_since, EXCLUDED.known_since)"
        " WHERE reps.version <= EXCLUDED.version",
        tenant, rep.rep_id, rep.name, rep.team_id, rep.manager_id, rep.timezone, rep.active, version)


async def seen_rep(conn: asyncpg.Connection, tenant: str, rep_id: str, at: datetime) -> None:
    """A rep known from a sales event before (or without) a roster entry: known since then."""
    await conn.execute(
        "INSERT INTO reps (tenant, rep_id, version, known_since) VALUES ($1, $2, '-infinity', $3)"
        " ON CONFLICT (tenant, rep_id) DO UPDATE SET known_since = LEAST(reps.known_since, EXCLUDED.known_since)"
        " WHERE reps.known_since > EXCLUDED.known_since", tenant, rep_id, at)


async def add_activities(conn: asyncpg.Connection, tenant: str, activities: Sequence[ActivityLogged]) -> set[str]:
    """Insert the activities not seen before; their deals were touched then. Returns the reps concerned."""
    if not activities:
        return set()
    rows = await conn.fetch(
        "INSERT INTO activities (tenant, activity_id, rep_id, kind, occurred_at, deal_id)"
        " SELECT DISTINCT ON (a) $1, a, r, k, o, d FROM unnest($2::text[], $3::text[], $4::text[],"
        "   $5::timestamptz[], $6::text[]) AS u(a, r, k, o, d)"
        " ON CONFLICT DO NOTHING RETURNING rep_id, deal_id, occurred_at",
        tenant, [a.activity_id for a in activities], [a.rep_id for a in activities],
        [a.kind.value for a in activities], [a.occurred_at for a in activities], [a.deal_id for a in activities])
    touched = [(r["deal_id"], r["occurred_at"]) for r in rows if r["deal_id"]]
    if touched:
        await conn.execute(
            "UPDATE deals SET last_activity_at = GREATEST(deals.last_activity_at, t.at)"
            " FROM (SELECT d, max(o) AS at FROM unnest($2::text[], $3::timestamptz[]) AS u(d, o) GROUP BY d) AS t"
            " WHERE deals.tenant = $1 AND deals.deal_id = t.d",
            tenant, [d for d, _ in touched], [o for _, o in touched])
    return {r["rep_id"] for r in rows}


async def save_attainments(conn: asyncpg.Connection, updates: Sequence[tuple[str, AttainmentUpdated]],
                           now: datetime) -> set[tuple[str, str]]:
    """Keep kpi's latest figures per (scope, id, period, metric), newest `as_of` winning (so redeliveries and
    replays change nothing), in one statement; `first_seen_at` is coaching's own. Returns the (tenant, rep)
    whose figures were written."""
    newest: dict[tuple[str, str, str, str, str], AttainmentUpdated] = {}
    for tenant, u in updates:  # one row per key and statement; in batch order, a later equal as_of wins
        key = (tenant, u.scope.value, u.scope_id, u.period, u.metric.value)
        if key not in newest or newest[key].as_of <= u.as_of:
            newest[key] = u
    if not newest:
        return set()
    keys, rows = list(newest), list(newest.values())
    written = await conn.fetch(
        "INSERT INTO attainment (tenant, scope, scope_id, period, metric, actual, target, name, manager_id,"
        " period_start, period_end, as_of, first_seen_at)"
        " SELECT t, s, i, p, m, a, g, n, mg, ps, pe, ao, $13 FROM unnest($1::text[], $2::text[], $3::text[],"
        " $4::text[], $5::text[], $6::numeric[], $7::numeric[], $8::text[], $9::text[], $10::timestamptz[],"
        " $11::timestamptz[], $12::timestamptz[]) AS u(t, s, i, p, m, a, g, n, mg, ps, pe, ao)"
        " ON CONFLICT (tenant, scope, scope_id, period, metric) DO UPDATE SET actual = EXCLUDED.actual,"
        " target = EXCLUDED.target, name = EXCLUDED.name, manager_id = EXCLUDED.manager_id,"
        " as_of = EXCLUDED.as_of WHERE attainment.as_of <= EXCLUDED.as_of RETURNING tenant, scope, scope_id",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
        [k[4] for k in keys], [u.actual for u in rows], [u.target for u in rows], [u.name for u in rows],
        [u.manager_id for u in rows], [u.period_start for u in rows], [u.period_end for u in rows],
        [u.as_of for u in rows], now)
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
    rows = await conn.fetch(
        "DELETE FROM owed_evaluations WHERE (tenant, rep_id) IN (SELECT tenant, rep_id FROM owed_evaluations"
        " ORDER BY since LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING tenant, rep_id", limit)
    return sorted((r["tenant"], r["rep_id"]) for r in rows)


# --- the rules' view of a rep ------------------------------------------------------------------------


async def active_reps(conn: asyncpg.Connection, tenant: str | None = None) -> list[tuple[str, str]]:
    rows = await conn.fetch("SELECT tenant, rep_id FROM reps WHERE active AND ($1::text IS NULL OR tenant = $1)"
                            " ORDER BY tenant, rep_id", tenant)
    return [(r["tenant"], r["rep_id"]) for r in rows]


async def days_off(conn: asyncpg.Connection, tenant: str, rep_id: str | None, first: date,
                   last: date) -> frozenset[date]:
    """Tenant holidays and (for a rep) time off between `first` and `last`, as local dates."""
    rows = await conn.fetch(
        "SELECT day FROM holidays WHERE tenant = $1 AND day BETWEEN $3 AND $4"
        " UNION SELECT generate_series(GREATEST(first_day, $3), LEAST(last_day, $4), '1 day')::date"
        " FROM time_off WHERE tenant = $1 AND rep_id = $2 AND last_day >= $3 AND first_day <= $4",
        tenant, rep_id, first, last)
    return frozenset(r[0] for r in rows)


async def rep_zone(conn: asyncpg.Connection, tenant: str, rep_id: str) -> ZoneInfo | None:
    """The rep's own zone, else the tenant's (as in `RepView.timezone`); None for a rep coaching does not know."""
    zone = await conn.fetchval("SELECT coalesce(r.timezone, t.timezone, 'UTC') FROM reps r LEFT JOIN tenants t"
                               " USING (tenant) WHERE r.tenant = $1 AND r.rep_id = $2", tenant, rep_id)
    return ZoneInfo(zone) if zone else None


def _activity_log(rows: Sequence[asyncpg.Record], days: Sequence[date]) -> ActivityLog:
    """A rep's `ActivityLog` from `rep_views`' counts by (kind, day bucket) over the local `days`."""
    counts = sorted((days[r["day"] - 1], r["kind"], r["n"]) for r in rows if 1 <= r["day"] < len(days))
    return ActivityLog(tuple(counts), max((r["last"] for r in rows), default=None))


def _group(rows: Sequence[asyncpg.Record], key: str = "rep_id") -> dict[str, list[asyncpg.Record]]:
    out: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        out.setdefault(row[key], []).append(row)
    return out


def activity_days(defaults: Policy, layers: Mapping[str, Mapping[str, Any]]) -> int:
    """The longest activity window any rep of a tenant is judged over: the defaults' or an override's."""
    return max([defaults.activity_window_days]
               + [defaults.with_overrides(layer).activity_window_days for layer in layers.values()
                  if "activity_window_days" in layer])


async def rep_views(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], now: datetime,
                    activity_days: int) -> dict[str, RepView]:
    """The rules' view of each rep of `rep_ids` known to coaching: six queries whatever their number.

    Activities arrive counted, per rep, kind and local day of the tenant's zone over the last
    `activity_days` days and today, with each rep's last one (`ActivityLog`): what a batch of reps
    holds in memory follows their number, not how much they logged. The day boundaries are computed
    here, with the zone database the rules use, and PostgreSQL only sorts instants between them."""
    ids = sorted(set(rep_ids))
    reps = await conn.fetch(
        "SELECT r.rep_id, r.name, r.team_id, r.manager_id, r.timezone, r.known_since, t.timezone AS tenant_tz,"
        " t.currency FROM reps r LEFT JOIN tenants t USING (tenant) WHERE r.tenant = $1 AND r.rep_id = ANY($2::text[])",
        tenant, ids)
    if not reps:
        return {}
    ids = [r["rep_id"] for r in reps]
    figures = _group(await conn.fetch(
        "SELECT scope_id AS rep_id, period, metric, actual, target, period_start, period_end, first_seen_at"
        " FROM attainment WHERE tenant = $1 AND scope = 'rep' AND scope_id = ANY($2::text[])"
        " AND period_start <= $3 AND period_end > $3", tenant, ids, now))
    since = now - HISTORY
    tenant_zone = ZoneInfo(reps[0]["tenant_tz"] or "UTC")
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
    holidays = [r["day"] for r in await conn.fetch(
        "SELECT day FROM holidays WHERE tenant = $1 AND day BETWEEN $2 AND $3", tenant, first, last)]
    time_off = _group(await conn.fetch(
        "SELECT rep_id, first_day, last_day FROM time_off WHERE tenant = $1 AND rep_id = ANY($2::text[])"
        " AND last_day >= $3 AND first_day <= $4", tenant, ids, first, last))
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
            figures=tuple(Figure(f["period"], Metric(f["metric"]), f["actual"], f["target"], f["period_start"],
                                 f["period_end"], f["first_seen_at"]) for f in figures.get(rep_id, [])),
            activities=_activity_log(activities.get(rep_id, []), days),
            open_deals=tuple(OpenDeal(d["deal_id"], d["amount"], d["currency"], d["touch"])
                             for d in mine_deals if d["stage"] == "open"),
            closed_deals=tuple(ClosedDeal(d["stage"] == "won", d["closed_at"]) for d in mine_deals
                               if d["stage"] != "open" and d["closed_at"] is not None),
            days_off=frozenset(off),
            base_currency=rep["currency"],
        )
    return views


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


async def pass_gate(conn: asyncpg.Connection, tenant: str, rep_id: str, rule: str, severity: str, rank: int,
                    now: datetime, cooldown: timedelta) -> bool:
    """The cool-down gate, atomically: True when no task of this rule went to the rep inside the cool-down,
    or the last one was less severe (`rank` is the new severity's). Concurrent callers serialise on the row."""
    passed = await conn.fetchval(
        "INSERT INTO cooldowns (tenant, rep_id, rule, last_task_at, severity) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (tenant, rep_id, rule) DO UPDATE SET last_task_at = EXCLUDED.last_task_at,"
        " severity = EXCLUDED.severity"
        " WHERE cooldowns.last_task_at <= EXCLUDED.last_task_at - $6::interval"
        "    OR (CASE cooldowns.severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END) < $7"
        " RETURNING 1", tenant, rep_id, rule, now, severity, cooldown, rank)
    return passed is not None


async def insert_task(conn: asyncpg.Connection, tenant: str, task: TaskCreated, now: datetime) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO tasks (task_id, tenant, rep_id, rep_name, team_id, manager_id, rule, severity, summary,"
        " evidence, suggested_actions, training, details, created_at, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7,"
        " $8, $9, $10::jsonb, $11::jsonb, $12::jsonb, $13::jsonb, $14, $15) ON CONFLICT DO NOTHING RETURNING 1",
        task.task_id, tenant, task.rep_id, task.rep_name, task.team_id, task.manager_id, task.rule, task.severity,
        task.summary, task.evidence.model_dump_json(), json.dumps(task.suggested_actions), json.dumps(task.training),
        json.dumps(task.details, default=str), now, task.due_at)
    return inserted is not None


async def live_tasks(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str]) -> dict[str, list[asyncpg.Record]]:
    """Each rep's tasks still waiting for someone (open, acknowledged), oldest first."""
    return _group(await conn.fetch(f"SELECT {TASK_COLUMNS} FROM tasks WHERE tenant = $1 AND rep_id = ANY($2::text[])"
                                   " AND status IN ('open', 'acknowledged') ORDER BY created_at", tenant,
                                   list(rep_ids)))


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
                manager_id: str | None, after: Any, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE tenant = $1 AND ($2::text IS NULL OR rep_id = $2)"
        " AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR manager_id = $4)"
        " AND ($5::uuid IS NULL OR task_id > $5) ORDER BY task_id LIMIT $6",
        tenant, rep_id, status, manager_id, after, limit))


async def overdue_unacknowledged(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Tasks nobody acknowledged by their due date and not escalated yet, locked for this transaction
    (another replica skips them)."""
    return list(await conn.fetch(
        f"SELECT tenant, {TASK_COLUMNS} FROM tasks WHERE status = 'open' AND escalated_at IS NULL AND due_at <= $1"
        " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED", now, limit))


async def manager_of(conn: asyncpg.Connection, tenant: str, rep_id: str | None) -> str | None:
    if rep_id is None:
        return None
    found: str | None = await conn.fetchval("SELECT manager_id FROM reps WHERE tenant = $1 AND rep_id = $2",
                                            tenant, rep_id)
    return found


async def mark_escalated(conn: asyncpg.Connection, tenant: str, task_id: Any, to: str | None, now: datetime) -> None:
    await conn.execute("UPDATE tasks SET escalated_at = $3, escalated_to = $4 WHERE tenant = $1 AND task_id = $2",
                       tenant, task_id, now, to)


async def manager_tasks(conn: asyncpg.Connection, tenant: str, manager_id: str, start: datetime,
                        end: datetime) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT created_at, due_at, acknowledged_at, completed_at, escalated_at, status FROM tasks"
        " WHERE tenant = $1 AND manager_id = $2 AND created_at >= $3 AND created_at < $4",
        tenant, manager_id, start, end))


async def team_figure(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], period: str,
                      metric: str) -> tuple[Decimal | None, Decimal | None]:
    """The sum of actual and target of `metric` over the reps, in `period`."""
    row = await conn.fetchrow(
        "SELECT sum(actual) AS actual, sum(target) AS target FROM attainment WHERE tenant = $1 AND scope = 'rep'"
        " AND scope_id = ANY($2::text[]) AND period = $3 AND metric = $4", tenant, list(rep_ids), period, metric)
    return (row["actual"], row["target"]) if row else (None, None)
