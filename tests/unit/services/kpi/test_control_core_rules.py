"""The control room's target and roster decisions (services/kpi/dashboard/control_core_rules.py): which cells an
admin changed, a targets CSV checked line by line, the copy of last period's targets, a move's effective moment."""

from __future__ import annotations

import doctest
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.kpi.dashboard import control_core_rules
from services.kpi.dashboard.control_core_rules import (
    CopyPlan,
    NewTarget,
    TargetKey,
    amount,
    cell_name,
    changed_cells,
    check_csv,
    copy_plan,
    move_moment,
    previous_period,
)

HEADER = "scope,scope_id,metric,period,value\n"
ROSTER = {"reps": {"ana", "bo"}, "teams": {"north"}, "metrics": {"won_revenue", "calls", "demos_held"}}
BERLIN = ZoneInfo("Europe/Berlin")


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(control_core_rules).failed == 0


# --- the table's cells -------------------------------------------------------------------------------------


def _cell(scope: str, scope_id: str, metric: str, now: str, was: str = "") -> dict[str, str]:
    name = cell_name(TargetKey(scope, scope_id, metric))
    return {name: now, "was:" + name.removeprefix("v:"): was}


def test_only_the_cells_whose_value_changed_become_targets() -> None:
    form = {"csrf": "x", "period": "2026-Q4", **_cell("rep", "ana", "won_revenue", "120000", "100000"),
            **_cell("rep", "bo", "won_revenue", "90000", "90000"), **_cell("team", "north", "calls", "", ""),
            **_cell("team", "north", "won_revenue", "500000", "")}
    targets, problems = changed_cells(form, "2026-Q4")
    assert problems == []
    assert sorted((t.scope, t.scope_id, t.metric, t.value) for t in targets) == [
        ("rep", "ana", "won_revenue", Decimal(120000)), ("team", "north", "won_revenue", Decimal(500000))]
    assert {t.period for t in targets} == {"2026-Q4"}


def test_the_same_number_written_another_way_is_no_change() -> None:
    assert changed_cells(_cell("rep", "ana", "won_revenue", "90000.00", "90000"), "2026-Q4") == ([], [])


def test_a_rep_id_with_a_colon_survives_the_cell_name() -> None:
    targets, _ = changed_cells(_cell("rep", "crm:42", "calls", "40"), "2026-11")
    assert [(t.scope_id, t.metric) for t in targets] == [("crm:42", "calls")]


@pytest.mark.parametrize(("typed", "reason"), [("ten", "'ten' is not a number"), ("-5", "must not be negative"),
                                               ("1.23456", "more than 4 decimal places"), ("NaN", "not a number")])
def test_a_cell_that_is_not_a_target_is_named_with_its_reason(typed: str, reason: str) -> None:
    targets, problems = changed_cells(_cell("rep", "ana", "won_revenue", typed, "100"), "2026-Q4")
    assert targets == []
    assert len(problems) == 1 and problems[0].startswith("rep ana, won_revenue: ") and reason in problems[0]


def test_an_emptied_cell_is_refused_as_no_event_removes_a_target() -> None:
    _, problems = changed_cells(_cell("rep", "ana", "won_revenue", "", "100"), "2026-Q4")
    assert problems == ["rep ana, won_revenue: a target cannot be removed, only changed (set it to 0)"]


def test_an_amount_may_be_typed_with_spaces_as_thousands_separators() -> None:
    assert amount("1 200 000") == (Decimal(1200000), None)
    assert amount("0") == (Decimal(0), None)


# --- the CSV ---------------------------------------------------------------------------------------------------


def test_a_good_csv_gives_every_target() -> None:
    text = HEADER + "rep,ana,won_revenue,2026-Q4,120000\nteam,north,calls,2026-11,400\n\nrep,bo,demos_held,2026,12.5\n"
    targets, problems = check_csv(text, **ROSTER)
    assert problems == []
    assert targets == [NewTarget("rep", "ana", "won_revenue", "2026-Q4", Decimal(120000)),
                       NewTarget("team", "north", "calls", "2026-11", Decimal(400)),
                       NewTarget("rep", "bo", "demos_held", "2026", Decimal("12.5"))]


def test_every_bad_line_is_named_by_its_number_and_nothing_is_kept() -> None:
    text = (HEADER
            + "rep,ana,won_revenue,2026-Q4,120000\n"  # line 2: good
            + "squad,ana,won_revenue,2026-Q4,1\n"  # 3: unknown scope
            + "rep,ana,won_revenue,2026-Q4,ten\n"  # 4: not a number
            + "rep,zoe,won_revenue,2026-Q4,1\n"  # 5: unknown rep
            + "team,south,won_revenue,2026-Q4,1\n"  # 6: unknown team
            + "rep,bo,revenue,2026-Q4,1\n"  # 7: bad metric
            + "rep,bo,calls,2026-Q5,1\n"  # 8: bad period
            + "rep,bo,calls,2026-Q4,-3\n"  # 9: negative
            + "rep,ana,won_revenue,2026-Q4,5\n"  # 10: the same target as line 2
            + "rep,ana,calls\n")  # 11: too few fields
    targets, problems = check_csv(text, **ROSTER)
    assert targets == []
    assert problems == [
        "line 3: scope 'squad' is not rep or team",
        "line 4: value 'ten' is not a number",
        "line 5: no active rep 'zoe' on the roster",
        "line 6: no team 'south'",
        "line 7: metric 'revenue' is not a metric of this tenant",
        "line 8: period '2026-Q5' is not a period such as 2026-Q4, 2026-11, 2026-W48 or 2026",
        "line 9: value '-3' must not be negative",
        "line 10: the same target as line 2 (rep ana, won_revenue, 2026-Q4)",
        "line 11: expected 5 fields (scope,scope_id,metric,period,value), got 3",
    ]


def test_a_file_without_the_header_is_refused_at_line_one() -> None:
    _, problems = check_csv("rep,ana,won_revenue,2026-Q4,1\n", **ROSTER)
    assert problems[0].startswith("line 1: the header must be scope,scope_id,metric,period,value")


def test_a_header_alone_is_no_upload() -> None:
    assert check_csv(HEADER, **ROSTER) == ([], ["the file holds a header and no targets"])


def test_a_byte_order_mark_and_windows_line_ends_are_read() -> None:
    targets, problems = check_csv("\ufeff" + HEADER.replace("\n", "\r\n") + "rep,ana,calls,2026-Q4,40\r\n", **ROSTER)
    assert problems == [] and len(targets) == 1


# --- copying the previous period ----------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "before"), [("2027-Q1", "2026-Q4"), ("2026-Q3", "2026-Q2"), ("2026-03", "2026-02"),
                                               ("2026-W01", "2025-W52"), ("2026", "2025")])
def test_the_previous_period_is_of_the_same_kind(label: str, before: str) -> None:
    assert previous_period(label) == before


def test_a_copy_keeps_what_is_set_and_skips_who_left() -> None:
    ana_won, ana_calls = TargetKey("rep", "ana", "won_revenue"), TargetKey("rep", "ana", "calls")
    north, gone = TargetKey("team", "north", "won_revenue"), TargetKey("rep", "zoe", "won_revenue")
    plan = copy_plan([(ana_won, Decimal(100)), (ana_calls, Decimal(40)), (north, Decimal(500)), (gone, Decimal(7))],
                     {ana_calls}, "2026-Q4", reps={"ana"}, teams={"north"})
    assert plan == CopyPlan([NewTarget("rep", "ana", "won_revenue", "2026-Q4", Decimal(100)),
                             NewTarget("team", "north", "won_revenue", "2026-Q4", Decimal(500))], kept=1, skipped=1)


# --- a team move's moment -----------------------------------------------------------------------------------

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def test_a_move_today_is_dated_now_and_one_on_a_past_day_at_its_local_midnight() -> None:
    assert move_moment(date(2026, 12, 7), BERLIN, now=NOW, newest_version=None) == NOW
    assert move_moment(date(2026, 12, 1), BERLIN, now=NOW, newest_version=datetime(2026, 11, 2, tzinfo=UTC)) == \
        datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def test_a_move_the_events_cannot_say_is_refused_with_why() -> None:
    with pytest.raises(ValueError, match="in the future"):
        move_moment(date(2026, 12, 8), BERLIN, now=NOW, newest_version=None)
    with pytest.raises(ValueError, match="not after this rep's last roster change"):
        move_moment(date(2026, 12, 1), BERLIN, now=NOW, newest_version=datetime(2026, 12, 3, tzinfo=UTC))
