"""Weekly reviews (`coaching.review.published`) and manager scorecards, from coaching's tables.

The arithmetic and the schedule are pure (`reviews.py`); this module gathers the numbers. A review
row is inserted before it is announced, keyed by (tenant, scope, id, week): whichever replica gets
there first publishes it, in the same transaction; the others insert nothing and publish nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg

from services.coaching import repository as repo
from services.coaching.config import CONFIGS
from services.coaching.effect import stats
from services.coaching.model import Policy
from services.coaching.outbound import publish
from services.coaching.repository import PgStore
from services.coaching.reviews import (
    KINDS,
    FigureFacts,
    TaskFacts,
    WeeklyReview,
    headline,
    lead_figure,
    manager_card,
    review_figures,
    review_forecasts,
    reviewed_periods,
    week_due,
)
from shared import topics
from shared.db import tenant_tx
from shared.events import ManagerCard, Metric, ReviewFigure, Scope
from shared.periods import local_midnight, period_bounds, period_of

NAMESPACE = uuid.UUID("c2d35a8e-1f44-4b9e-8f0d-7b6a3e91c5d4")


async def publish_due(pool: asyncpg.Pool, now: datetime, defaults: Policy) -> int:
    """Publish every review due at `now` that nobody published yet; returns how many this call did."""
    published = 0
    async with pool.acquire() as conn:  # the registry: readable in every scope
        tenants = await repo.active_tenants(conn)
    for t in tenants:
        zone = ZoneInfo(t["timezone"])
        async with tenant_tx(pool, t["tenant"]) as conn:
            config = await CONFIGS.get(PgStore(conn), t["tenant"])
            policy = config.policy(defaults, None)
            week, monday = week_due(now, policy.review_weekday, policy.review_hour, zone)
            reps = await repo.named_reps(conn, t["tenant"])
            done = await repo.reviewed(conn, t["tenant"], week)
        subjects = [(Scope.REP, r["rep_id"]) for r in reps]
        subjects += [(Scope.TEAM, team) for team in sorted({r["team_id"] for r in reps if r["team_id"]})]
        for scope, scope_id in subjects:
            if (scope.value, scope_id) in done:
                continue  # the common case, every tick of the week: one query per tenant says so
            async with tenant_tx(pool, t["tenant"]) as conn:
                review = await build(conn, t["tenant"], scope, scope_id, week, monday, zone,
                                     t["fiscal_start_month"], now)
                if await repo.insert_review(conn, t["tenant"], scope.value, scope_id, week, uuid.UUID(review.review_id),
                                            review.model_dump_json(), now):
                    await publish(conn, t["tenant"], scope_id, "coaching.review.published", review.review_id, review,
                                  now, topics.REVIEWS)
                    published += 1
    return published


async def _figures(conn: asyncpg.Connection, tenant: str, scope: Scope, scope_id: str, now: datetime,
                   zone: ZoneInfo, fiscal: int, days_off: frozenset[date]) -> list[ReviewFigure]:
    """The scope's targeted figures of the current month and quarter, each with the period before (one query)."""
    rows = await repo.figures_of(conn, tenant, scope.value, scope_id, reviewed_periods(now, zone, fiscal))
    return review_figures([FigureFacts(r["period"], r["metric"], r["actual"], r["target"]) for r in rows],
                          now, zone, fiscal, days_off)


async def build(conn: asyncpg.Connection, tenant: str, scope: Scope, scope_id: str, week: str, monday: date,
                zone: ZoneInfo, fiscal: int, now: datetime) -> WeeklyReview:
    """The digest of one rep or team for the ISO week starting `monday`, with the forecasts of its reps."""
    if scope is Scope.REP:
        profile = await repo.profile(conn, tenant, scope_id)
        members = [scope_id]
        name, manager = (profile["name"], profile["manager_id"]) if profile else (None, None)
    else:
        rows = await repo.team_members(conn, tenant, scope_id)
        members = [r["rep_id"] for r in rows]
        managers = Counter(r["manager_id"] for r in rows if r["manager_id"])
        name, manager = scope_id, (managers.most_common(1)[0][0] if managers else None)
    start, end = local_midnight(monday, zone), local_midnight(monday + timedelta(days=7), zone)
    week_count, before_count = await repo.activity_weeks(conn, tenant, members, start, end)
    open_count, overdue_count = await repo.live_task_counts(conn, tenant, members, now)
    off = await repo.days_off(conn, tenant, scope_id if scope is Scope.REP else None,
                              now.date() - timedelta(days=200), now.date() + timedelta(days=200))
    figures = await _figures(conn, tenant, scope, scope_id, now, zone, fiscal, off)
    current = [period_of(kind, now, zone, fiscal).label for kind in KINDS]
    forecasts = review_forecasts(await repo.forecasts_of(conn, tenant, members, current))
    lead = lead_figure(figures)
    card = None
    if scope is Scope.TEAM and manager is not None:
        card = await scorecard(conn, tenant, manager, period_of("quarter", now, zone, fiscal).label, zone, fiscal, now)
    return WeeklyReview(
        review_id=str(uuid.uuid5(NAMESPACE, f"{tenant}|{scope.value}|{scope_id}|{week}")), scope=scope,
        scope_id=scope_id, name=name, manager_id=manager, week=week,
        headline=headline(name or scope_id, week, lead.attainment if lead else None,
                          lead.metric if lead else "", lead.period if lead else "", open_count),
        figures=figures, activities_week=week_count, activities_week_before=before_count,
        open_tasks=open_count, overdue_tasks=overdue_count, members=members if scope is Scope.TEAM else [],
        manager=card, published_at=now, forecasts=forecasts)


async def scorecard(conn: asyncpg.Connection, tenant: str, manager_id: str, period: str, zone: ZoneInfo,
                    fiscal: int, now: datetime) -> ManagerCard:
    """The manager's handling of check-ins created in `period`, and their reps' won revenue against target."""
    start, end = period_bounds(period, zone, fiscal)
    rows = await repo.manager_tasks(conn, tenant, manager_id, start, end)
    card = manager_card(manager_id, [TaskFacts(r["created_at"], r["due_at"], r["acknowledged_at"],
                                               r["completed_at"], r["escalated_at"], r["status"]) for r in rows], now)
    reps = await repo.managed_reps(conn, tenant, manager_id)
    actual, target = await repo.team_figure(conn, tenant, reps, period, Metric.WON_REVENUE.value)
    followed = await repo.follow_ups(conn, tenant, start, end, reps)
    coached = stats([f for f in followed if f.kind == "check_in"], EFFECT_MIN_SAMPLE)
    compared = stats([f for f in followed if f.kind == "comparison"], EFFECT_MIN_SAMPLE)
    return card.model_copy(update={
        "team_won_revenue": actual, "team_target": target,
        "team_attainment": (actual / target).quantize(Decimal("0.0001")) if actual is not None and target else None,
        "check_ins_followed": coached.n, "recovered_after_check_in": _share(coached.recovery_rate),
        "recovered_without": _share(compared.recovery_rate)})


EFFECT_MIN_SAMPLE = 10  # follow-ups before a manager card names a recovery rate


def _share(rate: float | None) -> Decimal | None:
    return None if rate is None else Decimal(str(rate)).quantize(Decimal("0.0001"))
