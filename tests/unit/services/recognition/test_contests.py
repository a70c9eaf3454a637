"""A contest's moments: the worked examples and the boundaries of `services/recognition/contests.py`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.recognition.contests import due_leads, fold_contests, follow, lead_due, start, winners
from services.recognition.headlines import kind_of, render
from services.recognition.model import Contest, Settings
from services.recognition.rules import celebration_id
from shared.events import ContestUpdated, Scope
from tests.unit.services.recognition.streams import CONTEST_END, CONTEST_START, contest_update

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 10, 9, tzinfo=UTC)
DEBOUNCE = timedelta(seconds=600)
DEFAULTS = Settings()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def led(values: Mapping[str, str], minutes: float = 0, revision: int = 1, **kwargs: Any) -> ContestUpdated:
    return contest_update(revision, at(minutes), values, **kwargs)


def replay(*updates: ContestUpdated, held: Contest | None = None) -> Contest:
    contest = held
    for update in updates:
        contest = follow(contest, update)
    assert contest is not None
    return contest


# --- who leads alone, since when --------------------------------------------------------------------------


def test_a_sole_leader_keeps_its_since_across_revisions() -> None:
    contest = replay(led({"ann": "10", "bob": "5"}, 0, 1), led({"ann": "20", "bob": "5"}, 4, 2),
                     led({"ann": "30", "bob": "25"}, 8, 3))
    assert (contest.candidate, contest.since) == ("ann", at(0))


def test_a_tie_resets_the_lead_and_the_leader_alone_again_leads_from_then() -> None:
    tied = replay(led({"ann": "10"}, 0, 1), led({"ann": "10", "bob": "10"}, 6, 2))
    assert (tied.candidate, tied.since) == (None, None)
    again = follow(tied, led({"ann": "12", "bob": "10"}, 7, 3))
    assert (again.candidate, again.since) == ("ann", at(7))


def test_another_leader_resets_the_lead() -> None:
    contest = replay(led({"ann": "10", "bob": "5"}, 0, 1), led({"ann": "10", "bob": "15"}, 3, 2))
    assert (contest.candidate, contest.since) == ("bob", at(3))


def test_nobody_leads_before_anyone_scored_nor_once_the_contest_is_not_running() -> None:
    assert follow(None, led({"ann": "0", "bob": "0"})).candidate is None
    assert follow(None, led({"ann": "10"}, status="scheduled")).candidate is None
    assert follow(replay(led({"ann": "10"})), led({"ann": "10"}, 30, 2, status="final")).candidate is None


def test_the_leader_celebrated_last_is_kept() -> None:
    held = replace(replay(led({"ann": "10"})), celebrated="ann")
    assert follow(held, led({"bob": "20"}, 5, 2)).celebrated == "ann"


# --- a lead that lasts ------------------------------------------------------------------------------------


def test_a_lead_is_due_exactly_when_it_has_lasted_the_debounce() -> None:
    contest = replay(led({"ann": "42000", "bob": "35000"}))
    assert lead_due(contest, at(10) - timedelta(microseconds=1), DEFAULTS) is None
    found = lead_due(contest, at(10), DEFAULTS)
    assert found is not None
    assert (found.scope, found.scope_id, found.milestone, found.period, found.value, found.occurred_at) == (
        Scope.REP, "ann", "contest_lead", "c-1", Decimal(42000), at(10))
    assert found.occasion == "2026-11-10T09:00:00+00:00"
    assert {k: found.facts[k] for k in ("contest", "since", "runner_up", "runner_up_value", "margin", "first")} == {
        "contest": "November Sprint", "since": "2026-11-10T09:00:00+00:00", "runner_up": "Bob",
        "runner_up_value": Decimal(35000), "margin": Decimal(7000), "first": True}
    # judged later, the same lead: the same moment and key
    later = lead_due(contest, at(45), DEFAULTS)
    assert later is not None and (later.occurred_at, later.occasion) == (found.occurred_at, found.occasion)


def test_the_debounce_is_the_tenants_to_set() -> None:
    contest = replay(led({"ann": "10"}))
    assert lead_due(contest, at(1), Settings(contest_lead_debounce_s=60)) is not None
    assert lead_due(contest, at(0), Settings(contest_lead_debounce_s=0)) is not None
    assert lead_due(contest, at(59), Settings(contest_lead_debounce_s=3600)) is None


def test_a_lead_that_changed_hands_within_the_debounce_is_never_due() -> None:
    contest = replay(led({"ann": "10", "bob": "5"}, 0, 1), led({"ann": "10", "bob": "12"}, 9, 2))
    assert contest.candidate == "bob"
    assert lead_due(contest, at(18), DEFAULTS) is None  # bob: 9 minutes so far; ann is no longer leading
    assert lead_due(contest, at(19), DEFAULTS) is not None


def test_a_tie_starts_the_debounce_over() -> None:
    contest = replay(led({"ann": "10"}, 0, 1), led({"ann": "10", "bob": "10"}, 6, 2),
                     led({"ann": "11", "bob": "10"}, 7, 3))
    assert lead_due(contest, at(10), DEFAULTS) is None
    assert lead_due(contest, at(17), DEFAULTS) is not None


def test_the_leader_celebrated_last_is_not_celebrated_again_when_it_takes_the_lead_back() -> None:
    first = replace(replay(led({"ann": "10", "bob": "5"}, 0, 1)), celebrated="ann")
    back = replay(led({"ann": "10", "bob": "15"}, 20, 2), led({"ann": "20", "bob": "15"}, 23, 3), held=first)
    assert (back.candidate, back.since) == ("ann", at(23))
    assert lead_due(back, at(60), DEFAULTS) is None


def test_a_leader_back_after_another_one_was_celebrated_is_celebrated_again_as_a_new_lead() -> None:
    first = replace(replay(led({"ann": "10", "bob": "5"}, 0, 1)), celebrated="ann")
    bob = replay(led({"ann": "10", "bob": "15"}, 20, 2), held=first)
    [(bob, bobs)] = due_leads([bob], at(30), DEFAULTS)
    assert bob.celebrated == "bob" and bobs.facts["first"] is False
    ann = follow(bob, led({"ann": "20", "bob": "15"}, 40, 3))
    again = lead_due(ann, at(50), DEFAULTS)
    assert again is not None and again.occasion == at(40).isoformat()
    ids = {celebration_id("t", "rep", "ann", "contest_lead", "c-1", occasion) for occasion in
           (at(0).isoformat(), again.occasion)}
    assert len(ids) == 2  # two leads of ann: two celebrations, each once


def test_since_is_one_instant_whatever_the_offset_kpi_wrote_it_with() -> None:
    plus_one = led({"ann": "10"}).model_copy(update={"as_of": T0.astimezone(BERLIN)})
    found = lead_due(follow(None, plus_one), at(10), DEFAULTS)
    assert found is not None and found.occasion == T0.isoformat()


def test_nothing_is_due_once_the_contest_has_ended_or_when_it_is_not_running() -> None:
    ending = replay(led({"ann": "10"}, ends_at=at(30)))
    assert lead_due(ending, at(29), DEFAULTS) is not None
    assert lead_due(ending, at(30), DEFAULTS) is None
    running = replay(led({"ann": "10"}))
    for status in ("scheduled", "final", "cancelled"):
        stopped = replace(running, latest=running.latest.model_copy(update={"status": status}))
        assert lead_due(stopped, at(60), DEFAULTS) is None, status
    assert lead_due(running, at(60), Settings(disabled=("contest_lead",))) is None


def test_a_team_contest_ranked_by_attainment_celebrates_a_team_with_its_margin_in_attainment() -> None:
    update = led({"team-a": "50", "team-b": "80"}, participants="teams").model_copy(update={"rank_by": "attainment"})
    standings = [s.model_copy(update={"attainment": a, "rank": r, "tied": False}) for s, a, r in zip(
        update.standings, (Decimal("0.5"), Decimal("0.8")), (2, 1), strict=True)]
    found = lead_due(follow(None, update.model_copy(update={"standings": standings, "leaders": ["team-a"]})),
                     at(10), DEFAULTS)
    assert found is not None and (found.scope, found.scope_id) == (Scope.TEAM, "team-a")
    assert (found.facts["runner_up"], found.facts["margin"]) == ("Team-B", Decimal("0.3"))


# --- the start ----------------------------------------------------------------------------------------------


def test_the_start_names_the_window_prizes_and_participants() -> None:
    found = start(contest_update(2, CONTEST_START, {"ann": "0", "bob": "0", "cid": "0"}), BERLIN, DEFAULTS)
    assert found is not None
    assert (found.scope, found.scope_id, found.milestone, found.period, found.value, found.occurred_at) == (
        "contest", "c-1", "contest_started", "c-1", Decimal(0), CONTEST_START)
    assert {k: found.facts[k] for k in ("name", "metric", "participants", "last_day", "prize", "prizes")} == {
        "name": "November Sprint", "metric": "won_revenue", "participants": 3, "last_day": "2026-11-30",
        "prize": "a weekend in Rome", "prizes": ["a weekend in Rome", "a dinner for two"]}
    assert found.facts["ends_at"] == CONTEST_END.isoformat()


@pytest.mark.parametrize("status", ["scheduled", "cancelled"])
def test_a_contest_that_is_not_running_or_over_has_no_start(status: str) -> None:
    assert start(contest_update(1, CONTEST_START, {}, status=status), BERLIN, DEFAULTS) is None


# --- the winners --------------------------------------------------------------------------------------------


def final(values: Mapping[str, str], prizes: tuple[str, ...] = ("a weekend in Rome", "a dinner for two"),
          ) -> ContestUpdated:
    return contest_update(9, CONTEST_END, values, status="final", prizes=prizes)


def placed(update: ContestUpdated) -> list[tuple[str, int, bool, str | None]]:
    return [(f.scope_id, f.facts["place"], f.facts["tied"], f.facts["prize"]) for f in winners(update, DEFAULTS)]


def test_each_prize_place_is_celebrated_with_its_prize() -> None:
    assert placed(final({"ann": "90", "bob": "70", "cid": "50"})) == [
        ("ann", 1, False, "a weekend in Rome"), ("bob", 2, False, "a dinner for two")]


def test_tied_winners_share_the_place_and_its_prize_and_each_is_celebrated() -> None:
    assert placed(final({"ann": "90", "bob": "90", "cid": "50"})) == [
        ("ann", 1, True, "a weekend in Rome"), ("bob", 1, True, "a weekend in Rome")]  # cid is 3rd: no prize
    assert placed(final({"ann": "90", "bob": "70", "cid": "70"})) == [
        ("ann", 1, False, "a weekend in Rome"), ("bob", 2, True, "a dinner for two"),
        ("cid", 2, True, "a dinner for two")]


def test_without_prizes_only_the_first_place_is_celebrated() -> None:
    assert placed(final({"ann": "90", "bob": "70"}, prizes=())) == [("ann", 1, False, None)]


def test_a_final_contest_where_nobody_scored_has_no_winner() -> None:
    assert placed(final({"ann": "0", "bob": "0"})) == []
    assert placed(final({"ann": "10", "bob": "0"})) == [("ann", 1, False, "a weekend in Rome")]  # 0 wins nothing


def test_only_a_final_contest_has_winners() -> None:
    assert winners(contest_update(3, at(0), {"ann": "90"}), DEFAULTS) == []
    assert winners(final({"ann": "90"}), Settings(disabled=("contest_won",))) == []


# --- a batch of revisions -----------------------------------------------------------------------------------


def moments(out: Any) -> list[tuple[str, str, int, bool]]:
    return [(s.found.milestone, s.found.scope_id, s.position, s.history) for s in out.sightings]


def test_a_contest_from_schedule_to_final_in_one_batch() -> None:
    updates = [led({"ann": "0"}, -60, 1, status="scheduled"), led({"ann": "0", "bob": "0"}, 0, 2),
               led({"ann": "10", "bob": "0"}, 1, 3), led({"ann": "10", "bob": "30"}, 30, 4),
               led({"ann": "10", "bob": "30"}, 60, 5, status="final", ends_at=at(60))]
    out = fold_contests({}, updates, DEFAULTS, BERLIN)
    assert moments(out) == [("contest_started", "c-1", 1, False), ("contest_lead", "ann", 3, False),
                            ("contest_won", "bob", 4, False), ("contest_won", "ann", 4, False)]
    # bob led for 30 minutes, but only the final revision said so: nothing after the contest ends
    [contest] = out.changed
    assert (contest.latest.revision, contest.candidate, contest.celebrated) == (5, None, "ann")


def test_a_revision_not_newer_than_the_stored_one_changes_nothing() -> None:
    stored = {"c-1": replay(led({"ann": "10"}, 0, 1), led({"ann": "20", "bob": "30"}, 5, 3))}
    out = fold_contests(stored, [led({"ann": "99"}, 20, 2), led({"ann": "20", "bob": "30"}, 5, 3),
                                 led({"ann": "99"}, 2, 1, status="final")], DEFAULTS, BERLIN)
    assert (out.changed, out.sightings) == ([], [])


def test_revisions_arriving_out_of_order_in_one_batch_keep_the_newest() -> None:
    out = fold_contests({}, [led({"bob": "30"}, 5, 3), led({"ann": "10"}, 0, 2)], DEFAULTS, BERLIN)
    [contest] = out.changed
    assert (contest.latest.revision, contest.candidate) == (3, "bob")
    assert moments(out) == [("contest_started", "c-1", 0, False)]


def test_the_start_is_found_once_on_the_first_running_revision() -> None:
    out = fold_contests({}, [led({"ann": "0"}, 0, 1), led({"ann": "5"}, 1, 2), led({"ann": "6"}, 2, 3)], DEFAULTS,
                        BERLIN)
    assert [m[0] for m in moments(out)] == ["contest_started"]


def test_a_contest_first_seen_final_gets_its_start_unless_it_began_beyond_the_horizon() -> None:
    short = fold_contests({}, [contest_update(4, CONTEST_START + timedelta(hours=47), {"ann": "5"}, status="final")],
                          DEFAULTS, BERLIN)
    assert moments(short) == [("contest_started", "c-1", 0, False), ("contest_won", "ann", 0, False)]
    long = fold_contests({}, [contest_update(4, CONTEST_END, {"ann": "5"}, status="final")], DEFAULTS, BERLIN)
    assert moments(long) == [("contest_started", "c-1", 0, True), ("contest_won", "ann", 0, False)]
    seen_running = {"c-1": follow(None, contest_update(2, CONTEST_START, {"ann": "0"}))}
    assert moments(fold_contests(seen_running, [contest_update(4, CONTEST_END, {"ann": "5"}, status="final")],
                                 DEFAULTS, BERLIN)) == [("contest_won", "ann", 0, False)]


def test_a_cancelled_contest_celebrates_nothing() -> None:
    out = fold_contests({}, [led({"ann": "10"}, 0, 1, status="cancelled")], DEFAULTS, BERLIN)
    assert moments(out) == []
    leading = {"c-1": replay(led({"ann": "10"}, 0, 1))}  # started, ann leading: then cancelled
    out = fold_contests(leading, [led({"ann": "10"}, 30, 2, status="cancelled")], DEFAULTS, BERLIN)
    assert moments(out) == []
    assert out.changed[0].candidate is None


def test_a_final_revision_again_finds_no_winner_twice() -> None:
    over = {"c-1": follow(None, final({"ann": "90"}))}
    later = final({"ann": "90"}).model_copy(update={"revision": 10})
    assert moments(fold_contests(over, [later], DEFAULTS, BERLIN)) == []


# --- headlines ----------------------------------------------------------------------------------------------


def headline(found: Any) -> str:
    return render(kind_of(found.milestone), dict(found.facts), locale="en", currency="EUR")


def test_the_headlines_name_the_numbers_the_contest_and_the_prize() -> None:
    began = start(contest_update(2, CONTEST_START, {"ann": "0", "bob": "0"}), BERLIN, DEFAULTS)
    assert began is not None and headline(began) == (
        "November Sprint has started: won revenue through Nov 30, 2026, 2 reps in the race, and 1st place takes"
        " home a weekend in Rome!")
    lead = lead_due(replay(led({"ann": "42000", "bob": "35000"})), at(10), DEFAULTS)
    assert lead is not None
    assert headline(lead) == "Ann took the lead in November Sprint with €42,000.00, €7,000.00 ahead of Bob!"
    alone = lead_due(replay(led({"ann": "42000"})), at(10), DEFAULTS)
    assert alone is not None and headline(alone) == "Ann took the lead in November Sprint with €42,000.00!"
    assert [headline(f) for f in winners(final({"ann": "90000", "bob": "70000", "cid": "70000"}), DEFAULTS)] == [
        "Ann won November Sprint with €90,000.00 and takes home a weekend in Rome!",
        "Bob tied for 2nd in November Sprint with €70,000.00 and takes home a dinner for two!",
        "Cid tied for 2nd in November Sprint with €70,000.00 and takes home a dinner for two!"]
    assert [headline(f) for f in winners(final({"ann": "9", "bob": "9"}, prizes=()), DEFAULTS)] == [
        "Ann tied for 1st in November Sprint with €9.00!", "Bob tied for 1st in November Sprint with €9.00!"]


def test_a_contest_without_prizes_starts_without_naming_one() -> None:
    began = start(contest_update(2, CONTEST_START, {"ann": "0"}, prizes=()), BERLIN, DEFAULTS)
    assert began is not None
    assert headline(began) == "November Sprint has started: won revenue through Nov 30, 2026, 1 rep in the race!"
