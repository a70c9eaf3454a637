"""Attainment arithmetic: pure functions, exact Decimals, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

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
