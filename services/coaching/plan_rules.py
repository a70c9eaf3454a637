"""Action plans, pure: the steps a task suggests, and when a step or a plan is settled.

A step measures one metric of the rep's own events from the moment the plan was made until the
step's due date: `calls`, `emails`, `meetings`, `activities` count logged activities (by kind;
`activities` any kind), `deals_won` counts deals won and `won_revenue` sums their amounts. A
step is `completed` the moment its progress reaches the target (even after the due date has
passed, if the events arrive late but happened in time), `missed` once the due date has passed
without it. A plan is completed when every step is, missed as soon as one step is missed.

Steps track built-in metrics only (`PLAN_METRICS`): a check-in on a KPI the tenant defined
(behind pace on ``demos_held``) suggests what one on a metric without a step of its own does.

Example: a task "Ann Lee logged 3 calls in the last 7 days against 12.50 expected" made on a
Tuesday suggests the step "13 calls by Friday" — the shortfall, rounded up, due at the end of
the rep's third working day on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal

from services.coaching.model import ACTIVITY_SHORTFALL, BEHIND_PACE, FORECAST_SHORT, NO_ACTIVITY, STALLED_PIPELINE
from shared.events import Metric

PLAN_METRICS = (Metric.CALLS, Metric.EMAILS, Metric.MEETINGS, Metric.ACTIVITIES, Metric.DEALS_WON,
                Metric.WON_REVENUE)
KIND_OF: Mapping[Metric, str | None] = {Metric.CALLS: "call", Metric.EMAILS: "email", Metric.MEETINGS: "meeting",
                                        Metric.ACTIVITIES: None}
StepStatus = Literal["open", "completed", "missed"]
_BUILT_IN = frozenset(Metric)


@dataclass(frozen=True, slots=True)
class StepDraft:
    title: str
    metric: Metric
    target: Decimal
    due_at: datetime


def settle(progress: Decimal, target: Decimal, due_at: datetime, now: datetime) -> StepStatus:
    """A step's status: completed once progress reaches the target, missed once due without it."""
    if progress >= target:
        return "completed"
    return "missed" if now >= due_at else "open"


def plan_status(steps: Iterable[StepStatus]) -> StepStatus:
    statuses = list(steps)
    if "missed" in statuses:
        return "missed"
    return "completed" if statuses and all(s == "completed" for s in statuses) else "open"


def title_of(metric: Metric, target: Decimal, due_at: datetime, zone: Any) -> str:
    """"20 calls by Fri 27 Nov" — the step as a rep reads it (in the rep's zone)."""
    day = due_at.astimezone(zone).strftime("%a %d %b")
    if metric is Metric.WON_REVENUE:
        return f"{target.quantize(Decimal('0.01')):,} won revenue by {day}"
    amount = f"{target.normalize():f}"
    return f"{amount} {metric.value.replace('_', ' ')} by {day}"


def steps_for_task(rule: str, evidence: Mapping[str, Any], due_at: datetime,
                   zone: Any) -> Sequence[StepDraft]:
    """The steps a check-in suggests, due by `due_at` (the caller picks a working day).

    activity shortfall: make up the gap (expected - actual, rounded up) in the metric that slipped;
    no activity: 5 activities; behind pace on deals won: one more deal won; on revenue or pipeline:
    3 meetings (the way back runs through conversations), and so on any other metric, a KPI the tenant
    defined among them (``demos_held``: no step can track it); stalled pipeline and a forecast short of the
    target (both need pipeline that can close): 5 activities."""
    named = str(evidence.get("metric", Metric.ACTIVITIES))
    slipped = Metric(named) if named in _BUILT_IN else None  # None: a KPI the tenant defined, no step tracks it
    if rule == ACTIVITY_SHORTFALL and slipped is not None and slipped in KIND_OF:
        gap = (Decimal(str(evidence["expected"])) - Decimal(str(evidence["actual"]))).to_integral_value(ROUND_CEILING)
        metric, target = slipped, max(gap, Decimal(1))
    elif rule == BEHIND_PACE and slipped is Metric.DEALS_WON:
        metric, target = Metric.DEALS_WON, Decimal(1)
    elif rule == BEHIND_PACE:
        metric, target = Metric.MEETINGS, Decimal(3)
    elif rule in (NO_ACTIVITY, STALLED_PIPELINE, FORECAST_SHORT):
        metric, target = Metric.ACTIVITIES, Decimal(5)
    else:
        metric, target = Metric.MEETINGS, Decimal(2)
    return [StepDraft(title_of(metric, target, due_at, zone), metric, target, due_at)]


def default_due(now: datetime) -> datetime:
    """When a step given without a due date is due: a week on."""
    return now + timedelta(days=7)
