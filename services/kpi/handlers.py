"""kpi's consumer: sales events in, state and `kpi.attainment.updated` (via the outbox) out.

Work is done per batch, not per event: deals and activities of a tenant are written with one
statement each; each change becomes signed deltas of the running tallies it counts in (the old
version out, the new one in: `contributions.py`), all applied with one statement that returns the
new tallies; every metric of each moved (rep or team, period) is then computed from its tally.
Teams follow the dated roster: a deal counts for the team its rep was in when it closed (or was
created, for pipeline); a move re-attributes the rep's history from its date on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import asyncpg
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel

from services.kpi import repository as repo
from services.kpi.contributions import Books, Key, Ledger
from services.kpi.figures import figures
from services.kpi.metrics import Tally, values
from services.kpi.pacing import FlushPacer
from shared import topics
from shared.clock import Clock
from shared.cloudevents import CloudEvent, message_key
from shared.consumer import TRANSIENT, Handler, Incoming
from shared.db import all_tenants_tx, set_tenant
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    Metric,
    RepUpserted,
    Scope,
    TargetSet,
    TeamUpserted,
    TenantUpserted,
)
from shared.outbox import enqueue_many
from shared.periods import business_share, period_bounds
from shared.service import Runtime

log = logging.getLogger(__name__)
SOURCE = "attain/kpi"
NAMESPACE = uuid.UUID("6f1e9a52-2b7c-4d2e-9d6a-6b0c1f3e8a11")
MODELS: dict[str, type[BaseModel]] = {
    "deal.upserted": DealUpserted, "deal.deleted": DealDeleted, "activity.logged": ActivityLogged,
    "rep.upserted": RepUpserted, "target.set": TargetSet, "tenant.upserted": TenantUpserted,
    "team.upserted": TeamUpserted}


class HasClock(Protocol):
    @property
    def clock(self) -> Clock: ...


MAX_BATCH = 10_000  # records per transaction at most (the consumer's getmany bound)
PACER = FlushPacer()
FLUSH_TICK_S = 0.5
PARKED_CHUNK = 20_000  # parked keys per timer flush transaction
FLUSH_SECONDS = Histogram("attain_kpi_flush_seconds", "Time to turn moved tallies into figures and enqueue them.",
                          buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30))
FIGURES_SENT = Counter("attain_kpi_figures_emitted_total", "kpi.attainment.updated events enqueued.")
FIGURES_PARKED = Counter("attain_kpi_figures_parked_total",
                         "Moved (scope, id, period) keys whose figures were deferred to a coalesced flush.")
TEAM_ATTAINMENT = Gauge("attain_kpi_team_attainment_ratio",
                        "A team's attainment (actual / target) of each targeted metric in each period running "
                        "now, as last computed by the kpi replica that owns the team's partition.",
                        ["tenant", "team", "metric", "period"])
_TEAM_SERIES: dict[tuple[str, str, str, str], datetime] = {}  # the series set, and when each period ends
_NEXT_END: list[datetime] = []  # the earliest end among them: nothing to prune before it


def watch_team(tenant: str, team: str, period: str, metric: str, attainment: Decimal | None,
               end: datetime, now: datetime) -> None:
    """Keep the team gauge to the periods running now: a closed period's series go (a team's figures for
    a past quarter are in the API, not in a dashboard's "now")."""
    if _NEXT_END and _NEXT_END[0] <= now:  # a period ended: one scan, not one per figure
        for key in [key for key, ends in _TEAM_SERIES.items() if ends <= now]:
            del _TEAM_SERIES[key]
            TEAM_ATTAINMENT.remove(*key)
        _NEXT_END[:] = [min(_TEAM_SERIES.values())] if _TEAM_SERIES else []
    if attainment is None or end <= now:
        return
    _TEAM_SERIES[(tenant, team, metric, period)] = end
    _NEXT_END[:] = [min(end, _NEXT_END[0])] if _NEXT_END else [end]
    TEAM_ATTAINMENT.labels(tenant, team, metric, period).set(float(attainment))

Moved = tuple[Books, dict[Key, Tally]]  # per tenant: its books, and the keys whose tallies moved


def make_handler(rt: HasClock) -> Handler:
    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        """Apply each tenant's events idempotently; send the figures they moved now, or park them."""
        by_tenant: dict[str, list[Incoming]] = defaultdict(list)
        for msg in batch:
            by_tenant[msg.event.tenant].append(msg)
        moved = {tenant: await _apply(conn, rt, tenant, msgs) for tenant, msgs in by_tenant.items()}
        if PACER.due():
            started = PACER.start()
            await flush(conn, rt.clock.now(), moved)
            PACER.done(started)
            FLUSH_SECONDS.observe(PACER.clock() - started)
        else:
            parked = [(tenant, key) for tenant, (_, tallies) in moved.items() for key in tallies]
            await repo.park(conn, parked)
            FIGURES_PARKED.inc(len(parked))

    return handle


async def flush(conn: asyncpg.Connection, now: datetime, moved: dict[str, Moved] | None = None,
                parked: int = 2_000) -> int:
    """Figures for the keys this transaction moved and up to `parked` parked keys (a live batch's figures
    never wait for a whole backlog's); returns how many parked keys it took."""
    moved = moved or {}
    owed = await repo.claim_parked(conn, parked)
    for tenant in sorted(owed.keys() | moved.keys()):
        await set_tenant(conn, tenant)  # row-level security: this tenant's rows only, whatever the caller's scope
        books, tallies = moved[tenant] if tenant in moved else (await repo.books(conn, tenant), {})
        if extra := owed.get(tenant, set()) - tallies.keys():
            tallies = tallies | await repo.read_tallies(conn, tenant, extra)
        if tallies:
            await _recompute(conn, tenant, books, tallies, now)
    return sum(len(keys) for keys in owed.values())


async def drain(pool: asyncpg.Pool, now: datetime) -> None:
    """Flush every parked figure, now, whatever the pacer says (a replay's end, a test's)."""
    while True:
        async with all_tenants_tx(pool) as conn:
            if not await flush(conn, now, parked=PARKED_CHUNK):
                return


async def flush_parked(rt: Runtime) -> None:
    """A timer: flush parked figures when they are due and no batch comes along to carry them."""
    while True:
        await asyncio.sleep(FLUSH_TICK_S)
        if not PACER.due():
            continue
        try:
            taken = PARKED_CHUNK
            while taken == PARKED_CHUNK and PACER.due():
                started = PACER.start()
                async with all_tenants_tx(rt.pool) as conn:
                    taken = await flush(conn, rt.clock.now(), parked=PARKED_CHUNK)
                PACER.done(started)
                FLUSH_SECONDS.observe(PACER.clock() - started)
                rt.relay.wake()
        except TRANSIENT as err:
            log.warning("parked figures not flushed, will retry", extra={"error": repr(err)})


async def _apply(conn: asyncpg.Connection, rt: HasClock, tenant: str, msgs: list[Incoming]) -> Moved:
    with_zone = next((m.event for m in reversed(msgs) if m.event.tenant_timezone), None)
    rebuild = bool(await conn.fetchval("DELETE FROM tally_rebuilds WHERE tenant = $1 RETURNING true", tenant))
    if with_zone is not None:
        rebuild |= await repo.remember_tenant(conn, with_zone)
    books = await repo.books(conn, tenant)
    ledger = Ledger(books)
    changed = await repo.apply_deals(conn, tenant, [(m.data, m.event.id) for m in msgs
                                                    if isinstance(m.data, DealUpserted)])
    added = await repo.add_activities(conn, tenant, [m.data for m in msgs if isinstance(m.data, ActivityLogged)])
    await repo.load_memberships(conn, tenant, books, {d.rep_id for pair in changed for d in pair if d}
                                | {a.rep_id for a in added})
    for old, new in changed:
        if old is not None:
            ledger.deal(old, -1)
        if new is not None:
            ledger.deal(new, 1)
    for activity in added:
        ledger.activity(activity, 1)
    targets, recount = await _apply_in_order(conn, tenant, msgs, ledger)
    if rebuild or recount:  # everything may have moved: recount the tenant from its stored state
        tallies = await repo.rebuild_tallies(conn, tenant)
        books = await repo.books(conn, tenant)
    else:
        tallies = await repo.add_to_tallies(conn, tenant, ledger.changed())
    tallies |= await repo.read_tallies(conn, tenant, targets - tallies.keys())
    return books, tallies


async def _apply_in_order(conn: asyncpg.Connection, tenant: str, msgs: list[Incoming],
                          ledger: Ledger) -> tuple[set[Key], bool]:
    """Deletions, roster, registry and target events, in their order; returns the keys whose target
    changed, and whether the tenant's calendar or currency did (then everything is recounted)."""
    targets: set[Key] = set()
    recount = False
    for msg in msgs:
        match msg.data:
            case DealDeleted():
                if (gone := await repo.delete_deal(conn, tenant, msg.data, msg.event.id)) is not None:
                    await repo.load_memberships(conn, tenant, ledger.books, [gone.rep_id])
                    ledger.deal(gone, -1)
            case RepUpserted():
                await repo.upsert_rep(conn, tenant, msg.data, msg.event.time)
                await _move(conn, tenant, msg.data, msg.event.time, ledger)
            case TenantUpserted():
                recount |= await repo.register_tenant(conn, msg.data)
            case TeamUpserted():  # a team moved in the hierarchy: every figure above it may change
                recount |= await repo.upsert_team(conn, tenant, msg.data, msg.event.time)
            case TargetSet() if await repo.set_target(conn, tenant, msg.data, msg.event.time):
                targets.add((msg.data.scope.value, msg.data.scope_id, msg.data.period))
    return targets, recount


async def _move(conn: asyncpg.Connection, tenant: str, rep: RepUpserted, at: datetime, ledger: Ledger) -> None:
    """A roster change re-attributes the rep's history from its date on: out of the old team, into the new."""
    await repo.load_memberships(conn, tenant, ledger.books, [rep.rep_id])
    since = await repo.add_membership(conn, tenant, rep, at)
    if since is None:
        return
    deals, activities = await repo.history_since(conn, tenant, rep.rep_id, since)
    teams = Ledger(ledger.books, scopes=("team",), deltas=ledger.deltas)
    for sign in (-1, 1):
        if sign == 1:
            ledger.books.memberships.pop(rep.rep_id)
            await repo.load_memberships(conn, tenant, ledger.books, [rep.rep_id])
        for deal in deals:
            teams.deal(deal, sign)
        for activity in activities:
            teams.activity(activity, sign)


async def _recompute(conn: asyncpg.Connection, tenant: str, books: Books, tallies: dict[Key, Tally],
                     now: datetime) -> None:
    """Every metric of each (scope, id, period) whose tally or target changed; an update goes out only for
    the (scope, id, period, metric) whose figures changed."""
    tz, fiscal = books.timezone, books.fiscal_start_month
    bounds = {p: period_bounds(p, tz, fiscal) for p in {p for _, _, p in tallies}}
    shares = {p: business_share(start, end, now, tz) for p, (start, end) in bounds.items()}
    rows: list[tuple[str, str, str, str, Decimal, Decimal | None]] = []
    for scope in ("rep", "team"):
        scope_ids = sorted({i for s, i, _ in tallies if s == scope})
        if not scope_ids:
            continue
        targets = await repo.targets_of(conn, tenant, scope, scope_ids)
        for (s, scope_id, period), tally in sorted(tallies.items()):
            if s != scope:
                continue
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
        fig = figures(actual, target, shares[period])
        profile = profiles.get(scope_id) if scope == "rep" else None
        if scope == "team" and start <= now:
            watch_team(tenant, scope_id, period, metric_name, fig.attainment, end, now)
        data = AttainmentUpdated.model_construct(  # our own computed, typed values: no re-validation
            scope=Scope(scope), scope_id=scope_id, period=period, metric=metric, actual=fig.actual,
            target=fig.target, attainment=fig.attainment, expected=fig.expected, pace=fig.pace,
            projected=fig.projected, as_of=now, period_start=start, period_end=end,
            team_id=profile["team_id"] if profile else (scope_id if scope == "team" else None),
            manager_id=profile["manager_id"] if profile else None, name=profile["name"] if profile else None,
        )
        event_id = uuid.uuid5(NAMESPACE, f"{tenant}|{scope}|{scope_id}|{period}|{metric_name}|{revision}")
        event = CloudEvent(id=str(event_id), type="kpi.attainment.updated", source=SOURCE, time=now,
                           tenant=tenant, data=data, extensions={"tenanttimezone": tz.key})
        outgoing.append((topics.ATTAINMENT.name, message_key(tenant, scope, scope_id, period, metric_name), event))
    await enqueue_many(conn, outgoing)
    FIGURES_SENT.inc(len(outgoing))
