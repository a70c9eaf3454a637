"""Recognition's pure rules: quota crossings, deal milestones, streaks, leaderboards, period closes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.recognition.model import Day, Settings, Standing, WonDeal
from services.recognition.rules import (
    activity_days,
    celebration_id,
    closed_periods,
    deal_milestones,
    leaderboard_finishes,
    leaderboard_milestone,
    quota_crossings,
    quota_drops,
    streak,
    team_largest_deal,
)
from shared.events import Metric, Scope

NOW = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
LA = ZoneInfo("America/Los_Angeles")
DEFAULTS = Settings()
TARGET = Decimal(90000)


def crossings(previous: str | None, current: str | None, *, scope: Scope = Scope.REP,
              metric: Metric = Metric.WON_REVENUE, target: Decimal | None = TARGET,
              settings: Settings = DEFAULTS) -> list[str]:  # fmt: skip
    found = quota_crossings(
        scope, "r1", "2026-Q4", metric, None if previous is None else Decimal(previous),
        None if current is None else Decimal(current), Decimal(90000), target, NOW, settings, "Ann Lee",
    )  # fmt: skip
    return [f.milestone for f in found]


# --- celebration_id --------------------------------------------------------------------------------------


def test_celebration_ids_already_issued_stay_the_same() -> None:
    assert celebration_id("acme", "rep", "r1", "quota_100", "2026-Q4") == uuid.UUID(
        "5a709e9a-bff2-5222-8b1e-740eb8a8e95e")


def test_celebration_id_is_the_same_for_a_scope_enum_and_its_string() -> None:
    assert celebration_id("acme", Scope.REP, "r1", "quota_100", "2026-Q4") == celebration_id(
        "acme", "rep", "r1", "quota_100", "2026-Q4")


@pytest.mark.parametrize("other", [
    ("globex", "rep", "r1", "quota_100", "2026-Q4"),
    ("acme", "team", "r1", "quota_100", "2026-Q4"),
    ("acme", "rep", "r2", "quota_100", "2026-Q4"),
    ("acme", "rep", "r1", "quota_150", "2026-Q4"),
    ("acme", "rep", "r1", "quota_100", "2027-Q1"),
])  # fmt: skip
def test_celebration_id_differs_when_any_part_differs(other: tuple[str, str, str, str, str]) -> None:
    assert celebration_id(*other) != celebration_id("acme", "rep", "r1", "quota_100", "2026-Q4")


# --- quota_crossings -------------------------------------------------------------------------------------


def test_reaching_a_threshold_exactly_crosses_it() -> None:
    assert crossings("0.9", "1") == ["quota_100"]


def test_just_below_a_threshold_crosses_nothing() -> None:
    assert crossings("0.9", "0.9999") == []


def test_a_jump_over_several_thresholds_finds_each_lowest_first() -> None:
    assert crossings("0.4", "1.6") == ["quota_50", "quota_100", "quota_150"]


def test_an_update_that_stays_above_a_threshold_finds_nothing() -> None:
    assert crossings("1.05", "1.2") == []


def test_starting_exactly_at_a_threshold_is_not_a_new_crossing() -> None:
    assert crossings("1", "1.2") == []


def test_a_downward_move_finds_nothing() -> None:
    assert crossings("1.2", "0.4") == []


def test_the_first_figure_seen_already_above_crosses_every_threshold_below_it() -> None:
    assert crossings(None, "1.2") == ["quota_50", "quota_100"]


def test_a_recrossing_after_a_drop_is_found_again_for_the_ledger_to_refuse() -> None:
    assert crossings("1.1", "0.9") == []
    assert crossings("0.9", "1.01") == ["quota_100"]


def test_the_rule_is_pure_the_same_update_finds_the_same_milestones_every_time() -> None:
    first = quota_crossings(Scope.REP, "r1", "2026-Q4", Metric.WON_REVENUE, Decimal("0.9"), Decimal(1),
                            Decimal(90000), TARGET, NOW, DEFAULTS, "Ann Lee")
    again = quota_crossings(Scope.REP, "r1", "2026-Q4", Metric.WON_REVENUE, Decimal("0.9"), Decimal(1),
                            Decimal(90000), TARGET, NOW, DEFAULTS, "Ann Lee")
    assert first == again


def test_a_crossing_carries_the_figures_for_its_headline() -> None:
    [found] = quota_crossings(Scope.REP, "r1", "2026-Q4", Metric.WON_REVENUE, Decimal("0.9"),
                              Decimal("1.05"), Decimal(94500), TARGET, NOW, DEFAULTS, "Ann Lee")
    assert (found.scope, found.scope_id, found.period, found.value, found.occurred_at) == (
        Scope.REP, "r1", "2026-Q4", Decimal(94500), NOW)
    assert found.facts == {"name": "Ann Lee", "metric": "won_revenue", "period": "2026-Q4",
                           "actual": Decimal(94500), "target": TARGET, "attainment": Decimal("1.05"),
                           "threshold": 100}  # fmt: skip


def test_without_a_name_the_facts_name_the_scope_id() -> None:
    [found] = quota_crossings(Scope.REP, "r1", "2026-Q4", Metric.WON_REVENUE, Decimal("0.9"), Decimal(1),
                              Decimal(90000), TARGET, NOW, DEFAULTS)
    assert found.facts["name"] == "r1"


@pytest.mark.parametrize("target", [None, Decimal(0)])
def test_nothing_is_crossed_without_a_target(target: Decimal | None) -> None:
    assert crossings("0", "2", target=target) == []


def test_nothing_is_crossed_without_a_current_attainment() -> None:
    assert crossings("0.9", None) == []


def test_a_team_reaching_its_won_revenue_target_reaches_its_team_goal() -> None:
    assert crossings("0.4", "1.2", scope=Scope.TEAM) == ["quota_50", "team_goal"]


def test_a_team_reaching_another_metrics_target_is_a_quota_of_that_metric() -> None:
    assert crossings("0.9", "1", scope=Scope.TEAM, metric=Metric.DEALS_WON) == ["quota_100_deals_won"]


def test_each_target_metric_is_celebrated_on_its_own() -> None:
    """A rep at 100 % of calls and of won revenue reached two milestones, not one: the ledger's key holds the
    milestone name, so the names differ (won revenue keeps the name it always had)."""
    assert crossings("0.9", "1", metric=Metric.WON_REVENUE) == ["quota_100"]
    assert crossings("0.9", "1", metric=Metric.CALLS) == ["quota_100_calls"]


def test_with_team_goal_disabled_a_team_reaching_its_target_is_a_plain_quota() -> None:
    settings = Settings(disabled=("team_goal",))
    assert crossings("0.9", "1", scope=Scope.TEAM, settings=settings) == ["quota_100"]


def test_with_quota_disabled_no_threshold_and_no_team_goal_is_found() -> None:
    settings = Settings(disabled=("quota",))
    assert crossings("0", "2", settings=settings) == []
    assert crossings("0", "2", scope=Scope.TEAM, settings=settings) == []


def test_only_the_configured_metrics_are_celebrated() -> None:
    settings = Settings(quota_metrics=(Metric.WON_REVENUE,))
    assert crossings("0.9", "1", metric=Metric.CALLS, settings=settings) == []
    assert crossings("0.9", "1", settings=settings) == ["quota_100"]


def test_custom_thresholds_name_their_percentages() -> None:
    settings = Settings(quota_thresholds=(Decimal("0.75"), Decimal(2)))
    assert crossings("0", "2", settings=settings) == ["quota_75", "quota_200"]


# --- quota_drops -----------------------------------------------------------------------------------------


THRESHOLDS = DEFAULTS.quota_thresholds


def test_falling_below_thresholds_reports_each_lowest_first() -> None:
    assert quota_drops(Decimal("1.2"), Decimal("0.45"), THRESHOLDS) == [Decimal("0.5"), Decimal(1)]


def test_falling_to_exactly_a_threshold_is_not_a_drop() -> None:
    assert quota_drops(Decimal("1.2"), Decimal(1), THRESHOLDS) == []


def test_falling_from_exactly_a_threshold_is_a_drop() -> None:
    assert quota_drops(Decimal(1), Decimal("0.99"), THRESHOLDS) == [Decimal(1)]


@pytest.mark.parametrize(("previous", "current"),
                         [(None, Decimal(0)), (Decimal(2), None), (Decimal("0.4"), Decimal(2))])
def test_no_drop_without_both_figures_or_when_rising(previous: Decimal | None, current: Decimal | None) -> None:
    assert quota_drops(previous, current, THRESHOLDS) == []


shares = st.decimals(min_value=0, max_value=3, places=2)


@given(st.lists(shares, min_size=1, max_size=30))
def test_over_any_updates_a_threshold_fires_once_per_upward_crossing_and_never_on_a_fall(
        values: list[Decimal]) -> None:  # fmt: skip
    above = dict.fromkeys(THRESHOLDS, False)
    previous: Decimal | None = None
    for current in values:
        found = quota_crossings(Scope.REP, "r1", "2026-Q4", Metric.DEALS_WON, previous, current, current, Decimal(1),
                                NOW, DEFAULTS)  # fmt: skip
        fired = [Decimal(f.facts["threshold"]) / 100 for f in found]
        assert len(fired) == len(set(fired))
        if previous is not None and current <= previous:
            assert fired == []
        for threshold in fired:
            assert not above[threshold]  # never twice without a fall in between
        for threshold in quota_drops(previous, current, THRESHOLDS):
            assert above[threshold]
        above = {t: t <= current for t in THRESHOLDS}
        assert all(above[t] for t in fired)
        previous = current


# --- deal_milestones -------------------------------------------------------------------------------------


def deal(deal_id: str, amount: str, closed: datetime, currency: str = "EUR") -> WonDeal:
    return WonDeal(deal_id, "r1", Decimal(amount), currency, closed)


def milestones(this: WonDeal, others: list[WonDeal], settings: Settings = DEFAULTS,
               fiscal_start_month: int = 1) -> dict[str, Any]:  # fmt: skip
    found = deal_milestones(this, others, BERLIN, fiscal_start_month, settings, "Ann Lee")
    return {f.milestone: f for f in found}


OCT = datetime(2026, 10, 5, 10, tzinfo=UTC)
NOV = datetime(2026, 11, 2, 10, tzinfo=UTC)
LATE_NOV = datetime(2026, 11, 20, 10, tzinfo=UTC)


def test_a_reps_first_deal_is_a_first_win_ever_and_of_its_quarter() -> None:
    found = milestones(deal("d1", "12000", OCT), [])
    assert list(found) == ["first_win_ever", "first_win"]
    assert found["first_win_ever"].period == "ever"
    assert found["first_win"].period == "2026-Q4"
    assert found["first_win"].value == Decimal(12000)
    assert found["first_win"].occurred_at == OCT
    assert found["first_win_ever"].facts == {"name": "Ann Lee", "deal_id": "d1", "amount": Decimal(12000),
                                             "currency": "EUR", "period": "ever"}  # fmt: skip


def test_a_first_deal_is_not_a_personal_record() -> None:
    assert "personal_record" not in milestones(deal("d1", "12000", OCT), [])


def test_the_first_win_of_a_new_quarter_is_found_but_not_a_first_win_ever() -> None:
    jan = datetime(2027, 1, 4, 10, tzinfo=UTC)
    found = milestones(deal("d2", "100", jan), [deal("d1", "12000", OCT)])
    assert list(found) == ["first_win"]
    assert found["first_win"].period == "2027-Q1"


def test_first_win_quarters_are_fiscal() -> None:
    found = milestones(deal("d2", "100", datetime(2026, 4, 1, 9, tzinfo=UTC)),
                       [deal("d1", "100", datetime(2026, 3, 31, 9, tzinfo=UTC))], fiscal_start_month=4)
    assert found["first_win"].period == "2027-Q1"


def test_the_quarter_is_the_one_of_the_local_close() -> None:
    # 2026-09-30 22:30 UTC is already 2026-10-01 in Berlin: the first win of Q4, the record of Oct 1
    closed = datetime(2026, 9, 30, 22, 30, tzinfo=UTC)
    found = milestones(deal("d2", "500", closed), [deal("d1", "100", datetime(2026, 9, 1, tzinfo=UTC))])
    assert found["first_win"].period == "2026-Q4"
    assert found["personal_record"].period == "2026-10-01"


def test_a_second_deal_in_the_quarter_is_no_first_win() -> None:
    assert "first_win" not in milestones(deal("d2", "10", NOV), [deal("d1", "20", OCT)])


def test_a_larger_deal_than_every_earlier_one_is_a_personal_record() -> None:
    found = milestones(deal("d3", "120000", LATE_NOV), [deal("d1", "50000", OCT), deal("d2", "80000", NOV)])
    record = found["personal_record"]
    assert record.period == "2026-11-20"
    assert record.value == Decimal(120000)
    assert record.facts["previous_record"] == Decimal(80000)


def test_equalling_the_record_is_not_a_new_record() -> None:
    assert milestones(deal("d3", "80000", LATE_NOV), [deal("d2", "80000", NOV)]) == {}


def test_deals_in_other_currencies_are_not_compared() -> None:
    others = [deal("d1", "50000", OCT), deal("d2", "900000", NOV, currency="JPY")]
    assert milestones(deal("d3", "60000", LATE_NOV), others)["personal_record"].facts["previous_record"] == Decimal(
        50000)
    assert "personal_record" not in milestones(deal("d4", "60000", LATE_NOV, currency="USD"), others)


def test_deals_closed_later_do_not_count_against_an_out_of_order_deal() -> None:
    # the 50,000 deal closed first but arrives last: it is the first win ever and of the quarter
    found = milestones(deal("d1", "50000", OCT), [deal("d3", "120000", LATE_NOV), deal("d2", "80000", NOV)])
    assert list(found) == ["first_win_ever", "first_win"]


def test_an_out_of_order_record_compares_only_with_deals_closed_before_it() -> None:
    found = milestones(deal("d2", "80000", NOV), [deal("d3", "120000", LATE_NOV), deal("d1", "50000", OCT)])
    assert found["personal_record"].facts["previous_record"] == Decimal(50000)


def test_the_deal_itself_among_the_others_is_ignored() -> None:
    this = deal("d1", "50000", OCT)
    assert list(milestones(this, [this])) == ["first_win_ever", "first_win"]


def test_of_two_deals_closed_at_the_same_instant_the_smaller_id_is_first() -> None:
    a, b = deal("a", "100", OCT), deal("b", "200", OCT)
    assert list(milestones(a, [b])) == ["first_win_ever", "first_win"]
    assert list(milestones(b, [a])) == ["personal_record"]


@pytest.mark.parametrize("kind", ["first_win_ever", "first_win", "personal_record"])
def test_each_deal_milestone_can_be_disabled(kind: str) -> None:
    settings = Settings(disabled=(kind,))
    assert kind not in milestones(deal("d1", "50000", OCT), [], settings)
    assert kind not in milestones(deal("d2", "90000", datetime(2027, 1, 4, tzinfo=UTC)),
                                  [deal("d1", "50000", OCT)], settings)


# --- streak ----------------------------------------------------------------------------------------------


MON = date(2026, 11, 16)
AT = datetime(2026, 11, 23, 20, tzinfo=UTC)


def run(counts: dict[date, int], today: date, settings: Settings = DEFAULTS,
        days_off: frozenset[date] = frozenset()) -> Any:  # fmt: skip
    days = [Day(d, n) for d, n in counts.items()]
    return streak(days, today, settings, days_off, rep_id="r1", at=AT, name="Ann Lee")


def week(*counts: int, start: date = MON) -> dict[date, int]:
    return {start + timedelta(days=i): n for i, n in enumerate(counts)}


def test_five_business_days_at_the_goal_are_a_streak_named_by_its_first_day() -> None:
    found = run(week(5, 6, 5, 7, 5), MON + timedelta(days=4))
    assert (found.scope, found.scope_id, found.milestone, found.period, found.value, found.occurred_at) == (
        Scope.REP, "r1", "activity_streak", "2026-11-16", Decimal(5), AT)
    assert found.facts == {"name": "Ann Lee", "days": 5, "daily_goal": 5, "first_day": "2026-11-16",
                           "last_day": "2026-11-20"}  # fmt: skip


def test_four_days_are_not_yet_a_streak() -> None:
    assert run(week(5, 5, 5, 5), MON + timedelta(days=3)) is None


def test_a_day_one_short_of_the_goal_breaks_the_run() -> None:
    assert run(week(5, 4, 5, 5, 5, 0, 0, 5), MON + timedelta(days=7)) is None
    found = run(week(5, 4, 5, 5, 5, 0, 0, 5, 5), MON + timedelta(days=8))
    assert found.period == "2026-11-18"


def test_a_weekend_inside_a_run_neither_breaks_nor_extends_it() -> None:
    found = run(week(0, 0, 5, 5, 5, 0, 0, 5, 5), MON + timedelta(days=8))
    assert found.value == 5
    assert found.period == "2026-11-18"


def test_activities_at_the_weekend_do_not_extend_a_run() -> None:
    assert run(week(0, 5, 5, 5, 5, 9, 9), MON + timedelta(days=6)) is None


def test_a_day_off_inside_a_run_neither_breaks_nor_extends_it() -> None:
    counts = week(5, 5, 0, 5, 5)
    assert run(counts, MON + timedelta(days=4)) is None
    found = run(counts, MON + timedelta(days=4), days_off=frozenset({MON + timedelta(days=2)}))
    assert found is None  # four business days only
    found = run({**counts, MON + timedelta(days=7): 5}, MON + timedelta(days=7),
                days_off=frozenset({MON + timedelta(days=2)}))
    assert found.value == 5
    assert found.period == "2026-11-16"


def test_a_short_today_does_not_count_yet_nor_break_the_run() -> None:
    found = run(week(5, 5, 5, 5, 5, 0, 0, 2), MON + timedelta(days=7))
    assert found.value == 5
    assert found.period == "2026-11-16"


def test_a_run_that_ended_before_today_is_no_current_streak() -> None:
    assert run(week(5, 5, 5, 5, 5, 0, 0, 0, 0), MON + timedelta(days=8)) is None


def test_days_after_today_are_ignored() -> None:
    assert run(week(5, 5, 5, 5, 5), MON + timedelta(days=3)) is None


def test_a_longer_run_keeps_its_first_day_so_it_is_celebrated_once() -> None:
    six = run(week(5, 5, 5, 5, 5, 0, 0, 5), MON + timedelta(days=7))
    five = run(week(5, 5, 5, 5, 5), MON + timedelta(days=4))
    assert six.value == 6
    assert six.period == five.period


def test_entries_for_one_day_add_up() -> None:
    days = [Day(d, 3) for d in week(1, 1, 1, 1, 1)] * 2
    found = streak(days, MON + timedelta(days=4), DEFAULTS, rep_id="r1", at=AT)
    assert found is not None
    assert found.facts["name"] == "r1"


def test_the_streak_length_and_goal_come_from_the_settings() -> None:
    settings = Settings(streak_days=2, streak_daily_activities=10)
    assert run(week(9, 10), MON + timedelta(days=1), settings) is None
    assert run(week(10, 10), MON + timedelta(days=1), settings).value == 2


def test_a_disabled_streak_is_never_found() -> None:
    assert run(week(5, 5, 5, 5, 5), MON + timedelta(days=4), Settings(disabled=("activity_streak",))) is None


def test_no_days_no_streak() -> None:
    assert run({}, MON) is None


def test_a_call_at_2330_in_los_angeles_counts_for_that_local_day_not_the_utc_one() -> None:
    late = datetime(2026, 11, 20, 23, 30, tzinfo=LA)  # Saturday 07:30 in UTC
    assert activity_days([late], LA) == [Day(date(2026, 11, 20), 1)]
    moments = [datetime(2026, 11, 16 + i, 10, tzinfo=LA) for i in range(4) for _ in range(5)]
    moments += [late + timedelta(minutes=i) for i in range(5)]  # Friday's five, all after 23:30 local
    days = activity_days(moments, LA)
    found = streak(days, date(2026, 11, 20), DEFAULTS, rep_id="r1", at=late)
    assert found is not None
    assert found.period == "2026-11-16"
    assert activity_days(moments, ZoneInfo("UTC"))[-1].day == date(2026, 11, 21)


# --- leaderboard_finishes --------------------------------------------------------------------------------


CLOSE = datetime(2026, 11, 30, 23, tzinfo=UTC)


def standings(*pairs: tuple[str, str]) -> list[Standing]:
    return [Standing(rep, f"Rep {rep}", Decimal(actual)) for rep, actual in pairs]


def finishes(table: list[Standing], metric: Metric = Metric.WON_REVENUE,
             settings: Settings = DEFAULTS) -> list[tuple[str, str]]:  # fmt: skip
    found = leaderboard_finishes("team-a", "2026-11", metric, table, CLOSE, settings)
    return [(f.scope_id, f.milestone) for f in found]


def test_the_top_three_place_by_actual() -> None:
    table = standings(("r1", "10"), ("r2", "90"), ("r3", "50"), ("r4", "70"))
    assert finishes(table) == [("r2", "leaderboard_1_won_revenue"), ("r4", "leaderboard_2_won_revenue"),
                               ("r3", "leaderboard_3_won_revenue")]  # fmt: skip


def test_ties_are_broken_by_rep_id() -> None:
    table = standings(("r3", "50"), ("r2", "90"), ("r1", "50"))
    assert finishes(table) == [("r2", "leaderboard_1_won_revenue"), ("r1", "leaderboard_2_won_revenue"),
                               ("r3", "leaderboard_3_won_revenue")]  # fmt: skip
    assert finishes(list(reversed(table))) == finishes(table)


def test_reps_without_a_positive_actual_do_not_place() -> None:
    assert finishes(standings(("r1", "0"), ("r2", "5"))) == [("r2", "leaderboard_1_won_revenue")]


def test_a_finish_carries_place_metric_team_and_actual() -> None:
    [first] = leaderboard_finishes("team-a", "2026-11", Metric.DEALS_WON, standings(("r1", "7")), CLOSE, DEFAULTS)
    assert (first.scope, first.period, first.value, first.occurred_at) == (Scope.REP, "2026-11", Decimal(7), CLOSE)
    assert first.facts == {"name": "Rep r1", "place": 1, "metric": "deals_won", "team_id": "team-a",
                           "actual": Decimal(7), "period": "2026-11"}  # fmt: skip


def test_the_number_of_places_comes_from_the_settings() -> None:
    table = standings(("r1", "1"), ("r2", "2"), ("r3", "3"))
    assert len(finishes(table, settings=Settings(leaderboard_places=1))) == 1


def test_only_leaderboard_metrics_and_an_enabled_leaderboard_place() -> None:
    table = standings(("r1", "1"))
    assert finishes(table, Metric.CALLS) == []
    assert finishes(table, settings=Settings(disabled=("leaderboard",))) == []


def test_the_milestone_name_holds_the_place_and_the_metric() -> None:
    assert leaderboard_milestone(2, Metric.DEALS_WON) == "leaderboard_2_deals_won"


# --- team_largest_deal -----------------------------------------------------------------------------------


def test_the_teams_largest_deal_in_the_base_currency_wins_ties_by_deal_id() -> None:
    deals = [deal("d1", "40000", OCT), deal("d3", "120000", NOV), deal("d2", "120000", NOV),
             deal("d9", "150000", NOV, currency="USD")]  # fmt: skip
    found = team_largest_deal("team-a", "2026-Q4", deals, CLOSE, DEFAULTS, "EUR", team_name="Team A",
                              rep_names={"r1": "Ann Lee"})
    assert found is not None
    assert (found.scope, found.scope_id, found.milestone, found.period, found.value) == (
        Scope.TEAM, "team-a", "team_largest_deal", "2026-Q4", Decimal(120000))
    assert found.facts["deal_id"] == "d2"
    assert (found.facts["name"], found.facts["rep"]) == ("Team A", "Ann Lee")


def test_without_a_base_currency_every_amount_is_compared() -> None:
    found = team_largest_deal("team-a", "2026-Q4", [deal("d1", "4", OCT), deal("d2", "5", OCT, "USD")], CLOSE,
                              DEFAULTS, None)  # fmt: skip
    assert found is not None
    assert (found.facts["deal_id"], found.facts["name"], found.facts["rep"]) == ("d2", "team-a", "r1")


def test_no_deal_or_a_disabled_kind_finds_no_largest_deal() -> None:
    assert team_largest_deal("team-a", "2026-Q4", [], CLOSE, DEFAULTS, "EUR") is None
    assert team_largest_deal("team-a", "2026-Q4", [deal("d1", "5", OCT, "USD")], CLOSE, DEFAULTS, "EUR") is None
    assert team_largest_deal("team-a", "2026-Q4", [deal("d1", "5", OCT)], CLOSE,
                             Settings(disabled=("team_largest_deal",)), "EUR") is None


# --- closed_periods --------------------------------------------------------------------------------------


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def test_just_after_a_month_closes_it_and_the_latest_quarter_are_closed() -> None:
    assert closed_periods(local(2026, 12, 1, 0, 30), BERLIN, 1) == ["2026-11", "2026-Q3"]


def test_a_quarter_closes_at_local_midnight_not_a_microsecond_before() -> None:
    midnight = local(2027, 1, 1)
    assert closed_periods(midnight - timedelta(microseconds=1), BERLIN, 1) == ["2026-11", "2026-Q3"]
    assert closed_periods(midnight, BERLIN, 1) == ["2026-12", "2026-Q4"]


def test_the_close_is_the_local_one_not_utc() -> None:
    # 2026-12-31 23:30 UTC is already 2027-01-01 in Berlin, not yet in Los Angeles
    moment = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert closed_periods(moment, BERLIN, 1) == ["2026-12", "2026-Q4"]
    assert closed_periods(moment, LA, 1) == ["2026-11", "2026-Q3"]


def test_fiscal_quarters_close_with_the_fiscal_calendar() -> None:
    assert closed_periods(local(2026, 4, 1), BERLIN, 4) == ["2026-03", "2026-Q4"]
    assert closed_periods(local(2026, 7, 1), BERLIN, 4) == ["2026-06", "2027-Q1"]
    assert closed_periods(local(2026, 6, 30, 23, 59), BERLIN, 4) == ["2026-05", "2026-Q4"]
