"""The backfill's and the reconciliation's decisions (services/ingest/crm/backfill_rules.py): pure, no I/O."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.crm import backfill_rules
from services.ingest.crm.backfill_rules import (
    FIRST_BACKOFF,
    MAX_FAILURES,
    after_failure,
    fiscal_year_start,
    may_take,
    reconcile_window,
    settled,
)
from services.ingest.crm.model import ActivityChange, DealChange

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def test_the_examples_in_the_docstrings_hold() -> None:
    assert doctest.testmod(backfill_rules).failed == 0


@pytest.mark.parametrize(("now", "zone", "month", "expected"), [
    (NOW, "Europe/Berlin", 1, datetime(2026, 1, 1, tzinfo=UTC) - timedelta(hours=1)),
    (NOW, "America/New_York", 10, datetime(2026, 10, 1, 4, tzinfo=UTC)),  # EDT on 1 October
    (datetime(2026, 1, 1, 3, tzinfo=UTC), "America/Los_Angeles", 1,  # still 31 December in Los Angeles
     datetime(2025, 1, 1, 8, tzinfo=UTC)),
    (datetime(2026, 6, 30, 23, tzinfo=UTC), "Australia/Sydney", 7,  # 1 July 09:00 in Sydney: the new year
     datetime(2026, 6, 30, 14, tzinfo=UTC)),
])
def test_a_backfill_starts_at_the_first_moment_of_the_tenants_fiscal_year_in_its_zone(
        now: datetime, zone: str, month: int, expected: datetime) -> None:
    start = fiscal_year_start(now, zone, month)
    assert start == expected and start.utcoffset() is not None and start <= now


def test_a_fiscal_start_month_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="1-12"):
        fiscal_year_start(NOW, "UTC", 13)


def test_a_rate_limit_pauses_the_job_for_as_long_as_the_crm_asks_and_is_no_failure() -> None:
    after = after_failure(NOW, 3, 3600.0)
    assert (after.status, after.phase, after.failures, after.resume_at) == (
        "running", "throttled", 3, NOW + timedelta(hours=1))


def test_failed_calls_are_tried_again_with_doubling_pauses_then_the_job_fails() -> None:
    waits = [after_failure(NOW, n, None) for n in range(MAX_FAILURES)]
    assert [a.resume_at - NOW for a in waits[:-1] if a.resume_at] == [FIRST_BACKOFF * 2**n
                                                                      for n in range(MAX_FAILURES - 1)]
    assert [a.status for a in waits] == ["running"] * (MAX_FAILURES - 1) + ["failed"]
    assert waits[-1].resume_at is None and waits[-1].failures == MAX_FAILURES


@pytest.mark.parametrize(("status", "resume_at", "lease_until", "taken"), [
    ("running", None, None, True),  # never taken (or given up): resumed at once
    ("running", None, NOW - timedelta(seconds=1), True),  # a stopped replica's lease ran out: taken over
    ("running", None, NOW + timedelta(seconds=30), False),  # another runner works on it
    ("running", NOW + timedelta(minutes=5), None, False),  # a rate limit: not before then
    ("running", NOW, None, True),
    ("done", None, None, False),
    ("failed", None, None, False),
])
def test_which_jobs_a_runner_may_take(status: str, resume_at: datetime | None, lease_until: datetime | None,
                                      taken: bool) -> None:
    assert may_take(status, resume_at, lease_until, NOW) is taken


def test_a_pass_reads_from_the_watermark_less_the_overlap_or_from_the_first_time() -> None:
    assert reconcile_window(NOW, NOW - timedelta(days=2), timedelta(minutes=5)) == NOW - timedelta(minutes=5)
    assert reconcile_window(None, NOW - timedelta(days=2), timedelta(minutes=5)) == NOW - timedelta(days=2)


def _deal(deal_id: str, age_s: float) -> DealChange:
    return DealChange("hubspot", f"fetch:{deal_id}", deal_id, NOW - timedelta(seconds=age_s))


def _call(activity_id: str, age_s: float) -> ActivityChange:
    moment = NOW - timedelta(seconds=age_s)
    return ActivityChange("hubspot", f"fetch:calls:{activity_id}", activity_id, moment, "call", "1", moment)


def test_changes_newer_than_the_settle_time_wait_for_the_next_pass_and_hold_the_watermark_back() -> None:
    judged = settled([_deal("1", 3600), _call("2", 121), _deal("3", 60)], NOW - timedelta(seconds=60), NOW,
                     timedelta(minutes=2))
    assert [c.deal_id if isinstance(c, DealChange) else c.activity_id for c in judged.changes] == ["1", "2"]
    assert judged.watermark == NOW - timedelta(minutes=2)


def test_a_settled_page_advances_the_watermark_to_its_high_water_mark() -> None:
    judged = settled([_deal("1", 3600)], NOW - timedelta(seconds=3600), NOW, timedelta(minutes=2))
    assert judged.watermark == NOW - timedelta(hours=1) and len(judged.changes) == 1


def test_an_empty_page_leaves_the_watermark_where_it_was() -> None:
    assert settled([], None, NOW, timedelta(minutes=2)).watermark is None
