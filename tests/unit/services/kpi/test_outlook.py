"""A figure's forecast from its open deals (services/kpi/outlook.py): sums by category, the estimate of a deal
without a CRM probability, and the chance of reaching the target against an exhaustive enumeration."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.kpi.outlook import ANY, MIN_CLOSED, History, Prospect, band, estimate, history_of, outlook
from tests.odds import exhaustive, to_places

AT = datetime(2026, 12, 15, tzinfo=UTC)
NONE = History()


def prospect(deal: str, amount: str, p: str | None = None, category: str | None = None, stage: str | None = None,
             rep: str = "ann", converted: bool = True) -> Prospect:
    return Prospect(deal, rep, Decimal(amount) if converted else None, Decimal(amount), AT,
                    None if p is None else Decimal(p), category, stage)


def test_open_amounts_are_by_category_disjoint_and_omitted_or_unconverted_deals_count_nowhere() -> None:
    deals = [prospect("a", "100", "0.5", "commit"), prospect("b", "200", "0.5", "best_case"),
             prospect("c", "300", "0.5"), prospect("d", "400", "0.5", "pipeline"),
             prospect("e", "999", "1", "omitted"), prospect("f", "999", "1", converted=False)]
    f = outlook(closed=Decimal(50), target=Decimal(1000), prospects=deals, undated=2, histories={},
                tenant_history=NONE).forecast
    assert (f.commit, f.best_case, f.pipeline) == (Decimal(100), Decimal(200), Decimal(700))
    assert f.weighted == Decimal("550.0000") and f.gap == Decimal(950) and f.open_deals == 4 and f.undated == 2
    # 950 to go and 1,000 open: only winning all four reaches it (without the smallest: 900)
    assert (f.probability, f.method) == (Decimal("0.0625"), "exact")


def test_the_chance_needs_every_deal_when_only_all_of_them_reach_the_target() -> None:
    deals = [prospect("a", "100", "0.5"), prospect("b", "200", "0.5")]
    f = outlook(closed=Decimal(0), target=Decimal(300), prospects=deals, undated=0, histories={},
                tenant_history=NONE).forecast
    assert (f.probability, f.method, f.error) == (Decimal("0.2500"), "exact", Decimal(0))


def test_without_a_target_there_is_no_chance_and_no_gap() -> None:
    f = outlook(closed=Decimal(10), target=None, prospects=[prospect("a", "100", "0.5")], undated=0, histories={},
                tenant_history=NONE).forecast
    assert f.probability is None and f.method is None and f.gap == 0 and f.weighted == Decimal("60.0000")


def test_a_target_already_reached_is_certain() -> None:
    f = outlook(closed=Decimal(500), target=Decimal(400), prospects=[], undated=0, histories={},
                tenant_history=NONE).forecast
    assert (f.gap, f.probability, f.method) == (Decimal(0), Decimal("1.0000"), "certain")


def test_the_deals_listed_are_the_largest_weighted_first_at_most_ten() -> None:
    deals = [prospect(f"d{i:02}", str(100 * (i + 1)), "0.5") for i in range(12)]
    f = outlook(closed=Decimal(0), target=Decimal(1000), prospects=deals, undated=0, histories={},
                tenant_history=NONE).forecast
    assert [d.deal_id for d in f.deals] == [f"d{i:02}" for i in range(11, 1, -1)]


def test_bands_are_powers_of_ten() -> None:
    assert [band(Decimal(a)) for a in ("0", "999.9999", "1000", "9999", "10000", "99999", "100000")] == [
        "under 1,000", "under 1,000", "1,000-10,000", "1,000-10,000", "10,000-100,000", "10,000-100,000",
        "100,000 and more"]


def _history(stage_rows: list[tuple[str, str, int, int]], band_rows: list[tuple[str, int, int]]) -> History:
    return history_of(stage_rows, band_rows)


def test_an_estimate_takes_the_narrowest_level_with_enough_closed_deals() -> None:
    mine = _history([("Proposal", "1,000-10,000", 3, 4), ("Proposal", "10,000-100,000", 2, 2)],
                    [("1,000-10,000", 1, 10), ("10,000-100,000", 5, 5)])
    # stage and size: 4 closed, too few; stage alone: 5 of 6
    e = estimate(prospect("x", "5000", stage="Proposal"), mine, NONE)
    assert (e.probability, e.basis) == (Decimal("0.8333"), "history")
    assert "won 5 of 6 closed deals that reached 'Proposal'" in e.reason and "the rep's" in e.reason
    # no stage: its size band (1 of 10)
    assert estimate(prospect("x", "5000"), mine, NONE).probability == Decimal("0.1000")
    # a stage the rep never had, a size band with 10: the band
    assert estimate(prospect("x", "5000", stage="Demo"), mine, NONE).probability == Decimal("0.1000")
    # the CRM's probability wins over any history
    assert estimate(prospect("x", "5000", p="0.3", stage="Proposal"), mine, NONE).basis == "crm"


def test_a_rep_with_too_little_history_gets_the_tenants_and_with_none_anywhere_zero() -> None:
    tenant = _history([], [("under 1,000", 3, MIN_CLOSED + 1)])
    e = estimate(prospect("x", "10"), NONE, tenant)
    assert e.probability == Decimal("0.5000") and "the tenant's" in e.reason
    nothing = estimate(prospect("x", "10"), NONE, NONE)
    assert nothing.probability == 0 and "counted at 0" in nothing.reason
    assert tenant.at(ANY, ANY) == (3, MIN_CLOSED + 1)


def _enumerated(gap: Decimal, deals: list[tuple[Decimal, Decimal]]) -> Decimal:
    return to_places(exhaustive(gap, deals), "0.000000001")  # finer than the 4 places compared


pipelines = st.lists(st.tuples(st.sampled_from(["0", "100", "250.50", "1000", "4000"]),
                               st.sampled_from([None, "0", "0.1", "0.35", "0.5", "0.9", "1"]),
                               st.sampled_from([None, "commit", "best_case", "pipeline", "omitted"]),
                               st.sampled_from([None, "Proposal", "Demo"])), max_size=7)


@settings(max_examples=150, deadline=None)
@given(deals=pipelines, closed=st.sampled_from(["0", "500", "3000"]),
       target=st.sampled_from(["0", "1000", "2500", "6000"]))
def test_the_chance_equals_an_exhaustive_enumeration_of_the_open_deals(
        deals: list[tuple[str, str | None, str | None, str | None]], closed: str, target: str) -> None:
    mine = _history([("Proposal", "under 1,000", 2, 5), ("Proposal", "1,000-10,000", 4, 5)],
                    [("under 1,000", 1, 6), ("1,000-10,000", 3, 6)])
    prospects = [prospect(f"d{i}", a, p, c, s) for i, (a, p, c, s) in enumerate(deals)]
    e = outlook(closed=Decimal(closed), target=Decimal(target), prospects=prospects, undated=0,
                histories={"ann": mine}, tenant_history=NONE)
    counted = [(p.amount, e.estimates[p.deal_id].probability) for p in prospects
               if p.category != "omitted" and p.amount is not None]
    reference = _enumerated(Decimal(target) - Decimal(closed), counted)  # type: ignore[arg-type]
    assert e.forecast.probability is not None
    assert abs(e.forecast.probability - reference) <= Decimal("0.00005"), (e.forecast, reference)
    weighted = Decimal(closed) + sum((a * p for a, p in counted), Decimal(0))  # type: ignore[misc]
    assert e.forecast.weighted == weighted.quantize(Decimal("0.0001"))
