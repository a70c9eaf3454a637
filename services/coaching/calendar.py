"""Working-day arithmetic for coaching: weekdays minus the days off, in a given zone. Pure, no I/O.

A working day is a Monday to Friday local date that is not in ``days_off`` (the tenant's holidays and
the rep's time off, as local dates). Like `shared.periods`, every datetime taken must be aware
(ValueError otherwise), every datetime returned is aware and in UTC, local midnights and hours are
DST-correct, and shares are exact Decimals rounded DOWN to 6 places.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from shared.periods import local_midnight, require_aware, share_between, weekdays

__all__ = [
    "due_at",
    "is_working_day",
    "local_midnight",
    "next_working_day",
    "recent_working_days",
    "working_days",
    "working_share",
]

_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
_ZERO = Decimal("0.000000")
_ONE = Decimal("1.000000")


def is_working_day(day: date, days_off: frozenset[date]) -> bool:
    """Monday to Friday and not a day off."""
    return day.weekday() < 5 and day not in days_off


def working_days(first: date, after: date, days_off: frozenset[date]) -> int:
    """The working days in ``[first, after)``: Monday to Friday dates not in ``days_off``."""
    total = weekdays(first, after)
    if total == 0:
        return 0
    return total - sum(1 for day in days_off if first <= day < after and day.weekday() < 5)


def next_working_day(day: date, days_off: frozenset[date]) -> date:
    """The first working day strictly after ``day``."""
    day += _DAY
    while not is_working_day(day, days_off):  # days_off is finite: this ends
        day += _DAY
    return day


def recent_working_days(today: date, count: int, days_off: frozenset[date]) -> list[date]:
    """The ``count`` most recent working days strictly before ``today``, newest first.

    Example: on Monday 2026-11-16 with Friday 2026-11-13 off, the 3 most recent are
    [2026-11-12, 2026-11-11, 2026-11-10] (Thursday, Wednesday, Tuesday).
    """
    days: list[date] = []
    day = today
    while len(days) < count:
        day -= _DAY
        if is_working_day(day, days_off):
            days.append(day)
    return days


def working_share(start: datetime, end: datetime, now: datetime, tz: ZoneInfo, days_off: frozenset[date]) -> Decimal:
    """The share of the working days of ``[start, end)`` (local dates in ``tz``) elapsed at ``now``.

    `shared.periods.business_share` with days off: whole working days before today, plus the elapsed
    part of today's real length when today is a working day; weekends and days off add nothing, so the
    pace a rep is held to stands still while they are off. 0 at or before ``start``, 1 at or after
    ``end``, rounded down to 6 places. A period with no Monday to Friday at all falls back to
    `share_between`; one whose weekdays are all days off stays at 0 until its end (nothing can be
    expected of someone off the whole period).

    Example: November 2026 in Europe/Berlin has 21 weekdays; with Friday the 13th off it has 20
    working days. At Monday the 16th, 00:00 local, 9 of them have passed: 9/20 = 0.450000.
    """
    require_aware(start, "start")
    require_aware(end, "end")
    require_aware(now, "now")
    first, after = start.astimezone(tz).date(), end.astimezone(tz).date()
    if weekdays(first, after) == 0:
        return share_between(start, end, now)
    if now <= start:
        return _ZERO
    if now >= end:
        return _ONE
    total = working_days(first, after, days_off)
    if total == 0:
        return _ZERO
    today = now.astimezone(tz).date()
    # in micro-days: whole working days before today, and the elapsed part of today's real length
    micro = working_days(first, today, days_off) * 1_000_000
    if is_working_day(today, days_off):
        midnight, next_midnight = local_midnight(today, tz), local_midnight(today + _DAY, tz)
        micro += ((now - midnight) // _MICROSECOND) * 1_000_000 // ((next_midnight - midnight) // _MICROSECOND)
    # an end that is not a local midnight leaves a partial day after the last counted one: stay within 1
    whole, fraction = divmod(min(micro // total, 1_000_000), 1_000_000)
    return Decimal(f"{whole}.{fraction:06d}")


def due_at(now: datetime, tz: ZoneInfo, days_off: frozenset[date], working_days_ahead: int, hour: int) -> datetime:
    """When a check-in raised at ``now`` is due: ``hour``:00 local, ``working_days_ahead`` working days on.

    The local date of ``now`` in ``tz`` moves forward that many working days (with 0: today when
    today is a working day, else the next one); if that day at ``hour`` is not after ``now``, the next
    working day at ``hour``. Never a weekend or a day off. Returned in UTC.

    Example (Europe/Berlin, 2 working days, 17:00): raised Friday 2026-11-13 at 10:00, due Tuesday
    2026-11-17 at 17:00 local (16:00 UTC); with Monday the 16th off, Wednesday the 18th.
    """
    require_aware(now, "now")
    if working_days_ahead < 0:
        raise ValueError(f"working_days_ahead must be >= 0, got {working_days_ahead}")
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be 0..23, got {hour}")
    day = now.astimezone(tz).date()
    if working_days_ahead == 0:
        if not is_working_day(day, days_off):
            day = next_working_day(day, days_off)
    else:
        for _ in range(working_days_ahead):
            day = next_working_day(day, days_off)
    due = _local_at(day, hour, tz)
    while due <= now:
        day = next_working_day(day, days_off)
        due = _local_at(day, hour, tz)
    return due


def _local_at(day: date, hour: int, tz: ZoneInfo) -> datetime:
    # fold=0: a wall time inside a DST gap is read with the offset before the transition
    return datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC)


