"""The whole-stack benchmark's pure parts: /proc parsing, CPU of processes that come and go, percentiles."""

from __future__ import annotations

import pytest

from benchmarks.proc import CpuLedger, StatTimes, cpu_seconds, parse_stat, per_event_us, summary
from benchmarks.workload import percentile

# A real line of /proc/<pid>/stat (a PostgreSQL backend), its command name holding a space and a ")".
STAT = ("4711 (postgres: x) y) S 812 4711 4711 0 -1 4194560 5012 0 0 0 1234 567 89 10 20 0 1 0 170063 "
        "227663872 4021 18446744073709551615 1 1 0 0 0 0 4194304 19935232 84487 0 0 0 17 1 0 0 0 0 0")


def test_the_cpu_fields_are_counted_from_the_last_parenthesis() -> None:
    assert parse_stat(STAT) == StatTimes(ppid=812, utime=1234, stime=567, cutime=89, cstime=10)


def test_seconds_are_ticks_over_the_clock_rate_children_only_when_asked() -> None:
    times = parse_stat(STAT)
    assert cpu_seconds(times, 100) == pytest.approx(18.01)
    assert cpu_seconds(times, 100, reaped=True) == pytest.approx(19.0)


@pytest.mark.parametrize("text", ["", "4711 postgres S 1 2 3", "4711 (short) S 1 2 3 4"])
def test_a_line_that_is_not_a_stat_line_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a /proc"):
        parse_stat(text)


def test_the_ledger_counts_a_process_present_at_the_start_from_its_reading_then() -> None:
    ledger = CpuLedger()
    ledger.start({1: 10.0, 2: 5.0})
    ledger.observe({1: 12.5, 2: 5.25})
    assert ledger.total() == pytest.approx(2.75)


def test_a_process_born_in_the_window_counts_from_zero_and_one_that_left_keeps_its_share() -> None:
    ledger = CpuLedger()
    ledger.start({1: 10.0})
    ledger.observe({1: 11.0, 3: 0.5})
    ledger.observe({3: 2.0})  # pid 1 has exited: what it used until its last reading stays counted
    assert ledger.total() == pytest.approx(3.0)
    assert ledger.processes == 2


def test_a_reused_pid_whose_reading_goes_down_is_a_new_process() -> None:
    ledger = CpuLedger()
    ledger.start({7: 4.0})
    ledger.observe({7: 6.0})
    ledger.observe({7: 0.25})  # another process now: the first used 2.0, this one 0.25 so far
    assert ledger.total() == pytest.approx(2.25)


def test_observing_before_starting_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        CpuLedger().observe({1: 1.0})


def test_percentiles_are_nearest_rank_values_of_the_sample() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unordered
    s = summary(values)
    assert (s.n, s.p50, s.p95, s.p99, s.max) == (100, 50.0, 95.0, 99.0, 100.0)
    assert percentile([3.0], 0.99) == 3.0


def test_a_small_sample_reports_its_worst_value_as_p99() -> None:
    s = summary([0.1, 0.2, 0.3, 0.4, 5.0])
    assert (s.p50, s.p95, s.p99, s.max) == (0.3, 5.0, 5.0, 5.0)
    assert s.as_ms()["p99_ms"] == pytest.approx(5000.0)


def test_no_latencies_summarise_as_zeros() -> None:
    assert summary([]).as_ms() == {"n": 0, "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}


def test_cpu_per_event_is_in_microseconds() -> None:
    assert per_event_us(0.7, 1000) == pytest.approx(700.0)
    assert per_event_us(1.0, 0) == 0.0


@pytest.mark.parametrize(("share", "expected"), [(0.0, 1.0), (0.07, 7.0), (0.5, 50.0), (0.951, 96.0), (1.0, 100.0)])
def test_the_percentile_is_the_value_of_rank_ceil_share_times_n(share: float, expected: float) -> None:
    assert percentile([float(v) for v in range(1, 101)], share) == expected
