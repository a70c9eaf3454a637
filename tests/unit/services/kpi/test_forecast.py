"""services/kpi/forecast.py: the odds of reaching a target from the open pipeline equal an exhaustive
enumeration of every won/lost combination on small pipelines; sampling stays within its stated error."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.kpi.forecast import MAX_SPLIT, OpenDeal, explain, odds_of_reaching, weighted_pipeline
from tests.odds import exhaustive


def enumerated(gap: Decimal, deals: list[OpenDeal]) -> Fraction:
    """P(won amounts >= gap), summed over all 2^n outcomes, in exact fractions (`tests/odds.py`)."""
    return exhaustive(gap, ((d.amount, d.probability) for d in deals))


probabilities = st.decimals(min_value=0, max_value=1, places=2)
amounts = st.decimals(min_value=0, max_value=5000, places=2)
pipelines = st.lists(st.builds(OpenDeal, st.text("abcdef", min_size=1, max_size=3), amounts, probabilities),
                     max_size=9, unique_by=lambda deal: deal.deal_id)


@settings(max_examples=300, deadline=None)
@given(gap=st.decimals(min_value=-100, max_value=20000, places=2), deals=pipelines)
@pytest.mark.parametrize("max_split", [MAX_SPLIT, 0])  # meeting in the middle; partial sums
def test_the_odds_equal_an_exhaustive_enumeration(gap: Decimal, deals: list[OpenDeal], max_split: int) -> None:
    odds = odds_of_reaching(gap, deals, max_split=max_split)
    truth = enumerated(gap, deals)
    assert odds.error == 0 and odds.method in ("exact", "certain")
    assert abs(Fraction(odds.probability) - truth) <= Fraction(1, 20000) + Fraction(1, 10**9), (odds, float(truth))


@settings(max_examples=50, deadline=None)
@given(gap=st.decimals(min_value=1, max_value=8000, places=0), deals=pipelines)
def test_each_swing_is_the_odds_if_won_minus_if_lost(gap: Decimal, deals: list[OpenDeal]) -> None:
    for swing in explain(gap, deals):
        index = next(i for i, d in enumerate(deals) if d.deal_id == swing.deal_id)
        deal, others = deals[index], [*deals[:index], *deals[index + 1:]]
        expected = enumerated(gap - deal.amount, others) - enumerated(gap, others)
        assert abs(Fraction(swing.swing) - expected) <= Fraction(1, 10000) + Fraction(1, 10**9)
        assert swing.swing >= 0  # winning a deal never lowers the odds


def test_sampling_stays_within_its_stated_error_and_repeats_itself() -> None:
    deals = [OpenDeal(f"d{i}", Decimal(1000 + 37 * i), Decimal("0.35") + Decimal(i % 5) / 20) for i in range(14)]
    gap = Decimal(7000)
    truth = enumerated(gap, deals)
    sampled = odds_of_reaching(gap, deals, max_states=10, max_split=0)  # forced past the exact methods
    assert sampled.method == "monte_carlo" and sampled.samples == 20_000
    assert abs(Fraction(sampled.probability) - truth) <= Fraction(sampled.error), (sampled, float(truth))
    assert odds_of_reaching(gap, deals, max_states=10, max_split=0) == sampled  # seeded: the same every time
    assert odds_of_reaching(gap, deals, max_states=10).method == "exact"  # 14 deals: met in the middle
    assert odds_of_reaching(gap, deals).method == "exact"


@pytest.mark.parametrize(("gap", "deals", "probability", "method"), [
    (Decimal(0), [], Decimal(1), "certain"),  # already there
    (Decimal(-5), [OpenDeal("a", Decimal(10), Decimal("0.5"))], Decimal(1), "certain"),
    (Decimal(100), [], Decimal(0), "certain"),  # nothing open
    (Decimal(100), [OpenDeal("a", Decimal(60), Decimal(1)), OpenDeal("b", Decimal("39.99"), Decimal(1))],
     Decimal(0), "certain"),  # even winning everything falls short
    (Decimal(100), [OpenDeal("a", Decimal(100), Decimal("0.3"))], Decimal("0.3"), "exact"),
    (Decimal(100), [OpenDeal("a", Decimal(60), Decimal("0.5")), OpenDeal("b", Decimal(50), Decimal("0.5"))],
     Decimal("0.25"), "exact"),  # both are needed
])
def test_plain_cases(gap: Decimal, deals: list[OpenDeal], probability: Decimal, method: str) -> None:
    odds = odds_of_reaching(gap, deals)
    assert (odds.probability, odds.method) == (probability, method)


def test_a_deal_out_of_range_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="deal x: probability must be between 0 and 1"):
        OpenDeal("x", Decimal(1), Decimal("1.2"))
    with pytest.raises(ValueError, match="deal y: amount must be >= 0"):
        OpenDeal("y", Decimal(-1), Decimal("0.5"))


def test_the_weighted_pipeline_is_each_amount_times_its_probability() -> None:
    deals = [OpenDeal("a", Decimal("1000"), Decimal("0.25")), OpenDeal("b", Decimal("333.33"), Decimal("0.5"))]
    assert weighted_pipeline(deals) == Decimal("416.6650")
