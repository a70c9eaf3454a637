"""Attainment arithmetic: exact Decimals, four places, None where a ratio is undefined."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.kpi.figures import Figures, figures, ratio, source_time
from shared.events import ActivityLogged, DealUpserted, TargetSet

D = Decimal


def test_half_the_target_at_half_time_is_half_attainment_and_exactly_on_pace() -> None:
    assert figures(D("45000"), D("90000"), D("0.5")) == Figures(
        actual=D("45000"), target=D("90000"), attainment=D("0.5000"), expected=D("45000.0000"), pace=D("1.0000"),
        projected=D("90000.0000"),
    )


def test_figures_are_exact_where_binary_floats_are_not() -> None:
    result = figures(D("0.1") + D("0.2"), D("0.3"), D("1"))
    assert result.attainment == D("1.0000")
    assert result.expected == D("0.3000")
    assert result.pace == D("1.0000")


def test_results_are_decimals_with_four_places() -> None:
    result = figures(D("1000"), D("3000"), D("0.333333"))
    assert result.attainment == D("0.3333")
    assert result.expected == D("999.9990")
    assert result.pace == D("1.0000")
    for value in (result.attainment, result.expected, result.pace):
        assert isinstance(value, Decimal)
        assert value.as_tuple().exponent == -4


def test_ahead_of_pace_gives_pace_above_one() -> None:
    result = figures(D("60000"), D("90000"), D("0.25"))
    assert result.expected == D("22500.0000")
    assert result.pace == D("2.6667")
    assert result.attainment == D("0.6667")


def test_over_target_gives_attainment_above_one() -> None:
    assert figures(D("120000"), D("100000"), D("1")).attainment == D("1.2000")


def test_actual_is_passed_through_unchanged() -> None:
    assert figures(D("12.345678"), D("100"), D("0.5")).actual == D("12.345678")


def test_no_target_gives_no_attainment_expected_or_pace() -> None:
    assert figures(D("5000"), None, D("0.5")) == Figures(D("5000"), None, None, None, None, D("10000.0000"))


def test_nothing_is_projected_before_the_period_starts() -> None:
    assert figures(D("0"), D("100"), D("0")).projected is None


def test_a_zero_target_gives_no_attainment_and_no_pace() -> None:
    result = figures(D("5000"), D("0"), D("0.5"))
    assert result.target == D("0")
    assert result.attainment is None
    assert result.pace is None
    assert result.expected == D("0")


def test_zero_elapsed_share_expects_nothing_yet_and_pace_is_undefined() -> None:
    result = figures(D("5000"), D("90000"), D("0"))
    assert result.expected == D("0")
    assert result.pace is None
    assert result.attainment == D("0.0556")


def test_a_share_so_small_that_expected_rounds_to_zero_leaves_pace_undefined() -> None:
    result = figures(D("10"), D("1"), D("0.000001"))
    assert result.expected == D("0")
    assert result.pace is None


def test_nothing_done_gives_zero_attainment_and_zero_pace() -> None:
    result = figures(D("0"), D("90000"), D("0.5"))
    assert result.attainment == D("0")
    assert result.pace == D("0")


def test_whole_period_elapsed_expects_the_full_target() -> None:
    assert figures(D("1"), D("90000"), D("1.000000")).expected == D("90000")


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (D("1"), D("3"), D("0.3333")),
        (D("2"), D("3"), D("0.6667")),
        (D("0.00005"), D("1"), D("0.0000")),  # half to even: down to 0
        (D("0.00015"), D("1"), D("0.0002")),  # half to even: up to 2
        (D("0.00025"), D("1"), D("0.0002")),  # half to even: down to 2
    ],
)
def test_ratio_rounds_to_four_places_half_to_even(numerator: Decimal, denominator: Decimal, expected: Decimal) -> None:
    assert ratio(numerator, denominator) == expected


@pytest.mark.parametrize("denominator", [None, D("0"), D("0.0000")])
def test_ratio_is_undefined_without_a_denominator(denominator: Decimal | None) -> None:
    assert ratio(D("1"), denominator) is None


def test_a_batchs_source_time_is_its_newest_inputs_moment_never_after_now() -> None:
    now = datetime(2026, 11, 18, 10, tzinfo=UTC)
    old = now - timedelta(days=300)
    deal = DealUpserted(deal_id="d", rep_id="r", amount=D(1), currency="EUR", stage="won", closed_at=old,
                        updated_at=old)
    call = ActivityLogged(activity_id="a", rep_id="r", kind="call", occurred_at=old + timedelta(days=1))
    target = TargetSet(scope="rep", scope_id="r", metric="won_revenue", period="2026-Q4", value=D(5))
    # a backfill: the inputs' own moments, not when they were delivered
    assert source_time([(deal, now), (call, now)], now) == old + timedelta(days=1)
    # a target uploaded beside the backfill is a setting, not news; alone it counts at its event's time
    assert source_time([(deal, now), (target, now - timedelta(minutes=1))], now) == old
    assert source_time([(target, now - timedelta(minutes=1))], now) == now - timedelta(minutes=1)
    assert source_time([(deal, now + timedelta(days=1))], old) == old  # never after now
    assert source_time([], now) == now
