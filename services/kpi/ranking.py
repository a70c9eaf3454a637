"""Leaderboard ranks: by amount or by % of target, ties shown as ties. Pure, no I/O.

Standard competition ranking ("1, 2, 2, 4"): entries with the same value share a rank and the next
rank skips as many places as there were tied entries, so a rank always says how many did better. Within
a tie the order is by id (stable, and the same on every page). By attainment the value is the published
figure's (`figures.ratio`: actual / target to 4 places), so two reps whose percentages read the same on
the board tie; a rep without a target (or with 0) has no attainment and no rank, listed after the ranked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypeVar

from services.kpi.figures import ratio

__all__ = ["RankBy", "Ranked", "rank_by_value", "ranked"]

T = TypeVar("T")


class RankBy(StrEnum):
    AMOUNT = "amount"  # the metric's actual
    ATTAINMENT = "attainment"  # actual / target


@dataclass(frozen=True, slots=True)
class Ranked(Generic[T]):
    """An entry with its place: ``rank`` None when it cannot be ranked (no target, by attainment); ``tied``
    when another entry holds the same rank."""

    rank: int | None
    tied: bool
    value: Decimal | None
    entry: T


def rank_by_value(actual: Decimal, target: Decimal | None, by: RankBy) -> Decimal | None:
    """What an entry is ranked by: its actual, or its attainment (None without a target > 0)."""
    return actual if by is RankBy.AMOUNT else ratio(actual, target)


def ranked(entries: Sequence[T], value: Callable[[T], Decimal | None], key: Callable[[T], str]) -> list[Ranked[T]]:
    """``entries`` highest ``value`` first, ties by ``key``; competition ranks; None values last, unranked.

    >>> rows = [("ana", 5), ("bo", 7), ("cy", 5), ("di", 2), ("ed", None)]
    >>> [(r.entry[0], r.rank, r.tied) for r in ranked(rows, lambda r: r[1], lambda r: r[0])]
    [('bo', 1, False), ('ana', 2, True), ('cy', 2, True), ('di', 4, False), ('ed', None, False)]
    """
    pairs = [(value(e), e) for e in entries]
    valued = sorted(((v, e) for v, e in pairs if v is not None), key=lambda p: (-p[0], key(p[1])))
    counts: dict[Decimal, int] = {}
    for v, _ in valued:
        counts[v] = counts.get(v, 0) + 1
    out: list[Ranked[T]] = []
    rank = 0
    previous: Decimal | None = None
    for place, (v, entry) in enumerate(valued, start=1):
        if v != previous:
            rank, previous = place, v
        out.append(Ranked(rank, counts[v] > 1, v, entry))
    out += [Ranked(None, False, None, e) for e in sorted((e for v, e in pairs if v is None), key=key)]
    return out
