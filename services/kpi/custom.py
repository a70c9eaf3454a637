"""KPIs a tenant defines (issue 22, item 5): a filter over deals or activities and an aggregation; pure.

A KPI is named by an id (`demos_held`, `new_logo_revenue`) that targets, leaderboards, contests, coaching's
rules and recognition's quota milestones use like a built-in metric's name. It counts, per (scope, id,
period) exactly as the built-in metrics do (`contributions.py`: the rep, the team the rep was in at the
record's moment and every team above it; the periods of the tenant-local day of that moment):

- **deals** (`source` "deals"): a deal version that passes the filter counts at one moment, by `stage`:
  `won` and `lost` deals at their `closed_at`, `open` deals (still open) and `any` deal at its `created_at`;
- **activities**: an activity that passes the filter, at its `occurred_at`.

The filter: `stage_labels` (the CRM's stage label is one of them), `min_amount` / `max_amount` (the deal's
amount in the base currency: at least the minimum, below the maximum), `kinds` (the activity's kind is one
of them), `with_deal` (an activity linked to a deal, or not), and `properties` (each named CRM property the
record carries holds one of the listed values). Everything given must hold.

The aggregation: `count` (records), `sum` (a deal's amount in the base currency; an activity's duration in
seconds), `average` (sum / count, half-even to 4 places, 0 when none), `distinct_deals` (how many deals: for
activities, the distinct deals they are linked to).

Exact under edits, reopenings, deletions and duplicates like the built-in metrics: each deal version that
stops counting is taken out and the new one put in (signed deltas); a tally per key holds `n`, `total` and
`unconverted` (deals whose currency had no rate that day, left out of `total` as the built-in money metrics
leave them out), and `distinct_deals` keeps a count per (key, deal) so a deal counts once however many of
its activities match. A KPI defined mid-period is counted from the stored deals and activities at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from services.kpi.tally import ratio4
from shared.events import ActivityKind, Metric, PropertyName

Source = Literal["deals", "activities"]
Aggregation = Literal["count", "sum", "average", "distinct_deals"]
BUILT_IN = frozenset(m.value for m in Metric)
Label = Annotated[str, Field(min_length=1, max_length=200)]
PropertyValue = Annotated[str, Field(max_length=500)]


class KpiFilter(BaseModel):
    """Which records a KPI counts (every condition given must hold)."""

    stage: Literal["won", "lost", "open", "any"] = Field(
        "won", description="deals: won or lost ones at their close, open ones or any deal at their creation")
    stage_labels: list[Label] = Field(default_factory=list, max_length=50,
                                      description="deals: the CRM's stage label is one of these")
    min_amount: Decimal | None = Field(None, ge=0, description="deals: amount in the base currency, at least")
    max_amount: Decimal | None = Field(None, gt=0, description="deals: amount in the base currency, below")
    kinds: list[ActivityKind] = Field(default_factory=list, description="activities: the kind is one of these")
    with_deal: bool | None = Field(None, description="activities: linked to a deal (true) or not (false)")
    properties: dict[PropertyName, list[PropertyValue]] = Field(
        default_factory=dict, max_length=20, description="each CRM property holds one of the listed values")

    @model_validator(mode="after")
    def _a_range(self) -> KpiFilter:
        if self.min_amount is not None and self.max_amount is not None and self.min_amount >= self.max_amount:
            raise ValueError("min_amount must be below max_amount")
        return self


class KpiDefinition(BaseModel):
    """A KPI as an admin defines it (`PUT /v1/kpis/{kpi_id}`)."""

    name: str = Field(min_length=1, max_length=200)
    source: Source
    filter: KpiFilter = Field(default_factory=KpiFilter)
    aggregation: Aggregation = "count"

    @model_validator(mode="after")
    def _fits_its_source(self) -> KpiDefinition:
        f = self.filter
        if self.source == "deals" and (f.kinds or f.with_deal is not None):
            raise ValueError("filter: kinds and with_deal are for activities")
        if self.source == "activities" and (f.stage_labels or f.min_amount is not None or f.max_amount is not None
                                            or f.stage != "won"):
            raise ValueError("filter: stage, stage_labels and amounts are for deals")
        return self


@dataclass(frozen=True, slots=True)
class Kpi:
    """A defined KPI, ready to match records."""

    kpi_id: str
    definition: KpiDefinition
    kinds: frozenset[str] = field(default_factory=frozenset)
    labels: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, kpi_id: str, definition: KpiDefinition) -> Kpi:
        return cls(kpi_id, definition, frozenset(k.value for k in definition.filter.kinds),
                   frozenset(definition.filter.stage_labels))

    @property
    def source(self) -> Source:
        return self.definition.source

    def deal_moment(self, stage: str, created_at: datetime | None, closed_at: datetime | None) -> datetime | None:
        """Where a deal version counts, if its stage is the one counted."""
        wanted = self.definition.filter.stage
        if wanted in ("won", "lost"):
            return closed_at if stage == wanted else None
        if wanted == "open":
            return created_at if stage == "open" else None
        return created_at

    def deal_passes(self, stage_label: str | None, amount_in_base: Decimal | None, properties: str | None) -> bool:
        f = self.definition.filter
        if self.labels and stage_label not in self.labels:
            return False
        if f.min_amount is not None or f.max_amount is not None:
            if amount_in_base is None:
                return False  # no rate: its amount is unknown in the base currency
            if f.min_amount is not None and amount_in_base < f.min_amount:
                return False
            if f.max_amount is not None and amount_in_base >= f.max_amount:
                return False
        return self._properties_pass(properties)

    def activity_passes(self, kind: str, deal_id: str | None, properties: str | None) -> bool:
        f = self.definition.filter
        if self.kinds and kind not in self.kinds:
            return False
        if f.with_deal is not None and (deal_id is not None) != f.with_deal:
            return False
        return self._properties_pass(properties)

    def _properties_pass(self, properties: str | None) -> bool:
        wanted = self.definition.filter.properties
        if not wanted:
            return True
        held = parsed(properties)
        return all(held.get(name) in values for name, values in wanted.items())


@lru_cache(maxsize=8192)
def parsed(properties: str | None) -> Mapping[str, str]:
    """A record's stored properties (JSON text), parsed once per distinct text."""
    return json.loads(properties) if properties else {}


def value(aggregation: Aggregation, n: int, total: Decimal, unconverted: int, distinct: int) -> Decimal:
    """A KPI's figure from its tally: `n` records, the `total` of those with an amount (`unconverted`: deals
    without an exchange rate, left out of it), `distinct` deals. The `attainment` view (migration 015) says the
    same in SQL."""
    if aggregation == "count":
        return Decimal(n)
    if aggregation == "sum":
        return total
    if aggregation == "average":
        return ratio4(total, n - unconverted)
    return Decimal(distinct)
