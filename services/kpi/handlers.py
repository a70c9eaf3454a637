"""kpi's consumer: sales events in, state and `kpi.attainment.updated` (via the outbox) out."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from services.kpi import repository as repo
from services.kpi.figures import figures
from shared import topics
from shared.cloudevents import CloudEvent, message_key
from shared.consumer import Handler, Incoming
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    Metric,
    RepUpserted,
    Scope,
    TargetSet,
)
from shared.outbox import enqueue
from shared.periods import PeriodKind, elapsed_share, period_bounds, periods_containing
from shared.service import Runtime

SOURCE = "attain/kpi"
NAMESPACE = uuid.UUID("6f1e9a52-2b7c-4d2e-9d6a-6b0c1f3e8a11")
MODELS = {"deal.upserted": DealUpserted, "deal.deleted": DealDeleted, "activity.logged": ActivityLogged,
          "rep.upserted": RepUpserted, "target.set": TargetSet}

RepPeriod = tuple[str, str, str]  # tenant, rep_id, period label


def make_handler(rt: Runtime) -> Handler:
    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        """Apply each event idempotently, then recompute the figures of every (rep, period) it touched."""
        touched: set[RepPeriod] = set()
        for msg in batch:
            tenant, data = msg.event.tenant, msg.data
            await repo.remember_tenant(conn, msg.event)
            match data:
                case DealUpserted():
                    touched |= await _periods(conn, tenant, await repo.apply_deal(conn, tenant, data))
                case DealDeleted():
                    touched |= await _periods(conn, tenant, await repo.delete_deal(conn, tenant, data))
                case ActivityLogged():
                    await repo.add_activity(conn, tenant, data)
                case RepUpserted():
                    await repo.upsert_rep(conn, tenant, data, msg.event.time)
                case TargetSet():
                    changed = await repo.set_target(conn, tenant, data, msg.event.time)
                    if changed and data.scope == Scope.REP and data.metric == Metric.WON_REVENUE:
                        touched.add((tenant, data.scope_id, data.period))
        for key in sorted(touched):
            await _recompute(conn, rt, key)

    return handle


async def _periods(conn: asyncpg.Connection, tenant: str, changes: list[repo.WonAt]) -> set[RepPeriod]:
    """The periods a won-revenue change counts in: its quarter always, other periods with a target."""
    if not changes:
        return set()
    cal = await repo.calendar(conn, tenant)
    out: set[RepPeriod] = set()
    for change in changes:
        with_target = await repo.rep_targets(conn, tenant, change.rep_id, Metric.WON_REVENUE)
        for period in periods_containing(change.closed_at, cal.timezone, cal.fiscal_start_month):
            if period.kind == PeriodKind.QUARTER or period.label in with_target:
                out.add((tenant, change.rep_id, period.label))
    return out


async def _recompute(conn: asyncpg.Connection, rt: Runtime, key: RepPeriod) -> None:
    tenant, rep_id, period = key
    cal = await repo.calendar(conn, tenant)
    start, end = period_bounds(period, cal.timezone, cal.fiscal_start_month)
    actual = await repo.won_revenue(conn, tenant, rep_id, start, end)
    target = (await repo.rep_targets(conn, tenant, rep_id, Metric.WON_REVENUE)).get(period)
    now = rt.clock.now()
    revision = await repo.save_figures(conn, tenant, (Scope.REP, rep_id, period, Metric.WON_REVENUE),
                                       actual, target, now)
    if revision is None:
        return
    fig = figures(actual, target, elapsed_share(period, now, cal.timezone, cal.fiscal_start_month))
    profile = await repo.rep_profile(conn, tenant, rep_id)
    data = AttainmentUpdated(
        scope=Scope.REP, scope_id=rep_id, period=period, metric=Metric.WON_REVENUE,
        actual=fig.actual, target=fig.target, attainment=fig.attainment, expected=fig.expected,
        pace=fig.pace, as_of=now, period_start=start, period_end=end,
        team_id=profile["team_id"] if profile else None, manager_id=profile["manager_id"] if profile else None,
        name=profile["name"] if profile else None,
    )
    event_id = uuid.uuid5(NAMESPACE, f"{tenant}|rep|{rep_id}|{period}|{Metric.WON_REVENUE}|{revision}")
    event = CloudEvent(id=str(event_id), type="kpi.attainment.updated", source=SOURCE, time=now,
                       tenant=tenant, data=data.model_dump(mode="json"),
                       extensions={"tenanttimezone": cal.timezone})
    await enqueue(conn, topics.ATTAINMENT.name,
                  message_key(tenant, Scope.REP, rep_id, period, Metric.WON_REVENUE), event)
