"""Leaderboard ranks: by amount or by % of target, ties shown as ties (issue 18, item 6)."""

from __future__ import annotations

from decimal import Decimal

from services.kpi.ranking import RankBy, rank_by_value, ranked

D = Decimal
ROWS = [  # rep, actual, target
    ("ana", D(50_000), D(100_000)),  # 50 %
    ("bo", D(90_000), D(300_000)),  # 30 %: the most money, the lowest share
    ("cy", D(25_000), D(50_000)),  # 50 %: tied with ana by share
    ("di", D(50_000), None),  # no target: no share
    ("ed", D(0), D(10_000)),  # 0 %
]


def board(by: RankBy) -> list[tuple[str, int | None, bool]]:
    entries = ranked(ROWS, lambda r: rank_by_value(r[1], r[2], by), lambda r: r[0])
    return [(e.entry[0], e.rank, e.tied) for e in entries]


def test_by_amount_equal_actuals_share_a_rank_and_the_next_rank_skips() -> None:
    assert board(RankBy.AMOUNT) == [("bo", 1, False), ("ana", 2, True), ("di", 2, True), ("cy", 4, False),
                                    ("ed", 5, False)]


def test_by_attainment_the_share_ranks_and_a_rep_without_a_target_is_unranked_last() -> None:
    assert board(RankBy.ATTAINMENT) == [("ana", 1, True), ("cy", 1, True), ("bo", 3, False), ("ed", 4, False),
                                        ("di", None, False)]


def test_attainment_ties_at_the_published_four_places() -> None:
    # 1/3 and 3333/10000 both read 0.3333: the board shows the same percentage, so they tie
    rows = [("a", D(1), D(3)), ("b", D(3333), D(10_000)), ("c", D(3334), D(10_000))]
    entries = ranked(rows, lambda r: rank_by_value(r[1], r[2], RankBy.ATTAINMENT), lambda r: r[0])
    assert [(e.entry[0], e.rank, e.tied) for e in entries] == [("c", 1, False), ("a", 2, True), ("b", 2, True)]


def test_nothing_to_rank_is_an_empty_board() -> None:
    assert ranked([], lambda r: None, lambda r: "") == []
