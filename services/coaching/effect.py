"""Did it help? Coaching effectiveness: what happened after each check-in, against findings that got none. Pure.

Every check-in opens a *follow-up*; so does a finding that got no check-in (the comparison group): one
inside its rule's cool-down, one the material-gap thresholds leave out but the pre-issue-18 thresholds
would have raised, or any finding of a rep in the tenant's holdout (`Policy.holdout_share`: reps who get
no check-ins at all, switched on for exactly this measurement). A follow-up records the rep's pace on the
finding's metric (actual / expected by now, for the finding's period: `pace_of`) when it opened and 7, 14
and 30 working days later (the rep's working days: `milestone_day`), and when the finding recovered (its
rule, at its recovery level, found nothing any more).

`summarise` compares the two groups per rule, manager, team, response (what the manager did: an action
plan, completed, acknowledged, nothing) or quarter, with honest statistics: counts, the recovery rate with
its Wilson 95 % interval, the median working days to recover and the median pace change at each
milestone; "not enough data" below a minimum sample. It says what happened after check-ins, not that they
caused it: the comparison group is not randomised unless a holdout is used.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from services.coaching.model import Figure, RepView
from shared.workdays import next_working_day, working_share

__all__ = [
    "MILESTONES",
    "NAMESPACE",
    "FollowUp",
    "Stats",
    "comparison_id",
    "due_milestones",
    "follow_up",
    "in_holdout",
    "milestone_day",
    "pace_of",
    "stats",
    "summarise",
    "wilson",
]

NAMESPACE = uuid.UUID("5d0f7b2e-3c41-4a8e-9b67-1e2f3a4b5c6d")  # never change: comparison ids derive from it
MILESTONES = (7, 14, 30)  # working days after the check-in (or the comparison finding)
Kind = Literal["check_in", "comparison"]
GROUPINGS = ("rule", "manager", "team", "response", "quarter")
_PACE = Decimal("0.0001")
_Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval


@dataclass(frozen=True, slots=True)
class FollowUp:
    """One check-in or comparison finding and what followed it."""

    subject_id: str  # the task id of a check-in; `comparison_id` of a comparison finding
    kind: Kind
    reason: str | None  # a comparison's: "cooldown", "below_threshold" or "holdout"
    rep_id: str
    manager_id: str | None
    team_id: str | None
    rule: str
    metric: str
    period: str
    opened_at: datetime
    pace: Mapping[int, Decimal | None] = field(default_factory=dict)  # by milestone (0: when it opened)
    recovered_at: datetime | None = None
    recovered_days: int | None = None  # working days from opening to recovery
    response: str = "none"  # a check-in's: "plan", "completed", "acknowledged", "none"; "comparison" otherwise
    measured: int = 0  # the last milestone measured (its pace may be None: no target then)


FOLLOW_UP_DAYS = 90  # after this many calendar days a follow-up is what it is: a finding not recovered by then


def follow_up(view: RepView, rule: str, metric: str, period: str, subject_id: str, kind: Kind, reason: str | None,
              now: datetime) -> FollowUp:
    """A follow-up opened now, with the rep's pace on the finding's metric at this moment."""
    return FollowUp(subject_id, kind, reason, view.rep_id, view.manager_id, view.team_id, rule, metric, period, now,
                    {0: pace_of(view, metric, period, now)})


def in_holdout(tenant: str, rep_id: str, share: Decimal) -> bool:
    """Whether the rep is in the tenant's holdout: a stable hash of (tenant, rep) below ``share`` of the range,
    so the same reps stay in it from one evaluation to the next.

    >>> in_holdout("acme", "ann", Decimal(0)), in_holdout("acme", "ann", Decimal(1))
    (False, True)
    """
    if share <= 0:
        return False
    point = uuid.uuid5(NAMESPACE, f"holdout|{tenant}|{rep_id}").int / 2**128
    return Decimal(point) < share


def comparison_id(tenant: str, rep_id: str, rule: str, now: datetime, window: timedelta) -> str:
    """Stable per (tenant, rep, rule, window): at most one comparison finding per rule and rep in each
    ``window`` (the rule's cool-down), however often it is found."""
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    return str(uuid.uuid5(NAMESPACE, f"{tenant}|{rep_id}|{rule}|{(now - epoch) // window}"))


def pace_of(view: RepView, metric: str, period: str, now: datetime) -> Decimal | None:
    """The rep's pace on ``metric`` in ``period`` at ``now``: actual / (target x the elapsed share of the
    period's working days, the rep's days off excluded), to 4 places; None without a figure with a target,
    before any working day elapsed, or after the period (the pace of a closed period is its attainment).

    Example: target 90,000, 0.5 of the working days gone, actual 36,000: pace 0.8000.
    """
    figure = _figure(view.figures, metric, period)
    if figure is None or not figure.target:
        return None
    share = working_share(figure.period_start, figure.period_end, now, view.tenant_timezone, view.days_off)
    if share <= 0:
        return None
    return (figure.actual / (figure.target * share)).quantize(_PACE, rounding=ROUND_HALF_EVEN)


def _figure(figures: Iterable[Figure], metric: str, period: str) -> Figure | None:
    return next((f for f in figures if f.metric == metric and f.period == period), None)


def milestone_day(opened: datetime, days: int, zone: ZoneInfo, days_off: frozenset[date]) -> date:
    """The local day (in ``zone``, the rep's) ``days`` working days after the one ``opened`` falls on."""
    day = opened.astimezone(zone).date()
    for _ in range(days):
        day = next_working_day(day, days_off)
    return day


def due_milestones(follow_up: FollowUp, now: datetime, zone: ZoneInfo, days_off: frozenset[date]) -> list[int]:
    """The milestones not measured yet whose day has come (at ``now``, in the rep's zone)."""
    today = now.astimezone(zone).date()
    return [n for n in MILESTONES if n > follow_up.measured
            and milestone_day(follow_up.opened_at, n, zone, days_off) <= today]


def working_days_between(opened: datetime, at: datetime, zone: ZoneInfo, days_off: frozenset[date]) -> int:
    """How many of the rep's working days after the opening day came up to ``at`` (0 on the same day)."""
    day, end, count = opened.astimezone(zone).date(), at.astimezone(zone).date(), 0
    while (day := next_working_day(day, days_off)) <= end:
        count += 1
    return count


# --- the statistics -------------------------------------------------------------------------------------


def wilson(successes: int, n: int) -> tuple[float, float] | None:
    """The Wilson score 95 % interval of a proportion (sound for small samples and for 0 or n successes).

    >>> [round(x, 3) for x in wilson(8, 10)]
    [0.49, 0.943]
    >>> wilson(0, 0) is None
    True
    """
    if n == 0:
        return None
    p, z2 = successes / n, _Z95 * _Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Stats:
    """One group's outcome: always the count; the rest only from ``min_sample`` follow-ups on."""

    n: int
    enough: bool
    recovered: int | None = None
    recovery_rate: float | None = None
    recovery_ci: tuple[float, float] | None = None
    median_days_to_recover: float | None = None
    median_pace_change: Mapping[int, float | None] = field(default_factory=dict)  # milestone -> median change
    measured: Mapping[int, int] = field(default_factory=dict)  # milestone -> follow-ups measured at it

    def as_json(self) -> dict[str, Any]:
        if not self.enough:
            return {"n": self.n, "enough": False, "note": "not enough data"}
        return {"n": self.n, "enough": True, "recovered": self.recovered,
                "recovery_rate": _round(self.recovery_rate),
                "recovery_ci95": [_round(x) for x in self.recovery_ci] if self.recovery_ci else None,
                "median_working_days_to_recover": self.median_days_to_recover,
                "median_pace_change": {str(k): _round(v) for k, v in self.median_pace_change.items()},
                "measured": {str(k): v for k, v in self.measured.items()}}


def stats(rows: Sequence[FollowUp], min_sample: int) -> Stats:
    """The outcome of ``rows`` (see `Stats`).

    Example: 10 follow-ups, 8 recovered after 2, 3, ... working days: recovery 0.8 (95 % CI 0.49-0.94).
    """
    n = len(rows)
    if n < min_sample:
        return Stats(n, False)
    recovered = [r for r in rows if r.recovered_at is not None]
    days = [r.recovered_days for r in recovered if r.recovered_days is not None]
    changes: dict[int, float | None] = {}
    measured: dict[int, int] = {}
    for m in MILESTONES:
        deltas = [float(r.pace[m] - r.pace[0]) for r in rows  # type: ignore[operator]
                  if r.pace.get(m) is not None and r.pace.get(0) is not None]
        measured[m] = len(deltas)
        changes[m] = statistics.median(deltas) if len(deltas) >= min_sample else None
    return Stats(n, True, len(recovered), len(recovered) / n, wilson(len(recovered), n),
                 statistics.median(days) if days else None, changes, measured)


def _key(by: str) -> Callable[[FollowUp], str]:
    if by == "rule":
        return lambda r: r.rule
    if by == "manager":
        return lambda r: r.manager_id or "-"
    if by == "team":
        return lambda r: r.team_id or "-"
    if by == "response":
        return lambda r: r.response
    if by == "quarter":
        return lambda r: f"{r.opened_at.year}-Q{(r.opened_at.month - 1) // 3 + 1}"
    raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")


def summarise(rows: Sequence[FollowUp], by: str, min_sample: int) -> list[dict[str, Any]]:
    """Per group of ``by``: the check-ins' outcome and the comparison group's, side by side (the comparison
    group of a response is every comparison finding: a finding that got no check-in had no response), and
    the difference in recovery rate when both have enough data.

    Example: by rule, 12 behind-pace check-ins of which 9 recovered, 12 comparison findings of which 3 did:
    {"key": "behind_pace", "check_ins": {... 0.75 ...}, "comparison": {... 0.25 ...}, "difference": 0.5}.
    """
    key = _key(by)
    checked = [r for r in rows if r.kind == "check_in"]
    compared = [r for r in rows if r.kind == "comparison"]
    keys = sorted({key(r) for r in checked} | ({key(r) for r in compared} if by != "response" else set()))
    out = []
    for k in keys:
        mine = stats([r for r in checked if key(r) == k], min_sample)
        theirs = stats(compared if by == "response" else [r for r in compared if key(r) == k], min_sample)
        difference = (mine.recovery_rate - theirs.recovery_rate
                      if mine.recovery_rate is not None and theirs.recovery_rate is not None else None)
        out.append({"key": k, "check_ins": mine.as_json(), "comparison": theirs.as_json(),
                    "difference": _round(difference)})
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
