"""How one batch's records move recognition's state, record by record, in memory: pure.

The handler loads what a batch needs once (set-based reads), these functions replay the batch's records
on it in batch order exactly as applying them one at a time would, and the handler writes the outcome
once. So batching changes no decision:

- a figure: for one key the newest ``as_of`` wins (an older one arriving late changes nothing), and
  every figure that stands for a moment is compared with the one it replaced, so a threshold crossed
  by ANY record of the batch is found (`fold_attainment`);
- a deal: the newest ``(updated_at, tiebreak)`` wins; a version that makes a deal won is judged
  against the rep's won deals as they stand at that record (`DealBook`, `fold_deals`);
- an activity: the rep's streak as of the activity's own local day, over what was stored before it
  and the batch's activities up to it (`fold_streaks`).

A milestone found several times in one batch goes into the ledger once, as first found
(`first_sightings`), and a correction is due only for a milestone celebrated before its drop
(`due_corrections`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.recognition.model import (
    STREAK,
    TEAM_GOAL,
    Calendar,
    Day,
    Drop,
    Figure,
    Moment,
    Profile,
    Settings,
    Sighting,
    StoredDeal,
    Tombstone,
    WonDeal,
    quota_milestone,
)
from services.recognition.rules import deal_milestones, quota_crossings, quota_drops, rank, streak
from shared.events import AttainmentUpdated, Metric, Scope, supersedes

__all__ = [
    "STREAK_LOOKBACK",
    "AttainmentOutcome",
    "DealBook",
    "FigureKey",
    "LedgerKey",
    "baseline",
    "cheers",
    "dropped_milestones",
    "due_corrections",
    "figure_key",
    "first_sightings",
    "fold_attainment",
    "fold_deals",
    "fold_streaks",
    "ledger_key",
    "streak_windows",
    "zone_of",
]

STREAK_LOOKBACK = timedelta(days=90)  # a streak is judged over the activities of this long before it
_DAY = timedelta(days=1)

FigureKey = tuple[str, str, str, str]  # scope, scope id, period, metric
LedgerKey = tuple[str, str, str, str, str]  # scope, scope id, milestone, period, occasion


def figure_key(update: AttainmentUpdated) -> FigureKey:
    return update.scope.value, update.scope_id, update.period, str(update.metric)


def ledger_key(sighting: Sighting | Drop) -> LedgerKey:
    if isinstance(sighting, Drop):
        return sighting.scope.value, sighting.scope_id, sighting.milestone, sighting.period, ""
    found = sighting.found
    return str(found.scope), found.scope_id, found.milestone, found.period, found.occasion


# --- figures --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class AttainmentOutcome:
    """What a batch's figures did: the figure that stands per key it moved, thresholds crossed, drops."""

    latest: list[AttainmentUpdated]
    sightings: list[Sighting]
    drops: list[Drop]


def fold_attainment(stored: Mapping[FigureKey, Figure], updates: Sequence[AttainmentUpdated],
                    settings: Settings) -> AttainmentOutcome:
    """Replay ``updates`` (batch order, duplicates already removed) on the ``stored`` figures of their keys.

    Example, thresholds 0.5 / 1 / 1.5, stored 0.40 at 10:00: updates 1.05 (10:05), 0.70 (10:01, late),
    1.60 (10:07) find quota_50 and quota_100 at position 0 and quota_150 at position 2; the late 0.70
    changes nothing; the figure that stands is 1.60 at 10:07.
    """
    state = dict(stored)
    latest: dict[FigureKey, AttainmentUpdated] = {}
    sightings: list[Sighting] = []
    drops: list[Drop] = []
    for position, update in enumerate(updates):
        key = figure_key(update)
        before = state.get(key)
        if before is not None and not supersedes(before.revision, before.as_of, update.revision, update.as_of):
            continue  # an older figure arriving late changes nothing (older by kpi's revision, not its clock)
        previous = before.attainment if before is not None else None
        happened = _figure_moment(update)
        sightings += [Sighting(found, position, str(update.metric), "figure", happened) for found in quota_crossings(
            update.scope, update.scope_id, update.period, update.metric, previous, update.attainment, update.actual,
            update.target, update.as_of, settings, update.name)]
        if settings.corrections:
            drops += dropped_milestones(update, previous, settings, position)
        state[key] = Figure(update.attainment, update.as_of, update.revision)
        latest[key] = update
    return AttainmentOutcome(list(latest.values()), sightings, drops)


def _figure_moment(update: AttainmentUpdated) -> datetime:
    """When a figure's move really happened: the newest input behind it (kpi's ``source_time``; its ``as_of``
    for figures from before kpi carried one), and never after its period's end (a closed period is history)."""
    moment = update.source_time or update.as_of
    return min(moment, update.period_end) if update.period_end is not None else moment


def dropped_milestones(update: AttainmentUpdated, previous: Decimal | None, settings: Settings,
                       position: int) -> list[Drop]:
    """The quota milestones (and a team's goal with its 100 %) that ``update`` fell back below.

    Example: a team's won revenue 1.20 -> 0.45 with 0.5 / 1 / 1.5: quota_50, quota_100 and team_goal.
    """
    names = [quota_milestone(int(t * 100), str(update.metric))
             for t in quota_drops(previous, update.attainment, settings.quota_thresholds)]
    if update.scope is Scope.TEAM and update.metric == Metric.WON_REVENUE and "quota_100" in names:
        names.append(TEAM_GOAL)
    return [Drop(update.scope, update.scope_id, name, update.period, position, update.actual, update.name)
            for name in names]


def cheers(sightings: Sequence[Sighting]) -> list[list[Sighting]]:
    """The celebrations ``sightings`` make: one per record and scope, carrying all its milestones, highest first.

    What one record found for one rep (or team) -- a won deal's first win ever and first win of the quarter, a
    figure update's 50 % and 100 % -- is one cheer, not one per milestone; the first of each group leads it
    (`rules.rank`, then the name). Sightings without a ``source`` (period closes) are a cheer each. Groups come
    in the order of their first sighting.

    Example: deal d-1 (position 0) found first_win and first_win_ever for r1; a figure (position 0) found
    quota_50 and quota_100 -> [[first_win_ever, first_win], [quota_100, quota_50]].
    """
    groups: dict[tuple[str, int, str, str] | int, list[Sighting]] = {}
    for i, s in enumerate(sightings):
        key = (s.source, s.position, str(s.found.scope), s.found.scope_id) if s.source else i
        groups.setdefault(key, []).append(s)
    return [sorted(group, key=lambda s: (-rank(s.found.milestone), s.found.milestone)) for group in groups.values()]


def first_sightings(sightings: Iterable[Sighting]) -> list[Sighting]:
    """One sighting per ledger key, the first in batch order (as the ledger would keep it)."""
    seen: dict[LedgerKey, Sighting] = {}
    for sighting in sightings:
        seen.setdefault(ledger_key(sighting), sighting)
    return list(seen.values())


def due_corrections(drops: Sequence[Drop], created: Mapping[LedgerKey, int]) -> list[Drop]:
    """The drops that may correct a celebration: per milestone the first drop that comes after its
    celebration. ``created`` holds the position of the sighting whose ledger row THIS batch created; a
    drop before that position found no celebrated row when applied one record at a time, so it is skipped.
    Whether the row exists and is uncorrected is the ledger's to say (the correction is made once).

    Example: quota_100 celebrated at position 3 of the batch; drops at 1 and 5: only the one at 5.
    """
    due: dict[LedgerKey, Drop] = {}
    for drop in drops:
        key = ledger_key(drop)
        if key in due or created.get(key, -1) > drop.position:
            continue
        due[key] = drop
    return list(due.values())


# --- deals ----------------------------------------------------------------------------------------------


def _won(deal: StoredDeal) -> WonDeal:
    assert deal.closed_at is not None
    return WonDeal(deal.deal_id, deal.rep_id, deal.amount, deal.currency.strip(), deal.closed_at)


@dataclass(slots=True)
class DealBook:
    """The deals a batch touches and every won deal of its reps, moved version by version."""

    deals: dict[str, StoredDeal]
    changed: dict[str, StoredDeal] = field(default_factory=dict)  # what to write back
    _won: dict[str, dict[str, WonDeal]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for deal in self.deals.values():
            if deal.won:
                self._won.setdefault(deal.rep_id, {})[deal.deal_id] = _won(deal)

    def upsert(self, version: StoredDeal) -> bool:
        """Keep ``version`` if it is newer; True when that made the deal won (it was not won before)."""
        before = self.deals.get(version.deal_id)
        if before is not None and (before.updated_at, before.tiebreak) >= (version.updated_at, version.tiebreak):
            return False
        self._put(before, version)
        was_won = before is not None and before.stage == "won" and not before.deleted
        return version.stage == "won" and not was_won and version.closed_at is not None

    def delete(self, tombstone: Tombstone) -> None:
        """Mark the deal deleted (even before its first version, so a late older one stays dead)."""
        before = self.deals.get(tombstone.deal_id)
        if before is None:
            self._put(None, StoredDeal(tombstone.deal_id, "", "open", Decimal(0), "XXX", None, None,
                                       tombstone.updated_at, tombstone.tiebreak, deleted=True))
        elif (before.updated_at, before.tiebreak) < (tombstone.updated_at, tombstone.tiebreak):
            self._put(before, replace(before, deleted=True, updated_at=tombstone.updated_at,
                                      tiebreak=tombstone.tiebreak))

    def won_of(self, rep_id: str) -> list[WonDeal]:
        return list(self._won.get(rep_id, {}).values())

    def _put(self, before: StoredDeal | None, after: StoredDeal) -> None:
        if before is not None and before.won:
            self._won.get(before.rep_id, {}).pop(before.deal_id, None)
        if after.won:
            self._won.setdefault(after.rep_id, {})[after.deal_id] = _won(after)
        self.deals[after.deal_id] = self.changed[after.deal_id] = after


def fold_deals(book: DealBook, changes: Sequence[StoredDeal | Tombstone], calendar: Calendar, settings: Settings,
               names: Mapping[str, str | None]) -> list[Sighting]:
    """Replay the batch's deal versions and deletions on ``book``; the career milestones of each version
    that made a deal won, judged against the rep's won deals at that record (`rules.deal_milestones`)."""
    sightings: list[Sighting] = []
    for position, change in enumerate(changes):
        if isinstance(change, Tombstone):
            book.delete(change)
        elif book.upsert(change):
            assert change.closed_at is not None
            won = WonDeal(change.deal_id, change.rep_id, change.amount, change.currency, change.closed_at)
            sightings += [Sighting(found, position, source="deal") for found in deal_milestones(
                won, book.won_of(change.rep_id), calendar.timezone, calendar.fiscal_start_month, settings,
                names.get(change.rep_id))]
    return sightings


# --- activities -----------------------------------------------------------------------------------------


def zone_of(profile: Profile | None, calendar: Calendar) -> ZoneInfo:
    """A rep's zone: the roster's, else the tenant's."""
    return ZoneInfo(profile.timezone) if profile is not None and profile.timezone else calendar.timezone


def streak_windows(fresh: Sequence[Moment]) -> dict[str, tuple[datetime, datetime]]:
    """Per rep, the span of stored activities its fresh ones are judged over (`fold_streaks`)."""
    windows: dict[str, tuple[datetime, datetime]] = {}
    for m in fresh:
        since, until = windows.get(m.rep_id, (m.occurred_at - STREAK_LOOKBACK, m.occurred_at + _DAY))
        windows[m.rep_id] = (min(since, m.occurred_at - STREAK_LOOKBACK), max(until, m.occurred_at + _DAY))
    return windows


@dataclass(slots=True)
class _Timeline:
    """One rep's activity moments, sorted, with the local day of each."""

    zone: ZoneInfo
    moments: list[datetime] = field(default_factory=list)
    days: list[date] = field(default_factory=list)

    def add(self, moment: datetime) -> None:
        i = bisect_left(self.moments, moment)
        self.moments.insert(i, moment)
        self.days.insert(i, moment.astimezone(self.zone).date())

    def days_between(self, since: datetime, until: datetime) -> list[Day]:
        lo, hi = bisect_left(self.moments, since), bisect_left(self.moments, until)
        return [Day(day, n) for day, n in Counter(self.days[lo:hi]).items()]


def fold_streaks(stored: Mapping[str, Sequence[datetime]], fresh: Sequence[Moment], zones: Mapping[str, ZoneInfo],
                 settings: Settings, names: Mapping[str, str | None],
                 days_off: Mapping[str, frozenset[date]] | None = None) -> list[Sighting]:
    """Per fresh activity (batch order, each new to the store), the rep's streak as of the activity's own
    local day, over ``[at - STREAK_LOOKBACK, at + 1 day)`` of what was ``stored`` before the batch plus the
    batch's activities up to it: the same events give the same streaks however they are batched. A rep's
    ``days_off`` (the tenant's holidays and their time off) neither break nor extend a streak."""
    if STREAK in settings.disabled:
        return []
    lines: dict[str, _Timeline] = {}
    sightings: list[Sighting] = []
    for position, m in enumerate(fresh):
        line = lines.get(m.rep_id)
        if line is None:
            line = lines[m.rep_id] = _Timeline(zones[m.rep_id])
            for moment in sorted(stored.get(m.rep_id, ())):
                line.moments.append(moment)
                line.days.append(moment.astimezone(line.zone).date())
        line.add(m.occurred_at)
        days = line.days_between(m.occurred_at - STREAK_LOOKBACK, m.occurred_at + _DAY)
        found = streak(days, m.occurred_at.astimezone(line.zone).date(), settings,
                       (days_off or {}).get(m.rep_id, frozenset()), rep_id=m.rep_id, at=m.occurred_at,
                       name=names.get(m.rep_id))
        if found is not None:
            sightings.append(Sighting(found, position, source="activity"))
    return sightings


def baseline(figures: Sequence[AttainmentUpdated], settings: Settings) -> list[Sighting]:
    """The thresholds ``figures`` already stand past under ``settings`` (as if each were its key's first
    figure): what a settings change puts in the ledger quietly, so they are never celebrated."""
    return [Sighting(found, position, str(figure.metric)) for position, figure in enumerate(figures)
            for found in quota_crossings(figure.scope, figure.scope_id, figure.period, figure.metric, None,
                                         figure.attainment, figure.actual, figure.target, figure.as_of, settings,
                                         figure.name)]
