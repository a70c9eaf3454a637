"""recognition's consumer and timers: attainment, deals, activities and contests in; each milestone celebrated once.

Per batch (one tenant's records of it, `shared/consumer.py`): the registry and roster entries are stored,
the tenant's configuration comes from the process cache (`config.py`: one version check per batch), the
state the records need is loaded once (set-based), the pure folds (`batch.py`, over the rules of
`rules.py`) replay the records on it in batch order, the outcome is written once, and the milestones go
into the ledger in one insert; only the rows that insert created get their celebration in the outbox
(one `enqueue_many`), in the batch's own transaction with its offsets. Replays, duplicates, late events
and several replicas therefore never celebrate a milestone twice. One timer settles finishes once a
period has closed in the tenant's zone (leaderboards, each team's largest deal); another, every few seconds,
celebrates each contest's lead once its leader has kept it long enough (`contests.py`), its ledger rows, its
outbox rows and the contests' new state in one transaction per tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import asyncpg
from pydantic import BaseModel

from services.recognition.batch import (
    STREAK_LOOKBACK,
    AttainmentOutcome,
    DealBook,
    cheers,
    due_corrections,
    figure_key,
    first_sightings,
    fold_attainment,
    fold_deals,
    fold_streaks,
    ledger_key,
    streak_windows,
    zone_of,
)
from services.recognition.config import ConfigCache
from services.recognition.contests import due_leads, fold_contests
from services.recognition.headlines import kind_of
from services.recognition.metrics import CELEBRATIONS, QUIET
from services.recognition.model import (
    STREAK,
    Bundle,
    Drop,
    Entry,
    Found,
    Moment,
    Profile,
    Sighting,
    StoredDeal,
    TenantConfig,
    Tombstone,
)
from services.recognition.outgoing import bundled, celebration, correction, entry
from services.recognition.repository import PgRepository, Repository
from services.recognition.rules import closed_periods, leaderboard_finishes, team_largest_deal
from services.recognition.settings import RecognitionSettings
from services.recognition.standings import rep_figures, standings_by_team, teams_of, won_in
from shared.consumer import Handler, Incoming
from shared.db import sweep_tx, tenant_tx
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    ContestUpdated,
    DealDeleted,
    DealUpserted,
    Metric,
    RepUpserted,
    TeamUpserted,
    TenantUpserted,
    TimeOffSet,
)
from shared.periods import period_bounds
from shared.service import Runtime, every
from shared.workdays import days_off

log = logging.getLogger(__name__)
MODELS: dict[str, type[BaseModel]] = {
    "kpi.attainment.updated": AttainmentUpdated, "deal.upserted": DealUpserted, "deal.deleted": DealDeleted,
    "activity.logged": ActivityLogged, "rep.upserted": RepUpserted, "team.upserted": TeamUpserted,
    "tenant.upserted": TenantUpserted, "time_off.set": TimeOffSet, "kpi.contest.updated": ContestUpdated}
ACTIVITY_METRICS = frozenset({Metric.CALLS, Metric.EMAILS, Metric.MEETINGS, Metric.ACTIVITIES})
Repositories = Callable[[asyncpg.Connection], Repository]


@dataclass(slots=True)
class Parts:
    """One tenant's records of a batch, by what they are, each kind in batch order."""

    registry: list[TenantUpserted] = field(default_factory=list)
    calendar: Mapping[str, str] | None = None  # the first sales event's calendar (a tenant not yet registered)
    reps: list[tuple[RepUpserted, datetime]] = field(default_factory=list)
    figures: list[Incoming] = field(default_factory=list)
    deals: list[StoredDeal | Tombstone] = field(default_factory=list)
    activities: dict[str, Moment] = field(default_factory=dict)  # by id, the first delivery of each
    time_off: dict[str, tuple[TimeOffSet, datetime, str]] = field(default_factory=dict)  # newest per time_off_id
    contests: list[ContestUpdated] = field(default_factory=list)

    @property
    def rep_ids(self) -> list[str]:
        """The reps whose names and zones the batch's milestones need."""
        return sorted({d.rep_id for d in self.deals if isinstance(d, StoredDeal)}
                      | {m.rep_id for m in self.activities.values()})


def split(batch: Sequence[Incoming]) -> Parts:
    """Sort a batch's records by kind, each kind in batch order (an activity delivered twice counts once)."""
    parts = Parts()
    for msg in batch:
        match msg.data:
            case TenantUpserted() as registered:
                parts.registry.append(registered)
            case RepUpserted() as rep:
                parts.reps.append((rep, msg.event.time))
            case AttainmentUpdated():
                parts.figures.append(msg)
            case DealUpserted() as d:
                parts.deals.append(StoredDeal(d.deal_id, d.rep_id, d.stage.value, d.amount, d.currency, d.created_at,
                                              d.closed_at, d.updated_at, msg.event.id))
            case DealDeleted() as d:
                parts.deals.append(Tombstone(d.deal_id, d.updated_at, msg.event.id))
            case ActivityLogged() as a:
                parts.activities.setdefault(a.activity_id, Moment(a.rep_id, a.occurred_at, a.kind.value))
            case ContestUpdated() as contest:
                parts.contests.append(contest)
            case TimeOffSet() as leave:
                held = parts.time_off.get(leave.time_off_id)
                if held is None or (held[1], held[2]) < (msg.event.time, msg.event.id):
                    parts.time_off[leave.time_off_id] = (leave, msg.event.time, msg.event.id)
        if parts.calendar is None and isinstance(msg.data, DealUpserted | ActivityLogged) and (
                msg.event.extensions.get("tenanttimezone")):
            parts.calendar = msg.event.extensions
    return parts


def make_handler(rt: Runtime, repositories: Repositories = PgRepository) -> Handler:
    cache = rt.context if isinstance(rt.context, ConfigCache) else ConfigCache()

    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        """One tenant's records of a batch: stored, judged by the rules, each new milestone celebrated once."""
        await handle_batch(repositories(conn), cache, batch, rt.clock.now())

    return handle


async def handle_batch(repo: Repository, cache: ConfigCache, batch: Sequence[Incoming], now: datetime) -> int:
    """One tenant's records of a batch in: `tenant.upserted`, `rep.upserted`, `kpi.attainment.updated`,
    `deal.upserted`, `deal.deleted`, `activity.logged`, `kpi.contest.updated`. Effects: the projections and the
    contests updated, each milestone the records reached put in the ledger, `recognition.milestone.reached` in
    the outbox for each row created now (and `recognition.milestone.corrected` for a due correction). Returns
    how many celebrations it announced."""
    tenant, parts = batch[0].event.tenant, split(batch)
    if parts.calendar is not None and not cache.registered(tenant):
        await repo.remember_calendar(tenant, parts.calendar)
    if parts.registry:
        await repo.upsert_tenants(parts.registry)
    if parts.reps:
        await repo.upsert_reps(tenant, parts.reps)
    if parts.time_off:
        await repo.store_time_off(tenant, list(parts.time_off.values()))
    if not (parts.figures or parts.deals or parts.activities or parts.contests):
        return 0
    config = await cache.get(repo, tenant)
    roster = await repo.profiles(tenant, parts.rep_ids) if parts.rep_ids else {}
    outcome = await _figures(repo, tenant, parts.figures, config)
    sightings = [*outcome.sightings, *await _deals(repo, tenant, parts, config, roster),
                 *await _streaks(repo, tenant, parts, config, roster), *await _contests(repo, tenant, parts, config)]
    return await announce(repo, tenant, config, sightings, outcome.drops, now)


async def _figures(repo: Repository, tenant: str, msgs: Sequence[Incoming], config: TenantConfig) -> AttainmentOutcome:
    """kpi's figures: new deliveries only (the inbox), replayed on the stored figures of their keys."""
    claimed = await repo.claim([m.event for m in msgs]) if msgs else []
    updates = [m.data for m, new in zip(msgs, claimed, strict=True) if new and isinstance(m.data, AttainmentUpdated)]
    if not updates:
        return AttainmentOutcome([], [], [])
    stored = await repo.figures(tenant, sorted({figure_key(u) for u in updates}))
    outcome = fold_attainment(stored, updates, config.settings)
    await repo.save_figures(tenant, outcome.latest)
    return outcome


async def _deals(repo: Repository, tenant: str, parts: Parts, config: TenantConfig,
                 roster: Mapping[str, Profile]) -> list[Sighting]:
    """Deal versions and deletions, replayed on the stored deals and the won deals of their reps."""
    if not parts.deals:
        return []
    rep_ids = sorted({d.rep_id for d in parts.deals if isinstance(d, StoredDeal)})
    book = DealBook(await repo.deals(tenant, sorted({d.deal_id for d in parts.deals}), rep_ids))
    sightings = fold_deals(book, parts.deals, config.calendar, config.settings, _names(roster))
    if book.changed:
        await repo.save_deals(tenant, list(book.changed.values()))
    return sightings


async def _streaks(repo: Repository, tenant: str, parts: Parts, config: TenantConfig,
                   roster: Mapping[str, Profile]) -> list[Sighting]:
    """Activities: stored by id; each new one judged for its rep's streak."""
    if not parts.activities:
        return []
    judged = STREAK not in config.settings.disabled
    stored = await repo.activity_moments(tenant, streak_windows(list(parts.activities.values()))) if judged else {}
    new = await repo.add_activities(tenant, list(parts.activities.items()))
    fresh = [m for activity_id, m in parts.activities.items() if activity_id in new]
    zones = {m.rep_id: zone_of(roster.get(m.rep_id), config.calendar) for m in fresh}
    return fold_streaks(stored, fresh, zones, config.settings, _names(roster),
                        await _days_off(repo, tenant, fresh, config) if fresh else {})


async def _contests(repo: Repository, tenant: str, parts: Parts, config: TenantConfig) -> list[Sighting]:
    """kpi's contests: each newer revision replayed on the stored contest (locked); starts, leads, winners."""
    if not parts.contests:
        return []
    stored = await repo.contests(tenant, sorted({c.contest_id for c in parts.contests}))
    outcome = fold_contests(stored, parts.contests, config.settings, config.calendar.timezone)
    if outcome.changed:
        await repo.save_contests(tenant, outcome.changed)
    return outcome.sightings


async def _days_off(repo: Repository, tenant: str, fresh: Sequence[Moment],
                    config: TenantConfig) -> dict[str, frozenset[date]]:
    """Each rep's days off over the span their fresh activities' streaks look at: holidays and time off."""
    first = min(m.occurred_at for m in fresh).date() - STREAK_LOOKBACK - timedelta(days=1)
    last = max(m.occurred_at for m in fresh).date() + timedelta(days=1)
    reps = sorted({m.rep_id for m in fresh})
    leave = await repo.time_off(tenant, reps)
    return {rep: days_off(config.calendar.holidays, first, last, leave.get(rep, ())) for rep in reps}


async def announce(repo: Repository, tenant: str, config: TenantConfig, sightings: Sequence[Sighting],
                   drops: Sequence[Drop], now: datetime) -> int:
    """Ledger first, in one insert; one celebration per record and scope for the rows it created (`cheers`:
    a milestone that came with a higher one is bundled into it); nothing for a milestone older than the
    tenant's history horizon (recorded quietly); then the due corrections. Returns the celebrations made."""
    firsts = first_sightings(sightings)
    horizon = now - timedelta(hours=config.settings.history_horizon_hours)
    entries = [entry(s.found, config, s.metric, "history" if s.history or s.moment < horizon else "celebrated")
               for s in firsts]
    cids = await repo.record(tenant, entries)
    created = {ledger_key(s): s.position for s, cid in zip(firsts, cids, strict=True) if cid}
    fresh = {id(s): (e, cid) for s, e, cid in zip(firsts, entries, cids, strict=True)
             if cid and e.status == "celebrated"}
    announced: list[tuple[Entry, str]] = []
    bundles: list[Bundle] = []
    for group in cheers([s for s in firsts if id(s) in fresh]):
        (lead, lead_cid), *rest = [fresh[id(s)] for s in group]
        if rest:
            lead = bundled(lead, [e for e, _ in rest], config)
            bundles.append(Bundle(lead_cid, lead, [cid for _, cid in rest]))
        announced.append((lead, lead_cid))
    if bundles:
        await repo.bundle(tenant, bundles)
    due = {ledger_key(d): d for d in due_corrections(drops, created)}
    corrected = await repo.mark_corrected(tenant, list(due.values()), now) if due else []
    items = [celebration(tenant, e, cid) for e, cid in announced]
    items += [correction(tenant, row, due[(row.scope.value, row.scope_id, row.milestone, row.period, "")], now)
              for row in corrected]
    if items:
        await repo.enqueue(items)
    for e, _ in announced:
        CELEBRATIONS.labels(kind_of(e.found.milestone), str(e.found.scope)).inc()
    for e, cid in zip(entries, cids, strict=True):
        if cid and e.status == "history":
            QUIET.labels("history").inc()
    if bundles:
        QUIET.labels("bundled").inc(sum(len(b.members) for b in bundles))
    return len(announced)


def _names(roster: Mapping[str, Profile]) -> dict[str, str | None]:
    return {rep_id: profile.name for rep_id, profile in roster.items()}


# --- period closes --------------------------------------------------------------------------------------


async def settle_closed_periods(pool: asyncpg.Pool, now: datetime, cache: ConfigCache | None = None,
                                repositories: Repositories = PgRepository) -> int:
    """Leaderboard finishes and each team's largest deal, for every period that has closed; once each."""
    cache = cache or ConfigCache()
    async with pool.acquire() as conn:  # the registry: readable in every scope
        tenants = await repositories(conn).active_tenants()
    announced = 0
    for tenant in tenants:
        async with tenant_tx(pool, tenant) as conn:
            announced += await settle_tenant(repositories(conn), cache, tenant, now)
    return announced


async def settle_tenant(repo: Repository, cache: ConfigCache, tenant: str, now: datetime) -> int:
    """The tenant's closed periods not settled before: their finishes, celebrated once."""
    config = await cache.get(repo, tenant)
    found: list[Found] = []
    for period in closed_periods(now, config.calendar.timezone, config.calendar.fiscal_start_month):
        if await repo.claim_period_close(tenant, period, now):
            found += await _finishes(repo, tenant, period, config)
    return await announce(repo, tenant, config, [Sighting(f, i) for i, f in enumerate(found)], [], now) if found else 0


async def _finishes(repo: Repository, tenant: str, period: str, config: TenantConfig) -> list[Found]:
    """Leaderboards from recognition's own deals and activities (`standings.py`); a quarter's largest deals."""
    settings, cal = config.settings, config.calendar
    start, end = period_bounds(period, cal.timezone, cal.fiscal_start_month)
    roster, deals = await repo.profiles(tenant), await repo.period_deals(tenant, start, end)
    counted = ACTIVITY_METRICS & set(settings.leaderboard_metrics)
    counts = await repo.activity_counts(tenant, start, end) if counted else {}
    found: list[Found] = []
    for metric in settings.leaderboard_metrics:
        teams = standings_by_team(rep_figures(metric, deals, counts, cal, start, end), roster)
        for team, standings in sorted(teams.items()):
            found += leaderboard_finishes(team, period, metric, standings, end, settings)
    if "Q" in period:
        for team, members in sorted(teams_of(roster).items()):
            best = team_largest_deal(team, period, won_in(deals, members, start, end), end, settings, cal.currency)
            found += [best] if best is not None else []
    return found


async def period_closer(rt: Runtime) -> None:
    """The timer: settle closed periods every interval."""
    settings = rt.settings
    assert isinstance(settings, RecognitionSettings)
    cache = rt.context if isinstance(rt.context, ConfigCache) else ConfigCache()

    async def work() -> None:
        if announced := await settle_closed_periods(rt.pool, rt.clock.now(), cache):
            rt.relay.wake()
            log.info("period closes settled", extra={"celebrations": announced})

    await every(settings.recognition_interval_s, work, "recognition-timer")


# --- contest leads --------------------------------------------------------------------------------------


async def settle_contest_leads(pool: asyncpg.Pool, now: datetime, cache: ConfigCache | None = None,
                               repositories: Repositories = PgRepository) -> int:
    """Every tenant's contest leads due at ``now`` (`contests.due_leads`), each celebrated once."""
    cache = cache or ConfigCache()
    async with sweep_tx(pool) as conn:  # only the tenants with a running contest led by someone not celebrated
        tenants = await repositories(conn).leading_tenants(now)
    announced = 0
    for tenant in tenants:
        async with tenant_tx(pool, tenant) as conn:
            announced += await settle_leads(repositories(conn), cache, tenant, now)
    return announced


async def settle_leads(repo: Repository, cache: ConfigCache, tenant: str, now: datetime) -> int:
    """The tenant's running contests whose sole leader is not the one celebrated last (locked: a batch moving
    them waits, and another replica's timer skips them): the leads due now in the ledger and the outbox, and
    the leaders celebrated in the contests' state, in the caller's one transaction."""
    config = await cache.get(repo, tenant)
    due = due_leads(await repo.leading(tenant), now, config.settings)
    if not due:
        return 0
    await repo.save_contests(tenant, [contest for contest, _ in due])
    return await announce(repo, tenant, config, [Sighting(found, i) for i, (_, found) in enumerate(due)], [], now)


async def contest_leads(rt: Runtime) -> None:
    """The timer: celebrate contest leads that lasted, every `recognition_contest_interval_s`."""
    settings = rt.settings
    assert isinstance(settings, RecognitionSettings)
    cache = rt.context if isinstance(rt.context, ConfigCache) else ConfigCache()

    async def work() -> None:
        if announced := await settle_contest_leads(rt.pool, rt.clock.now(), cache):
            rt.relay.wake()
            log.info("contest leads celebrated", extra={"celebrations": announced})

    await every(settings.recognition_contest_interval_s, work, "recognition-contest-leads")
