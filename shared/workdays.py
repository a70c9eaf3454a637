"""Working days, the one implementation every service counts pace with: weekdays minus the days off.

A working day is a Monday to Friday local date that is not in ``days_off``: the tenant's holidays (its
country's and subdivision's public holidays from the `holidays` library, plus the days it added, minus
the ones it removed: `HolidayCalendar`) and the rep's time off, as local dates. kpi's expected, pace and
projection, coaching's rules and due dates and recognition's streaks all take their days off from here,
so a dashboard's pace and a check-in's never disagree. Like `shared.periods`, every datetime taken must be aware
(ValueError otherwise), every datetime returned is aware and in UTC, local midnights and hours are
DST-correct, and shares are exact Decimals rounded DOWN to 6 places.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays as _holidays

from shared.periods import local_midnight, require_aware, share_between, weekdays

__all__ = [
    "NO_CALENDAR",
    "HolidayCalendar",
    "check_country",
    "days_off",
    "due_at",
    "is_working_day",
    "local_midnight",
    "next_working_day",
    "recent_working_days",
    "working_days",
    "working_share",
]

log = logging.getLogger(__name__)
_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
_ZERO = Decimal("0.000000")
_ONE = Decimal("1.000000")


@dataclass(frozen=True, slots=True)
class HolidayCalendar:
    """A tenant's holidays: its country's (ISO 3166-1 alpha-2) and subdivision's public holidays from the
    `holidays` library, plus ``added`` days (a company day off, a bridge day), minus ``removed`` ones (a
    public holiday the tenant works). No country: only the added days.

    >>> berlin = HolidayCalendar("DE", "BE", added={date(2026, 12, 24): "Christmas Eve"})
    >>> sorted(berlin.between(date(2026, 12, 20), date(2026, 12, 31)).items())  # doctest: +NORMALIZE_WHITESPACE
    [(datetime.date(2026, 12, 24), 'Christmas Eve'), (datetime.date(2026, 12, 25), 'Christmas Day'),
     (datetime.date(2026, 12, 26), 'Second Day of Christmas')]
    """

    country: str | None = None
    subdivision: str | None = None
    added: Mapping[date, str] = field(default_factory=dict)
    removed: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        check_country(self.country, self.subdivision)

    def between(self, first: date, last: date) -> dict[date, str]:
        """The holidays from ``first`` to ``last`` (both included), by day, with their names."""
        out: dict[date, str] = {}
        if self.country:
            for year in range(first.year, last.year + 1):
                out.update((d, n) for d, n in _public(self.country, self.subdivision, year) if first <= d <= last)
        out.update((d, n) for d, n in self.added.items() if first <= d <= last)
        for day in self.removed:
            out.pop(day, None)
        return out

    @classmethod
    def of(cls, value: Any, tenant: str = "") -> HolidayCalendar:
        """The calendar a registry entry's ``holidays`` carries: the `shared.events.Holidays` model, its JSON
        (as a service stores it: ``{"country": "DE", "subdivision": "BE", "added": [{"day": "2026-12-24",
        "name": "..."}], "removed": ["2026-05-01"]}``), or None (no calendar: no holidays).

        One this process cannot read (a country the installed `holidays` library does not know: ingest checked
        it with its own) counts no holidays and is logged, rather than failing every batch of the tenant in
        each service that reads it."""
        if value is None:
            return NO_CALENDAR
        try:
            if hasattr(value, "model_dump"):
                value = value.model_dump(mode="json")
            if isinstance(value, str):
                value = json.loads(value)
            added = {date.fromisoformat(str(h["day"])): str(h["name"]) for h in value.get("added") or []}
            removed = frozenset(date.fromisoformat(str(d)) for d in value.get("removed") or [])
            return cls(value.get("country"), value.get("subdivision"), added, removed)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("unreadable holiday calendar: counted without holidays",
                        extra={"tenant": tenant, "error": str(err)})
            return NO_CALENDAR

    def to_json(self) -> dict[str, Any]:
        """What `of` reads back (and `shared.events.Holidays` validates)."""
        return {"country": self.country, "subdivision": self.subdivision,
                "added": [{"day": d.isoformat(), "name": n} for d, n in sorted(self.added.items())],
                "removed": sorted(d.isoformat() for d in self.removed)}

    def __hash__(self) -> int:  # usable as a cache key (a mapping field is not hashable by itself)
        return hash((self.country, self.subdivision, tuple(sorted(self.added.items())), self.removed))


def check_country(country: str | None, subdivision: str | None) -> None:
    """ValueError naming the problem when the `holidays` library knows no such country or subdivision."""
    if country is None:
        if subdivision is not None:
            raise ValueError(f"subdivision {subdivision!r} needs a country")
        return
    supported = _holidays.list_supported_countries()
    if country not in supported:
        raise ValueError(f"unknown country {country!r}: expected an ISO 3166-1 alpha-2 code the holidays library"
                         " knows, such as DE, GB, US or FR")
    if subdivision is not None and subdivision not in supported[country]:
        raise ValueError(f"unknown subdivision {subdivision!r} of {country}: expected one of "
                         f"{', '.join(supported[country]) or 'none (it has none)'}")


NO_CALENDAR = HolidayCalendar()


@lru_cache(maxsize=1024)
def _public(country: str, subdivision: str | None, year: int) -> tuple[tuple[date, str], ...]:
    """A country's public holidays of one year (remembered: the library builds them on every call)."""
    return tuple(sorted(_holidays.country_holidays(country, subdiv=subdivision, years=year).items()))


def days_off(calendar: HolidayCalendar, first: date, last: date,
             time_off: Iterable[tuple[date, date]] = ()) -> frozenset[date]:
    """The days off from ``first`` to ``last``: the calendar's holidays and every day of the (first, last)
    ranges of ``time_off`` (a rep's leave), as a set the functions below take.

    >>> sorted(days_off(HolidayCalendar("DE"), date(2026, 12, 23), date(2026, 12, 28),
    ...                 [(date(2026, 12, 28), date(2027, 1, 4))]))  # doctest: +NORMALIZE_WHITESPACE
    [datetime.date(2026, 12, 25), datetime.date(2026, 12, 26), datetime.date(2026, 12, 28)]
    """
    out = set(calendar.between(first, last))
    for start, end in time_off:
        day = max(start, first)
        while day <= min(end, last):
            out.add(day)
            day += _DAY
    return frozenset(out)


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


