"""The contract's metrics from a tally of one scope's deals and activities in one period: pure.

Money metrics are in the tenant's base currency (see `repository.TALLY_*`: a deal counts at the
exchange rate valid on the day it closed, or was created for `pipeline_created`; a deal whose
currency has no rate is left out and counted in `unconverted`). A ratio with nothing to divide by
is 0 (no deal closed: win rate 0; none won: average deal size 0), so a figure that loses its
last deal goes back to 0 instead of keeping a stale value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from shared.events import Metric

CENT = Decimal("0.0001")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Tally:
    won_revenue: Decimal = Decimal(0)
    deals_won: int = 0
    deals_lost: int = 0
    pipeline_created: Decimal = Decimal(0)
    calls: int = 0
    emails: int = 0
    meetings: int = 0
    activities: int = 0
    unconverted: int = 0  # deals left out: no exchange rate into the base currency


def values(t: Tally) -> dict[Metric, Decimal]:
    """Every metric's actual value for the tally."""
    closed = t.deals_won + t.deals_lost
    return {
        Metric.WON_REVENUE: t.won_revenue,
        Metric.DEALS_WON: Decimal(t.deals_won),
        Metric.WIN_RATE: (Decimal(t.deals_won) / closed).quantize(CENT, ROUND_HALF_EVEN) if closed else ZERO,
        Metric.PIPELINE_CREATED: t.pipeline_created,
        Metric.AVG_DEAL_SIZE: (t.won_revenue / t.deals_won).quantize(CENT, ROUND_HALF_EVEN) if t.deals_won else ZERO,
        Metric.CALLS: Decimal(t.calls),
        Metric.EMAILS: Decimal(t.emails),
        Metric.MEETINGS: Decimal(t.meetings),
        Metric.ACTIVITIES: Decimal(t.activities),
    }
