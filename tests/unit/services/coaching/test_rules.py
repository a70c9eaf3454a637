"""The six coaching rules: each at, just below and just above its thresholds, over weekends, across
zones and DST changes, with days off; and `evaluate`, which runs them in order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.coaching.model import (
    ACTIVITY_SHORTFALL,
    BEHIND_PACE,
    FALLING_WIN_RATE,
    FORECAST_SHORT,
    NO_ACTIVITY,
    RULES,
    STALLED_PIPELINE,
    ActivityLog,
    ClosedDeal,
    Figure,
    OpenDeal,
    Policy,
    RepView,
)
from services.coaching.rules import (
    activity_shortfall,
    behind_pace,
    evaluate,
    falling_win_rate,
    forecast_short,
    no_activity,
    resting,
    stalled_pipeline,
)
from shared.events import Forecast, ForecastDeal, Metric
from shared.periods import period_bounds

BERLIN = ZoneInfo("Europe/Berlin")
LA = ZoneInfo("America/Los_Angeles")
# the opening thresholds alone, so each boundary below is exact; the material gaps and the hysteresis have their
# own tests at the end, with the defaults
POLICY = Policy(pace_min_gap_share=0, activity_min_gap=0, coverage_min_gap_share=0, stale_min_deals=1,
                no_activity_days=3)
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


def local(tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=tz).astimezone(UTC)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return local(BERLIN, year, month, day, hour, minute, second)


def figure(
    metric: str = Metric.WON_REVENUE, actual: str = "0", target: str | None = "10000", period: str = "2026-W47",
    tz: ZoneInfo = BERLIN, first_seen_at: datetime = LONG_AGO,
) -> Figure:  # fmt: skip
    start, end = period_bounds(period, tz)
    return Figure(
        period=period, metric=metric, actual=Decimal(actual), target=None if target is None else Decimal(target),
        period_start=start, period_end=end, first_seen_at=first_seen_at,
    )  # fmt: skip


def rep(**changes: Any) -> RepView:
    """A view of Ann Lee; `activities` may be given as `(occurred_at, kind)` pairs (`calls`)."""
    if isinstance(changes.get("activities"), tuple):
        changes["activities"] = log(changes["activities"], changes.get("tenant_timezone", BERLIN))
    base = RepView(
        tenant="acme", rep_id="r1", name="Ann Lee", manager_id="m1", team_id="t1", timezone=BERLIN,
        tenant_timezone=BERLIN, known_since=LONG_AGO,
    )  # fmt: skip
    return replace(base, **changes)


def log(activities: tuple[tuple[datetime, str], ...], zone: ZoneInfo = BERLIN) -> ActivityLog:
    return ActivityLog.of(activities, zone)


def calls(*moments: datetime, kind: str = "call") -> tuple[tuple[datetime, str], ...]:
    return tuple((at, kind) for at in moments)


def weekdays(first: date, count: int) -> frozenset[date]:
    return frozenset(first + timedelta(days=i) for i in range(count))


# --- behind_pace -------------------------------------------------------------------------------------
# week 47 of 2026 (Mon 16 .. Fri 20 November) in Berlin: on Thursday 00:00, 3 of 5 working days have
# passed, so a target of 10,000 expects 6,000.00 by now; 0.7 of it is 4,200, 0.4 is 2,400.

THURSDAY = berlin(2026, 11, 19)


def pace(actual: str, now: datetime = THURSDAY, policy: Policy = POLICY, **changes: Any) -> Any:
    return behind_pace(rep(figures=(figure(actual=actual),), **changes), now, policy)


@pytest.mark.parametrize("actual", ["4200", "4200.01", "6000", "20000"])
def test_on_or_above_the_pace_threshold_is_not_behind(actual: str) -> None:
    assert pace(actual) is None


def test_just_below_the_pace_threshold_is_a_warning() -> None:
    finding = pace("4199.99")
    assert finding is not None
    assert (finding.rule, finding.severity) == (BEHIND_PACE, "warning")


def test_exactly_at_the_critical_line_is_still_a_warning() -> None:
    finding = pace("2400")
    assert finding is not None
    assert finding.severity == "warning"


@pytest.mark.parametrize("actual", ["2399.99", "0"])
def test_below_the_critical_line_is_critical(actual: str) -> None:
    finding = pace(actual)
    assert finding is not None
    assert finding.severity == "critical"


def test_the_pace_summary_names_rep_metric_period_and_numbers_with_the_percent_rounded_down() -> None:
    finding = pace("4199.99")
    assert finding is not None
    assert finding.summary == (
        "Ann Lee is at 69% of pace on won revenue for 2026-W47: 4,199.99 against 6,000.00 expected by now"
        " (target 10,000.00)."
    )


def test_the_pace_evidence_and_details() -> None:
    finding = pace("3000")
    assert finding is not None
    assert finding.evidence.model_dump(mode="json") == {
        "metric": "won_revenue", "actual": "3000", "expected": "6000.00", "period": "2026-W47",
    }  # fmt: skip
    assert finding.details == {"pace": "0.5000", "target": "10000", "working_share": "0.600000"}


def test_a_count_metric_reads_as_counts() -> None:
    view = rep(figures=(figure(Metric.DEALS_WON, actual="3", target="10"),))
    finding = behind_pace(view, THURSDAY, POLICY)
    assert finding is not None
    assert finding.summary == (
        "Ann Lee is at 50% of pace on deals won for 2026-W47: 3 against 6.00 expected by now (target 10)."
    )


def test_the_summary_falls_back_to_the_rep_id_without_a_name() -> None:
    finding = pace("0", name=None)
    assert finding is not None
    assert finding.summary.startswith("r1 is at 0% of pace")


def test_no_pace_check_before_the_grace_share_of_the_period() -> None:
    # half a working day of five is 0.1, the default grace share
    assert pace("0", berlin(2026, 11, 16, 11, 59, 59)) is None
    finding = pace("0", berlin(2026, 11, 16, 12))
    assert finding is not None
    assert finding.evidence.expected == Decimal("1000.00")


def test_the_grace_share_comes_from_the_policy() -> None:
    policy = POLICY.with_overrides({"pace_grace_share": "0.5"})
    assert pace("0", berlin(2026, 11, 18, 11, 59, 59), policy) is None
    assert pace("0", berlin(2026, 11, 18, 12), policy) is not None  # 2.5 of 5 working days


def test_a_target_coaching_has_just_learnt_of_waits_out_the_new_target_grace() -> None:
    grace = timedelta(seconds=POLICY.new_target_grace_s)
    just_seen = rep(figures=(figure(actual="0", first_seen_at=THURSDAY - grace + timedelta(seconds=1)),))
    assert behind_pace(just_seen, THURSDAY, POLICY) is None
    seen_long_enough = rep(figures=(figure(actual="0", first_seen_at=THURSDAY - grace),))
    assert behind_pace(seen_long_enough, THURSDAY, POLICY) is not None
    assert behind_pace(just_seen, THURSDAY, POLICY.with_overrides({"new_target_grace_s": 0})) is not None


@pytest.mark.parametrize("now", [berlin(2026, 11, 16) - timedelta(seconds=1), berlin(2026, 11, 23)])
def test_no_pace_check_outside_the_period(now: datetime) -> None:
    assert pace("0", now) is None


@pytest.mark.parametrize("target", [None, "0"])
def test_no_pace_check_without_a_target(target: str | None) -> None:
    assert behind_pace(rep(figures=(figure(target=target),)), THURSDAY, POLICY) is None


def test_metrics_outside_the_pace_metrics_are_not_checked() -> None:
    view = rep(figures=(figure(Metric.CALLS, target="100"),))
    assert behind_pace(view, THURSDAY, POLICY) is None
    policy = POLICY.with_overrides({"pace_metrics": ["calls"]})
    finding = behind_pace(view, THURSDAY, policy)
    assert finding is not None
    assert finding.evidence.metric == Metric.CALLS
    assert behind_pace(rep(figures=(figure(),)), THURSDAY, policy) is None


# --- KPIs the tenant defined (issue 22): behind_pace checks those listed in pace_metrics ----------------------

DEMOS = "demos_held"  # a KPI id: coaching knows nothing of it but its figures


def test_a_kpi_the_tenant_defined_is_behind_pace_once_listed_in_the_pace_metrics() -> None:
    view = rep(figures=(figure(DEMOS, actual="2", target="10"),))  # 2 against 6.00 expected: 0.33 of pace
    assert behind_pace(view, THURSDAY, POLICY) is None  # not listed: not checked
    policy = POLICY.with_overrides({"pace_metrics": ["won_revenue", DEMOS]})
    finding = behind_pace(view, THURSDAY, policy)
    assert finding is not None
    assert (finding.rule, finding.severity) == (BEHIND_PACE, "critical")
    assert finding.evidence.model_dump(mode="json") == {
        "metric": "demos_held", "actual": "2", "expected": "6.00", "period": "2026-W47"}
    assert finding.details == {"pace": "0.3333", "target": "10", "working_share": "0.600000"}


def test_a_kpi_on_pace_or_without_a_target_raises_nothing() -> None:
    policy = POLICY.with_overrides({"pace_metrics": [DEMOS]})
    assert behind_pace(rep(figures=(figure(DEMOS, actual="4.2", target="10"),)), THURSDAY, policy) is None
    assert behind_pace(rep(figures=(figure(DEMOS, target=None),)), THURSDAY, policy) is None


def test_a_kpi_summary_reads_its_id_as_words_and_its_numbers_plainly() -> None:
    # the example of behind_pace's docstring: November 2026, 10 of 21 working days gone on Monday the 16th
    policy = POLICY.with_overrides({"pace_metrics": [DEMOS]})
    view = rep(figures=(figure(DEMOS, actual="12.5", target="42", period="2026-11"),))
    finding = behind_pace(view, berlin(2026, 11, 16), policy)
    assert finding is not None
    assert finding.summary == (
        "Ann Lee is at 62% of pace on demos held for 2026-11: 12.5 against 20.00 expected by now (target 42).")


def test_a_kpi_figure_reads_with_thousands_separators_and_at_most_two_places_and_no_currency() -> None:
    policy = POLICY.with_overrides({"pace_metrics": ["new_logo_revenue"]})
    view = rep(figures=(figure("new_logo_revenue", actual="1234.5678", target="40000"),))
    finding = behind_pace(view, THURSDAY, policy)
    assert finding is not None
    assert finding.summary == (
        "Ann Lee is at 5% of pace on new logo revenue for 2026-W47: 1,234.57 against 24,000.00 expected by now"
        " (target 40,000).")


def test_the_worst_pace_wins_between_a_kpi_and_a_built_in_metric() -> None:
    policy = POLICY.with_overrides({"pace_metrics": ["won_revenue", DEMOS]})
    view = rep(figures=(figure(actual="3000"), figure(DEMOS, actual="1", target="10")))  # 0.5 against 0.1667
    finding = behind_pace(view, THURSDAY, policy)
    assert finding is not None
    assert finding.evidence.metric == DEMOS
    view = rep(figures=(figure(actual="0"), figure(DEMOS, actual="1", target="10")))
    finding = behind_pace(view, THURSDAY, policy)
    assert finding is not None
    assert finding.evidence.metric == Metric.WON_REVENUE


def test_no_other_rule_reads_a_kpi_the_tenant_defined() -> None:
    """activity_shortfall, stalled_pipeline, forecast_short and falling_win_rate read built-in metrics only: a
    KPI figure far behind, even listed for behind_pace, raises behind_pace and nothing else."""
    kpi = figure(DEMOS, actual="0", target="100")
    busy = calls(*(berlin(2026, 11, d, 10) for d in range(9, 19)))  # active: no no_activity either
    view = rep(figures=(kpi,), activities=busy)
    assert evaluate(view, THURSDAY, POLICY) == []
    policy = POLICY.with_overrides({"pace_metrics": [DEMOS]})
    assert [f.rule for f in evaluate(view, THURSDAY, policy)] == [BEHIND_PACE]


def test_the_pace_thresholds_come_from_the_policy() -> None:
    policy = POLICY.with_overrides({"pace_threshold": "0.5", "pace_critical_below": "0.1"})
    assert pace("3000", policy=policy) is None  # exactly 0.5
    finding = pace("2999", policy=policy)
    assert finding is not None
    assert finding.severity == "warning"
    finding = pace("599", policy=policy)
    assert finding is not None
    assert finding.severity == "critical"


def test_the_worst_pace_of_several_figures_is_reported() -> None:
    view = rep(figures=(figure(actual="3000"), figure(Metric.DEALS_WON, actual="1", target="10"),
                        figure(Metric.PIPELINE_CREATED, actual="4000")))  # fmt: skip
    finding = behind_pace(view, THURSDAY, POLICY)
    assert finding is not None
    assert finding.evidence.metric == Metric.DEALS_WON  # 1/6 of pace


def test_equal_paces_are_broken_by_metric_then_period() -> None:
    figures = (figure(Metric.WON_REVENUE, actual="0"), figure(Metric.PIPELINE_CREATED, actual="0"),
               figure(Metric.DEALS_WON, actual="0", target="10"))  # fmt: skip
    for order in (figures, figures[::-1]):
        finding = behind_pace(rep(figures=order), THURSDAY, POLICY)
        assert finding is not None
        assert finding.evidence.metric == Metric.DEALS_WON
    month = figure(actual="0", period="2026-11")
    week = figure(actual="0")
    for pair in ((month, week), (week, month)):
        finding = behind_pace(rep(figures=pair), THURSDAY, POLICY)
        assert finding is not None
        assert finding.evidence.period == "2026-11"


def test_pace_stands_still_over_the_weekend() -> None:
    # November 2026: 21 working days; from Friday 20 evening to Monday 23 00:00, 15 of them have passed
    view = rep(figures=(figure(actual="30000", target="90000", period="2026-11"),))
    found = [
        behind_pace(view, now, POLICY) for now in (berlin(2026, 11, 21), berlin(2026, 11, 22, 15), berlin(2026, 11, 23))
    ]
    assert all(f is not None and f.evidence.expected == Decimal("64285.65") for f in found)  # 90,000 x 0.714285


def test_the_documented_example_holds() -> None:
    monday = berlin(2026, 11, 16)
    view = rep(figures=(figure(actual="30000", target="90000", period="2026-11"),))
    assert behind_pace(view, monday, POLICY) is None  # 0.7000 of 42,857.10
    view = rep(figures=(figure(actual="29999", target="90000", period="2026-11"),))
    finding = behind_pace(view, monday, POLICY)
    assert finding is not None
    assert finding.summary == (
        "Ann Lee is at 69% of pace on won revenue for 2026-11: 29,999.00 against 42,857.10 expected by now"
        " (target 90,000.00)."
    )


def test_a_rep_on_leave_is_not_held_to_pace_for_the_days_off() -> None:
    view = rep(figures=(figure(actual="25000", target="90000", period="2026-11"),))
    monday = berlin(2026, 11, 16)
    assert behind_pace(view, monday, POLICY) is not None  # 25,000 of 42,857.10
    on_leave = replace(view, days_off=weekdays(date(2026, 11, 9), 5))
    assert behind_pace(on_leave, monday, POLICY) is None  # 25,000 of 28,125.00


def test_a_rep_on_leave_all_week_is_not_behind_pace() -> None:
    view = rep(figures=(figure(actual="0"),), days_off=weekdays(date(2026, 11, 16), 5))
    assert behind_pace(view, berlin(2026, 11, 20, 18), POLICY) is None


def test_pace_is_measured_in_the_tenants_zone_not_the_reps() -> None:
    # Saturday 00:30 in Berlin, Friday 15:30 in Los Angeles: the tenant's Friday is over
    view = rep(figures=(figure(actual="0", target="90000", period="2026-11"),), timezone=LA)
    finding = behind_pace(view, datetime(2026, 11, 20, 23, 30, tzinfo=UTC), POLICY)
    assert finding is not None
    assert finding.details["working_share"] == "0.714285"  # 15/21


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        pace("0", datetime(2026, 11, 19))


# --- activity_shortfall ------------------------------------------------------------------------------
# calls for November 2026 (21 working days), target 84: 4 a working day. On Monday the 23rd the window
# is the 16th..22nd, 5 working days: 20.00 expected; 0.8 of it is 16 calls, 0.4 is 8.

MONDAY_23 = berlin(2026, 11, 23, 10)


def week_of_calls(count: int, kind: str = "call") -> tuple[tuple[datetime, str], ...]:
    return calls(*(berlin(2026, 11, 16 + i % 5, 9 + i // 5) for i in range(count)), kind=kind)


def shortfall(count: int, now: datetime = MONDAY_23, policy: Policy = POLICY, **changes: Any) -> Any:
    view = rep(figures=(figure(Metric.CALLS, target="84", period="2026-11"),), activities=week_of_calls(count))
    return activity_shortfall(replace(view, **changes), now, policy)


@pytest.mark.parametrize("count", [16, 17, 30])
def test_enough_calls_are_no_shortfall(count: int) -> None:
    assert shortfall(count) is None


def test_just_below_the_activity_threshold_is_a_warning() -> None:
    finding = shortfall(15)
    assert finding is not None
    assert (finding.rule, finding.severity) == (ACTIVITY_SHORTFALL, "warning")
    assert (
        finding.summary == "Ann Lee logged 15 calls in the last 7 days against 20.00 expected for 2026-11 (target 84)."
    )
    assert finding.evidence.model_dump(mode="json") == {
        "metric": "calls", "actual": "15", "expected": "20.00", "period": "2026-11",
    }  # fmt: skip


@pytest.mark.parametrize(("count", "severity"), [(8, "warning"), (7, "critical"), (0, "critical")])
def test_an_activity_shortfall_is_critical_below_the_critical_line(count: int, severity: str) -> None:
    finding = shortfall(count)
    assert finding is not None
    assert finding.severity == severity


def test_one_activity_reads_in_the_singular() -> None:
    finding = shortfall(1)
    assert finding is not None
    assert "logged 1 call in the last 7 days" in finding.summary


def test_only_activities_of_the_metrics_kind_count() -> None:
    view = rep(figures=(figure(Metric.CALLS, target="84", period="2026-11"),),
               activities=week_of_calls(15) + week_of_calls(10, kind="email"))  # fmt: skip
    finding = activity_shortfall(view, MONDAY_23, POLICY)
    assert finding is not None
    assert finding.evidence.actual == Decimal(15)


def test_the_activities_metric_counts_every_kind() -> None:
    policy = POLICY.with_overrides({"activity_metrics": ["activities"]})
    view = rep(figures=(figure(Metric.ACTIVITIES, target="84", period="2026-11"),),
               activities=week_of_calls(10) + week_of_calls(6, kind="email"))  # fmt: skip
    assert activity_shortfall(view, MONDAY_23, policy) is None
    assert activity_shortfall(view, MONDAY_23, POLICY) is None  # not an activity metric by default
    fewer = log(week_of_calls(10) + week_of_calls(5, kind="email"))
    finding = activity_shortfall(replace(view, activities=fewer), MONDAY_23, policy)
    assert finding is not None
    assert "logged 15 activities" in finding.summary


def test_today_and_days_before_the_window_do_not_count() -> None:
    view = rep(figures=(figure(Metric.CALLS, target="84", period="2026-11"),),
               activities=week_of_calls(15) + calls(berlin(2026, 11, 23, 8), berlin(2026, 11, 15, 23, 59)))  # fmt: skip
    finding = activity_shortfall(view, MONDAY_23, POLICY)
    assert finding is not None
    assert finding.evidence.actual == Decimal(15)


def test_the_window_is_counted_in_the_tenants_zone() -> None:
    # 23:30 UTC on Sunday is Monday 00:30 in Berlin (today: not counted) but Sunday in Los Angeles
    sunday_night = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    view = rep(figures=(figure(Metric.CALLS, target="84", period="2026-11"),), timezone=LA,
               activities=week_of_calls(15) + calls(sunday_night))  # fmt: skip
    finding = activity_shortfall(view, MONDAY_23, POLICY)
    assert finding is not None
    assert finding.evidence.actual == Decimal(15)
    # and the first Monday 00:30 of the window is inside it
    early = replace(view, activities=log(week_of_calls(15) + calls(datetime(2026, 11, 15, 23, 30, tzinfo=UTC))))
    assert activity_shortfall(early, MONDAY_23, POLICY) is None


def test_days_off_in_the_window_lower_what_is_expected() -> None:
    off = frozenset({date(2026, 11, 19), date(2026, 11, 20)})
    finding = shortfall(10, days_off=off)
    assert finding is not None
    assert finding.evidence.expected == Decimal("13.26")  # 84 x 3/19
    assert shortfall(11, days_off=off) is None


def test_a_weekend_does_not_change_what_is_expected() -> None:
    saturday, monday = berlin(2026, 11, 21, 10), berlin(2026, 11, 23, 10)
    on_saturday = rep(figures=(figure(Metric.CALLS, target="84", period="2026-11"),),
                      activities=calls(*(berlin(2026, 11, 16 + i % 5, 9) for i in range(10))))  # fmt: skip
    first, second = activity_shortfall(on_saturday, saturday, POLICY), activity_shortfall(on_saturday, monday, POLICY)
    assert first is not None
    assert second is not None
    assert first.evidence.expected == second.evidence.expected == Decimal("20.00")


def test_only_the_part_of_the_window_inside_the_period_is_expected() -> None:
    # 2026-12 has 23 working days; on Wednesday the 2nd only Tuesday the 1st of the window is in it
    view = rep(figures=(figure(Metric.CALLS, target="92", period="2026-12"),))
    finding = activity_shortfall(view, berlin(2026, 12, 2, 10), POLICY)
    assert finding is not None
    assert finding.evidence.expected == Decimal("4.00")


def test_a_new_activity_target_waits_out_the_new_target_grace() -> None:
    fresh = figure(Metric.CALLS, target="84", period="2026-11", first_seen_at=MONDAY_23 - timedelta(hours=1))
    assert activity_shortfall(rep(figures=(fresh,)), MONDAY_23, POLICY) is None


def test_nothing_is_expected_below_one_activity() -> None:
    view = rep(figures=(figure(Metric.CALLS, target="4", period="2026-11"),))  # 4 x 5/21 = 0.95
    assert activity_shortfall(view, MONDAY_23, POLICY) is None


def test_a_rep_known_for_less_than_the_window_is_not_checked() -> None:
    window_start = berlin(2026, 11, 16)
    assert shortfall(0, known_since=window_start + timedelta(seconds=1)) is None
    assert shortfall(0, known_since=window_start) is not None


def test_the_activity_window_and_thresholds_come_from_the_policy() -> None:
    policy = POLICY.with_overrides({"activity_window_days": 14})
    finding = shortfall(20, policy=policy)
    assert finding is not None
    assert finding.evidence.expected == Decimal("40.00")
    assert "in the last 14 days" in finding.summary
    assert shortfall(15, policy=POLICY.with_overrides({"activity_threshold": "0.75"})) is None


def test_the_window_follows_local_midnights_across_the_dst_change() -> None:
    # Monday 2026-10-26, after the clocks went back: the window is 19..25 October, local midnights
    view = rep(figures=(figure(Metric.CALLS, target="88", period="2026-10"),))  # 22 working days: 20.00
    now = berlin(2026, 10, 26, 10)
    inside = calls(datetime(2026, 10, 18, 22, 30, tzinfo=UTC), datetime(2026, 10, 25, 22, 30, tzinfo=UTC))
    outside = calls(datetime(2026, 10, 18, 21, 30, tzinfo=UTC), datetime(2026, 10, 25, 23, 30, tzinfo=UTC))
    finding = activity_shortfall(replace(view, activities=log(inside + outside)), now, POLICY)
    assert finding is not None
    assert (finding.evidence.actual, finding.evidence.expected) == (Decimal(2), Decimal("20.00"))


# --- stalled_pipeline --------------------------------------------------------------------------------

MONDAY_16 = berlin(2026, 11, 16)


def deal(deal_id: str, amount: str = "10000", touched_days_ago: float = 1, currency: str = "EUR",
         now: datetime = MONDAY_16) -> OpenDeal:  # fmt: skip
    return OpenDeal(deal_id, Decimal(amount), currency, now - timedelta(days=touched_days_ago))


def quarter(actual: str = "60000", target: str = "100000") -> Figure:
    return figure(actual=actual, target=target, period="2026-Q4")


def stalled(deals: Iterable[OpenDeal], figures: Iterable[Figure] = (), policy: Policy = POLICY, **changes: Any) -> Any:
    view = rep(open_deals=tuple(deals), figures=tuple(figures), base_currency="EUR", **changes)
    return stalled_pipeline(view, MONDAY_16, policy)


def test_a_deal_untouched_for_exactly_the_stale_days_is_stale() -> None:
    finding = stalled([deal("d-1", touched_days_ago=14)])
    assert finding is not None
    assert (finding.rule, finding.severity) == (STALLED_PIPELINE, "warning")
    assert finding.summary == "Ann Lee has 1 open deal untouched for 14 days or more: d-1."
    assert finding.details == {"stale_deal_ids": ["d-1"], "stale_amount": "10000", "days": 14}
    assert finding.evidence.model_dump(mode="json") == {
        "metric": "pipeline_created", "actual": "1", "expected": "0", "period": "2026-11",
    }  # fmt: skip


def test_a_deal_touched_a_second_later_is_not_stale() -> None:
    assert stalled([deal("d-1", touched_days_ago=14 - 1 / 86400)]) is None


def test_the_summary_names_the_oldest_three_stale_deals() -> None:
    deals = [deal("d-9", touched_days_ago=20), deal("d-3", touched_days_ago=30), deal("d-7", touched_days_ago=40),
             deal("d-1", touched_days_ago=15), deal("d-2", touched_days_ago=2)]  # fmt: skip
    finding = stalled(deals)
    assert finding is not None
    assert finding.summary == "Ann Lee has 4 open deals untouched for 14 days or more: d-7, d-3, d-9 and 1 more."
    assert finding.details["stale_deal_ids"] == ["d-1", "d-3", "d-7", "d-9"]
    assert finding.severity == "warning"  # d-2 is alive


def test_two_stale_deals_are_named_with_and() -> None:
    finding = stalled([deal("b", touched_days_ago=20), deal("a", touched_days_ago=30)])
    assert finding is not None
    assert finding.summary.endswith(": a and b.")
    assert finding.severity == "warning"  # every deal is stale, but fewer than 3


def test_every_open_deal_stale_from_three_on_is_critical() -> None:
    finding = stalled([deal(f"d-{i}", touched_days_ago=20 + i) for i in range(3)])
    assert finding is not None
    assert finding.severity == "critical"


def test_the_stale_days_come_from_the_policy() -> None:
    policy = POLICY.with_overrides({"stale_deal_days": 30})
    assert stalled([deal("d-1", touched_days_ago=29)], policy=policy) is None
    finding = stalled([deal("d-1", touched_days_ago=30)], policy=policy)
    assert finding is not None
    assert finding.details["days"] == 30


def test_the_stale_finding_period_is_the_month_in_the_tenants_zone() -> None:
    now = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # December in Berlin, November in Los Angeles
    deals = (deal("d-1", touched_days_ago=20, now=now),)
    for tz, month in [(BERLIN, "2026-12"), (LA, "2026-11")]:
        finding = stalled_pipeline(rep(open_deals=deals, tenant_timezone=tz), now, POLICY)
        assert finding is not None
        assert finding.evidence.period == month


# coverage: 40,000 still to win of 100,000 in 2026-Q4, 3x needs 120,000 of open pipeline


@pytest.mark.parametrize("amount", ["120000", "500000"])
def test_enough_pipeline_for_the_remaining_target_is_no_finding(amount: str) -> None:
    assert stalled([deal("d-1", amount)], [quarter()]) is None


def test_just_below_the_coverage_multiple_is_a_warning() -> None:
    finding = stalled([deal("d-1", "119999.99")], [quarter()])
    assert finding is not None
    assert finding.severity == "warning"
    assert finding.evidence.model_dump(mode="json") == {
        "metric": "won_revenue", "actual": "119999.99", "expected": "120000.00", "period": "2026-Q4",
    }  # fmt: skip
    assert finding.details == {"coverage": "2.99", "remaining": "40000"}


def test_the_coverage_summary_reads_as_documented() -> None:
    finding = stalled([deal("d-1", "50000"), deal("d-2", "40000")], [quarter()])
    assert finding is not None
    assert finding.summary == (
        "Ann Lee has 90,000.00 of open pipeline against 40,000.00 still to win for 2026-Q4: 2.25x coverage,"
        " below the 3x needed (120,000.00)."
    )


@pytest.mark.parametrize(("amount", "severity"), [("40000", "warning"), ("39999.99", "critical"), ("0", "critical")])
def test_pipeline_below_the_remaining_target_itself_is_critical(amount: str, severity: str) -> None:
    finding = stalled([deal("d-1", amount)], [quarter()])
    assert finding is not None
    assert finding.severity == severity


def test_no_open_deal_at_all_is_critical_coverage() -> None:
    finding = stalled([], [quarter()])
    assert finding is not None
    assert finding.severity == "critical"
    assert finding.evidence.actual == Decimal(0)


def test_coverage_and_stale_deals_are_one_finding() -> None:
    finding = stalled([deal("d-1", "50000", touched_days_ago=20), deal("d-2", "40000")], [quarter()])
    assert finding is not None
    assert finding.evidence.metric == Metric.WON_REVENUE
    assert finding.details["stale_deal_ids"] == ["d-1"]
    assert finding.details["stale_amount"] == "50000"
    assert finding.summary.endswith(", and 1 open deal untouched for 14 days or more: d-1.")


def test_deals_in_another_currency_are_not_summed() -> None:
    finding = stalled([deal("d-1", "100000"), deal("d-2", "100000", currency="USD")], [quarter()])
    assert finding is not None
    assert finding.evidence.actual == Decimal("100000")
    view = rep(open_deals=(deal("d-1", "100000"), deal("d-2", "100000", currency="USD")), figures=(quarter(),))
    assert stalled_pipeline(view, MONDAY_16, POLICY) is None  # base currency unknown: all of them


def test_no_coverage_check_once_the_target_is_met() -> None:
    assert stalled([], [quarter(actual="100000")]) is None
    assert stalled([], [quarter(actual="120000")]) is None


def test_no_coverage_check_before_the_grace_share() -> None:
    view = rep(figures=(quarter(),), base_currency="EUR")
    assert stalled_pipeline(view, berlin(2026, 10, 2), POLICY) is None  # 1 of 66 working days
    assert stalled_pipeline(view, berlin(2026, 10, 12), POLICY) is not None  # 7 of 66


def test_coverage_is_checked_against_the_period_with_the_most_left_to_win() -> None:
    month = figure(actual="10000", target="30000", period="2026-11")
    finding = stalled([deal("d-1", "100000")], [month, quarter()])
    assert finding is not None
    assert finding.evidence.period == "2026-Q4"
    assert finding.details["remaining"] == "40000"


def test_a_new_revenue_target_waits_out_the_new_target_grace_before_coverage_is_checked() -> None:
    fresh = figure(actual="60000", target="100000", period="2026-Q4", first_seen_at=MONDAY_16 - timedelta(days=1))
    assert stalled([], [fresh]) is None


def test_the_coverage_multiple_comes_from_the_policy() -> None:
    assert stalled([deal("d-1", "90000")], [quarter()], POLICY.with_overrides({"coverage_multiple": "2"})) is None
    finding = stalled([deal("d-1", "90000")], [quarter()], POLICY.with_overrides({"coverage_multiple": "2.5"}))
    assert finding is not None
    assert "below the 2.5x needed (100,000.00)" in finding.summary


# --- falling_win_rate --------------------------------------------------------------------------------

NOW = berlin(2026, 11, 16, 10)


def closed(won: int, lost: int, days_ago: float) -> list[ClosedDeal]:
    at = NOW - timedelta(days=days_ago)
    return [ClosedDeal(True, at)] * won + [ClosedDeal(False, at)] * lost


def win_rate(recent: tuple[int, int], baseline: tuple[int, int] = (6, 4), policy: Policy = POLICY) -> Any:
    deals = closed(*recent, days_ago=10) + closed(*baseline, days_ago=60)
    return falling_win_rate(rep(closed_deals=tuple(deals)), NOW, policy)


@pytest.mark.parametrize("recent", [(9, 11), (5, 6), (3, 2)])  # 45% (the line), 45.4%, 60%
def test_a_win_rate_on_or_above_the_line_is_not_falling(recent: tuple[int, int]) -> None:
    assert win_rate(recent) is None


def test_a_win_rate_just_below_the_line_is_a_warning() -> None:
    finding = win_rate((4, 5))  # 44.4% against 60%: the line is 45%
    assert finding is not None
    assert (finding.rule, finding.severity) == (FALLING_WIN_RATE, "warning")
    assert finding.summary == "Ann Lee won 4 of 9 deals (44%) in the last 30 days, against 60% over the 90 days before."
    assert finding.evidence.model_dump(mode="json") == {
        "metric": "win_rate", "actual": "0.4444", "expected": "0.6000", "period": "2026-11",
    }  # fmt: skip


@pytest.mark.parametrize(("recent", "severity"), [((3, 7), "warning"), ((2, 8), "critical"), ((0, 5), "critical")])
def test_a_win_rate_below_half_the_baseline_is_critical(recent: tuple[int, int], severity: str) -> None:
    finding = win_rate(recent)
    assert finding is not None
    assert finding.severity == severity


def test_too_few_closed_deals_in_either_window_say_nothing() -> None:
    assert win_rate((0, 4)) is None
    assert win_rate((0, 5), baseline=(6, 3)) is None
    assert win_rate((0, 5), baseline=(6, 4)) is not None


def test_the_windows_are_half_open_and_follow_the_policy() -> None:
    deals = closed(0, 5, days_ago=30) + closed(6, 4, days_ago=120) + closed(0, 50, days_ago=0)
    assert falling_win_rate(rep(closed_deals=tuple(deals)), NOW, POLICY) is not None
    too_old = closed(0, 5, days_ago=30) + closed(6, 4, days_ago=120 + 1 / 86400)
    assert falling_win_rate(rep(closed_deals=tuple(too_old)), NOW, POLICY) is None
    policy = POLICY.with_overrides({"win_rate_recent_days": 7, "win_rate_min_recent": 1, "win_rate_min_baseline": 1})
    assert win_rate((0, 1), baseline=(1, 0), policy=policy) is None  # the "recent" deals are 10 days old
    assert falling_win_rate(rep(closed_deals=tuple(closed(0, 1, 3) + closed(1, 0, 10))), NOW, policy) is not None


def test_the_drop_thresholds_come_from_the_policy() -> None:
    policy = POLICY.with_overrides({"win_rate_drop": "0.5", "win_rate_critical_drop": "0.8"})
    assert win_rate((3, 7), policy=policy) is None  # 30% against a line of 30%
    finding = win_rate((2, 8), policy=policy)
    assert finding is not None
    assert finding.severity == "warning"  # 20% is not below 12%
    finding = win_rate((1, 9), policy=policy)
    assert finding is not None
    assert finding.severity == "critical"
    assert "(10%)" in finding.summary


def test_win_rate_percentages_are_rounded_down() -> None:
    finding = win_rate((1, 4), baseline=(2, 1))  # baseline 66.7%
    assert finding is None  # too few in the baseline
    finding = win_rate((1, 4), baseline=(8, 4))
    assert finding is not None
    assert "against 66% over" in finding.summary


# --- no_activity -------------------------------------------------------------------------------------
# On Monday 2026-11-16 the 3 most recent working days are Wed 11, Thu 12 and Fri 13: silence since
# Wednesday 00:00 is a warning; since Friday the 6th (6 working days) it is critical.

MONDAY_MORNING = berlin(2026, 11, 16, 9)


def silence(*moments: datetime, now: datetime = MONDAY_MORNING, policy: Policy = POLICY, **changes: Any) -> Any:
    return no_activity(rep(activities=calls(*moments), **changes), now, policy)


def test_silence_over_the_last_working_days_is_a_warning() -> None:
    finding = silence(berlin(2026, 11, 10, 23, 59, 59))
    assert finding is not None
    assert (finding.rule, finding.severity) == (NO_ACTIVITY, "warning")
    assert finding.summary == "Ann Lee has logged no activity for 3 working days (since 2026-11-11)."
    assert finding.evidence.model_dump(mode="json") == {
        "metric": "activities", "actual": "0", "expected": "3", "period": "2026-11",
    }  # fmt: skip


def test_an_activity_at_the_start_of_the_window_is_enough() -> None:
    assert silence(berlin(2026, 11, 11)) is None


def test_a_silent_weekend_is_not_silence() -> None:
    assert silence(berlin(2026, 11, 13, 16)) is None
    assert silence(berlin(2026, 11, 13, 16), now=berlin(2026, 11, 17, 9)) is None  # Mon, Fri, Thu


def test_a_tenant_holiday_does_not_count_as_a_silent_day() -> None:
    tuesday = berlin(2026, 11, 10, 14)
    assert silence(tuesday) is not None
    assert silence(tuesday, days_off=frozenset({date(2026, 11, 13)})) is None  # Thu, Wed, Tue


def test_a_rep_back_from_leave_is_not_silent_for_the_leave() -> None:
    friday_before = berlin(2026, 11, 6, 15)
    assert silence(friday_before, days_off=weekdays(date(2026, 11, 9), 5)) is None


def test_silence_over_twice_the_working_days_is_critical() -> None:
    finding = silence(berlin(2026, 11, 5, 15))
    assert finding is not None
    assert finding.severity == "critical"
    assert finding.summary == "Ann Lee has logged no activity for 6 working days (since 2026-11-06)."
    finding = silence(berlin(2026, 11, 6, 0))
    assert finding is not None
    assert finding.severity == "warning"


def test_a_rep_who_never_logged_anything_is_critical() -> None:
    finding = silence()
    assert finding is not None
    assert finding.severity == "critical"
    assert finding.details["last_activity_at"] is None


def test_no_silence_is_counted_before_coaching_knew_the_rep() -> None:
    window_start = berlin(2026, 11, 11)
    assert silence(known_since=window_start + timedelta(seconds=1)) is None
    finding = silence(known_since=window_start)
    assert finding is not None
    assert finding.severity == "warning"  # not known for the 6 working days


def test_silence_is_counted_in_the_reps_own_zone() -> None:
    # Monday 07:00 UTC: Monday 08:00 in Berlin, still Sunday 23:00 in Los Angeles; both windows start on
    # Wednesday the 11th, at local midnight: 23:00 UTC on the 10th in Berlin, 08:00 UTC on the 11th in LA
    now = datetime(2026, 11, 16, 7, tzinfo=UTC)
    activity = datetime(2026, 11, 11, 7, 30, tzinfo=UTC)
    assert silence(activity, now=now) is None
    finding = silence(activity, now=now, timezone=LA)
    assert finding is not None
    assert finding.summary.endswith("(since 2026-11-11).")


def test_the_silence_window_starts_at_a_dst_correct_midnight() -> None:
    # Monday 2026-10-26 (CET): the window starts Wednesday 21 October 00:00 CEST = 22:00 UTC on the 20th
    now = berlin(2026, 10, 26, 9)
    assert silence(datetime(2026, 10, 20, 22, 0, tzinfo=UTC), now=now) is None
    assert silence(datetime(2026, 10, 20, 21, 59, 59, tzinfo=UTC), now=now) is not None


def test_the_silent_days_come_from_the_policy() -> None:
    thursday = berlin(2026, 11, 12, 15)
    policy = POLICY.with_overrides({"no_activity_days": 1})
    finding = silence(thursday, policy=policy)
    assert finding is not None
    assert finding.summary == "Ann Lee has logged no activity for 1 working day (since 2026-11-13)."
    assert silence(thursday, policy=POLICY.with_overrides({"no_activity_days": 4})) is None


# --- forecast_short -----------------------------------------------------------------------------------
# 2026-Q4 in Berlin, on Monday 16 November: target 100,000, 50,000 won (a gap of 50,000); open deals expected
# in the quarter: commit 12,000 and best case 8,000 (20,000), weighted 61,500.


def outlook(closed: str = "50000", commit: str = "12000", best_case: str = "8000", pipeline: str = "0",
            weighted: str = "61500", target: str = "100000", probability: str | None = "0.2345",
            method: Any = "monte_carlo", error: str | None = "0.0121",
            deals: tuple[ForecastDeal, ...] = ()) -> Forecast:  # fmt: skip
    return Forecast(
        closed=Decimal(closed), commit=Decimal(commit), best_case=Decimal(best_case), pipeline=Decimal(pipeline),
        weighted=Decimal(weighted), gap=max(Decimal(target) - Decimal(closed), Decimal(0)),
        probability=None if probability is None else Decimal(probability), method=method,
        error=None if error is None else Decimal(error), open_deals=2, estimated=1, deals=list(deals),
    )  # fmt: skip


def closing(deal_id: str, amount: str, probability: str, close: datetime, category: Any = "commit") -> ForecastDeal:
    return ForecastDeal(deal_id=deal_id, rep_id="r1", amount=Decimal(amount), probability=Decimal(probability),
                        basis="crm", forecast_category=category, expected_close_at=close)


D7 = closing("d-7", "12000", "0.6", berlin(2026, 12, 10))
D3 = closing("d-3", "8000", "0.4", datetime(2026, 12, 14, 23, 30, tzinfo=UTC), "best_case")  # the 15th in Berlin


def short(forecast: Forecast | None = None, now: datetime = MONDAY_16, policy: Policy = POLICY,
          actual: str = "50000", target: str | None = "100000", period: str = "2026-Q4",
          first_seen_at: datetime = LONG_AGO) -> Any:  # fmt: skip
    """forecast_short over one won-revenue figure carrying `forecast` (the default one unless given)."""
    held = figure(actual=actual, target=target, period=period, first_seen_at=first_seen_at)
    return forecast_short(rep(figures=(replace(held, forecast=forecast or outlook()),)), now, policy)


def test_a_forecast_short_of_target_that_the_open_deals_cannot_close_is_critical() -> None:
    finding = short(outlook(deals=(D7, D3)))
    assert finding is not None
    assert (finding.rule, finding.severity) == (FORECAST_SHORT, "critical")
    assert finding.summary == (
        "Ann Lee is forecast at 61,500.00 of 100,000.00 won revenue for 2026-Q4 (a 23% chance of reaching it):"
        " 50,000.00 still to win, and the open deals expected to close in 2026-Q4 total 20,000.00."
    )
    assert finding.evidence.model_dump(mode="json") == {
        "metric": "won_revenue", "actual": "61500", "expected": "100000", "period": "2026-Q4",
    }  # fmt: skip


def test_the_forecast_finding_carries_the_gap_and_the_deals_that_could_close_it() -> None:
    finding = short(outlook(deals=(D7, D3)))
    assert finding is not None
    assert finding.details == {
        "target": "100000", "closed": "50000", "weighted": "61500", "gap": "50000", "open": "20000",
        "commit": "12000", "best_case": "8000", "pipeline": "0", "coverage": "1", "needed": "50000.00",
        "probability": "0.2345", "method": "monte_carlo", "error": "0.0121", "open_deals": 2, "estimated": 1,
        "undated": 0,
        "deals": [
            {"deal_id": "d-7", "rep_id": "r1", "amount": "12000", "probability": "0.6", "basis": "crm",
             "forecast_category": "commit", "expected_close_at": "2026-12-09T23:00:00Z"},
            {"deal_id": "d-3", "rep_id": "r1", "amount": "8000", "probability": "0.4", "basis": "crm",
             "forecast_category": "best_case", "expected_close_at": "2026-12-14T23:30:00Z"},
        ],
        "closing_deals": ["d-7 (12,000.00 at 60% by 2026-12-10)", "d-3 (8,000.00 at 40% by 2026-12-15)"],
    }  # fmt: skip


@pytest.mark.parametrize(("weighted", "found"), [("100000", False), ("100000.01", False), ("99999.99", True)])
def test_a_forecast_that_reaches_the_target_is_no_finding(weighted: str, found: bool) -> None:
    assert (short(outlook(weighted=weighted)) is not None) == found


@pytest.mark.parametrize(("commit", "found"), [("50000", False), ("60000", False), ("49999.99", True)])
def test_open_deals_of_exactly_the_gap_are_enough_at_the_default_coverage(commit: str, found: bool) -> None:
    assert (short(outlook(commit=commit, best_case="0", pipeline="0")) is not None) == found


def test_every_open_category_counts_against_the_gap() -> None:
    assert short(outlook(commit="20000", best_case="20000", pipeline="10000")) is None  # 50,000: the gap
    finding = short(outlook(commit="20000", best_case="20000", pipeline="9999.99"))
    assert finding is not None
    assert finding.details["open"] == "49999.99"


def test_a_tenants_coverage_rule_makes_a_covered_gap_a_warning_below_the_multiple() -> None:
    policy = POLICY.with_overrides({"forecast_coverage": "3"})  # 3 x 50,000 = 150,000 needed
    assert short(outlook(commit="100000", best_case="50000", weighted="95000"), policy=policy) is None
    finding = short(outlook(commit="100000", best_case="49999.99", weighted="95000"), policy=policy)
    assert finding is not None
    assert finding.severity == "warning"  # winning every open deal would close the gap
    assert finding.summary.endswith(
        "the open deals expected to close in 2026-Q4 total 149,999.99, below the 3x needed (150,000.00).")
    assert finding.details["needed"] == "150000.00"
    finding = short(outlook(commit="49999.99", best_case="0", weighted="95000"), policy=policy)
    assert finding is not None
    assert finding.severity == "critical"  # below the gap itself
    assert "below the" not in finding.summary


def test_a_coverage_of_zero_turns_the_rule_off() -> None:
    assert short(outlook(commit="0", best_case="0"), policy=POLICY.with_overrides({"forecast_coverage": 0})) is None


def test_without_a_probability_the_summary_names_no_chance() -> None:
    finding = short(outlook(probability=None, method=None, error=None))
    assert finding is not None
    assert "chance" not in finding.summary
    assert finding.summary.startswith("Ann Lee is forecast at 61,500.00 of 100,000.00 won revenue for 2026-Q4:")


@pytest.mark.parametrize("target", [None, "0"])
def test_no_forecast_finding_without_a_target(target: str | None) -> None:
    assert short(outlook(target="0"), target=target) is None


def test_no_forecast_finding_for_a_figure_without_a_forecast() -> None:
    assert forecast_short(rep(figures=(quarter(),)), MONDAY_16, POLICY) is None


def test_no_forecast_finding_for_a_period_that_has_ended_or_not_begun() -> None:
    assert short(period="2026-Q3") is None
    assert short(period="2027-Q1") is None
    assert short(now=berlin(2027, 1, 1)) is None  # the quarter's own end


def test_forecast_short_respects_the_grace_of_every_target_rule() -> None:
    assert short(first_seen_at=MONDAY_16 - timedelta(days=1)) is None  # new_target_grace_s: 3 days
    assert short(first_seen_at=MONDAY_16 - timedelta(days=3)) is not None
    assert short(now=berlin(2026, 10, 2)) is None  # 1 of 66 working days: before pace_grace_share
    assert short(now=berlin(2026, 10, 12)) is not None  # 7 of 66


def test_of_two_short_forecasts_the_one_with_the_most_still_to_win_is_named() -> None:
    month = replace(figure(actual="10000", target="30000", period="2026-11"),
                    forecast=outlook(closed="10000", commit="0", best_case="0", weighted="10000", target="30000"))
    quarter_ = replace(quarter(actual="50000"), forecast=outlook())
    finding = forecast_short(rep(figures=(month, quarter_)), MONDAY_16, POLICY)
    assert finding is not None
    assert finding.evidence.period == "2026-Q4"


def test_a_won_revenue_forecast_only_is_read() -> None:
    deals_won = replace(figure(Metric.DEALS_WON, actual="1", target="10", period="2026-Q4"), forecast=outlook())
    assert forecast_short(rep(figures=(deals_won,)), MONDAY_16, POLICY) is None


def test_the_forecast_coverage_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="forecast_coverage"):
        POLICY.with_overrides({"forecast_coverage": "-1"})


# --- evaluate ----------------------------------------------------------------------------------------


def test_evaluate_returns_every_finding_in_rule_order() -> None:
    now = berlin(2026, 11, 23, 10)
    short = outlook(closed="0", commit="1000", best_case="0", weighted="500", target="10000")
    view = rep(
        figures=(replace(figure(actual="0", period="2026-11"), forecast=short),
                 figure(Metric.CALLS, target="84", period="2026-11")),
        open_deals=(deal("d-1", "1000", touched_days_ago=30, now=now),),
        closed_deals=tuple(closed(6, 4, days_ago=60) + closed(0, 5, days_ago=3)),
        base_currency="EUR",
    )
    findings = evaluate(view, now, POLICY)
    # the thin pipeline is stalled_pipeline's coverage finding: forecast_short does not ask it again...
    assert [f.rule for f in findings] == [r for r in RULES if r != FORECAST_SHORT]
    # ...unless its check-in is live already
    assert [f.rule for f in evaluate(view, now, POLICY, live={FORECAST_SHORT: "critical"})] == list(RULES)


def test_evaluate_finds_nothing_wrong_with_a_rep_on_track() -> None:
    now = berlin(2026, 11, 23, 10)
    view = rep(
        figures=(figure(actual="90000", target="90000", period="2026-11"),),
        activities=calls(berlin(2026, 11, 20, 12)),
        open_deals=(deal("d-1", now=now),),
    )
    assert evaluate(view, now, POLICY) == []


# --- only material gaps, and hysteresis (issue 18, item 2) -----------------------------------------------
DEFAULTS = Policy()


def test_a_gap_below_the_material_share_of_the_target_is_no_pace_finding() -> None:
    # 6,000 expected of 10,000: 0.7 is 4,200. With a 5 % minimum gap (500) a shortfall of 0.7 pace always
    # clears it here; a 25 % minimum gap (2,500) does not for 4,199.99 (gap 1,800.01)
    assert pace("4199.99", policy=DEFAULTS) is not None
    assert pace("4199.99", policy=DEFAULTS.with_overrides({"pace_min_gap_share": "0.25"})) is None
    assert pace("3500", policy=DEFAULTS.with_overrides({"pace_min_gap_share": "0.25"})) is not None  # gap 2,500


def test_a_handful_of_missing_activities_is_no_shortfall() -> None:
    # 20.00 calls expected: 15 is short by 5 (>= 3): a finding; with a minimum gap of 6 it is not
    assert shortfall(15, policy=DEFAULTS) is not None
    assert shortfall(15, policy=DEFAULTS.with_overrides({"activity_min_gap": 6})) is None
    # the example: 1 call against 2.27 expected (a gap of 1.27) is no check-in by default
    view = rep(figures=(figure(Metric.CALLS, target="9", period="2026-11"),), activities=week_of_calls(1))
    assert activity_shortfall(view, MONDAY_23, POLICY) is not None  # without the minimum gap it was one
    assert activity_shortfall(view, MONDAY_23, DEFAULTS) is None


def test_one_stale_deal_alone_is_no_finding_by_default_two_are() -> None:
    assert stalled([deal("d-1", touched_days_ago=20)], policy=DEFAULTS) is None
    finding = stalled([deal("d-1", touched_days_ago=20), deal("d-2", touched_days_ago=15)], policy=DEFAULTS)
    assert finding is not None and finding.details["stale_deal_ids"] == ["d-1", "d-2"]


def test_a_coverage_shortfall_below_the_material_share_is_no_finding() -> None:
    # 40,000 to win, 3x needs 120,000; 10 % of the 100,000 target is 10,000
    assert stalled([deal("d-1", "110000")], [quarter()], policy=DEFAULTS) is not None  # 10,000 short
    assert stalled([deal("d-1", "110000.01")], [quarter()], policy=DEFAULTS) is None


def test_a_live_check_in_holds_until_its_recovery_level_and_none_opens_between_the_two() -> None:
    view = lambda actual: rep(figures=(figure(actual=actual),))  # noqa: E731 - 6,000 expected by THURSDAY
    rules = lambda actual, live=None: [f.rule for f in evaluate(view(actual), THURSDAY, DEFAULTS, live)]  # noqa: E731
    assert BEHIND_PACE in rules("4100")  # 0.68 of pace: opens
    assert BEHIND_PACE not in rules("4500")  # 0.75: nothing opens ...
    assert BEHIND_PACE in rules("4500", {BEHIND_PACE: "warning"})  # ... but a live one holds
    assert BEHIND_PACE not in rules("4800", {BEHIND_PACE: "warning"})  # 0.8: recovered


def test_a_finding_that_holds_only_by_the_recovery_level_never_outranks_the_live_check_in() -> None:
    # silent since Thursday the 12th: 2 working days (Fri 13, Mon 16; today is Tue 17): below the 5 that open
    # a finding, but a live warning holds (the last working day has no activity); it never turns critical
    # through the recovery window (2 x 1 day)
    view = rep(activities=calls(berlin(2026, 11, 12, 9)))
    now = berlin(2026, 11, 17, 9)
    assert no_activity(view, now, DEFAULTS) is None
    [held] = evaluate(view, now, DEFAULTS, {NO_ACTIVITY: "warning"})
    assert (held.rule, held.severity) == (NO_ACTIVITY, "warning")
    assert evaluate(replace(view, activities=log(calls(berlin(2026, 11, 16, 9)))), now, DEFAULTS,
                    {NO_ACTIVITY: "warning"}) == []  # an activity on the last working day: recovered


def test_a_recovery_level_on_the_wrong_side_of_its_threshold_means_no_hysteresis() -> None:
    policy = DEFAULTS.with_overrides({"pace_threshold": "0.9"})  # above the default recovery level 0.8
    assert policy.holding().pace_threshold == Decimal("0.9")


def test_a_rep_without_pipeline_gets_one_pipeline_check_in_not_two_but_a_live_forecast_check_in_stays() -> None:
    held = replace(figure(actual="50000", target="100000", period="2026-Q4", first_seen_at=LONG_AGO),
                   forecast=outlook())
    view = rep(figures=(held,))  # no open deals: the coverage check of stalled_pipeline finds it too
    rules_found = [f.rule for f in evaluate(view, MONDAY_16, POLICY)]
    assert STALLED_PIPELINE in rules_found and FORECAST_SHORT not in rules_found
    kept = [f.rule for f in evaluate(view, MONDAY_16, POLICY, live={FORECAST_SHORT: "critical"})]
    assert STALLED_PIPELINE in kept and FORECAST_SHORT in kept


# --- resting: nothing new is raised on a rep's day off --------------------------------------------------


@pytest.mark.parametrize(("moment", "days_off", "expected"), [
    (berlin(2026, 12, 23, 10), frozenset(), False),  # a Wednesday
    (berlin(2026, 12, 26, 10), frozenset(), True),  # a Saturday
    (berlin(2026, 12, 25, 10), frozenset({date(2026, 12, 25)}), True),  # Christmas Day, a tenant holiday
    (berlin(2026, 12, 28, 10), frozenset({date(2026, 12, 28)}), True),  # the rep's time off
    (berlin(2026, 12, 28, 0, 30), frozenset({date(2026, 12, 27)}), False),  # Monday already, in Berlin
])
def test_a_rep_rests_on_weekends_holidays_and_time_off_in_their_own_zone(moment: datetime, days_off: frozenset[date],
                                                                           expected: bool) -> None:
    assert resting(rep(days_off=days_off), moment) is expected


def test_a_rep_in_another_zone_rests_by_their_own_calendar_day() -> None:
    friday_night_utc = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)  # Saturday 00:30 in Berlin, Friday in New York
    assert resting(rep(), friday_night_utc)
    assert not resting(rep(timezone=ZoneInfo("America/New_York")), friday_night_utc)
