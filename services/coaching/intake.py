"""What one batch of one tenant's events changes in coaching's projections: a pure reduction.

The consumer hands the handler a tenant's records in batch order. Applied one at a time, each record
was a statement or two; here the batch is folded into a `Changes`, which the repository writes with
one set-based statement per table, and the result is the one the records would have left one by one:

- roster: a `rep.upserted` only applies when its version (the event time) is at least the stored
  one, and an applied one lowers `known_since` to its version. Only the events that raise the
  batch's running maximum for their rep can ever apply (`rep_rounds`: round k holds each rep's k-th
  of those, almost always one round);
- `known_since`: a sales event makes the rep known since its moment (an activity's `occurred_at`, a
  deal's processing time), LEAST-merged, so the earliest per rep is enough (`seen`);
- deals: the newest `(updated_at, event id)` wins, an upsert or a deletion; the fields of a deleted
  deal are never read, so only each deal's newest event is written (`deal_upserts`, `deal_deletions`);
- activities: an id counts once (the first delivery); an activity on a deal moves the deal's last
  touch only if the deal's row exists at that point: one seen before the deal's first event in this
  batch touches only a deal stored before the batch (`Activity.before_deal`);
- the tenant registry: a `tenant.upserted` overwrites, a sales event's calendar extensions only fill
  a tenant not known yet, so the last upsert (`tenants`) and the first calendar (`calendar`) suffice;
- figures: kept for the repository's merge (the newest by kpi's revision wins; by `as_of` without one),
  when they carry their period bounds;
- time off: per `time_off_id` the newest `(event time, event id)` version (`time_off`), which the
  repository keeps only if it is newer than the stored one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.consumer import Incoming
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    RepUpserted,
    TenantUpserted,
    TimeOffSet,
)


@dataclass(frozen=True, slots=True)
class Calendar:
    """A tenant's calendar as a sales event's extensions carry it (before the registry's entry)."""

    timezone: str
    fiscal_start_month: int
    currency: str | None


@dataclass(frozen=True, slots=True)
class Activity:
    activity: ActivityLogged
    before_deal: bool  # logged before its deal's first event in this batch (or its deal has none)


@dataclass(slots=True)
class Changes:
    """One tenant's batch, reduced (see the module docstring)."""

    tenants: list[TenantUpserted] = field(default_factory=list)
    calendar: Calendar | None = None
    rep_rounds: list[list[tuple[RepUpserted, datetime]]] = field(default_factory=list)
    seen: dict[str, datetime] = field(default_factory=dict)
    activities: list[Activity] = field(default_factory=list)
    deal_upserts: list[tuple[DealUpserted, str]] = field(default_factory=list)  # (deal, tiebreak: event id)
    deal_deletions: list[tuple[DealDeleted, str]] = field(default_factory=list)
    deal_reps: set[str] = field(default_factory=set)  # every rep a deal event named: owed an evaluation
    figures: list[AttainmentUpdated] = field(default_factory=list)
    time_off: list[tuple[TimeOffSet, datetime, str]] = field(default_factory=list)  # (leave, version time, id)


def reduce_batch(batch: Sequence[Incoming], now: datetime) -> Changes:
    """Fold `batch` (one tenant's records, in order) into the writes that leave the same state."""
    out, fold = Changes(), _Fold()
    for i, msg in enumerate(batch):
        data = msg.data
        if isinstance(data, AttainmentUpdated):
            if data.period_start and data.period_end:
                out.figures.append(data)
        elif isinstance(data, RepUpserted):
            fold.roster(data, msg.event.time)
        elif isinstance(data, TenantUpserted):
            fold.tenants.pop(data.tenant, None)
            fold.tenants[data.tenant] = data  # the last one wins
        elif isinstance(data, TimeOffSet):
            version = (msg.event.time, msg.event.id)
            held = fold.leaves.get(data.time_off_id)
            if held is None or (held[1], held[2]) < version:
                fold.leaves[data.time_off_id] = (data, *version)
        elif isinstance(data, ActivityLogged | DealUpserted | DealDeleted):
            if out.calendar is None and not isinstance(data, DealDeleted):
                out.calendar = _calendar(msg)
            if isinstance(data, ActivityLogged):
                _earliest(out.seen, data.rep_id, data.occurred_at)
                fold.activities.setdefault(data.activity_id, (i, data))
            else:
                if isinstance(data, DealUpserted):
                    _earliest(out.seen, data.rep_id, now)  # known from now on (imported history says nothing)
                    out.deal_reps.add(data.rep_id)
                fold.deal(i, data, msg.event.id)
    fold.into(out, len(batch))
    return out


@dataclass(slots=True)
class _Fold:
    """`reduce_batch`'s running state."""

    tenants: dict[str, TenantUpserted] = field(default_factory=dict)
    best: dict[str, datetime] = field(default_factory=dict)  # each rep's newest roster version so far
    setters: dict[str, list[tuple[RepUpserted, datetime]]] = field(default_factory=dict)
    activities: dict[str, tuple[int, ActivityLogged]] = field(default_factory=dict)
    first_deal_event: dict[str, int] = field(default_factory=dict)
    deals: dict[str, tuple[tuple[datetime, str], DealUpserted | DealDeleted]] = field(default_factory=dict)
    leaves: dict[str, tuple[TimeOffSet, datetime, str]] = field(default_factory=dict)

    def roster(self, rep: RepUpserted, version: datetime) -> None:
        if rep.rep_id not in self.best or version >= self.best[rep.rep_id]:
            self.best[rep.rep_id] = version
            self.setters.setdefault(rep.rep_id, []).append((rep, version))

    def deal(self, i: int, deal: DealUpserted | DealDeleted, event_id: str) -> None:
        self.first_deal_event.setdefault(deal.deal_id, i)
        version = (deal.updated_at, event_id)
        stored = self.deals.get(deal.deal_id)
        if stored is None or stored[0] < version:
            self.deals[deal.deal_id] = (version, deal)

    def into(self, out: Changes, size: int) -> None:
        out.tenants = list(self.tenants.values())
        out.time_off = list(self.leaves.values())
        rounds = max((len(s) for s in self.setters.values()), default=0)
        out.rep_rounds = [[s[k] for s in self.setters.values() if k < len(s)] for k in range(rounds)]
        out.activities = [Activity(a, a.deal_id is None or i < self.first_deal_event.get(a.deal_id, size))
                          for i, a in self.activities.values()]
        for (_, tiebreak), deal in self.deals.values():
            if isinstance(deal, DealUpserted):
                out.deal_upserts.append((deal, tiebreak))
            else:
                out.deal_deletions.append((deal, tiebreak))


def _calendar(msg: Incoming) -> Calendar | None:
    ext = msg.event.extensions
    if not ext.get("tenanttimezone"):
        return None
    return Calendar(ext["tenanttimezone"], int(ext.get("tenantfiscalstart") or 1), ext.get("tenantcurrency") or None)


def _earliest(seen: dict[str, datetime], rep_id: str, at: datetime) -> None:
    if rep_id not in seen or at < seen[rep_id]:
        seen[rep_id] = at
