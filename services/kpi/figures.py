"""Attainment arithmetic: pure functions, exact Decimals, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from shared.events import ActivityLogged, DealDeleted, DealUpserted

RATIO = Decimal("0.0001")
MONEY = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Figures:
    """What a scorecard shows for one metric in one period, at one moment."""

    actual: Decimal
    target: Decimal | None
    attainment: Decimal | None
    expected: Decimal | None
    pace: Decimal | None
    projected: Decimal | None  # the end-of-period figure if the rest of the period goes as it went so far


def ratio(numerator: Decimal, denominator: Decimal | None) -> Decimal | None:
    """numerator / denominator to 4 places (banker's rounding); None when undefined."""
    if denominator is None or denominator == 0:
        return None
    return (numerator / denominator).quantize(RATIO, rounding=ROUND_HALF_EVEN)


def figures(actual: Decimal, target: Decimal | None, elapsed_share: Decimal) -> Figures:
    """Attainment = actual / target; expected = target x elapsed share; pace = actual / expected."""
    expected = None if target is None else (target * elapsed_share).quantize(MONEY, rounding=ROUND_HALF_EVEN)
    projected = (actual / elapsed_share).quantize(MONEY, rounding=ROUND_HALF_EVEN) if elapsed_share else None
    return Figures(actual, target, ratio(actual, target), expected, ratio(actual, expected), projected)


def published(target: Decimal | None, *, publish_all: bool = False) -> bool:
    """Does a changed figure go out on `kpi.attainment.v1`? A target is what makes a figure tracked and what
    subscribers act on (CONTRACT.md section 3); an operator may opt in to every figure
    (`KPI_PUBLISH_ALL_FIGURES=true`). Untargeted figures stay exact in kpi's state and read API either way."""
    return publish_all or target is not None


def source_time(inputs: Iterable[tuple[object, datetime]], now: datetime) -> datetime:
    """How recent a batch's change really is, never after ``now``.

    ``inputs`` are ``(data, event time)`` pairs. When the batch holds sales records, the newest of their own
    moments: a deal's ``updated_at`` (the CRM's), an activity's ``occurred_at``. Targets, roster and registry
    entries are settings, not news: only a batch of nothing else counts at its newest event time. So a
    backfill of last year's deals, with this quarter's targets uploaded beside it, moves figures now with a
    source time a month or a year ago, and recognition records their milestones quietly (the tenant's
    history horizon); a target set today on a figure already past it is today's news. ``now`` when empty.

    >>> from datetime import UTC
    >>> source_time([(object(), datetime(2026, 1, 2, tzinfo=UTC))], datetime(2026, 3, 1, tzinfo=UTC)).date()
    datetime.date(2026, 1, 2)
    """
    sales: datetime | None = None
    settings: datetime | None = None
    for data, event_time in inputs:
        match data:
            case DealUpserted() | DealDeleted():
                sales = data.updated_at if sales is None else max(sales, data.updated_at)
            case ActivityLogged():
                sales = data.occurred_at if sales is None else max(sales, data.occurred_at)
            case _:
                settings = event_time if settings is None else max(settings, event_time)
    newest = sales if sales is not None else settings
    return now if newest is None else min(newest, now)
