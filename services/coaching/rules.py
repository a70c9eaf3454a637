"""When a rep needs a check-in, and what it says: pure functions of a snapshot and `now`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from shared.events import Evidence, Metric, TaskCreated
from shared.periods import share_between

NAMESPACE = uuid.UUID("9a4c2e17-8d3b-4f6a-a1c5-7e2d0b9f6c34")
BEHIND_PACE = "behind_pace"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What coaching knows of one rep's metric in one period."""

    tenant: str
    rep_id: str
    name: str | None
    manager_id: str | None
    period: str
    metric: Metric
    actual: Decimal
    target: Decimal | None
    period_start: datetime
    period_end: datetime
    first_seen_at: datetime


@dataclass(frozen=True, slots=True)
class Policy:
    """The knobs of the behind-pace rule (settings `COACHING_*`)."""

    threshold: Decimal = Decimal("0.7")  # below 70% of pace is behind
    critical_below: Decimal = Decimal("0.4")
    grace: timedelta = timedelta(days=3)  # a new target gets this long before the first check-in
    cooldown: timedelta = timedelta(days=7)
    due_in: timedelta = timedelta(days=2)


def task_id(tenant: str, rep_id: str, rule: str, now: datetime, cooldown: timedelta) -> uuid.UUID:
    """Stable per (tenant, rep, rule, cool-down window): a unique key backs the cool-down."""
    window = (now - EPOCH) // cooldown
    return uuid.uuid5(NAMESPACE, f"{tenant}|{rep_id}|{rule}|{window}")


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"


def behind_pace(s: Snapshot, now: datetime, policy: Policy) -> TaskCreated | None:
    """A check-in when actual < threshold x (target x elapsed share), inside an active period."""
    if not s.target or not s.period_start <= now < s.period_end or now - s.first_seen_at < policy.grace:
        return None
    expected = (s.target * share_between(s.period_start, s.period_end, now)).quantize(Decimal("0.01"))
    if expected <= 0:
        return None
    pace = s.actual / expected
    if pace >= policy.threshold:
        return None
    who = s.name or s.rep_id
    metric = s.metric.value.replace("_", " ")
    percent = (pace * 100).quantize(Decimal("1"), rounding=ROUND_DOWN)  # 69.5% must not read "70%"
    return TaskCreated(
        task_id=str(task_id(s.tenant, s.rep_id, BEHIND_PACE, now, policy.cooldown)),
        rep_id=s.rep_id,
        manager_id=s.manager_id,
        rule=BEHIND_PACE,
        severity="critical" if pace < policy.critical_below else "warning",
        summary=(f"{who} is at {percent}% of pace on {metric} for {s.period}: {_money(s.actual)} "
                 f"against {_money(expected)} expected by now (target {_money(s.target)})."),
        evidence=Evidence(metric=s.metric, actual=s.actual, expected=expected, period=s.period),
        suggested_actions=[
            "Review the open pipeline together and pick the three deals most likely to close this period",
            "Agree on a weekly activity goal (calls, meetings) for the rest of the period",
            "Schedule a follow-up check-in in one week",
        ],
        training=["Pipeline hygiene and forecasting", "Closing techniques"],
        due_at=now + policy.due_in,
    )
