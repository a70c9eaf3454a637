"""Weekly reviews and the manager scorecard, pure.

A review is due once a week per tenant, at `review_weekday` / `review_hour` of the tenant's zone
(Monday 08:00 by default), and covers the ISO week that ended before it: "2026-W48" is reviewed on
Monday 30 November 2026 at 08:00. Each rep and each team gets one digest per week: its figures of
the current month and quarter with attainment, pace and the trend against the period before
(`up`/`down` by more than one percentage point of attainment, else `flat`; `new` without one),
its activities this week and the week before, its open and overdue check-ins. A team digest also
carries its manager's scorecard (below), so managers are reviewed by the same standard.

Manager scorecard, over the check-ins created in a period for reps the manager manages: how many,
how many acknowledged and completed, how many escalated, how many still open past due, and the
median hours from creation to acknowledgement and to completion.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from shared.events import ManagerCard
from shared.periods import local_midnight

Trend = Literal["up", "down", "flat", "new"]
FLAT_WITHIN = Decimal("0.01")  # one percentage point of attainment
HOUR = Decimal(3600)


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
