"""kpi's consumer: sales events in, state and `kpi.attainment.updated` (via the outbox) out.

Work is done per batch, not per event: deals and activities of a tenant are written with one
statement each, and every metric of every (rep or team, period) the batch touched is recomputed
from the stored state with a handful of set-based statements, however many events touched them.
Teams follow the dated roster: a deal counts for the team its rep was in when it closed (or was
created, for pipeline); a backdated move recomputes both teams.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg

from services.kpi import repository as repo
from services.kpi.figures import figures
from services.kpi.metrics import values
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
    TenantUpserted,
)
from shared.outbox import enqueue_many
from shared.periods import elapsed_share, period_bounds, periods_containing
from shared.service import Runtime

SOURCE = "attain/kpi"
NAMESPACE = uuid.UUID("6f1e9a52-2b7c-4d2e-9d6a-6b0c1f3e8a11")
MODELS = {"deal.upserted": DealUpserted, "deal.deleted": DealDeleted, "activity.logged": ActivityLogged,
          "rep.upserted": RepUpserted, "target.set": TargetSet, "tenant.upserted": TenantUpserted}

Key = tuple[str, str, str]  # scope, scope id, period label


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
    upserts = [(m.data, m.event.id) for m in msgs if isinstance(m.data, DealUpserted)]
    touches = await repo.apply_deals(conn, tenant, upserts)
    touches += await repo.add_activities(conn, tenant, [m.data for m in msgs if isinstance(m.data, ActivityLogged)])
    keys: set[Key] = set()
    moved: list[tuple[str, datetime]] = []  # teams whose history a roster change rewrote, from when
    for msg in msgs:
        match msg.data:
            case DealDeleted():
                touches += await repo.delete_deal(conn, tenant, msg.data, msg.event.id)
            case RepUpserted():
                await repo.upsert_rep(conn, tenant, msg.data, msg.event.time)
                teams, since = await repo.add_membership(conn, tenant, msg.data, msg.event.time)
                if teams:
                    # a move rewrites team history from its date on: every period the rep counts in since
                    touches += await repo.moments_since(conn, tenant, msg.data.rep_id, since)
                    moved.append((msg.data.team_id, msg.event.time))
            case TenantUpserted():
                await repo.register_tenant(conn, msg.data)
            case TargetSet() if await repo.set_target(conn, tenant, msg.data, msg.event.time):
                keys.add((msg.data.scope.value, msg.data.scope_id, msg.data.period))
    cal = await repo.calendar(conn, tenant)
    now = rt.clock.now()
    for touch in touches:
        keys |= {("rep", touch.rep_id, p.label) for p in periods_containing(touch.moment, cal.timezone,
                                                                            cal.fiscal_start_month)}
    for team, since in moved:
        for moment in (since, now):
            keys |= {("team", team, p.label) for p in periods_containing(moment, cal.timezone,
                                                                         cal.fiscal_start_month)}
    if keys:
        await _recompute(conn, tenant, cal, keys, now)


async def _recompute(conn: asyncpg.Connection, tenant: str, cal: repo.TenantCalendar, keys: set[Key],
                     now: datetime) -> None:
    """All metrics of every touched rep and team (and the teams of touched reps) in every touched period;
    an update goes out only for the (scope, id, period, metric) whose figures changed."""
    bounds = {p: period_bounds(p, cal.timezone, cal.fiscal_start_month) for _, _, p in keys}
    rep_keys = sorted((i, p) for s, i, p in keys if s == "rep")
    team_keys = {(i, p) for s, i, p in keys if s == "team"}
    by_period: dict[str, list[str]] = defaultdict(list)
    for rep, period in rep_keys:
        by_period[period].append(rep)
    for period, reps in by_period.items():
        for teams in (await repo.teams_of(conn, tenant, reps, *bounds[period])).values():
            team_keys |= {(team, period) for team in teams}
    rows: list[tuple[str, str, str, str, Decimal, Decimal | None]] = []
    for scope, scope_keys in (("rep", rep_keys), ("team", sorted(team_keys))):
        if not scope_keys:
            continue
        tallies = await repo.tallies(conn, tenant, scope, [(i, p, *bounds[p]) for i, p in scope_keys])
        targets = await repo.targets_of(conn, tenant, scope, sorted({i for i, _ in scope_keys}))
        for (scope_id, period), tally in sorted(tallies.items()):
            for metric, actual in values(tally).items():
                rows.append((scope, scope_id, period, metric.value, actual,
                             targets.get((scope_id, period, metric.value))))
    revisions = await repo.save_all_figures(conn, tenant, rows, now)
    if not revisions:
        return
    profiles = await repo.profiles_of(conn, tenant, sorted({i for s, i, *_ in rows if s == "rep"}))
    outgoing: list[tuple[str, bytes, CloudEvent]] = []
    for scope, scope_id, period, metric_name, actual, target in rows:
        metric = Metric(metric_name)
        revision = revisions.get((scope, scope_id, period, metric_name))
        if revision is None:
            continue
        start, end = bounds[period]
        fig = figures(actual, target, elapsed_share(period, now, cal.timezone, cal.fiscal_start_month))
        profile = profiles.get(scope_id) if scope == "rep" else None
        data = AttainmentUpdated(
            scope=Scope(scope), scope_id=scope_id, period=period, metric=metric, actual=fig.actual,
            target=fig.target, attainment=fig.attainment, expected=fig.expected, pace=fig.pace,
            projected=fig.projected, as_of=now, period_start=start, period_end=end,
            team_id=profile["team_id"] if profile else (scope_id if scope == "team" else None),
            manager_id=profile["manager_id"] if profile else None, name=profile["name"] if profile else None,
        )
        event_id = uuid.uuid5(NAMESPACE, f"{tenant}|{scope}|{scope_id}|{period}|{metric_name}|{revision}")
        event = CloudEvent(id=str(event_id), type="kpi.attainment.updated", source=SOURCE, time=now,
                           tenant=tenant, data=data, extensions={"tenanttimezone": cal.timezone})
        outgoing.append((topics.ATTAINMENT.name, message_key(tenant, scope, scope_id, period, metric_name), event))
    await enqueue_many(conn, outgoing)
