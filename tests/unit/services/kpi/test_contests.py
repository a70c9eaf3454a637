"""Contests (services/kpi/contests.py): a metric over a window, participants ranked, the clock's status."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.kpi.contests import (
    Contest,
    built_in_values,
    changed_moments,
    digest,
    leaders,
    standings,
    status_at,
    tallies,
    touches,
)
from services.kpi.contributions import START_OF_TIME, Activity, Books, Deal

START = datetime(2026, 12, 1, tzinfo=UTC)
END = datetime(2026, 12, 15, tzinfo=UTC)
IN = START + timedelta(days=3)
BEFORE = START - timedelta(seconds=1)


def contest(**kw: object) -> Contest:
    base: dict[str, object] = {"contest_id": "c1", "name": "December push", "metric": "won_revenue",
                               "participants": "reps", "participant_ids": ("ann", "bob", "cy"),
                               "starts_at": START, "ends_at": END}
    return Contest(**(base | kw))  # type: ignore[arg-type]


def won(rep: str, amount: str, at: datetime, currency: str = "EUR") -> Deal:
    return Deal(rep, "won", Decimal(amount), currency, at - timedelta(days=30), at)


def books() -> Books:
    b = Books(ZoneInfo("Europe/Berlin"), currency="EUR", rates={"USD": [(date(2026, 1, 1), Decimal("0.9"))]},
              parents={"east": "emea", "west": "emea"})
    b.memberships = {"ann": [(START_OF_TIME, "east")], "bob": [(START_OF_TIME, "east"), (IN, "west")],
                     "cy": [(START_OF_TIME, "west")]}
    return b


def test_only_records_inside_the_window_count_and_money_is_in_the_base_currency() -> None:
    c = contest()
    deals = [won("ann", "100", START), won("ann", "999", BEFORE), won("ann", "999", END), won("bob", "200", IN, "USD"),
             Deal("cy", "lost", Decimal(5), "EUR", None, IN)]
    values = built_in_values(c, tallies(c, books(), deals, []))
    assert values == {"ann": Decimal(100), "bob": Decimal("180.0"), "cy": Decimal(0)}
    win_rate = contest(metric="win_rate")
    assert built_in_values(win_rate, tallies(win_rate, books(), deals, []))["cy"] == 0


def test_a_team_counts_what_its_reps_did_while_in_it_and_the_teams_above_it() -> None:
    c = contest(participants="teams", participant_ids=("east", "west", "emea"), metric="calls")
    calls = [Activity("bob", "call", IN - timedelta(hours=1)), Activity("bob", "call", IN + timedelta(hours=1)),
             Activity("ann", "email", IN), Activity("cy", "call", IN)]
    values = built_in_values(c, tallies(c, books(), [], calls))
    assert values == {"east": 1, "west": 2, "emea": 3}


def test_ties_share_a_rank_and_the_leaders_are_those_at_rank_one_with_something_to_show() -> None:
    c = contest(prizes=("A weekend away",))
    board = standings(c, {"ann": Decimal(5), "bob": Decimal(5), "cy": Decimal(1)}, {"ann": "Ann"})
    assert [(s.participant_id, s.rank, s.tied) for s in board] == [("ann", 1, True), ("bob", 1, True), ("cy", 3, False)]
    assert leaders(board) == ["ann", "bob"] and board[0].name == "Ann"
    nothing = standings(c, {}, {})
    assert leaders(nothing) == [] and [s.rank for s in nothing] == [1, 1, 1]


def test_by_attainment_each_participant_is_measured_against_its_own_contest_target() -> None:
    c = contest(rank_by="attainment", target=Decimal(100), targets={"bob": Decimal(10)})
    board = standings(c, {"ann": Decimal(50), "bob": Decimal(8), "cy": Decimal(90)}, {})
    assert [(s.participant_id, s.attainment) for s in board] == [
        ("cy", Decimal("0.9000")), ("bob", Decimal("0.8000")), ("ann", Decimal("0.5000"))]


def test_the_clock_schedules_runs_settles_and_freezes() -> None:
    c = contest()
    assert status_at(c, BEFORE) == "scheduled"
    assert status_at(c, START) == "running"
    assert status_at(c, END + c.settle - timedelta(seconds=1)) == "running"  # late syncs still count
    assert status_at(c, END + c.settle) == "final"
    assert status_at(contest(status="final"), BEFORE) == "final"
    assert status_at(contest(status="cancelled"), IN) == "cancelled"


def test_a_batch_touches_a_contest_only_with_a_record_in_its_window_for_a_participant() -> None:
    c = contest(participant_ids=("ann",))
    moments = changed_moments([(None, won("ann", "1", BEFORE)), (won("bob", "1", IN), None)], [])
    assert not touches(c, moments, books())
    assert touches(c, changed_moments([(won("ann", "1", BEFORE), won("ann", "1", IN))], []), books())
    assert touches(c, changed_moments([], [Activity("ann", "call", IN)]), books())


def test_the_digest_moves_with_the_standings_the_status_and_the_definition() -> None:
    c = contest()
    board = standings(c, {"ann": Decimal(1)}, {})
    same = digest(c, "running", board)
    assert same == digest(c, "running", standings(c, {"ann": Decimal(1)}, {}))
    assert same != digest(c, "final", board)
    assert same != digest(c, "running", standings(c, {"ann": Decimal(2)}, {}))
    assert same != digest(contest(prizes=("a mug",)), "running", board)
