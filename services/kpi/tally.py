"""The contract's metrics from a tally of one scope's deals and activities in one period: pure.

Money metrics are in the tenant's base currency (see `repository.TALLY_*`: a deal counts at the
exchange rate valid on the day it closed, or was created for `pipeline_created`; a deal whose
currency has no rate is left out and counted in `unconverted`). A ratio with nothing to divide by
is 0 (no deal closed: win rate 0; none won: average deal size 0), so a figure that loses its
last deal goes back to 0 instead of keeping a stale value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal

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


_WIDE = Context(prec=400)  # integer quotients of money x 10,000 never need rounding here
_SCALE = Decimal(10_000)


def ratio4(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    """numerator / denominator rounded half to even at four decimal places, computed exactly (an integer
    quotient and its remainder, no inexact division first); 0 when there is nothing to divide by.

    PostgreSQL computes the same with `attain_ratio4` (migration 009) for the `attainment` view: the figures
    kpi publishes and the ones its read side shows are the same numbers to the last digit.

    >>> ratio4(2, 3), ratio4(1, 20_000), ratio4(3, 20_000), ratio4(Decimal("10.5"), 0)
    (Decimal('0.6667'), Decimal('0.0000'), Decimal('0.0002'), Decimal('0'))
    """
    if not denominator:
        return ZERO
    scaled, d = _WIDE.multiply(Decimal(numerator), _SCALE), Decimal(denominator)
    q, r = _WIDE.divmod(scaled, d)
    twice = _WIDE.multiply(r, 2)
    if twice > d or (twice == d and q % 2):
        q += 1
    return _WIDE.divide(q, _SCALE).quantize(CENT)


def values(t: Tally) -> dict[Metric, Decimal]:
    """Every metric's actual value for the tally."""
    closed = t.deals_won + t.deals_lost
    return {
        Metric.WON_REVENUE: t.won_revenue,
        Metric.DEALS_WON: Decimal(t.deals_won),
        Metric.WIN_RATE: ratio4(t.deals_won, closed),
        Metric.PIPELINE_CREATED: t.pipeline_created,
        Metric.AVG_DEAL_SIZE: ratio4(t.won_revenue, t.deals_won),
        Metric.CALLS: Decimal(t.calls),
        Metric.EMAILS: Decimal(t.emails),
        Metric.MEETINGS: Decimal(t.meetings),
        Metric.ACTIVITIES: Decimal(t.activities),
    }
