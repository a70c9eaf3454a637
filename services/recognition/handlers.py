"""recognition's consumer and timer: attainment, deals and activities in; each milestone celebrated once.

Per event: the figure, deal or activity is stored; the pure rules (`rules.py`) say which milestones it
reached; each goes into the ledger, and only the insert that created its row puts the celebration in
the outbox, in the batch's own transaction with its offsets. Replays, duplicates, late events and
several replicas therefore never celebrate a milestone twice. The timer settles finishes once a
period has closed in the tenant's zone (leaderboards, each team's largest deal).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import BaseModel

from services.recognition import repository as repo
from services.recognition.headlines import kind_of, render
from services.recognition.metrics import CELEBRATIONS
from services.recognition.model import TEAM_GOAL, Found, Settings, WonDeal, quota_milestone
from services.recognition.rules import (
    activity_days,
    closed_periods,
    deal_milestones,
    leaderboard_finishes,
    quota_crossings,
    quota_drops,
    streak,
    team_largest_deal,
)
from services.recognition.settings import RecognitionSettings
from shared import metrics, registry, topics
from shared.cloudevents import CloudEvent, message_key
from shared.consumer import TRANSIENT, Handler, Incoming, claim
from shared.db import tenant_tx
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    Metric,
    MilestoneCorrected,
    MilestoneReached,
    RepUpserted,
    Scope,
    TeamUpserted,
    TenantUpserted,
)
from shared.outbox import enqueue
from shared.periods import period_bounds
from shared.service import Runtime

log = logging.getLogger(__name__)
SOURCE = "attain/recognition"
STREAK_LOOKBACK = timedelta(days=90)
MODELS: dict[str, type[BaseModel]] = {
    "kpi.attainment.updated": AttainmentUpdated, "deal.upserted": DealUpserted, "deal.deleted": DealDeleted,
    "activity.logged": ActivityLogged, "rep.upserted": RepUpserted, "team.upserted": TeamUpserted,
    "tenant.upserted": TenantUpserted}


def make_handler(rt: Runtime) -> Handler:
    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        """Store each event and celebrate the milestones it reached (the ledger keeps it once)."""
        now = rt.clock.now()
        for msg in batch:
            await apply(conn, msg, now)

    return handle


async def apply(conn: asyncpg.Connection, msg: Incoming, now: datetime) -> int:
    """One event; returns how many celebrations it announced."""
    tenant, data = msg.event.tenant, msg.data
    match data:
        case TenantUpserted():
            await registry.upsert_tenant(conn, data)
        case RepUpserted():
            await repo.upsert_rep(conn, tenant, data, msg.event.time)
        case AttainmentUpdated() if await claim(conn, msg.event):
            return await _attainment(conn, tenant, data, now)
        case DealUpserted():
            await registry.remember_calendar(conn, tenant, msg.event.extensions)
            if await repo.apply_deal(conn, tenant, data, msg.event.id):
                return await _won(conn, tenant, data)
        case DealDeleted():
            await registry.tombstone_deal(conn, tenant, data, msg.event.id)
        case ActivityLogged():
            await registry.remember_calendar(conn, tenant, msg.event.extensions)
            if await repo.add_activity(conn, tenant, data):
                return await _streak(conn, tenant, data.rep_id, data.occurred_at)
    return 0


async def _attainment(conn: asyncpg.Connection, tenant: str, update: AttainmentUpdated, now: datetime) -> int:
    newer, previous = await repo.save_attainment(conn, tenant, update)
    if not newer:
        return 0
    settings = await repo.settings(conn, tenant)
    found = quota_crossings(update.scope, update.scope_id, update.period, update.metric, previous, update.attainment,
                            update.actual, update.target, update.as_of, settings, update.name)
    announced = 0
    currency = (await repo.calendar(conn, tenant))[2] if found else None
    for item in found:
        announced += await announce(conn, tenant, item, settings, currency, metric=update.metric.value)
    if settings.corrections:
        dropped = quota_drops(previous, update.attainment, settings.quota_thresholds)
        names = [quota_milestone(int(t * 100), update.metric.value) for t in dropped]
        if update.scope is Scope.TEAM and update.metric is Metric.WON_REVENUE and "quota_100" in names:
            names.append(TEAM_GOAL)
        for row in await repo.mark_corrected(conn, tenant, update.scope.value, update.scope_id, update.period,
                                             names, now):
            corrected = MilestoneCorrected(
                celebration_id=str(row["celebration_id"]), scope=Scope(row["scope"]), scope_id=row["scope_id"],
                milestone=row["milestone"], period=row["period"], value=update.actual,
                headline=f"Correction: {update.name or update.scope_id} is back at {update.actual} for"
                         f" {update.period} ({row['milestone']} was celebrated before)", corrected_at=now)
            await _publish(conn, tenant, row["scope_id"], "recognition.milestone.corrected",
                           f"{row['celebration_id']}:corrected", corrected, now)
    return announced


async def _won(conn: asyncpg.Connection, tenant: str, deal: DealUpserted) -> int:
    assert deal.closed_at is not None
    tz, fiscal, currency = await repo.calendar(conn, tenant)
    settings = await repo.settings(conn, tenant)
    profile = await repo.rep(conn, tenant, deal.rep_id)
    won = WonDeal(deal.deal_id, deal.rep_id, deal.amount, deal.currency, deal.closed_at)
    others = [d for d in await repo.won_deals(conn, tenant, [deal.rep_id]) if d.deal_id != deal.deal_id]
    found = deal_milestones(won, others, tz, fiscal, settings, profile["name"] if profile else None)
    return sum([await announce(conn, tenant, item, settings, currency) for item in found])


async def _streak(conn: asyncpg.Connection, tenant: str, rep_id: str, at: datetime) -> int:
    settings = await repo.settings(conn, tenant)
    profile = await repo.rep(conn, tenant, rep_id)
    tz = ZoneInfo(profile["timezone"]) if profile and profile["timezone"] else (await repo.calendar(conn, tenant))[0]
    # as of the activity's own local day: the same events give the same streaks whenever they are applied
    moments = await repo.activity_moments(conn, tenant, rep_id, at - STREAK_LOOKBACK, at + timedelta(days=1))
    found = streak(activity_days(moments, tz), at.astimezone(tz).date(), settings, rep_id=rep_id, at=at,
                   name=profile["name"] if profile else None)
    if found is None:
        return 0
    return await announce(conn, tenant, found, settings, (await repo.calendar(conn, tenant))[2])


async def announce(conn: asyncpg.Connection, tenant: str, found: Found, settings: Settings, currency: str | None,
                   metric: str | None = None) -> int:
    """Ledger first; the celebration goes out only if this call created the ledger row."""
    headline = render(kind_of(found.milestone), found.facts, locale=settings.locale, currency=currency,
                      templates=settings.templates)
    cid = await repo.record(conn, tenant, found, headline, metric=metric)
    if cid is None:
        return 0
    facts = {k: (format(v, "f") if hasattr(v, "as_tuple") else v) for k, v in found.facts.items()}
    event = MilestoneReached(celebration_id=cid, scope=found.scope, scope_id=found.scope_id, milestone=found.milestone,
                             period=found.period, value=found.value, headline=headline, occurred_at=found.occurred_at,
                             name=str(found.facts.get("name")) if found.facts.get("name") else None, facts=facts)
    await _publish(conn, tenant, found.scope_id, "recognition.milestone.reached", cid, event, found.occurred_at)
    CELEBRATIONS.labels(kind_of(found.milestone), found.scope.value).inc()
    return 1


async def _publish(conn: asyncpg.Connection, tenant: str, key: str, type_: str, event_id: str, data: BaseModel,
                   at: datetime) -> None:
    await enqueue(conn, topics.CELEBRATIONS.name, message_key(tenant, key),
                  CloudEvent(id=event_id, type=type_, source=SOURCE, time=at, tenant=tenant,
                             data=data.model_dump(mode="json")))


# --- period closes --------------------------------------------------------------------------------------


async def settle_closed_periods(pool: asyncpg.Pool, now: datetime) -> int:
    """Leaderboard finishes and each team's largest deal, for every period that has closed; once each."""
    announced = 0
    async with pool.acquire() as conn:  # the registry: readable in every scope
        tenants = [r["tenant"] for r in await conn.fetch("SELECT tenant FROM tenants WHERE active ORDER BY tenant")]
    for tenant in tenants:
        async with tenant_tx(pool, tenant) as conn:
            tz, fiscal, currency = await repo.calendar(conn, tenant)
            for period in closed_periods(now, tz, fiscal):
                if not await conn.fetchval("INSERT INTO period_closes (tenant, period, settled_at) VALUES ($1, $2, $3)"
                                           " ON CONFLICT DO NOTHING RETURNING 1", tenant, period, now):
                    continue
                announced += await _settle(conn, tenant, period, tz, fiscal, currency)
    return announced


async def _settle(conn: asyncpg.Connection, tenant: str, period: str, tz: ZoneInfo, fiscal: int,
                  currency: str | None) -> int:
    settings = await repo.settings(conn, tenant)
    start, end = period_bounds(period, tz, fiscal)
    found: list[Found] = []
    for metric in settings.leaderboard_metrics:
        for team, standings in sorted((await repo.standings(conn, tenant, period, metric.value)).items()):
            found += leaderboard_finishes(team, period, metric, standings, end, settings)
    if "Q" in period:
        for team, members in sorted((await repo.team_members(conn, tenant)).items()):
            deals = await repo.won_deals(conn, tenant, members, start, end)
            if (best := team_largest_deal(team, period, deals, end, settings, currency)) is not None:
                found.append(best)
    return sum([await announce(conn, tenant, item, settings, currency) for item in found])


async def period_closer(rt: Runtime) -> None:
    """The timer: settle closed periods every interval."""
    settings = rt.settings
    assert isinstance(settings, RecognitionSettings)
    while True:
        await asyncio.sleep(settings.recognition_interval_s)
        try:
            if announced := await settle_closed_periods(rt.pool, rt.clock.now()):
                rt.relay.wake()
                log.info("period closes settled", extra={"celebrations": announced})
        except TRANSIENT as err:
            metrics.TRANSIENT_ERRORS.labels("recognition-timer").inc()
            log.warning("period closes not settled, will retry", extra={"error": repr(err)})
