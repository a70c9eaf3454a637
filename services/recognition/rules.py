"""Which milestones an attainment reached, and the words to celebrate them: pure functions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from shared.events import AttainmentUpdated, Metric, MilestoneReached

NAMESPACE = uuid.UUID("0b7d3c61-5f0e-4c1e-8e55-3f2a9d7c4b20")
METRIC_WORDS = {Metric.WON_REVENUE: "won revenue"}


@dataclass(frozen=True, slots=True)
class Milestone:
    name: str
    threshold: Decimal  # attainment (actual / target) at which it is reached


MILESTONES = (Milestone("quota_100", Decimal("1")),)


def celebration_id(tenant: str, scope: str, scope_id: str, milestone: str, period: str) -> uuid.UUID:
    """Stable: the same milestone of the same scope and period always has the same id."""
    return uuid.uuid5(NAMESPACE, f"{tenant}|{scope}|{scope_id}|{milestone}|{period}")


def _amount(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"


def headline(update: AttainmentUpdated, milestone: Milestone) -> str:
    who = update.name or update.scope_id
    percent = (update.attainment or Decimal(0)) * 100
    words = METRIC_WORDS.get(update.metric, update.metric.value.replace("_", " "))
    return (f"{who} just hit {percent.quantize(Decimal('1'), rounding=ROUND_DOWN)}% of the {update.period} "
            f"{words} target with {_amount(update.actual)} against {_amount(update.target or Decimal(0))}!")


def reached(tenant: str, update: AttainmentUpdated, now: datetime) -> list[MilestoneReached]:
    """Every milestone this attainment has reached (the ledger decides which are new)."""
    if update.metric != Metric.WON_REVENUE or update.attainment is None or not update.target:
        return []
    return [
        MilestoneReached(
            celebration_id=str(celebration_id(tenant, update.scope, update.scope_id, m.name, update.period)),
            scope=update.scope, scope_id=update.scope_id, milestone=m.name, period=update.period,
            value=update.actual, headline=headline(update, m), occurred_at=now,
        )
        for m in MILESTONES
        if update.attainment >= m.threshold
    ]
