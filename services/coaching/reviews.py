"""Weekly reviews and the manager scorecard, pure.

A review is due once a week per tenant, at `review_weekday` / `review_hour` of the tenant's zone
(Monday 08:00 by default), and covers the ISO week that ended before it: "2026-W48" is reviewed on
Monday 30 November 2026 at 08:00. Each rep and each team gets one digest per week: its figures of
the current month and quarter with a target (`review_figures`: built-in metrics and KPIs the tenant
defined alike) with attainment, pace and the trend against the period before (`up`/`down` by more
than one percentage point of attainment, else `flat`; `new` without one), its activities this week
and the week before, its open and overdue check-ins; its headline leads with won revenue of the
quarter when there is such a figure (`lead_figure`). A team digest also
carries its manager's scorecard (below), so managers are reviewed by the same standard.

Manager scorecard, over the check-ins created in a period for reps the manager manages: how many,
how many acknowledged and completed, how many escalated, how many still open past due, and the
median hours from creation to acknowledgement and to completion.

Forecasts (issue 22): per rep of the digest (the rep, or each member of the team) whose won-revenue
figure of the current month or quarter has a target > 0 and carries kpi's forecast, the forecast against
the target, the chance of reaching it (with its error when kpi estimated it by Monte Carlo), the open
deals by category and what is still to win, each with one sentence (`forecast_line`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from shared.events import Forecast, ManagerCard, Metric, ReviewFigure, ReviewForecast, ReviewPublished
from shared.periods import local_midnight, period_bounds, period_of
from shared.workdays import working_share

Trend = Literal["up", "down", "flat", "new"]
FLAT_WITHIN = Decimal("0.01")  # one percentage point of attainment
HOUR = Decimal(3600)
KINDS = ("month", "quarter")  # the periods a review shows
_RATIO = Decimal("0.0001")


# The review's forecasts are part of the published event (`shared.events.ReviewForecast`, issue 22).
WeeklyReview = ReviewPublished


@dataclass(frozen=True, slots=True)
class ForecastFacts:
    """What a review needs of one stored won-revenue figure with a forecast."""

    rep_id: str
    name: str | None
    period: str
    target: Decimal | None
    forecast: Forecast


@dataclass(frozen=True, slots=True)
class FigureFacts:
    """What a review needs of one stored figure of its scope (the latest kpi reported)."""

    period: str
    metric: str  # a built-in `Metric`, or the id of a KPI the tenant defined
    actual: Decimal
    target: Decimal | None


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What the scorecard needs of one check-in."""

    created_at: datetime
    due_at: datetime
    acknowledged_at: datetime | None
    completed_at: datetime | None
    escalated_at: datetime | None
    status: str


def review_moment(week_start: date, weekday: int, hour: int, zone: ZoneInfo) -> datetime:
    """The instant of the review in the ISO week starting `week_start` (a Monday)."""
    day = week_start + timedelta(days=weekday - 1)
    return local_midnight(day, zone) + timedelta(hours=hour)


def week_due(now: datetime, weekday: int, hour: int, zone: ZoneInfo) -> tuple[str, date]:
    """The ISO week (label and its Monday) of the latest review due at `now`: the week before the
    latest review moment that has passed. A review looks back; one missed (the service was down at the
    moment) is still due until the next moment passes, so it goes out late rather than never."""
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    moment_passed = now >= review_moment(monday, weekday, hour, zone)
    reviewed = monday - timedelta(days=7 if moment_passed else 14)
    iso = reviewed.isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}", reviewed


def trend(current: Decimal | None, previous: Decimal | None) -> Trend:
    if current is None or previous is None:
        return "new"
    if current - previous > FLAT_WITHIN:
        return "up"
    if previous - current > FLAT_WITHIN:
        return "down"
    return "flat"


def reviewed_periods(now: datetime, zone: ZoneInfo, fiscal: int) -> list[str]:
    """The labels whose figures a review at ``now`` reads: the current month and quarter, then the period
    before each (for the trend)."""
    current = [period_of(kind, now, zone, fiscal) for kind in KINDS]
    return [p.label for p in current] + [_before(p.label, p.kind, zone, fiscal) for p in current]


def review_figures(figures: Sequence[FigureFacts], now: datetime, zone: ZoneInfo, fiscal: int,
                   days_off: frozenset[date]) -> list[ReviewFigure]:
    """The review's figures, by period and metric: each of the current month and quarter with a target > 0,
    whatever its metric (a built-in one or a KPI the tenant defined), with its attainment, its pace (actual
    against target x the elapsed share of the period's working days, ``days_off`` excluded) and its trend
    against the same metric's attainment in the period before (``figures`` holds both: `reviewed_periods`).

    Example: demos_held for 2026-11, 12 of a target of 40, half the working days gone, 30 of 40 in 2026-10:
    attainment 0.3000, pace 0.6000, previous 0.7500, trend `down`.
    """
    current = {period_of(kind, now, zone, fiscal).label: kind for kind in KINDS}
    found = {(f.period, f.metric): f for f in figures}
    out = []
    for f in sorted(figures, key=lambda f: (f.period, f.metric)):
        if f.period not in current or f.target is None or f.target <= 0:
            continue
        start, end = period_bounds(f.period, zone, fiscal)
        before = _before(f.period, current[f.period], zone, fiscal)
        prev = found.get((before, f.metric))
        attainment = (f.actual / f.target).quantize(_RATIO)
        expected = f.target * working_share(start, end, now, zone, days_off)
        previous = (prev.actual / prev.target).quantize(_RATIO) if prev and prev.target else None
        out.append(ReviewFigure(
            metric=f.metric, period=f.period, actual=f.actual, target=f.target, attainment=attainment,
            pace=(f.actual / expected).quantize(_RATIO) if expected else None,
            previous_period=before if prev else None, previous_attainment=previous,
            trend=trend(attainment, previous)))
    return out


def lead_figure(figures: Sequence[ReviewFigure]) -> ReviewFigure | None:
    """The figure a headline leads with: won revenue of the quarter, else the first one (perhaps a KPI the
    tenant defined), else none."""
    return next((f for f in figures if f.metric == Metric.WON_REVENUE and "Q" in f.period),
                figures[0] if figures else None)


def _before(label: str, kind: str, zone: ZoneInfo, fiscal: int) -> str:
    """The label of the period of ``kind`` just before ``label``."""
    start, _ = period_bounds(label, zone, fiscal)
    return period_of(kind, start - timedelta(microseconds=1), zone, fiscal).label


def _median_hours(spans: Sequence[timedelta]) -> Decimal | None:
    if not spans:
        return None
    seconds = statistics.median(Decimal(int(s.total_seconds())) for s in spans)
    return (Decimal(seconds) / HOUR).quantize(Decimal("0.1"))


def manager_card(manager_id: str, tasks: Sequence[TaskFacts], now: datetime) -> ManagerCard:
    acked = [t.acknowledged_at - t.created_at for t in tasks if t.acknowledged_at is not None]
    done = [t.completed_at - t.created_at for t in tasks if t.completed_at is not None]
    return ManagerCard(
        manager_id=manager_id, tasks=len(tasks), acknowledged=len(acked), completed=len(done),
        escalated=sum(1 for t in tasks if t.escalated_at is not None),
        open_overdue=sum(1 for t in tasks if t.status in ("open", "acknowledged") and t.due_at <= now),
        median_hours_to_ack=_median_hours(acked), median_hours_to_complete=_median_hours(done),
    )


def headline(name: str, week: str, attainment: Decimal | None, metric: str, period: str, open_tasks: int) -> str:
    """One sentence a chat bot can post as is."""
    standing = (f"at {(attainment * 100).quantize(Decimal('1'), rounding='ROUND_DOWN')}% of {metric.replace('_', ' ')}"
                f" target for {period}") if attainment is not None else "without a target this period"
    tasks = "no open check-ins" if not open_tasks else f"{open_tasks} open check-in{'s' if open_tasks > 1 else ''}"
    return f"Week {week} review for {name}: {standing}, {tasks}."


def review_forecasts(facts: Sequence[ForecastFacts]) -> list[ReviewForecast]:
    """The review's forecasts: those with a target > 0 (as its figures), by rep and period.

    Example: Ann Lee, 2026-Q4, target 100,000, won 50,000, commit 12,000 and best case 8,000 open, weighted
    61,500, a 0.2345 chance by Monte Carlo with an error of 0.0121: "Ann Lee is forecast at 61,500.00 of
    100,000.00 won revenue for 2026-Q4 (61%), with a 23% chance (±1.3%) of reaching it: 50,000.00 still to
    win; open deals 12,000.00 commit, 8,000.00 best case, 0.00 pipeline."
    """
    out = []
    for f in sorted(facts, key=lambda f: (f.rep_id, f.period)):
        if f.target is None or f.target <= 0:
            continue
        c = f.forecast
        error = c.error if c.method == "monte_carlo" else None
        out.append(ReviewForecast(
            rep_id=f.rep_id, name=f.name, period=f.period, target=f.target, weighted=c.weighted, closed=c.closed,
            gap=c.gap, commit=c.commit, best_case=c.best_case, pipeline=c.pipeline, probability=c.probability,
            method=c.method, error=error, open_deals=c.open_deals,
            summary=forecast_line(f.name or f.rep_id, f.period, f.target, c)))
    return out


def forecast_line(name: str, period: str, target: Decimal, forecast: Forecast) -> str:
    """One sentence a chat bot can post as is (percentages rounded down, an error rounded up)."""
    share = _whole_percent(forecast.weighted / target)
    chance = ""
    if forecast.probability is not None:
        error = ""
        if forecast.method == "monte_carlo" and forecast.error is not None:
            error = f" (±{(forecast.error * 100).quantize(Decimal('0.1'), rounding=ROUND_CEILING)}%)"
        chance = f", with a {_whole_percent(forecast.probability)}% chance{error} of reaching it"
    return (f"{name} is forecast at {_money(forecast.weighted)} of {_money(target)} won revenue for {period}"
            f" ({share}%){chance}: {_money(forecast.gap)} still to win; open deals {_money(forecast.commit)} commit,"
            f" {_money(forecast.best_case)} best case, {_money(forecast.pipeline)} pipeline.")


def _whole_percent(ratio: Decimal) -> Decimal:
    return (ratio * 100).quantize(Decimal(1), rounding=ROUND_DOWN)  # 69.5% must not read "70%"


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"
