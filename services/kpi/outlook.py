"""A won-revenue figure's forecast from its open deals: pure functions, no I/O (issue 22, item 2).

`outlook` takes what is closed, the target, and the open deals expected to close inside the period, and
says what the pipeline may add and the chance of reaching the target (`forecast.odds_of_reaching`: exact, or
Monte Carlo with a stated error). The numbers, all in the tenant's base currency:

- `closed`: won so far in the period (the figure's actual);
- `commit`, `best_case`, `pipeline`: the open deals of each forecast category (a deal without one counts as
  `pipeline`), disjoint; `omitted` deals count nowhere, not even in the odds;
- `weighted`: closed + each open deal's amount x probability: the expected end of the period;
- `gap`: target - closed, at least 0; `probability`: the chance the open deals cover it.

**A deal's probability** is the CRM's where it gives one (`basis` "crm"). Otherwise it is estimated from
the rep's own closed deals of the `HISTORY_DAYS` before the day began (UTC; read once a day per tenant:
`forecasting._history`) (`basis` "history"), the narrowest of these that
holds at least `MIN_CLOSED` closed deals: those that once stood in the deal's stage and were of its size
band, those of its stage, those of its size band, all of the rep's; and, when the rep has too few, the
same four of the whole tenant's. The reason says which ("won 7 of 12 closed deals that reached
'Proposal' of 10,000-100,000, last 365 days"). With no history anywhere a deal counts at 0 and says so.

A deal's **size band** is a power of ten of its amount as the CRM gave it (in the deal's own currency, so
that PostgreSQL groups the history without exchange rates): under 1,000; 1,000-10,000; 10,000-100,000;
100,000 and more. A deal whose currency has no exchange rate is left out of the forecast
(as it is left out of the figure: the tally's `unconverted`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from services.kpi.forecast import MAX_STATES, SAMPLES, OpenDeal, Swing, explain, odds_of_reaching
from shared.events import Forecast, ForecastCategory, ForecastDeal

HISTORY_DAYS = 365
MIN_CLOSED = 5  # closed deals a win rate is learned from, at least
TOP_DEALS = 10  # deals listed in a forecast: those that could close the gap
ODDS = Decimal("0.0001")
MONEY = Decimal("0.0001")
BANDS = ((Decimal(1_000), "under 1,000"), (Decimal(10_000), "1,000-10,000"), (Decimal(100_000), "10,000-100,000"))
TOP_BAND = "100,000 and more"
ANY = "*"  # a history level that does not look at stage or size
BAND_SQL = ("CASE " + " ".join(f"WHEN amount < {bound} THEN '{name}'" for bound, name in BANDS)
            + f" ELSE '{TOP_BAND}' END")

WonClosed = tuple[int, int]  # won, closed


def band(amount: Decimal) -> str:
    """The size band of an amount (`BAND_SQL` says the same in SQL).

    >>> band(Decimal("999.99")), band(Decimal(1000)), band(Decimal(250_000))
    ('under 1,000', '1,000-10,000', '100,000 and more')
    """
    for bound, name in BANDS:
        if amount < bound:
            return name
    return TOP_BAND


@dataclass(frozen=True, slots=True)
class Prospect:
    """An open deal as kpi stores it, with its amount converted (None: no exchange rate)."""

    deal_id: str
    rep_id: str
    amount: Decimal | None  # in the base currency
    listed: Decimal  # as the CRM gave it, in the deal's currency: its size band's
    expected_close_at: datetime
    probability: Decimal | None = None
    category: str | None = None
    stage_label: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Closed deals (won, closed) of one rep, or of the tenant, by (stage label, size band); `ANY` in either
    place counts every stage or size. Each closed deal counts once at every level it belongs to (a deal that
    stood in two stages counts in both stages' levels, once in the others)."""

    counts: Mapping[tuple[str, str], WonClosed] = field(default_factory=dict)

    def at(self, stage: str, size: str) -> WonClosed:
        return self.counts.get((stage, size), (0, 0))


def history_of(stage_rows: Sequence[tuple[str, str, int, int]], band_rows: Sequence[tuple[str, int, int]]) -> History:
    """A `History` from the two grouped counts the repository reads: (stage label, band, won, closed) over the
    deals' stage labels, and (band, won, closed) over the deals themselves."""
    counts: dict[tuple[str, str], WonClosed] = {}

    def add(key: tuple[str, str], won: int, closed: int) -> None:
        w, c = counts.get(key, (0, 0))
        counts[key] = (w + won, c + closed)

    for stage, size, won, closed in stage_rows:
        add((stage, size), won, closed)
        add((stage, ANY), won, closed)
    for size, won, closed in band_rows:
        add((ANY, size), won, closed)
        add((ANY, ANY), won, closed)
    return History(counts)


@dataclass(frozen=True, slots=True)
class Estimate:
    probability: Decimal
    basis: Literal["crm", "history"]
    reason: str


def estimate(prospect: Prospect, mine: History, tenant: History) -> Estimate:
    """The deal's probability and where it comes from (see the module's docstring)."""
    if prospect.probability is not None:
        return Estimate(prospect.probability, "crm", "the CRM's probability")
    size = band(prospect.listed)
    stage = prospect.stage_label
    levels = ([(stage, size), (stage, ANY)] if stage else []) + [(ANY, size), (ANY, ANY)]
    for whose, history in (("the rep's", mine), ("the tenant's", tenant)):
        for level in levels:
            won, closed = history.at(*level)
            if closed >= MIN_CLOSED:
                p = (Decimal(won) / Decimal(closed)).quantize(ODDS, rounding=ROUND_HALF_EVEN)
                return Estimate(p, "history", f"{whose} win rate: won {won} of {closed} closed deals"
                                f"{_level(level)}, last {HISTORY_DAYS} days")
    return Estimate(Decimal(0), "history", f"no CRM probability and fewer than {MIN_CLOSED} closed deals to learn"
                                           " from: counted at 0")


def _level(level: tuple[str, str]) -> str:
    stage, size = level
    parts = ([f" that reached '{stage}'"] if stage != ANY else []) + ([f" of {size}"] if size != ANY else [])
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Counted:
    """An open deal the forecast counts: its amount in the base currency, its estimate, its category."""

    prospect: Prospect
    amount: Decimal
    estimate: Estimate
    category: ForecastCategory


@dataclass(frozen=True, slots=True)
class Explained:
    """A forecast and, deal by deal, what it counted and (when asked for) each deal's swing."""

    forecast: Forecast
    counted: Sequence[Counted]
    swings: Sequence[Swing] = ()

    @property
    def estimates(self) -> dict[str, Estimate]:
        return {c.prospect.deal_id: c.estimate for c in self.counted}


def outlook(*, closed: Decimal, target: Decimal | None, prospects: Sequence[Prospect], undated: int,
            histories: Mapping[str, History], tenant_history: History, max_states: int = MAX_STATES,
            samples: int = SAMPLES, swings: bool = False) -> Explained:
    """The forecast of one figure (see the module's docstring). `histories` by rep; `swings` adds each deal's
    swing (the odds if won minus if lost: costs two odds per deal, for the read API's explanation)."""
    sums = {ForecastCategory.COMMIT: Decimal(0), ForecastCategory.BEST_CASE: Decimal(0),
            ForecastCategory.PIPELINE: Decimal(0)}
    counted: list[tuple[Prospect, Decimal, Estimate, ForecastCategory]] = []
    for p in sorted(prospects, key=lambda p: p.deal_id):
        category = ForecastCategory(p.category) if p.category else ForecastCategory.PIPELINE
        if p.amount is None or category is ForecastCategory.OMITTED:
            continue
        guess = estimate(p, histories.get(p.rep_id, History()), tenant_history)
        sums[category] += p.amount
        counted.append((p, p.amount, guess, category))
    weighted = closed + sum((amount * e.probability for _, amount, e, _ in counted), Decimal(0))
    gap = max(target - closed, Decimal(0)) if target is not None else Decimal(0)
    deals = [OpenDeal(p.deal_id, amount, e.probability) for p, amount, e, _ in counted]
    odds = odds_of_reaching(gap, deals, max_states=max_states, samples=samples) if target is not None else None
    top = sorted(counted, key=lambda c: (-(c[1] * c[2].probability), -c[1], c[0].deal_id))[:TOP_DEALS]
    forecast = Forecast.model_construct(
        closed=closed, commit=sums[ForecastCategory.COMMIT], best_case=sums[ForecastCategory.BEST_CASE],
        pipeline=sums[ForecastCategory.PIPELINE], weighted=weighted.quantize(MONEY, rounding=ROUND_HALF_EVEN),
        gap=gap, probability=odds.probability if odds else None, method=odds.method if odds else None,
        error=odds.error if odds else None, open_deals=len(counted),
        estimated=sum(1 for _, _, e, _ in counted if e.basis == "history"), undated=undated,
        deals=[ForecastDeal.model_construct(
            deal_id=p.deal_id, rep_id=p.rep_id, amount=amount, probability=e.probability, basis=e.basis,
            forecast_category=category, expected_close_at=p.expected_close_at) for p, amount, e, category in top])
    moved = explain(gap, deals, max_states=max_states, samples=samples) if swings and target is not None else []
    return Explained(forecast, [Counted(*c) for c in counted], moved)


def digest(forecast: Forecast | None) -> str | None:
    """What a published forecast is compared by: a figure is published again when this changes."""
    return None if forecast is None else hashlib.sha256(forecast.model_dump_json().encode()).hexdigest()
