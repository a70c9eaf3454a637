"""A contest as the dashboard shows it: its phase by the clock, its places with their prizes and leaders, and a
sentence on its ties.

Pure: a stored contest (`repository.StoredContest`: the definition and its standings as last published) and
`now` in, what the pages place out; text is formatted by the templates in the tenant's locale and zone. The
standings are kpi's own (`contests.standings`: competition ranking, ties share a rank and its prize); the
dashboard only reads them, and re-reads them when kpi says a contest moved (`LIVE_PREFIX`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from services.kpi.contests import Contest, leaders
from services.kpi.dashboard.view import NO_VALUE
from services.kpi.repository import StoredContest
from shared.events import ContestStanding

Phase = Literal["scheduled", "running", "ended", "final", "cancelled"]
LIVE_PREFIX = "contest:"  # the label kpi announces a contest's new standings with (`contesting._publish`)
ANY_CONTEST = LIVE_PREFIX + "*"  # a page showing every contest re-reads on any of them
TV_PLACES = 5  # the TV shows each running contest's top five


@dataclass(frozen=True, slots=True)
class Place:
    """One participant where it stands: its place ("=1" when tied), its value, the prize of its place, and
    whether it leads."""

    rank: int | None
    tied: bool
    participant_id: str
    name: str
    value: Decimal
    target: Decimal | None
    attainment: Decimal | None
    prize: str | None
    leader: bool

    @property
    def place(self) -> str:
        return place(self.rank, self.tied)


@dataclass(frozen=True, slots=True)
class Shown:
    """A contest as a page shows it."""

    contest: Contest
    phase: Phase
    places: list[Place]
    revision: int

    @property
    def final_at(self) -> datetime:
        """When its standings become final: the end plus the settling time for late CRM records."""
        return self.contest.ends_at + self.contest.settle

    @property
    def leaders(self) -> list[Place]:
        return [p for p in self.places if p.leader]

    @property
    def on_air(self) -> bool:
        """Running, or ended and still settling: what the TV shows."""
        return self.phase in ("running", "ended")

    def top(self, n: int = TV_PLACES) -> list[Place]:
        """The places up to `n` (every participant tied at one of them), or the first `n` when none is ranked."""
        ranked = [p for p in self.places if p.rank is not None and p.rank <= n]
        return ranked or self.places[:n]

    @property
    def ties(self) -> str:
        return ties_sentence(self.places, self.contest.rank_by)


def phase(contest: Contest, now: datetime) -> Phase:
    """Where the clock puts a contest for a reader: `scheduled` before its start, `running` until its end,
    `ended` while late records still count (until `final_at`), then `final` once kpi froze it; `cancelled`
    stays so. kpi's own clock moves the stored status within seconds; the page does not wait for it."""
    if contest.status in ("final", "cancelled"):
        return contest.status
    if now < contest.starts_at:
        return "scheduled"
    if now < contest.ends_at:
        return "running"
    return "ended"


def place(rank: int | None, tied: bool) -> str:
    """A place as the standings show it: ``1``, ``=1`` when shared, a dash (`view.NO_VALUE`) without a rank.

    >>> place(1, False), place(1, True)
    ('1', '=1')
    """
    if rank is None:
        return NO_VALUE
    return f"={rank}" if tied else str(rank)


def prize_of(prizes: Sequence[str], rank: int | None) -> str | None:
    """The prize of a place (`prizes[0]` for the first): tied participants share the place and each gets its
    prize, and the places after a tie are skipped (1, 1, 3: the second prize goes to nobody)."""
    if rank is None or not 1 <= rank <= len(prizes):
        return None
    return prizes[rank - 1]


def places(contest: Contest, standings: Sequence[Mapping[str, object]]) -> list[Place]:
    """The stored standings (`ContestStanding` as JSON, ranked) with each place's prize and the leaders marked:
    rank 1 with a value above 0 (`contests.leaders`)."""
    board = [ContestStanding.model_validate(s) for s in standings]
    leading = set(leaders(board))
    return [Place(rank=s.rank, tied=s.tied, participant_id=s.participant_id, name=s.name or s.participant_id,
                  value=s.value, target=s.target, attainment=s.attainment, prize=prize_of(contest.prizes, s.rank),
                  leader=s.participant_id in leading) for s in board]


def shown(stored: StoredContest, now: datetime) -> Shown:
    return Shown(stored.contest, phase(stored.contest, now), places(stored.contest, stored.standings),
                 stored.revision)


def ordinal(n: int) -> str:
    """An English ordinal number.

    >>> [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)]
    ['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '101st']
    """
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def ties_sentence(board: Sequence[Place], rank_by: str) -> str:
    """What the ties of a board mean, in a sentence: who shares which place (and each gets its prize), and the
    rule (1, 1, 3); by attainment, that a participant without a contest target has no place."""
    shared: dict[int, list[Place]] = {}
    for p in board:
        if p.tied and p.rank is not None:
            shared.setdefault(p.rank, []).append(p)
    if shared:
        parts = []
        for rank, tied in sorted(shared.items()):
            prize = tied[0].prize
            parts.append(f"{_listed([p.name for p in tied])} share {ordinal(rank)} place"
                         + (f" and each gets its prize ({prize})" if prize else ""))
        text = "; ".join(parts) + ". Equal values share a place; the places after a tie are skipped (1, 1, 3)."
    else:
        text = "No ties: equal values would share a place, each getting its prize; the places after a tie are" \
               " skipped (1, 1, 3)."
    if rank_by == "attainment" and any(p.rank is None for p in board):
        text += " A participant without a contest target has no place."
    return text
