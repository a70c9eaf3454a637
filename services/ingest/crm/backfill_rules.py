"""The decisions of the backfill and the reconciliation pass, pure: time is a parameter, nothing here does I/O.

- `fiscal_year_start`: where a backfill starts unless the request names a `since`.
- `after_failure`: what a job does when a page could not be read (a rate limit asks to wait; a failed call is tried
  again with doubling pauses, then the job fails with the error).
- `reconcile_window` and `settled`: what a reconciliation pass reads (from the watermark less an overlap) and
  which of the changes it read are old enough to judge (a change newer than the settle time may still have its
  webhook on the way: it is left for the next pass, and the watermark stops before it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from services.ingest.crm.model import ActivityChange, DealChange

Kind = Literal["deals", "activities"]
KINDS: tuple[Kind, ...] = ("deals", "activities")
MAX_FAILURES = 5
FIRST_BACKOFF = timedelta(seconds=30)


def fiscal_year_start(now: datetime, timezone: str, start_month: int) -> datetime:
    """The first moment of the fiscal year `now` is in, in the tenant's zone (an aware datetime).

    >>> from datetime import UTC
    >>> fiscal_year_start(datetime(2026, 12, 7, 9, tzinfo=UTC), "Europe/Berlin", 4).isoformat()
    '2026-04-01T00:00:00+02:00'
    >>> fiscal_year_start(datetime(2026, 3, 31, 21, 59, tzinfo=UTC), "Europe/Berlin", 4).isoformat()
    '2025-04-01T00:00:00+02:00'
    >>> fiscal_year_start(datetime(2026, 3, 31, 22, 0, tzinfo=UTC), "Europe/Berlin", 4).isoformat()
    '2026-04-01T00:00:00+02:00'
    """
    if not 1 <= start_month <= 12:
        raise ValueError(f"fiscal start month {start_month}: must be 1-12")
    local = now.astimezone(ZoneInfo(timezone))
    year = local.year if local.month >= start_month else local.year - 1
    return datetime(year, start_month, 1, tzinfo=ZoneInfo(timezone))


@dataclass(frozen=True, slots=True)
class AfterFailure:
    """What a job does after a page failed: wait until `resume_at` (still running), or fail for good."""

    status: Literal["running", "failed"]
    phase: Literal["throttled", "retrying", "finished"]
    failures: int
    resume_at: datetime | None


def after_failure(now: datetime, failures: int, rate_limit_wait_s: float | None) -> AfterFailure:
    """`failures`: failed attempts in a row before this one. A rate limit (the CRM said how long) waits that long
    and is no failure; any other failure waits 30 s, 60 s, 120 s... and the job fails at the `MAX_FAILURES`th.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 5, 9, tzinfo=UTC)
    >>> after_failure(t, 0, 3600.0).resume_at.isoformat(), after_failure(t, 2, None).resume_at.isoformat()
    ('2026-01-05T10:00:00+00:00', '2026-01-05T09:02:00+00:00')
    >>> after_failure(t, MAX_FAILURES - 1, None).status
    'failed'
    """
    if rate_limit_wait_s is not None:
        return AfterFailure("running", "throttled", failures, now + timedelta(seconds=rate_limit_wait_s))
    if failures + 1 >= MAX_FAILURES:
        return AfterFailure("failed", "finished", failures + 1, None)
    return AfterFailure("running", "retrying", failures + 1, now + FIRST_BACKOFF * 2**failures)


def may_take(status: str, resume_at: datetime | None, lease_until: datetime | None, now: datetime) -> bool:
    """Whether a runner may take a job at `now`: running, not waiting, and no other runner's lease alive.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 5, 9, tzinfo=UTC)
    >>> may_take("running", None, t - timedelta(seconds=1), t), may_take("running", None, t, t)
    (True, False)
    >>> may_take("running", t + timedelta(seconds=1), None, t), may_take("done", None, None, t)
    (False, False)
    """
    return status == "running" and (resume_at is None or resume_at <= now) and (lease_until is None
                                                                                 or lease_until < now)


def reconcile_window(watermark: datetime | None, first_from: datetime, overlap: timedelta) -> datetime:
    """Where a pass reads from: the watermark less the overlap (the CRM's own indexing delay; what is read twice
    publishes nothing twice), or `first_from` before any pass.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 5, 9, tzinfo=UTC)
    >>> reconcile_window(t, t - timedelta(days=1), timedelta(minutes=5)).isoformat()
    '2026-01-05T08:55:00+00:00'
    """
    return first_from if watermark is None else watermark - overlap


Change = DealChange | ActivityChange


@dataclass(frozen=True, slots=True)
class Settled:
    """The changes a pass judges now, and the watermark it may advance to (None: not past where it started)."""

    changes: tuple[Change, ...]
    watermark: datetime | None


def settled(changes: Sequence[Change], high_water: datetime | None, now: datetime, settle: timedelta) -> Settled:
    """The changes at or before `now - settle`, and the watermark: the page's high-water mark, or the settle
    time when the pass read changes newer than it (those are read again next pass).

    >>> from datetime import UTC
    >>> from services.ingest.crm.model import DealChange
    >>> t = datetime(2026, 1, 5, 9, tzinfo=UTC)
    >>> old, new = (DealChange("hubspot", "e", str(i), t - timedelta(seconds=s)) for i, s in ((1, 600), (2, 10)))
    >>> s = settled([old, new], t - timedelta(seconds=10), t, timedelta(minutes=2))
    >>> [c.deal_id for c in s.changes], s.watermark.isoformat()
    (['1'], '2026-01-05T08:58:00+00:00')
    """
    cut = now - settle
    kept = tuple(c for c in changes if c.changed_at <= cut)
    if high_water is None:
        return Settled(kept, None)
    return Settled(kept, min(high_water, cut))
