"""KPIs a tenant defines (services/kpi/custom.py) and how the ledger counts them (contributions.Ledger)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.kpi.contributions import START_OF_TIME, Activity, Books, Deal, Ledger
from services.kpi.custom import Kpi, KpiDefinition, value

AT = datetime(2026, 11, 10, 10, tzinfo=UTC)


def kpi(kpi_id: str = "k", **definition: object) -> Kpi:
    return Kpi.of(kpi_id, KpiDefinition.model_validate({"name": kpi_id, **definition}))


def books() -> Books:
    b = Books(ZoneInfo("Europe/Berlin"), currency="EUR", rates={"USD": [(date(2026, 1, 1), Decimal("0.5"))]})
    b.memberships = {"ann": [(START_OF_TIME, "east")]}
    return b


def won(deal_id: str, amount: str, label: str | None = None, currency: str = "EUR",
        properties: dict[str, str] | None = None, stage: str = "won") -> Deal:
    return Deal("ann", stage, Decimal(amount), currency, AT - timedelta(days=5), AT if stage != "open" else None,
                None, deal_id, label, json.dumps(properties) if properties else None)


def counted(k: Kpi, *records: tuple[Deal | Activity, int]) -> dict[tuple[str, str, str, str], list[object]]:
    ledger = Ledger(books(), kpis=[k])
    for record, sign in records:
        if isinstance(record, Deal):
            ledger.deal(record, sign)
        else:
            ledger.activity(record, sign)
    return ledger.custom_changed()


def test_a_deals_kpi_counts_won_deals_of_a_stage_label_and_amount_range_at_their_close() -> None:
    new_logo = kpi("new_logo", source="deals", aggregation="sum",
                   filter={"stage_labels": ["Closed Won - New"], "min_amount": "100", "max_amount": "1000"})
    found = counted(new_logo, (won("a", "500", "Closed Won - New"), 1), (won("b", "500", "Closed Won"), 1),
                    (won("c", "1000", "Closed Won - New"), 1), (won("d", "1000", "Closed Won - New", "USD"), 1))
    assert found[("new_logo", "rep", "ann", "2026-Q4")] == [2, Decimal(1000), 0]  # 500, and 1,000 USD = 500 EUR
    assert found[("new_logo", "team", "east", "2026-11")] == [2, Decimal(1000), 0]


def test_an_edit_takes_the_old_version_out_and_a_deletion_takes_it_back() -> None:
    k = kpi(source="deals", aggregation="count", filter={"properties": {"segment": ["smb", "mid"]}})
    old, new = won("a", "5", properties={"segment": "smb"}), won("a", "5", properties={"segment": "enterprise"})
    assert counted(k, (old, 1), (old, -1), (new, 1)) == {}
    assert counted(k, (old, 1), (old, -1)) == {}
    assert counted(k, (old, 1))[("k", "rep", "ann", "2026")] == [1, Decimal(5), 0]


def test_an_activities_kpi_filters_kind_and_deal_and_counts_distinct_deals() -> None:
    demos = kpi("demo_deals", source="activities", aggregation="distinct_deals",
                filter={"kinds": ["demo", "meeting"], "with_deal": True})
    ledger = Ledger(books(), kpis=[demos])
    for kind, deal in (("demo", "d1"), ("meeting", "d1"), ("demo", "d2"), ("call", "d3"), ("demo", None)):
        ledger.activity(Activity("ann", kind, AT, deal, 600), 1)
    assert ledger.custom_changed()[("demo_deals", "rep", "ann", "2026-11")][0] == 3
    per_deal = {k[4]: n for k, n in ledger.custom_deals.items() if k[1:4] == ("rep", "ann", "2026-11")}
    assert per_deal == {"d1": 2, "d2": 1}


def test_open_and_any_stage_count_at_creation() -> None:
    open_pipe = kpi(source="deals", aggregation="sum", filter={"stage": "open"})
    found = counted(open_pipe, (won("a", "7", stage="open"), 1), (won("b", "9"), 1))
    assert found[("k", "rep", "ann", "2026-11")] == [1, Decimal(7), 0]  # created 5 Nov
    every = kpi(source="deals", aggregation="count", filter={"stage": "any"})
    assert counted(every, (won("a", "7", stage="open"), 1), (won("b", "9"), 1))[("k", "rep", "ann", "2026")][0] == 2


def test_a_deal_without_an_exchange_rate_counts_but_adds_no_amount() -> None:
    k = kpi(source="deals", aggregation="average")
    found = counted(k, (won("a", "10", currency="GBP"), 1), (won("b", "30"), 1))
    n, total, unconverted = found[("k", "rep", "ann", "2026")]
    assert (n, total, unconverted) == (2, Decimal(30), 1)
    assert value("average", 2, Decimal(30), 1, 0) == Decimal("30.0000")  # over the one with an amount


def test_aggregations() -> None:
    assert value("count", 3, Decimal(10), 0, 1) == 3
    assert value("sum", 3, Decimal(10), 0, 1) == 10
    assert value("average", 3, Decimal(10), 0, 1) == Decimal("3.3333")
    assert value("average", 0, Decimal(0), 0, 0) == 0
    assert value("distinct_deals", 3, Decimal(10), 0, 1) == 1


@pytest.mark.parametrize("bad", [
    {"source": "deals", "filter": {"kinds": ["call"]}},
    {"source": "activities", "filter": {"stage_labels": ["Won"]}},
    {"source": "activities", "filter": {"stage": "open"}},
    {"source": "deals", "filter": {"min_amount": "10", "max_amount": "10"}},
    {"source": "deals", "aggregation": "median"},
    {"source": "emails"},
    {"source": "deals", "filter": {"properties": {"bad name": ["x"]}}},
])
def test_a_definition_that_cannot_count_is_refused_with_its_reason(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        KpiDefinition.model_validate({"name": "x", **bad})
