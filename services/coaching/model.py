"""What coaching's pure functions see and return: plain data, no I/O.

The repository builds a `RepView` from coaching's own tables (the figures kpi reported, the rep's
recent activities and deals, the roster, holidays and time off); the rules turn it and `now` into
`Finding`s; `checkins.compose` turns a finding into a `coaching.task.created` payload. Thresholds
are a `Policy`: defaults here, overridden per tenant and per team through the API.

A figure's metric is a name (`shared.events.MetricName`): one of the built-in `Metric`s, or the id of
a KPI the tenant defined in kpi (issue 22), such as ``demos_held``. A `Metric` is a `str`, so a
comparison with one (``figure.metric == Metric.WON_REVENUE``) holds for either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from shared.events import Evidence, Forecast, Metric, MetricName

Severity = Literal["warning", "critical"]
SEVERITY_RANK: Mapping[str, int] = {"info": 0, "warning": 1, "critical": 2}

BEHIND_PACE = "behind_pace"
ACTIVITY_SHORTFALL = "activity_shortfall"
STALLED_PIPELINE = "stalled_pipeline"
FALLING_WIN_RATE = "falling_win_rate"
NO_ACTIVITY = "no_activity"
FORECAST_SHORT = "forecast_short"
RULES = (BEHIND_PACE, ACTIVITY_SHORTFALL, STALLED_PIPELINE, FALLING_WIN_RATE, NO_ACTIVITY, FORECAST_SHORT)


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure of the rep as kpi last reported it (`kpi.attainment.updated`)."""

    period: str
    metric: str  # a built-in `Metric`, or the id of a KPI the tenant defined
    actual: Decimal
    target: Decimal | None
    period_start: datetime  # aware, UTC; [start, end) in the tenant's zone
    period_end: datetime
    first_seen_at: datetime  # when coaching first saw this (rep, period, metric)
    forecast: Forecast | None = None  # won_revenue while its period runs (kpi's look ahead); else None


@dataclass(frozen=True, slots=True)
class OpenDeal:
    """An open deal of the rep and the last time anything happened on it."""

    deal_id: str
    amount: Decimal
    currency: str
    last_touch: datetime  # the latest of its `updated_at` and of the activities logged against it


@dataclass(frozen=True, slots=True)
class ClosedDeal:
    won: bool
    closed_at: datetime


@dataclass(frozen=True, slots=True)
class ActivityLog:
    """A rep's logged activities as the rules read them: how many of each kind fell on each local day
    of the tenant's zone, and the moment of the last one.

    Its size follows days and kinds, not activities: a rep who logs a hundred e-mails a day costs what
    one who logs three does. `repository.rep_views` counts in PostgreSQL, per day of the longest
    activity window any policy of the tenant uses; `of` counts a list in Python, the same way.
    """

    days: tuple[tuple[date, str, int], ...] = ()  # (local day, kind, how many), in order
    last_at: datetime | None = None  # the last activity's moment (the day counts may not reach it)

    @classmethod
    def of(cls, activities: Iterable[tuple[datetime, str]], zone: ZoneInfo) -> ActivityLog:
        """The log of `(occurred_at, kind)` pairs, days taken in `zone`."""
        moments = list(activities)
        counts = Counter((at.astimezone(zone).date(), kind) for at, kind in moments)
        return cls(tuple(sorted((day, kind, n) for (day, kind), n in counts.items())),
                   max((at for at, _ in moments), default=None))

    def count(self, first: date, after: date, kind: str | None = None) -> int:
        """Activities of `kind` (any kind when None) on the local days `first` .. `after` - 1."""
        return sum(n for day, k, n in self.days if first <= day < after and (kind is None or k == kind))


@dataclass(frozen=True, slots=True)
class RepView:
    """Everything the rules may look at for one rep, at one evaluation."""

    tenant: str
    rep_id: str
    name: str | None
    manager_id: str | None
    team_id: str | None
    timezone: ZoneInfo  # the rep's own zone (due dates, "today"); the tenant's when the rep has none
    tenant_timezone: ZoneInfo  # period boundaries and pace are in the tenant's zone
    known_since: datetime  # the first event coaching saw of the rep: no silence is counted before it
    figures: tuple[Figure, ...] = ()
    activities: ActivityLog = ActivityLog()  # day counts in the tenant's zone, and the last activity
    open_deals: tuple[OpenDeal, ...] = ()
    closed_deals: tuple[ClosedDeal, ...] = ()  # closed in the last 180 days
    days_off: frozenset[date] = frozenset()  # tenant holidays and the rep's time off (local dates)
    base_currency: str | None = None  # the tenant's; open deals in another currency are not summed


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that slipped, with the numbers that show it."""

    rule: str
    severity: Severity
    summary: str  # one human sentence with the numbers
    evidence: Evidence
    details: Mapping[str, Any] = field(default_factory=dict)  # extra facts (e.g. the stale deal ids)


class Policy(BaseModel):
    """Every threshold of the rules (defaults; a tenant and a team override any subset via the API)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pace_threshold: Decimal = Field(Decimal("0.7"), gt=0, description="behind pace below this pace")
    pace_recover_at: Decimal = Field(Decimal("0.8"), gt=0,
                                     description="a live behind-pace check-in recovers at this pace (hysteresis)")
    pace_min_gap_share: Decimal = Field(Decimal("0.05"), ge=0, lt=1,
                                        description="no finding for a gap (expected - actual) below this share"
                                                    " of the target")
    pace_critical_below: Decimal = Field(Decimal("0.4"), ge=0, description="critical below this pace")
    pace_grace_share: Decimal = Field(Decimal("0.1"), ge=0, lt=1,
                                      description="no pace check before this share of the period's working days")
    new_target_grace_s: int = Field(3 * 86400, ge=0, description="a newly seen target waits this long first")
    pace_metrics: tuple[MetricName, ...] = Field(
        (Metric.WON_REVENUE, Metric.DEALS_WON, Metric.PIPELINE_CREATED),
        description="the metrics behind_pace checks: built-in ones or ids of KPIs the tenant defined"
                    " (e.g. demos_held)")
    activity_metrics: tuple[Metric, ...] = Field(
        (Metric.CALLS, Metric.MEETINGS),
        description="the metrics activity_shortfall checks: of calls, emails, meetings and activities")
    activity_window_days: int = Field(7, ge=1, le=90, description="trailing window, calendar days")
    activity_threshold: Decimal = Field(Decimal("0.8"), gt=0, description="short below this share of the pace")
    activity_critical_below: Decimal = Field(Decimal("0.4"), ge=0)
    activity_recover_at: Decimal = Field(Decimal("1"), gt=0,
                                         description="a live shortfall check-in recovers at this share of the pace")
    activity_min_gap: Decimal = Field(Decimal("3"), ge=0,
                                      description="no finding for fewer missing activities than this in the window")
    stale_deal_days: int = Field(14, ge=1, le=365, description="an open deal untouched this long is stalled")
    coverage_multiple: Decimal = Field(Decimal("3"), ge=0,
                                       description="open pipeline below this multiple of the remaining target")
    coverage_recover_multiple: Decimal = Field(Decimal("3.5"), ge=0,
                                               description="a live coverage check-in recovers at this multiple")
    coverage_min_gap_share: Decimal = Field(Decimal("0.1"), ge=0,
                                            description="no coverage finding for a shortfall below this share of the"
                                                        " target")
    stale_min_deals: int = Field(2, ge=1, description="stale deals alone raise a finding from this many on")
    forecast_coverage: Decimal = Field(Decimal("1"), ge=0,
                                       description="forecast short (below target) is a finding when the open deals"
                                                   " expected to close in the period are below this multiple of the"
                                                   " gap (target - won so far): 1, not even winning every one closes"
                                                   " it; 3, a 3x pipeline-coverage rule; 0 turns the rule off")
    win_rate_recent_days: int = Field(30, ge=1, le=365)
    win_rate_baseline_days: int = Field(90, ge=1, le=730, description="the window before the recent one")
    win_rate_min_recent: int = Field(5, ge=1, description="closed deals needed in the recent window")
    win_rate_min_baseline: int = Field(10, ge=1, description="closed deals needed in the baseline window")
    win_rate_drop: Decimal = Field(Decimal("0.25"), gt=0, lt=1,
                                   description="falling when recent < baseline x (1 - drop)")
    win_rate_critical_drop: Decimal = Field(Decimal("0.5"), gt=0, lt=1)
    win_rate_recover_drop: Decimal = Field(Decimal("0.1"), ge=0, lt=1,
                                           description="a live win-rate check-in recovers at baseline x (1 - this)")
    no_activity_days: int = Field(5, ge=1, le=60, description="working days without any activity")
    no_activity_recover_days: int = Field(1, ge=1, le=60,
                                          description="a live no-activity check-in recovers once the last this many"
                                                      " working days hold an activity")
    cooldown_days: int = Field(7, ge=1, le=90, description="no repeat of a rule for a rep inside this")
    due_working_days: int = Field(2, ge=0, le=20, description="a check-in is due this many working days on")
    due_hour: int = Field(17, ge=0, le=23, description="local hour of the rep's day a check-in is due")
    review_weekday: int = Field(1, ge=1, le=7, description="ISO weekday of the weekly review (1 = Monday)")
    review_hour: int = Field(8, ge=0, le=23, description="tenant-local hour of the weekly review")
    holdout_share: Decimal = Field(Decimal(0), ge=0, le=Decimal("0.5"),
                                   description="this share of reps (a stable hash) gets no check-ins: their findings"
                                               " are the comparison group of the effectiveness measurement")

    def before_material_gaps(self) -> Policy:
        """The thresholds as they were before material gaps (issue 18): what they would have raised and these
        do not is a comparison finding of the effectiveness measurement ("below the threshold")."""
        return _before(self)

    def holding(self) -> Policy:
        """The thresholds a LIVE check-in is judged by: it stays live until its rule's recovery level (not
        merely back above the opening one), whatever the size of the gap. A recovery level set on the wrong
        side of its opening threshold (a tenant that raised ``pace_threshold`` above ``pace_recover_at``)
        counts as the opening threshold itself: no hysteresis, never a check-in that cannot recover."""
        return _holding(self)

    def with_overrides(self, *layers: Mapping[str, Any]) -> Policy:
        """This policy with each layer's keys on top, in order (tenant, then team); validated."""
        merged: dict[str, Any] = self.model_dump()
        for layer in layers:
            merged.update(layer)
        return Policy.model_validate(merged)


@lru_cache(maxsize=256)
def _holding(policy: Policy) -> Policy:
    return policy.model_copy(update={
        "pace_threshold": max(policy.pace_recover_at, policy.pace_threshold), "pace_min_gap_share": Decimal(0),
        "activity_threshold": max(policy.activity_recover_at, policy.activity_threshold),
        "activity_min_gap": Decimal(0),
        "coverage_multiple": max(policy.coverage_recover_multiple, policy.coverage_multiple),
        "coverage_min_gap_share": Decimal(0), "stale_min_deals": 1,
        "win_rate_drop": min(policy.win_rate_recover_drop, policy.win_rate_drop),
        "no_activity_days": min(policy.no_activity_recover_days, policy.no_activity_days)})


@lru_cache(maxsize=256)
def _before(policy: Policy) -> Policy:
    return policy.model_copy(update={"pace_min_gap_share": Decimal(0), "activity_min_gap": Decimal(0),
                                     "coverage_min_gap_share": Decimal(0), "stale_min_deals": 1,
                                     "no_activity_days": min(3, policy.no_activity_days)})
