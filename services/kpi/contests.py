"""Contests (issue 22, item 4): a metric over a window, participants ranked; pure functions, no I/O.

An admin defines a contest: a name, a metric (built-in or a KPI the tenant defined), its participants (reps,
or teams), a window from `starts_at` to `ends_at` (local times in the tenant's zone), ranking by amount or by
% of a contest target, and prizes by place. Its standings count what kpi counts for figures, over the window
instead of a calendar period:

- a deal's amount, won deals and losses at its `closed_at`, its pipeline at its `created_at`; activities at
  their `occurred_at`; money in the base currency at the rate of the local day (a deal without a rate counts
  nowhere, as in the tallies);
- a KPI the tenant defined counts as its tallies do (`custom.py`), over the window;
- for a rep, their own records; for a team, those of its reps while they were in it or in a team under it
  (the roster's dated memberships, the hierarchy as it stands: as team figures count).

So a contest's numbers move with every edit, reopening, deletion and owner change as the figures do: they are
recounted from kpi's stored deals and activities whenever one in the window changes (`changed_moments`),
never accumulated by hand.

**Status** follows the clock: `scheduled` before `starts_at`, `running` until `ends_at` plus `settle`
(CRM syncs that arrive a little late still count), then `final`: the standings are frozen from then on, and
records arriving later do not change them (the winners have been celebrated). `cancelled` by the admin.

**Ties** share a rank (competition ranking, `ranking.py`): 1, 1, 3. Tied participants share the place and
its prize; the leaders are every participant at rank 1 with a value above 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from services.kpi.contributions import ACTIVITIES as ALL_ACTIVITIES
from services.kpi.contributions import (
    BY_KIND,
    DEALS_LOST,
    DEALS_WON,
    EXACT,
    MONEY,
    PIPELINE,
    UNCONVERTED,
    WON_REVENUE,
    Activity,
    Books,
    Deal,
    Vector,
    tally_of,
    zero,
)
from services.kpi.custom import Kpi
from services.kpi.custom import value as kpi_value
from services.kpi.figures import ratio
from services.kpi.ranking import RankBy, rank_by_value, ranked
from services.kpi.tally import values
from shared.events import ContestStanding, ContestStatus, Metric

DEFAULT_SETTLE = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Contest:
    """A contest as an admin defined it (and its status, as the clock moved it)."""

    contest_id: str
    name: str
    metric: str
    participants: str  # "reps" | "teams"
    participant_ids: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    rank_by: str = "amount"  # "amount" | "attainment"
    target: Decimal | None = None  # every participant's, unless `targets` names theirs
    targets: Mapping[str, Decimal] = field(default_factory=dict)
    prizes: tuple[str, ...] = ()
    settle: timedelta = DEFAULT_SETTLE
    status: ContestStatus = "scheduled"

    def target_of(self, participant: str) -> Decimal | None:
        return self.targets.get(participant, self.target)

    def inside(self, moment: datetime | None) -> bool:
        return moment is not None and self.starts_at <= moment < self.ends_at


def status_at(contest: Contest, now: datetime) -> ContestStatus:
    """Where the clock puts a contest (a cancelled or final one stays so)."""
    if contest.status in ("cancelled", "final"):
        return contest.status
    if now < contest.starts_at:
        return "scheduled"
    if now < contest.ends_at + contest.settle:
        return "running"
    return "final"


def changed_moments(changes: Iterable[tuple[Deal | None, Deal | None]],
                    activities: Iterable[Activity]) -> list[tuple[str, datetime]]:
    """The (rep, moment)s at which a batch's records count: what may move a contest's standings."""
    out: list[tuple[str, datetime]] = []
    for pair in changes:
        for deal in pair:
            if deal is not None:
                out += [(deal.rep_id, m) for m in (deal.created_at, deal.closed_at) if m is not None]
    out += [(a.rep_id, a.occurred_at) for a in activities]
    return out


def touches(contest: Contest, moments: Iterable[tuple[str, datetime]], books: Books) -> bool:
    """Whether any of `moments` counts in the contest's window for one of its participants."""
    return any(contest.inside(moment) and _owners(contest, books, rep, moment) for rep, moment in moments)


def _owners(contest: Contest, books: Books, rep: str, moment: datetime) -> list[str]:
    if contest.participants == "reps":
        return [rep] if rep in contest.participant_ids else []
    team = books.team_at(rep, moment)
    if team is None:
        return []
    return [t for t in books.lineage(team) if t in contest.participant_ids]


def tallies(contest: Contest, books: Books, deals: Iterable[Deal], activities: Iterable[Activity]) -> dict[str, Vector]:
    """Each participant's tally (`contributions.FIELDS`) over the window (every participant, zeros included)."""
    out: dict[str, Vector] = {p: zero() for p in contest.participant_ids}

    def add(rep: str, moment: datetime, parts: Sequence[tuple[int, int | Decimal]]) -> None:
        if not contest.inside(moment):
            return
        for owner in _owners(contest, books, rep, moment):
            vector = out[owner]
            for index, value in parts:
                vector[index] = EXACT.add(vector[index], value) if index in MONEY else vector[index] + value

    def money(deal: Deal, moment: datetime, index: int, count: int | None) -> list[tuple[int, int | Decimal]]:
        base = books.in_base(deal.amount, deal.currency, moment.astimezone(books.timezone).date())
        parts: list[tuple[int, int | Decimal]] = [(count, 1)] if count is not None else []
        return [*parts, (UNCONVERTED, 1) if base is None else (index, base)]

    for deal in deals:
        if deal.created_at is not None:
            add(deal.rep_id, deal.created_at, money(deal, deal.created_at, PIPELINE, None))
        if deal.closed_at is not None and deal.stage == "won":
            add(deal.rep_id, deal.closed_at, money(deal, deal.closed_at, WON_REVENUE, DEALS_WON))
        elif deal.closed_at is not None and deal.stage == "lost":
            add(deal.rep_id, deal.closed_at, [(DEALS_LOST, 1)])
    for activity in activities:
        kind = BY_KIND.get(activity.kind)
        add(activity.rep_id, activity.occurred_at,
            [(ALL_ACTIVITIES, 1), (kind, 1)] if kind is not None else [(ALL_ACTIVITIES, 1)])
    return out


def built_in_values(contest: Contest, vectors: Mapping[str, Vector]) -> dict[str, Decimal]:
    """A built-in metric's value per participant, from its tally."""
    metric = Metric(contest.metric)
    return {p: values(tally_of(v))[metric] for p, v in vectors.items()}


def standings(contest: Contest, values_of: Mapping[str, Decimal],
              names: Mapping[str, str | None]) -> list[ContestStanding]:
    """Every participant, ranked (ties share a rank)."""
    by = RankBy(contest.rank_by)
    rows = [(p, values_of.get(p, Decimal(0))) for p in contest.participant_ids]
    board = ranked(rows, lambda r: rank_by_value(r[1], contest.target_of(r[0]), by), lambda r: r[0])
    return [ContestStanding.model_construct(
        rank=e.rank, tied=e.tied, participant_id=e.entry[0], name=names.get(e.entry[0]), value=e.entry[1],
        target=contest.target_of(e.entry[0]), attainment=ratio(e.entry[1], contest.target_of(e.entry[0])))
        for e in board]


def leaders(board: Sequence[ContestStanding]) -> list[str]:
    """The participants at rank 1 with something to show (value above 0)."""
    return [s.participant_id for s in board if s.rank == 1 and s.value > 0]


def digest(contest: Contest, status: ContestStatus, board: Sequence[ContestStanding]) -> str:
    """What a published state is compared by: a contest is published again when this changes."""
    text = "|".join([contest.name, contest.metric, contest.participants, ",".join(contest.participant_ids),
                     contest.rank_by, str(contest.target), repr(sorted(contest.targets.items())),
                     contest.starts_at.isoformat(), contest.ends_at.isoformat(), "\x1f".join(contest.prizes),
                     status, *(f"{s.participant_id}:{s.rank}:{s.value}:{s.name}" for s in board)])
    return hashlib.sha256(text.encode()).hexdigest()


def custom_values(contest: Contest, kpi: Kpi, books: Books, deals: Iterable[Deal],
                  activities: Iterable[Activity]) -> dict[str, Decimal]:
    """A KPI the tenant defined, per participant over the window: counted as its tallies count it
    (`Ledger._custom`), with the window for a period."""
    n: dict[str, int] = dict.fromkeys(contest.participant_ids, 0)
    unconverted = dict(n)
    total: dict[str, Decimal] = {p: Decimal(0) for p in contest.participant_ids}
    seen: dict[str, set[str]] = {p: set() for p in contest.participant_ids}

    def add(rep: str, moment: datetime, amount: Decimal | None, deal_id: str | None) -> None:
        if not contest.inside(moment):
            return
        for owner in _owners(contest, books, rep, moment):
            n[owner] += 1
            if amount is None:
                unconverted[owner] += 1
            else:
                total[owner] = EXACT.add(total[owner], amount)
            if deal_id:
                seen[owner].add(deal_id)

    if kpi.source == "deals":
        for deal in deals:
            moment = kpi.deal_moment(deal.stage, deal.created_at, deal.closed_at)
            if moment is not None:
                base = books.in_base(deal.amount, deal.currency, moment.astimezone(books.timezone).date())
                if kpi.deal_passes(deal.stage_label, base, deal.properties):
                    add(deal.rep_id, moment, base, deal.deal_id)
    else:
        for a in activities:
            if kpi.activity_passes(a.kind, a.deal_id, a.properties):
                add(a.rep_id, a.occurred_at, Decimal(a.duration_s or 0), a.deal_id)
    return {p: kpi_value(kpi.definition.aggregation, n[p], total[p], unconverted[p], len(seen[p]))
            for p in contest.participant_ids}
