"""The batch folds: the worked examples of `services/recognition/batch.py`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.recognition.batch import (
    STREAK_LOOKBACK,
    DealBook,
    cheers,
    due_corrections,
    first_sightings,
    fold_attainment,
    ledger_key,
    streak_windows,
)
from services.recognition.model import Drop, Figure, Found, Moment, Settings, Sighting, StoredDeal, Tombstone
from shared.events import AttainmentUpdated, Metric, Scope

AT = datetime(2026, 11, 2, 10, tzinfo=UTC)
KEY = ("rep", "r1", "2026-Q4", "won_revenue")


def update(share: str, minutes: int) -> AttainmentUpdated:
    return AttainmentUpdated(scope=Scope.REP, scope_id="r1", period="2026-Q4", metric=Metric.WON_REVENUE,
                             actual=Decimal(share) * 90_000, target=Decimal(90_000), attainment=Decimal(share),
                             as_of=AT + timedelta(minutes=minutes))


def test_the_newest_figure_stands_and_every_crossing_on_the_way_is_found() -> None:
    out = fold_attainment({KEY: Figure(Decimal("0.40"), AT)}, [update("1.05", 5), update("0.70", 1),
                                                             update("1.60", 7)], Settings())
    assert [(s.found.milestone, s.position) for s in out.sightings] == [("quota_50", 0), ("quota_100", 0),
                                                                        ("quota_150", 2)]
    assert [(u.attainment, u.as_of) for u in out.latest] == [(Decimal("1.60"), AT + timedelta(minutes=7))]
    assert out.drops == []


def test_kpis_revision_orders_figures_not_the_clock_of_the_replica_that_published_them() -> None:
    """Revision 8 from a replica whose clock is an hour behind replaces revision 7 (and the stored 6), although
    its `as_of` is the oldest; a late revision 5 changes nothing, however new its clock says it is."""
    def revised(share: str, minutes: int, revision: int) -> AttainmentUpdated:
        return update(share, minutes).model_copy(update={"revision": revision})

    out = fold_attainment({KEY: Figure(Decimal("0.40"), AT, 6)},
                          [revised("1.05", 5, 7), revised("0.70", -60, 8), revised("1.60", 90, 5)], Settings())
    assert [(u.attainment, u.revision) for u in out.latest] == [(Decimal("0.70"), 8)]
    assert [s.found.milestone for s in out.sightings] == ["quota_50", "quota_100"]  # 1.60 was never true


def test_drops_are_found_only_when_corrections_are_asked_for() -> None:
    steps = [update("1.20", 1), update("0.45", 2)]
    assert fold_attainment({}, steps, Settings()).drops == []
    drops = fold_attainment({}, steps, Settings(corrections=True)).drops
    assert [(d.milestone, d.position) for d in drops] == [("quota_50", 1), ("quota_100", 1)]


def test_a_correction_is_due_after_the_celebration_only_and_once() -> None:
    def drop(position: int) -> Drop:
        return Drop(Scope.REP, "r1", "quota_100", "2026-Q4", position, Decimal(1), None)
    key = ledger_key(drop(0))
    assert [d.position for d in due_corrections([drop(1), drop(5)], {key: 3})] == [5]
    assert [d.position for d in due_corrections([drop(1), drop(5)], {})] == [1]


def test_the_first_sighting_of_a_milestone_is_the_one_kept() -> None:
    def seen(position: int, value: int) -> Sighting:
        return Sighting(Found(Scope.REP, "r1", "first_win", "2026-Q4", Decimal(value), AT), position)
    assert [s.position for s in first_sightings([seen(2, 5), seen(0, 9), seen(4, 1)])] == [2]


def test_a_deal_book_keeps_the_newest_version_and_says_when_a_deal_became_won() -> None:
    def version(stage: str, hours: int, tiebreak: str = "e") -> StoredDeal:
        return StoredDeal("d1", "r1", stage, Decimal(10), "EUR", None, AT, AT + timedelta(hours=hours), tiebreak)
    book = DealBook({})
    assert book.upsert(version("open", 1)) is False
    assert book.upsert(version("won", 2)) is True
    assert book.upsert(version("won", 3)) is False  # still won
    assert book.upsert(version("lost", 2, "f")) is False  # older than the stored version
    assert [d.deal_id for d in book.won_of("r1")] == ["d1"]
    book.delete(Tombstone("d1", AT + timedelta(hours=4), "g"))
    assert book.won_of("r1") == [] and book.changed["d1"].deleted
    book.delete(Tombstone("d2", AT, "h"))  # before its first version: a tombstone all the same
    late = StoredDeal("d2", "r1", "won", Decimal(1), "EUR", None, AT, AT - timedelta(hours=1), "i")
    assert book.upsert(late) is False


def test_a_rep_s_streak_window_spans_all_of_its_activities_in_the_batch() -> None:
    windows = streak_windows([Moment("r1", AT), Moment("r2", AT), Moment("r1", AT + timedelta(days=3))])
    assert windows["r1"] == (AT - STREAK_LOOKBACK, AT + timedelta(days=4))
    assert windows["r2"] == (AT - STREAK_LOOKBACK, AT + timedelta(days=1))


def test_cheers_group_one_records_finds_per_scope_highest_first_and_leave_closes_alone() -> None:
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)

    def seen(milestone: str, position: int, source: str, scope_id: str = "r1") -> Sighting:
        return Sighting(Found(Scope.REP, scope_id, milestone, "p", Decimal(1), at), position, source=source)

    groups = cheers([seen("first_win", 0, "deal"), seen("quota_50", 0, "figure"), seen("first_win_ever", 0, "deal"),
                     seen("quota_100", 0, "figure"), seen("first_win", 0, "deal", "r2"), seen("quota_150", 1, "figure"),
                     seen("leaderboard_2_won_revenue", 0, ""), seen("leaderboard_1_deals_won", 0, "")])
    assert [[s.found.milestone for s in g] for g in groups] == [
        ["first_win_ever", "first_win"], ["quota_100", "quota_50"], ["first_win"], ["quota_150"],
        ["leaderboard_2_won_revenue"], ["leaderboard_1_deals_won"]]
