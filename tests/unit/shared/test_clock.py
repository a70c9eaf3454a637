"""Clocks: the real one, a fixed one for tests, a scaled one for replays, and their specs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from shared.clock import Clock, FixedClock, ScaledClock, SystemClock, clock_from_spec

START = datetime(2026, 11, 1, tzinfo=UTC)


def test_system_clock_returns_the_real_time_in_utc() -> None:
    before = datetime.now(UTC)
    now = SystemClock().now()
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


def test_fixed_clock_stands_still_until_advanced() -> None:
    clock = FixedClock(START)
    assert clock.now() == clock.now() == START
    clock.advance(timedelta(hours=2))
    assert clock.now() == START + timedelta(hours=2)
    clock.advance(timedelta(minutes=-30))
    assert clock.now() == START + timedelta(hours=1, minutes=30)


def test_fixed_clock_set_moves_it_anywhere_and_returns_utc() -> None:
    clock = FixedClock(START)
    clock.set(datetime(2027, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    assert clock.now() == datetime(2027, 1, 1, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_fixed_clock_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2026, 11, 1))
    clock = FixedClock(START)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2026, 11, 1))


def test_scaled_clock_runs_rate_times_as_fast_as_the_real_clock() -> None:
    real = FixedClock(datetime(2030, 5, 5, tzinfo=UTC))
    clock = ScaledClock(START, Decimal(60), real)
    assert clock.now() == START
    real.advance(timedelta(seconds=10))
    assert clock.now() == START + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("rate", "after_ten_seconds"), [(0.5, 5), (2.5, 25), (Decimal("0.1"), 1)]
)
def test_scaled_clock_accepts_float_and_decimal_rates(
    rate: Decimal | float, after_ten_seconds: int
) -> None:
    real = FixedClock(START)
    clock = ScaledClock(START, rate, real)
    real.advance(timedelta(seconds=10))
    assert clock.now() == START + timedelta(seconds=after_ten_seconds)


@pytest.mark.parametrize("rate", [0, -1, Decimal("NaN"), float("inf"), Decimal(0)])
def test_scaled_clock_rejects_rates_that_are_not_positive_numbers(
    rate: Decimal | float,
) -> None:
    with pytest.raises(ValueError, match="rate must be a finite number above 0"):
        ScaledClock(START, rate, FixedClock(START))


def test_scaled_clock_rejects_a_naive_start() -> None:
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        ScaledClock(datetime(2026, 11, 1), 2)


def test_scaled_clock_returns_utc_for_a_start_with_an_offset() -> None:
    start = datetime(2026, 11, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    clock = ScaledClock(start, 1, FixedClock(START))
    assert clock.now() == START
    assert clock.now().tzinfo is UTC


def test_scaled_clock_uses_the_system_clock_by_default() -> None:
    clock = ScaledClock(START, 1)
    assert START <= clock.now() < START + timedelta(seconds=5)


@pytest.mark.parametrize("spec", ["", "system", "  system\n"])
def test_clock_from_spec_defaults_to_the_system_clock(spec: str) -> None:
    assert isinstance(clock_from_spec(spec), SystemClock)


def test_clock_from_spec_builds_a_fixed_clock() -> None:
    clock = clock_from_spec("fixed:2026-11-05T10:00:00+01:00")
    assert isinstance(clock, FixedClock)
    assert clock.now() == datetime(2026, 11, 5, 9, tzinfo=UTC)


def test_clock_from_spec_builds_a_scaled_clock() -> None:
    clock = clock_from_spec("scaled:2026-11-01T00:00:00Z@60")
    assert isinstance(clock, ScaledClock)
    assert (clock.start, clock.rate) == (START, Decimal(60))
    assert START <= clock.now() < START + timedelta(minutes=5)


def test_a_scaled_clock_with_an_end_stops_there_and_stays() -> None:
    real = FixedClock(datetime(2030, 5, 5, tzinfo=UTC))
    until = START + timedelta(minutes=15)
    clock = ScaledClock(START, Decimal(60), real, until=until)
    real.advance(timedelta(seconds=10))
    assert clock.now() == START + timedelta(minutes=10)
    real.advance(timedelta(seconds=10))
    assert clock.now() == until
    real.advance(timedelta(days=3))
    assert clock.now() == until


def test_clock_from_spec_builds_a_scaled_clock_that_stops_as_an_iso_interval_says() -> None:
    clock = clock_from_spec("scaled:2026-11-01T00:00:00Z/2026-11-01T01:00:00+01:00@1000000")
    assert isinstance(clock, ScaledClock)
    assert (clock.start, clock.until, clock.rate) == (START, START, Decimal(1000000))
    assert clock.now() == START


def test_every_clock_satisfies_the_protocol() -> None:
    clocks: list[Clock] = [SystemClock(), FixedClock(START), ScaledClock(START, 1)]
    assert all(clock.now().tzinfo is UTC for clock in clocks)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("real", "expected 'system', 'fixed:<instant>' or 'scaled:<start>@<rate>'"),
        ("warp:2026-11-01T00:00:00Z", "expected 'system'"),
        ("fixed:", "'' is not an RFC 3339 instant"),
        ("fixed:yesterday", "'yesterday' is not an RFC 3339 instant"),
        ("fixed:2026-11-05T09:00:00", "needs a UTC offset"),
        ("fixed:2026-11-05", "needs a UTC offset"),
        ("scaled:2026-11-01T00:00:00Z", "expected scaled:<start>@<rate>"),
        ("scaled:2026-11-01T00:00:00Z@fast", "rate 'fast' must be a number above 0"),
        ("scaled:2026-11-01T00:00:00Z@0", "rate '0' must be a number above 0"),
        ("scaled:2026-11-01T00:00:00Z@-2", "rate '-2' must be a number above 0"),
        ("scaled:2026-11-01T00:00:00Z@NaN", "rate 'NaN' must be a number above 0"),
        ("scaled:2026-11-01T00:00:00Z@", "rate '' must be a number above 0"),
        ("scaled:@60", "'' is not an RFC 3339 instant"),
        ("scaled:2026-11-01T00:00:00@60", "needs a UTC offset"),
        ("scaled:2026-11-01T00:00:00Z/@60", "'' is not an RFC 3339 instant"),
        ("scaled:2026-11-01T00:00:00Z/soon@60", "'soon' is not an RFC 3339 instant"),
        ("scaled:2026-11-01T00:00:00Z/2026-10-01T00:00:00Z@60", "is before start"),
    ],
)
def test_clock_from_spec_says_what_is_wrong(spec: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        clock_from_spec(spec)
    message = str(caught.value)
    assert message.startswith(f"clock spec {spec!r}")
    assert problem in message
