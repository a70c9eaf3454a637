"""Weekly reviews (`coaching.review.published`) and manager scorecards, from coaching's tables.

The arithmetic and the schedule are pure (`reviews.py`); this module gathers the numbers. A review
row is inserted before it is announced, keyed by (tenant, scope, id, week): whichever replica gets
there first publishes it, in the same transaction; the others insert nothing and publish nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg

from services.coaching import repository as repo
from services.coaching.calendar import working_share
from services.coaching.model import Policy
from services.coaching.outbound import publish
from services.coaching.reviews import TaskFacts, headline, manager_card, trend, week_due
from shared import topics
from shared.db import tenant_tx
from shared.events import ManagerCard, Metric, ReviewFigure, ReviewPublished, Scope
from shared.periods import local_midnight, period_bounds, period_of

NAMESPACE = uuid.UUID("c2d35a8e-1f44-4b9e-8f0d-7b6a3e91c5d4")
KINDS = ("month", "quarter")


async def _tenants(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT tenant, timezone, fiscal_start_month FROM tenants WHERE active"))


async def publish_due(pool: asyncpg.Pool, now: datetime, defaults: Policy) -> int:
    """Publish every review due at `now` that nobody published yet; returns how many this call did."""
    published = 0
    async with pool.acquire() as conn:  # the registry: readable in every scope
        tenants = await _tenants(conn)
    for t in tenants:
        zone = ZoneInfo(t["timezone"])
        async with tenant_tx(pool, t["tenant"]) as conn:
            layers = await repo.policy_layers(conn, t["tenant"], None)
            policy = defaults.with_overrides(*layers) if layers else defaults
            due = week_due(now, policy.review_weekday, policy.review_hour, zone)
            reps = await conn.fetch("SELECT rep_id, team_id FROM reps WHERE tenant = $1 AND active"
                                    " AND name IS NOT NULL ORDER BY rep_id", t["tenant"])
            week, monday = due
            done = {(r["scope"], r["scope_id"]) for r in await conn.fetch(
                "SELECT scope, scope_id FROM reviews WHERE tenant = $1 AND week = $2", t["tenant"], week)}
        subjects = [(Scope.REP, r["rep_id"]) for r in reps]
        subjects += [(Scope.TEAM, team) for team in sorted({r["team_id"] for r in reps if r["team_id"]})]
        for scope, scope_id in subjects:
            if (scope.value, scope_id) in done:
                continue  # the common case, every tick of the week: one query per tenant says so
            async with tenant_tx(pool, t["tenant"]) as conn:
                review = await build(conn, t["tenant"], scope, scope_id, week, monday, zone,
                                     t["fiscal_start_month"], now)
                inserted = await conn.fetchval(
                    "INSERT INTO reviews (tenant, scope, scope_id, week, review_id, body, published_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT DO NOTHING RETURNING 1",
                    t["tenant"], scope.value, scope_id, week, uuid.UUID(review.review_id), review.model_dump_json(),
                    now)
                if inserted:
                    await publish(conn, t["tenant"], scope_id, "coaching.review.published", review.review_id, review,
                                  now, topics.REVIEWS)
                    published += 1
    return published


def _previous_label(kind: str, start: datetime, zone: ZoneInfo, fiscal: int) -> str:
    return period_of(kind, start - timedelta(microseconds=1), zone, fiscal).label


async def _figures(conn: asyncpg.Connection, tenant: str, scope: Scope, scope_id: str, now: datetime,
                   zone: ZoneInfo, fiscal: int, days_off: frozenset[date]) -> list[ReviewFigure]:
    labels = [period_of(kind, now, zone, fiscal).label for kind in KINDS]
    rows = await conn.fetch(
        "SELECT period, metric, actual, target FROM attainment WHERE tenant = $1 AND scope = $2 AND scope_id = $3"
        " AND period = ANY($4::text[]) AND target > 0 ORDER BY period, metric", tenant, scope.value, scope_id, labels)
    out = []
    for row in rows:
        kind = "quarter" if "Q" in row["period"] else "month"
        start, end = period_bounds(row["period"], zone, fiscal)
        before = _previous_label(kind, start, zone, fiscal)
        prev = await conn.fetchrow("SELECT actual, target FROM attainment WHERE tenant = $1 AND scope = $2"
                                   " AND scope_id = $3 AND period = $4 AND metric = $5",
                                   tenant, scope.value, scope_id, before, row["metric"])
        attainment = (row["actual"] / row["target"]).quantize(Decimal("0.0001"))
        share = working_share(start, end, now, zone, days_off)
        expected = row["target"] * share
        previous = (prev["actual"] / prev["target"]).quantize(Decimal("0.0001")) if prev and prev["target"] else None
        out.append(ReviewFigure(
            metric=Metric(row["metric"]), period=row["period"], actual=row["actual"], target=row["target"],
            attainment=attainment, pace=(row["actual"] / expected).quantize(Decimal("0.0001")) if expected else None,
            previous_period=before if prev else None, previous_attainment=previous, trend=trend(attainment, previous)))
    return out


async def build(conn: asyncpg.Connection, tenant: str, scope: Scope, scope_id: str, week: str, monday: date,
                zone: ZoneInfo, fiscal: int, now: datetime) -> ReviewPublished:
    """The digest of one rep or team for the ISO week starting `monday`."""
    if scope is Scope.REP:
        profile = await conn.fetchrow("SELECT name, manager_id FROM reps WHERE tenant = $1 AND rep_id = $2",
                                      tenant, scope_id)
        members = [scope_id]
        name, manager = (profile["name"], profile["manager_id"]) if profile else (None, None)
    else:
        rows = await conn.fetch("SELECT rep_id, manager_id FROM reps WHERE tenant = $1 AND team_id = $2 AND active"
                                " ORDER BY rep_id", tenant, scope_id)
        members = [r["rep_id"] for r in rows]
        managers = Counter(r["manager_id"] for r in rows if r["manager_id"])
        name, manager = scope_id, (managers.most_common(1)[0][0] if managers else None)
    start, end = local_midnight(monday, zone), local_midnight(monday + timedelta(days=7), zone)
    counts = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE occurred_at >= $3) AS week, count(*) FILTER (WHERE occurred_at < $3)"
        " AS before FROM activities WHERE tenant = $1 AND rep_id = ANY($2::text[]) AND occurred_at >= $4"
        " AND occurred_at < $5", tenant, members, start, start - (end - start), end)
    tasks = await conn.fetchrow(
        "SELECT count(*) AS open, count(*) FILTER (WHERE due_at <= $3) AS overdue FROM tasks WHERE tenant = $1"
        " AND rep_id = ANY($2::text[]) AND status IN ('open', 'acknowledged')", tenant, members, now)
    off = await repo.days_off(conn, tenant, scope_id if scope is Scope.REP else None,
                              now.date() - timedelta(days=200), now.date() + timedelta(days=200))
    figures = await _figures(conn, tenant, scope, scope_id, now, zone, fiscal, off)
    lead = next((f for f in figures if f.metric is Metric.WON_REVENUE and "Q" in f.period),
                figures[0] if figures else None)
    card = None
    if scope is Scope.TEAM and manager is not None:
        card = await scorecard(conn, tenant, manager, period_of("quarter", now, zone, fiscal).label, zone, fiscal, now)
    return ReviewPublished(
        review_id=str(uuid.uuid5(NAMESPACE, f"{tenant}|{scope.value}|{scope_id}|{week}")), scope=scope,
        scope_id=scope_id, name=name, manager_id=manager, week=week,
        headline=headline(name or scope_id, week, lead.attainment if lead else None,
                          lead.metric.value if lead else "", lead.period if lead else "", tasks["open"]),
        figures=figures, activities_week=counts["week"], activities_week_before=counts["before"],
        open_tasks=tasks["open"], overdue_tasks=tasks["overdue"], members=members if scope is Scope.TEAM else [],
        manager=card, published_at=now)


async def scorecard(conn: asyncpg.Connection, tenant: str, manager_id: str, period: str, zone: ZoneInfo,
                    fiscal: int, now: datetime) -> ManagerCard:
    """The manager's handling of check-ins created in `period`, and their reps' won revenue against target."""
    start, end = period_bounds(period, zone, fiscal)
    rows = await repo.manager_tasks(conn, tenant, manager_id, start, end)
    card = manager_card(manager_id, [TaskFacts(r["created_at"], r["due_at"], r["acknowledged_at"],
                                               r["completed_at"], r["escalated_at"], r["status"]) for r in rows], now)
    reps: Sequence[str] = [r[0] for r in await conn.fetch(
        "SELECT rep_id FROM reps WHERE tenant = $1 AND manager_id = $2 AND active", tenant, manager_id)]
    actual, target = await repo.team_figure(conn, tenant, reps, period, Metric.WON_REVENUE.value)
    return card.model_copy(update={
        "team_won_revenue": actual, "team_target": target,
        "team_attainment": (actual / target).quantize(Decimal("0.0001")) if actual is not None and target else None})
