"""kpi's consumer: sales events in, state and `kpi.attainment.updated` (via the outbox) out.

Work is done per batch, not per event: deals and activities of a tenant are written with one
statement each, and the figures of every (rep, period) the batch touched are recomputed from the
stored state with a handful of statements, however many events touched them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
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
from shared.outbox import enqueue_many
from shared.periods import PeriodKind, elapsed_share, period_bounds, periods_containing
from shared.service import Runtime

SOURCE = "attain/kpi"
NAMESPACE = uuid.UUID("6f1e9a52-2b7c-4d2e-9d6a-6b0c1f3e8a11")
MODELS = {"deal.upserted": DealUpserted, "deal.deleted": DealDeleted, "activity.logged": ActivityLogged,
          "rep.upserted": RepUpserted, "target.set": TargetSet}

RepPeriod = tuple[str, str]  # rep_id, period label


def make_handler(rt: Runtime) -> Handler:
    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        """Apply each tenant's events idempotently, then recompute what they touched."""
        by_tenant: dict[str, list[Incoming]] = defaultdict(list)
        for msg in batch:
            by_tenant[msg.event.tenant].append(msg)
        for tenant, msgs in by_tenant.items():
            await _apply(conn, rt, tenant, msgs)

    return handle


async def _apply(conn: asyncpg.Connection, rt: Runtime, tenant: str, msgs: list[Incoming]) -> None:
    with_zone = next((m.event for m in reversed(msgs) if m.event.tenant_timezone), None)
    if with_zone is not None:
        await repo.remember_tenant(conn, with_zone)
    changes = await repo.apply_deals(conn, tenant, [m.data for m in msgs if isinstance(m.data, DealUpserted)])
    await repo.add_activities(conn, tenant, [m.data for m in msgs if isinstance(m.data, ActivityLogged)])
    touched: set[RepPeriod] = set()
    for msg in msgs:
        match msg.data:
            case DealDeleted():
                changes += await repo.delete_deal(conn, tenant, msg.data)
            case RepUpserted():
                await repo.upsert_rep(conn, tenant, msg.data, msg.event.time)
            case TargetSet() if await repo.set_target(conn, tenant, msg.data, msg.event.time):
                if msg.data.scope == Scope.REP and msg.data.metric == Metric.WON_REVENUE:
                    touched.add((msg.data.scope_id, msg.data.period))
    cal = await repo.calendar(conn, tenant)
    if changes:
        targets = await repo.targets_of(conn, tenant, sorted({c.rep_id for c in changes}), Metric.WON_REVENUE)
        for change in changes:
            for period in periods_containing(change.closed_at, cal.timezone, cal.fiscal_start_month):
                if period.kind == PeriodKind.QUARTER or period.label in targets.get(change.rep_id, {}):
                    touched.add((change.rep_id, period.label))
    if touched:
        await _recompute(conn, rt, tenant, cal, sorted(touched))


async def _recompute(conn: asyncpg.Connection, rt: Runtime, tenant: str, cal: repo.TenantCalendar,
                     keys: list[RepPeriod]) -> None:
    """Figures of every touched (rep, period); an update goes out only where they changed."""
    bounds = {period: period_bounds(period, cal.timezone, cal.fiscal_start_month) for _, period in keys}
    actuals = await repo.won_revenue_of(conn, tenant, [(rep, p, *bounds[p]) for rep, p in keys])
    reps = sorted({rep for rep, _ in keys})
    targets = await repo.targets_of(conn, tenant, reps, Metric.WON_REVENUE)
    now = rt.clock.now()
    rows = [(Scope.REP.value, rep, period, Metric.WON_REVENUE.value, actuals[(rep, period)],
             targets.get(rep, {}).get(period)) for rep, period in keys]
    revisions = await repo.save_all_figures(conn, tenant, rows, now)
    if not revisions:
        return
    profiles = await repo.profiles_of(conn, tenant, reps)
    outgoing: list[tuple[str, bytes, CloudEvent]] = []
    for scope, rep, period, metric, actual, target in rows:
        revision = revisions.get((scope, rep, period, metric))
        if revision is None:
            continue
        start, end = bounds[period]
        fig = figures(actual, target, elapsed_share(period, now, cal.timezone, cal.fiscal_start_month))
        profile = profiles.get(rep)
        data = AttainmentUpdated(
            scope=Scope.REP, scope_id=rep, period=period, metric=Metric.WON_REVENUE, actual=fig.actual,
            target=fig.target, attainment=fig.attainment, expected=fig.expected, pace=fig.pace, as_of=now,
            period_start=start, period_end=end, team_id=profile["team_id"] if profile else None,
            manager_id=profile["manager_id"] if profile else None, name=profile["name"] if profile else None,
        )
        event_id = uuid.uuid5(NAMESPACE, f"{tenant}|{scope}|{rep}|{period}|{metric}|{revision}")
        event = CloudEvent(id=str(event_id), type="kpi.attainment.updated", source=SOURCE, time=now,
                           tenant=tenant, data=data, extensions={"tenanttimezone": cal.timezone})
        outgoing.append((topics.ATTAINMENT.name, message_key(tenant, scope, rep, period, metric), event))
    await enqueue_many(conn, outgoing)
