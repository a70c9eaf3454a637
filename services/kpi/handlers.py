"""kpi's consumer: sales events in, state and `kpi.attainment.updated` (via the outbox) out.

Work is done per batch, not per event: deals and activities of a tenant are written with one
statement each; each change becomes signed deltas of the running tallies it counts in (the old
version out, the new one in: `contributions.py`), all applied with one statement that returns the
new tallies; every metric of each moved (rep or team, period) is then computed from its tally.
Teams follow the dated roster: a deal counts for the team its rep was in when it closed (or was
created, for pipeline); a move re-attributes the rep's history from its date on.

A published figure's expected, pace and projection count working days (`pace.py`): Monday to Friday in the
tenant's zone minus its holidays, and for a rep's figure minus the rep's time off too, as coaching counts
them. A `time_off.set` or a new holiday calendar moves no tally, so it publishes nothing by itself: like the
passing of time, it shows in a figure's pace from the figure's next change (its `as_of`), and the read API
and the dashboard, which compute the pace when asked, show it at once.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Protocol

import asyncpg
from prometheus_client import Counter
from pydantic import BaseModel

from services.kpi.audit import keep_audit
from services.kpi.contesting import refresh, touched
from services.kpi.contributions import WON_REVENUE, Books, Key, Ledger, Vector, zero
from services.kpi.figures import figures, published, source_time
from services.kpi.forecasting import forecasts
from services.kpi.outlook import digest
from services.kpi.pace import calendar_of, local_days, pace
from services.kpi.ports import Figure, Outgoing, PgRepository, Repository, RepositoryFactory, Tracked
from services.kpi.roster import Span, first_difference, memberships_from
from services.kpi.tally import values
from shared import topics
from shared.clock import Clock
from shared.cloudevents import CloudEvent, message_key
from shared.consumer import Handler, Incoming
from shared.events import (
    AUDIT_RECORDED,
    ActivityLogged,
    AttainmentUpdated,
    AuditRecorded,
    DealDeleted,
    DealUpserted,
    Metric,
    RepUpserted,
    Scope,
    TargetSet,
    TeamUpserted,
    TenantUpserted,
    TimeOffSet,
)
from shared.periods import period_bounds

log = logging.getLogger(__name__)
SOURCE = "attain/kpi"
NAMESPACE = uuid.UUID("6f1e9a52-2b7c-4d2e-9d6a-6b0c1f3e8a11")
MODELS: dict[str, type[BaseModel]] = {
    "deal.upserted": DealUpserted, "deal.deleted": DealDeleted, "activity.logged": ActivityLogged,
    "rep.upserted": RepUpserted, "target.set": TargetSet, "tenant.upserted": TenantUpserted,
    "team.upserted": TeamUpserted, "time_off.set": TimeOffSet, AUDIT_RECORDED: AuditRecorded}


class HasClock(Protocol):
    @property
    def clock(self) -> Clock: ...


MAX_BATCH = 10_000  # records per transaction at most (the consumer's getmany bound)
# At live load a batch gathers what arrives within this time of its first record, so a figure that moves
# several times in it is saved and published once; under backlog batches fill up at once.
LINGER_S = 0.1
FIGURES_SENT = Counter("attain_kpi_figures_emitted_total", "kpi.attainment.updated events enqueued.")
# No figure of a tenant's is a Prometheus series: /metrics answers anyone who reaches the port, and its label
# values would name tenants and teams (issue 16). Figures are read through the API, with a tenant's token.

@dataclass(frozen=True, slots=True)
class Applied:
    """What applying a tenant's records of a batch left for its figures."""

    books: Books
    moved: set[Key]  # keys whose tallies or targets moved
    tracked: dict[Key, Tracked] | None  # their new tally and targets (None after a recount: read them)
    touched: set[Key]  # keys whose forecast an open deal moved
    moments: list[tuple[str, datetime]]  # (rep, moment) of every record counted: the contests it may move
    custom: set[Key]  # keys whose figures of the tenant's own KPIs may have changed (none without KPIs)
    won_moved: set[Key] | None  # keys whose won_revenue figure may read differently (None: any)


def make_handler(rt: HasClock, repository: RepositoryFactory = PgRepository) -> Handler:
    """The batch handler; `repository` gives the state of the batch's connection (the handler tests pass
    an in-memory fake)."""
    publish_all = bool(getattr(getattr(rt, "settings", None), "kpi_publish_all_figures", False))

    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        """Apply each tenant's events idempotently, then save the figures they moved and publish the
        targeted ones, all in the batch's transaction: the batch is the unit of coalescing. The audit log's
        entries (attain.audit.v1) are kept apart, in the same transaction (services/kpi/audit.py)."""
        if any(m.event.type == AUDIT_RECORDED for m in batch):
            await keep_audit(conn, [m for m in batch if m.event.type == AUDIT_RECORDED])
            batch = [m for m in batch if m.event.type != AUDIT_RECORDED]
        store = repository(conn)
        by_tenant: dict[str, list[Incoming]] = defaultdict(list)
        for msg in batch:
            by_tenant[msg.event.tenant].append(msg)
        now = rt.clock.now()
        for tenant, msgs in by_tenant.items():
            done = await _apply(store, tenant, msgs, publish_all=publish_all, now=now)
            # the keys whose forecast an open deal moved are among `moved` already (`_forecasts_moved`, or all
            # of them after a recount): nothing more to read for them
            books, moved, tracked, moments, custom = done.books, done.moved, done.tracked, done.moments, done.custom
            if moved:
                newest = source_time([(m.data, m.event.time) for m in msgs], now)
                await _recompute(store, tenant, books, moved, tracked, now, publish_all=publish_all,
                                 source=newest, custom=custom, won_moved=done.won_moved)
            roster_moved = any(isinstance(m.data, EXCLUSIVE) for m in msgs)
            if contests := await touched(store, tenant, books, moments, roster_moved):
                await store.enqueue(await refresh(store, tenant, books, contests, now))

    return handle


# Events that change who is in which team, or may recount the tenant: their batch holds the tenant's lock
# alone (`repository.lock_tenant`).
EXCLUSIVE = (RepUpserted, TeamUpserted, TenantUpserted)


async def _apply(store: Repository, tenant: str, msgs: list[Incoming], *, publish_all: bool,
                 now: datetime) -> Applied:
    exclusive = any(isinstance(m.data, EXCLUSIVE) for m in msgs)
    await store.lock_tenant(tenant, exclusive=exclusive)
    with_zone = next((m.event for m in reversed(msgs) if m.event.tenant_timezone), None)
    rebuild = await store.take_rebuild(tenant)
    if with_zone is not None:
        rebuild |= await store.remember_tenant(with_zone)
    if rebuild and not exclusive:  # a new calendar: everything is recounted, alone
        await store.lock_tenant(tenant, exclusive=True)
    books = await store.books(tenant)
    kpis = await store.kpis(tenant)
    ledger = Ledger(books, kpis=kpis)
    changed = await store.apply_deals(tenant, [(m.data, m.event.id) for m in msgs
                                                    if isinstance(m.data, DealUpserted)])
    added = await store.add_activities(tenant, [m.data for m in msgs if isinstance(m.data, ActivityLogged)])
    await store.load_memberships(tenant, books, {d.rep_id for pair in changed for d in pair if d}
                                | {a.rep_id for a in added})
    for old, new in changed:
        if old is not None:
            ledger.deal(old, -1)
        if new is not None:
            ledger.deal(new, 1)
    for activity in added:
        ledger.activity(activity, 1)
    targets, recount = await _apply_in_order(store, tenant, msgs, ledger)
    tracked: dict[Key, Tracked] | None = None
    won_moved: set[Key] = set()
    own_moved: set[Key] = set()
    if rebuild or recount:  # everything may have moved: recount the tenant from its stored state
        moved = await store.rebuild_tallies(tenant)
        books = await store.books(tenant)
    else:  # a key whose target changed moves by nothing: its row is made if missing and read back with the rest
        deltas = ledger.changed()
        # whose won_revenue figure may read differently: its amount moved, its target, or (below) its forecast
        won_moved = {key for key, vector in deltas.items() if vector[WON_REVENUE]} | targets
        for key in targets:
            deltas.setdefault(key, zero())
        won_moved |= await _forecasts_moved(store, tenant, books, ledger.touched, deltas, now)
        tracked = await store.move_tallies(tenant, deltas, every=publish_all)
        moved = set(deltas)
        if custom := ledger.custom_changed():  # the KPIs the tenant defined, moved the same way
            await store.move_custom(tenant, custom, ledger.custom_deals)
            own_moved = {(scope, owner, period) for _, scope, owner, period in custom}
            moved |= own_moved
    if tracked is None and targets:  # (rare) after a recount: read with the rest in `_recompute`
        await store.ensure_tallies(tenant, targets)
    # the keys whose figures of the tenant's own KPIs may have changed: their tallies moved, or a target did
    own = (moved if tracked is None else own_moved) | targets
    return Applied(books, moved | targets, tracked, ledger.touched, ledger.moments, own if kpis else set(),
                   None if tracked is None else won_moved)


@lru_cache(maxsize=4096)
def _period_end(label: str, zone: str, fiscal_start_month: int) -> datetime:
    return period_bounds(label, zone, fiscal_start_month)[1]


async def _forecasts_moved(store: Repository, tenant: str, books: Books, touched: set[Key],
                           deltas: dict[Key, Vector], now: datetime) -> set[Key]:
    """A key whose forecast an open deal moved (in a period not over yet: an ended one has no forecast), and whose
    won_revenue has a target, moves by nothing too: it is read back locked with the rest, in the same statement
    as the tallies (not one more read per batch)."""
    zone, fiscal = books.timezone.key, books.fiscal_start_month
    if ahead := {key for key in touched - deltas.keys() if _period_end(key[2], zone, fiscal) > now}:
        won = await store.targets_of(tenant, sorted({(s, i) for s, i, _ in ahead}))
        for scope, scope_id, period in ahead:
            if (scope, scope_id, period, Metric.WON_REVENUE.value) in won:
                deltas.setdefault((scope, scope_id, period), zero())
    return {key for key in touched if key in deltas}


async def _apply_in_order(store: Repository, tenant: str, msgs: list[Incoming],
                          ledger: Ledger) -> tuple[set[Key], bool]:
    """Roster, time off, deletions, registry and target events; returns the keys whose target changed, and
    whether the tenant's calendar or currency did (then everything is recounted).

    What does not depend on order goes in one statement each: the reps' rows, their time off and the targets
    (newest version wins either way) and the reps' team histories (made of every roster version, in any
    order: `roster.py`). The rest (deletions, the hierarchy) in order."""
    roster = [m for m in msgs if isinstance(m.data, RepUpserted)]
    await store.upsert_reps(tenant, [(m.data, m.event.time) for m in roster])  # type: ignore[misc]
    await store.upsert_time_off(tenant, [(m.data, m.event.time, m.event.id) for m in msgs
                                         if isinstance(m.data, TimeOffSet)])
    await _follow_roster(store, tenant, roster, ledger)
    recount = False
    for msg in msgs:
        match msg.data:
            case DealDeleted():
                if (gone := await store.delete_deal(tenant, msg.data, msg.event.id)) is not None:
                    await store.load_memberships(tenant, ledger.books, [gone.rep_id])
                    ledger.deal(gone, -1)
            case TenantUpserted():
                recount |= await store.register_tenant(msg.data)
                ledger.books.holidays = calendar_of(msg.data.holidays, tenant)  # this batch's figures count with them
            case TeamUpserted():  # a team moved in the hierarchy: every figure above it may change
                recount |= await store.upsert_team(tenant, msg.data, msg.event.time)
    targets = await store.set_targets(tenant, [(m.data, m.event.time) for m in msgs if isinstance(m.data, TargetSet)])
    return targets, recount


async def _follow_roster(store: Repository, tenant: str, roster: list[Incoming], ledger: Ledger) -> None:
    """Record the batch's roster versions; each rep whose dated teams they change gets its new history, and
    what the rep did from the first moment the histories disagree moves out of the old teams and into the
    new (for a newcomer: from the start of time, into the teams alone). All reps at once."""
    if not roster:
        return
    versions = await store.record_roster(tenant, [(m.data.rep_id, m.event.time, m.event.id, m.data.team_id)  # type: ignore[attr-defined]
                                                  for m in roster])
    await store.load_memberships(tenant, ledger.books, versions)
    changed: dict[str, list[Span]] = {}
    since = None
    for rep_id, theirs in versions.items():
        new = memberships_from(theirs)
        moment = first_difference(ledger.books.memberships[rep_id], new)
        if moment is not None:
            changed[rep_id] = new
            since = moment if since is None else min(since, moment)
    if since is None:
        return
    await store.set_memberships(tenant, changed)
    # From the earliest change of any of them: for a rep whose teams agree before its own change, the old
    # and new attributions of its earlier records are the same and cancel out.
    deals, activities = await store.histories(tenant, sorted(changed), since)
    teams = Ledger(ledger.books, scopes=("team",), deltas=ledger.deltas, touched=ledger.touched, kpis=ledger.kpis,
                   custom=ledger.custom, custom_deals=ledger.custom_deals)
    for sign in (-1, 1):
        if sign == 1:
            ledger.books.memberships.update(changed)
        for deal in deals:
            teams.deal(deal, sign)
        for activity in activities:
            teams.activity(activity, sign)


async def republish(store: Repository, tenant: str, keys: set[Key], now: datetime) -> None:
    """Publish the targeted figures of the tenant's own KPIs on `keys` that changed (after an admin defined or
    changed a KPI, which recounts it: `kpis_api.py`), in the caller's transaction."""
    await _recompute(store, tenant, await store.books(tenant), keys, {}, now, custom=keys)


async def _read_tracked(store: Repository, tenant: str, moved: set[Key], *,
                        publish_all: bool) -> dict[Key, Tracked]:
    """The tally and targets of each moved key with a target (every moved key with `publish_all`), read
    after a recount (otherwise `move_tallies` returned them with the move)."""
    targets = await store.targets_of(tenant, sorted({(s, i) for s, i, _ in moved}))
    by_key: dict[Key, dict[str, Decimal]] = defaultdict(dict)
    for (scope, scope_id, period, metric), value in targets.items():
        if (scope, scope_id, period) in moved:
            by_key[(scope, scope_id, period)][metric] = value
    keys = moved if publish_all else set(by_key)
    tallies = await store.read_tallies(tenant, keys)
    return {key: (tally, by_key.get(key, {})) for key, tally in tallies.items()}


async def _recompute(store: Repository, tenant: str, books: Books, moved: set[Key],
                     tracked: dict[Key, Tracked] | None, now: datetime, *, publish_all: bool = False,
                     source: datetime | None = None, custom: set[Key] | None = None,
                     won_moved: set[Key] | None = None) -> None:
    """The figures of each (scope, id, period) whose tally or target changed: those with a target (every one
    with `publish_all`) are published when their (actual, target) changed, with the pace of `now` (the
    tenant's holidays off, and a rep's time off for a rep's figure). Every figure, published or not, is read
    from the tallies by the `attainment` view, so nothing more is written for the others. The dashboard's
    live view hears of the periods that moved."""
    await store.announce_figures(tenant, sorted({p for _, _, p in moved}))
    if tracked is None:
        tracked = await _read_tracked(store, tenant, moved, publish_all=publish_all)
    rows: list[Figure] = []
    for (scope, scope_id, period), (tally, targets) in sorted(tracked.items()):
        for metric, actual in values(tally).items():
            target = targets.get(metric.value)
            if metric is Metric.WON_REVENUE and won_moved is not None and (scope, scope_id, period) not in won_moved:
                continue  # its amount, target and forecast are what was last published: nothing to say or compute
            if published(target, publish_all=publish_all):
                rows.append((scope, scope_id, period, metric.value, actual, target, None))
    if custom:  # the tenant's own KPIs: their figures as the read side computes them
        rows += [(*row, None) for row in await store.custom_figures(tenant, custom, publish_all)]
    if not rows:
        return
    tz, fiscal = books.timezone, books.fiscal_start_month
    bounds = {p: period_bounds(p, tz, fiscal) for p in {row[2] for row in rows}}
    ahead = [row for row in rows if row[3] == Metric.WON_REVENUE.value and bounds[row[2]][1] > now]
    outlooks = await forecasts(store, tenant, books, [(r[0], r[1], r[2], r[4], r[5]) for r in ahead], bounds, now)
    if outlooks:
        rows = [(*row[:6], digest(outlooks.get(row[:3]))) if row[3] == Metric.WON_REVENUE.value else row
                for row in rows]
    revisions = await store.save_published(tenant, rows, now)
    if not revisions:
        return
    chosen = [row for row in rows if row[:4] in revisions]
    reps = sorted({r[1] for r in chosen if r[0] == "rep"})
    profiles = await store.profiles_of(tenant, reps)
    days = [local_days(start, end, tz) for start, end in bounds.values()]
    leave = await store.time_off(tenant, reps, min(d[0] for d in days), max(d[1] for d in days)) if reps else {}
    fair = pace(bounds, now, tz, books.holidays, leave)
    outgoing: list[Outgoing] = []
    for scope, scope_id, period, metric_name, actual, target, _ in chosen:
        start, end = bounds[period]
        fig = figures(actual, target, fair.share(period, scope_id if scope == "rep" else None))
        profile = profiles.get(scope_id) if scope == "rep" else None
        data = AttainmentUpdated.model_construct(  # our own computed, typed values: no re-validation
            scope=Scope(scope), scope_id=scope_id, period=period, metric=metric_name, actual=fig.actual,
            target=fig.target, attainment=fig.attainment, expected=fig.expected, pace=fig.pace,
            projected=fig.projected, as_of=now, period_start=start, period_end=end,
            team_id=profile["team_id"] if profile else (scope_id if scope == "team" else None),
            manager_id=profile["manager_id"] if profile else None, name=profile["name"] if profile else None,
            revision=revisions[(scope, scope_id, period, metric_name)], source_time=source,
            forecast=outlooks.get((scope, scope_id, period)) if metric_name == Metric.WON_REVENUE.value else None,
        )
        revision = data.revision
        event_id = uuid.uuid5(NAMESPACE, f"{tenant}|{scope}|{scope_id}|{period}|{metric_name}|{revision}")
        event = CloudEvent(id=str(event_id), type="kpi.attainment.updated", source=SOURCE, time=now,
                           tenant=tenant, data=data, extensions={"tenanttimezone": tz.key})
        outgoing.append((topics.ATTAINMENT.name, message_key(tenant, scope, scope_id, period, metric_name), event))
    await store.enqueue(outgoing)
    FIGURES_SENT.inc(len(outgoing))
