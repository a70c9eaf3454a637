"""Action-plan settlement and suggestions, the review schedule, trends, the manager scorecard and the
forecasts of a review: pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.coaching.plan_rules import plan_status, settle, steps_for_task, title_of
from services.coaching.reviews import (
    FigureFacts,
    ForecastFacts,
    TaskFacts,
    WeeklyReview,
    forecast_line,
    headline,
    lead_figure,
    manager_card,
    review_figures,
    review_forecasts,
    reviewed_periods,
    trend,
    week_due,
)
from shared.events import Forecast, Metric, ReviewPublished

BERLIN = ZoneInfo("Europe/Berlin")
DUE = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # Friday 17:00 in Berlin


# --- plans -------------------------------------------------------------------------------------------


def test_a_step_completes_when_progress_reaches_the_target_even_if_it_is_reported_after_the_due_date() -> None:
    assert settle(Decimal(3), Decimal(3), DUE, DUE + timedelta(days=1)) == "completed"


def test_a_step_is_missed_only_once_its_due_date_has_come_without_the_target() -> None:
    assert settle(Decimal(2), Decimal(3), DUE, DUE - timedelta(seconds=1)) == "open"
    assert settle(Decimal(2), Decimal(3), DUE, DUE) == "missed"


@pytest.mark.parametrize(
    ("steps", "status"),
    [
        (["completed", "completed"], "completed"),
        (["completed", "open"], "open"),
        (["open", "missed"], "missed"),
        ([], "open"),
    ],
)
def test_a_plan_is_completed_when_every_step_is_and_missed_when_any_is(steps: list[str], status: str) -> None:
    assert plan_status(steps) == status  # type: ignore[arg-type]


def test_an_activity_shortfall_suggests_making_up_the_gap_rounded_up() -> None:
    [step] = steps_for_task("activity_shortfall", {"metric": "calls", "actual": "3", "expected": "12.50"}, DUE, BERLIN)
    assert (step.metric, step.target, step.title) == (Metric.CALLS, Decimal(10), "10 calls by Fri 27 Nov")


@pytest.mark.parametrize(
    ("rule", "evidence", "metric", "target"),
    [
        ("no_activity", {"metric": "activities"}, Metric.ACTIVITIES, Decimal(5)),
        ("stalled_pipeline", {"metric": "won_revenue"}, Metric.ACTIVITIES, Decimal(5)),
        ("forecast_short", {"metric": "won_revenue"}, Metric.ACTIVITIES, Decimal(5)),
        ("behind_pace", {"metric": "deals_won"}, Metric.DEALS_WON, Decimal(1)),
        ("behind_pace", {"metric": "won_revenue"}, Metric.MEETINGS, Decimal(3)),
        ("falling_win_rate", {"metric": "win_rate"}, Metric.MEETINGS, Decimal(2)),
    ],
)
def test_each_rule_suggests_a_step_that_can_be_tracked(
    rule: str, evidence: dict[str, str], metric: Metric, target: Decimal
) -> None:
    [step] = steps_for_task(rule, evidence, DUE, BERLIN)
    assert (step.metric, step.target, step.due_at) == (metric, target, DUE)


@pytest.mark.parametrize(
    ("rule", "metric", "target"),
    [("behind_pace", Metric.MEETINGS, Decimal(3)), ("activity_shortfall", Metric.MEETINGS, Decimal(2))],
)
def test_a_check_in_on_a_kpi_the_tenant_defined_suggests_a_step_on_a_built_in_metric(
    rule: str, metric: Metric, target: Decimal
) -> None:
    """No step tracks a KPI the tenant defined: behind pace on demos_held suggests what behind pace on any metric
    without a step of its own does (3 meetings, as on pipeline created)."""
    evidence = {"metric": "demos_held", "actual": "2", "expected": "6.00"}
    [step] = steps_for_task(rule, evidence, DUE, BERLIN)
    assert (step.metric, step.target) == (metric, target)
    assert steps_for_task(rule, evidence | {"metric": "pipeline_created"}, DUE, BERLIN)[0].metric == metric


def test_a_revenue_step_reads_as_money() -> None:
    assert title_of(Metric.WON_REVENUE, Decimal("25000"), DUE, BERLIN) == "25,000.00 won revenue by Fri 27 Nov"


# --- the review schedule -------------------------------------------------------------------------------


def test_the_review_of_the_week_that_ended_is_due_from_monday_eight_and_until_the_next_one() -> None:
    before = datetime(2026, 11, 30, 6, 59, tzinfo=UTC)  # Monday 07:59 in Berlin
    assert week_due(before, 1, 8, BERLIN) == ("2026-W47", datetime(2026, 11, 16).date())
    at = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    assert week_due(at, 1, 8, BERLIN) == ("2026-W48", datetime(2026, 11, 23).date())


def test_a_tenant_can_move_its_review_to_friday_afternoon() -> None:
    thursday = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # last Friday's review (of W46) is the latest due
    assert week_due(thursday, 5, 16, BERLIN) == ("2026-W46", datetime(2026, 11, 9).date())
    friday = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 16:00 in Berlin
    assert week_due(friday, 5, 16, BERLIN) == ("2026-W47", datetime(2026, 11, 16).date())


def test_the_first_week_of_the_year_is_labelled_by_its_iso_year() -> None:
    monday = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
    assert week_due(monday, 1, 8, BERLIN) == ("2026-W53", datetime(2026, 12, 28).date())


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        (Decimal("0.80"), Decimal("0.70"), "up"),
        (Decimal("0.70"), Decimal("0.80"), "down"),
        (Decimal("0.705"), Decimal("0.70"), "flat"),
        (Decimal("0.71"), Decimal("0.70"), "flat"),
        (Decimal("0.7101"), Decimal("0.70"), "up"),
        (Decimal("0.5"), None, "new"),
    ],
)
def test_a_trend_moves_only_beyond_one_percentage_point(
    current: Decimal, previous: Decimal | None, expected: str
) -> None:
    assert trend(current, previous) == expected


# --- the manager scorecard -------------------------------------------------------------------------------

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _task(
    ack_h: float | None, done_h: float | None, escalated: bool = False, status: str = "open", due_h: float = 48
) -> TaskFacts:
    def at(hours: float | None) -> datetime | None:
        return None if hours is None else T0 + timedelta(hours=hours)

    return TaskFacts(T0, T0 + timedelta(hours=due_h), at(ack_h), at(done_h), T0 if escalated else None, status)


def test_the_manager_scorecard_counts_and_takes_medians_of_the_handled_tasks() -> None:
    tasks = [
        _task(1, 24, status="completed"),
        _task(3, None, status="acknowledged"),
        _task(None, None, True),
        _task(5, 30, status="completed"),
    ]
    card = manager_card("mgr-1", tasks, T0 + timedelta(hours=72))
    assert (card.tasks, card.acknowledged, card.completed, card.escalated) == (4, 3, 2, 1)
    assert card.median_hours_to_ack == Decimal("3.0") and card.median_hours_to_complete == Decimal("27.0")
    assert card.open_overdue == 2  # the acknowledged one and the escalated one, both past due and not done


def test_a_manager_without_check_ins_has_no_medians() -> None:
    card = manager_card("mgr-2", [], T0)
    assert (card.tasks, card.median_hours_to_ack, card.median_hours_to_complete) == (0, None, None)


def test_the_headline_is_one_sentence_with_the_numbers() -> None:
    assert headline("Ann Lee", "2026-W47", Decimal("0.6849"), "won_revenue", "2026-Q4", 2) == (
        "Week 2026-W47 review for Ann Lee: at 68% of won revenue target for 2026-Q4, 2 open check-ins."
    )
    assert headline("Bo", "2026-W47", None, "", "", 0) == (
        "Week 2026-W47 review for Bo: without a target this period, no open check-ins."
    )


# --- the figures of a review ----------------------------------------------------------------------------

REVIEWED = datetime(2026, 11, 18, 23, 0, tzinfo=UTC)  # Thursday 19 November 00:00 in Berlin: 13 of 21 days gone


def stored(period: str, metric: str, actual: str, target: str | None) -> FigureFacts:
    return FigureFacts(period, metric, Decimal(actual), None if target is None else Decimal(target))


def test_a_review_reads_the_current_month_and_quarter_and_the_periods_before() -> None:
    assert reviewed_periods(REVIEWED, BERLIN, 1) == ["2026-11", "2026-Q4", "2026-10", "2026-Q3"]


def test_a_review_shows_a_kpi_the_tenant_defined_like_a_built_in_figure() -> None:
    figures = review_figures([
        stored("2026-11", "won_revenue", "30000", "90000"), stored("2026-11", "demos_held", "13", "42"),
        stored("2026-10", "demos_held", "30", "40"), stored("2026-11", "no_target_kpi", "5", None),
        stored("2026-09", "demos_held", "99", "10"),  # neither current nor the period before one
    ], REVIEWED, BERLIN, 1, frozenset())
    assert [(f.period, f.metric) for f in figures] == [("2026-11", "demos_held"), ("2026-11", "won_revenue")]
    demos = figures[0]
    assert (demos.attainment, demos.pace, demos.previous_period, demos.previous_attainment, demos.trend) == (
        Decimal("0.3095"), Decimal("0.5000"), "2026-10", Decimal("0.7500"), "down")
    assert figures[1].trend == "new"


def test_the_headline_leads_with_quarterly_won_revenue_else_the_first_figure() -> None:
    figures = review_figures([stored("2026-Q4", "won_revenue", "1", "10"), stored("2026-Q4", "demos_held", "1", "4")],
                             REVIEWED, BERLIN, 1, frozenset())
    lead = lead_figure(figures)
    assert lead is not None and lead.metric == "won_revenue"
    lead = lead_figure([f for f in figures if f.metric == "demos_held"])
    assert lead is not None and lead.metric == "demos_held"
    assert lead_figure([]) is None
    assert headline("Ann Lee", "2026-W47", lead.attainment, lead.metric, lead.period, 0) == (
        "Week 2026-W47 review for Ann Lee: at 25% of demos held target for 2026-Q4, no open check-ins.")


# --- the forecasts of a review (issue 22) ------------------------------------------------------------------


def outlook(weighted: str = "61500", probability: str | None = "0.2345", method: Any = "monte_carlo",
            error: str | None = "0.0121", closed: str = "50000", gap: str = "50000") -> Forecast:  # fmt: skip
    return Forecast(closed=Decimal(closed), commit=Decimal(12000), best_case=Decimal(8000), pipeline=Decimal(0),
                    weighted=Decimal(weighted), gap=Decimal(gap),
                    probability=None if probability is None else Decimal(probability), method=method,
                    error=None if error is None else Decimal(error), open_deals=2, estimated=0)


def facts(rep_id: str = "ann", period: str = "2026-Q4", target: str | None = "100000",
          forecast: Forecast | None = None, name: str | None = "Ann Lee") -> ForecastFacts:  # fmt: skip
    return ForecastFacts(rep_id, name, period, None if target is None else Decimal(target), forecast or outlook())


def test_a_reviewed_forecast_reads_as_one_sentence_with_the_numbers() -> None:
    [entry] = review_forecasts([facts()])
    assert entry.summary == (
        "Ann Lee is forecast at 61,500.00 of 100,000.00 won revenue for 2026-Q4 (61%), with a 23% chance (±1.3%)"
        " of reaching it: 50,000.00 still to win; open deals 12,000.00 commit, 8,000.00 best case, 0.00 pipeline."
    )
    assert entry.model_dump(mode="json") == {
        "rep_id": "ann", "name": "Ann Lee", "period": "2026-Q4", "target": "100000", "weighted": "61500",
        "closed": "50000", "gap": "50000", "commit": "12000", "best_case": "8000", "pipeline": "0",
        "probability": "0.2345", "method": "monte_carlo", "error": "0.0121", "open_deals": 2,
        "summary": entry.summary,
    }  # fmt: skip


def test_an_exact_probability_has_no_error_and_none_without_a_probability() -> None:
    exact = outlook(method="exact", error="0")
    [entry] = review_forecasts([facts(forecast=exact)])
    assert entry.error is None and "±" not in entry.summary and "with a 23% chance of reaching it" in entry.summary
    line = forecast_line("Bo", "2026-11", Decimal(30000), outlook(probability=None, method=None, error=None))
    assert line.startswith("Bo is forecast at 61,500.00 of 30,000.00 won revenue for 2026-11 (205%): ")


def test_a_review_shows_forecasts_with_a_target_by_rep_and_period() -> None:
    entries = review_forecasts([facts("bob"), facts("ann", "2026-Q4"), facts("ann", "2026-11", "30000"),
                                facts("cy", target=None), facts("dee", target="0"), facts("eve", name=None)])
    assert [(e.rep_id, e.period) for e in entries] == [("ann", "2026-11"), ("ann", "2026-Q4"), ("bob", "2026-Q4"),
                                                      ("eve", "2026-Q4")]
    assert entries[-1].summary.startswith("eve is forecast at")


def test_the_review_event_carries_its_forecasts_and_older_readers_ignore_them() -> None:
    review = WeeklyReview(
        review_id="r", scope="rep", scope_id="ann", name="Ann Lee", manager_id=None, week="2026-W47",
        headline="Week 2026-W47 review for Ann Lee.", figures=[], activities_week=0, activities_week_before=0,
        open_tasks=0, overdue_tasks=0, published_at=DUE, forecasts=review_forecasts([facts()]),
    )  # fmt: skip
    body = review.model_dump_json()
    assert WeeklyReview.model_validate_json(body) == review
    assert ReviewPublished.model_validate_json(body).scope_id == "ann"  # a consumer of the contract's model
