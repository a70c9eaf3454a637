"""A won-revenue forecast explained deal by deal, as the read API answers it and the dashboard shows it.

Pure: `outlook.Explained` (the forecast, each open deal counted with its estimate and category, each deal's
swing) in, the lines to list and the words for how the chance was computed out. A team's deals of reps the
reader may not read count in the totals and are not listed: `lines` counts them instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from services.kpi.forecast import SAMPLES
from services.kpi.outlook import MONEY, Explained
from shared.events import Forecast, ForecastCategory

CATEGORY_WORDS = {ForecastCategory.COMMIT: "commit", ForecastCategory.BEST_CASE: "best case",
                  ForecastCategory.PIPELINE: "pipeline", ForecastCategory.OMITTED: "omitted"}


@dataclass(frozen=True, slots=True)
class Line:
    """One open deal of a forecast, explained (the read API's `ForecastLine` has the same fields)."""

    deal_id: str
    rep_id: str
    amount: Decimal  # in the tenant's base currency
    probability: Decimal
    basis: Literal["crm", "history"]
    reason: str
    forecast_category: ForecastCategory
    expected_close_at: datetime
    weighted: Decimal  # amount x probability
    swing: Decimal | None  # the odds if won minus if lost; None without a target


def lines(found: Explained, visible: Collection[str] | None) -> tuple[list[Line], int]:
    """Every open deal counted, largest swing first (then the largest weighted amount, then by id), and how many
    were left out because their rep is not in `visible` (None: every rep may be read)."""
    swings = {s.deal_id: s.swing for s in found.swings}
    out: list[Line] = []
    hidden = 0
    for c in found.counted:
        if visible is not None and c.prospect.rep_id not in visible:
            hidden += 1
            continue
        out.append(Line(
            deal_id=c.prospect.deal_id, rep_id=c.prospect.rep_id, amount=c.amount, probability=c.estimate.probability,
            basis=c.estimate.basis, reason=c.estimate.reason, forecast_category=c.category,
            expected_close_at=c.prospect.expected_close_at,
            weighted=(c.amount * c.estimate.probability).quantize(MONEY, rounding=ROUND_HALF_EVEN),
            swing=swings.get(c.prospect.deal_id)))
    out.sort(key=lambda x: (-(x.swing or 0), -x.weighted, x.deal_id))
    return out, hidden


def method_words(forecast: Forecast, *, samples: int = SAMPLES, error: Callable[[Decimal], str] = str,
                 count: Callable[[int], str] = "{:,}".format) -> str:
    """How the chance of reaching the target was computed, in words; `error` and `count` write the Monte Carlo
    error and the number of draws (by default as plain numbers: the read API's `how`).

    >>> method_words(Forecast(closed=0, commit=0, best_case=0, pipeline=0, weighted=0, gap=10, probability=0.5,
    ...                       method="monte_carlo", error=0.0091, open_deals=40, estimated=0))
    'Monte Carlo: 20,000 seeded draws, within 0.0091 (99 %)'
    """
    if forecast.method is None:
        return "no target: no chance to compute"
    if forecast.method == "certain":
        return "certain: the target is reached, or even winning every open deal falls short"
    if forecast.method == "exact":
        return "exact: every combination of won and lost deals, counted"
    return f"Monte Carlo: {count(samples)} seeded draws, within {error(forecast.error or Decimal(0))} (99 %)"
