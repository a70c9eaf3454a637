"""Fair pace: the share of a period's working days elapsed at a moment, for a team and for a rep. Pure: no I/O,
and `now` is a parameter.

A working day is a Monday to Friday local date, in the tenant's zone, that is not a day off. Days off are
counted by `shared.workdays`, the one implementation coaching and recognition count with too, so kpi's pace
and a check-in's never disagree: a team's (and the tenant's) days off are the tenant's holidays; a rep's are
the tenant's holidays and the rep's own time off. kpi's expected, pace and projection (`figures.figures`)
take their share from here in its published figures, its read API and its dashboard alike.

Example: December 2026 in Berlin (calendar DE, BE) has 23 weekdays; Christmas Day, Friday the 25th, is a
holiday (the 26th is a Saturday), so a team has 22 working days. At Tuesday the 29th, 00:00 local, 19 of
them have passed: 19/22 = 0.863636. A rep off on Monday the 28th has 21 working days, 18 of them passed:
0.857142. Monday to Friday alone would say 20/23 = 0.869565.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shared.workdays import HolidayCalendar, days_off, working_share

__all__ = ["Leave", "Pace", "calendar_of", "days_off_in", "local_days", "pace", "share"]


Leave = Sequence[tuple[date, date]]  # a rep's time off: (first day, last day), local dates, both included
_MICROSECOND = timedelta(microseconds=1)


def calendar_of(value: Any, tenant: str = "") -> HolidayCalendar:
    """The holiday calendar of a registry entry's ``holidays`` (`HolidayCalendar.of`: an unreadable one counts
    no holidays, logged)."""
    return HolidayCalendar.of(value, tenant)


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> tuple[date, date]:
    """The first and the last local day of the period ``[start, end)``."""
    return start.astimezone(tz).date(), (end - _MICROSECOND).astimezone(tz).date()


def days_off_in(start: datetime, end: datetime, tz: ZoneInfo, calendar: HolidayCalendar,
                leave: Leave = ()) -> frozenset[date]:
    """The days off of the period ``[start, end)``: the calendar's holidays and every day of ``leave`` in it."""
    first, last = local_days(start, end, tz)
    return days_off(calendar, first, last, leave)


def share(start: datetime, end: datetime, now: datetime, tz: ZoneInfo, calendar: HolidayCalendar,
          leave: Leave = ()) -> Decimal:
    """The share of the working days of ``[start, end)`` elapsed at ``now`` (`shared.workdays.working_share`),
    with the calendar's holidays and the days of ``leave`` off: a team passes no leave, a rep their own."""
    return working_share(start, end, now, tz, days_off_in(start, end, tz, calendar, leave))


@dataclass(frozen=True, slots=True)
class Pace:
    """The days off and the elapsed working share of several periods at one moment, by (period, rep): the
    rep None for a team (the tenant's holidays off) and for any rep without time off in the period."""

    days_off: Mapping[tuple[str, str | None], frozenset[date]]
    shares: Mapping[tuple[str, str | None], Decimal]

    def share(self, period: str, rep_id: str | None = None) -> Decimal:
        """The share of ``period`` for the rep ``rep_id`` (None: for a team)."""
        mine = (period, rep_id)
        return self.shares[mine] if mine in self.shares else self.shares[(period, None)]

    def days_off_of(self, period: str, rep_id: str | None = None) -> frozenset[date]:
        """The days off of ``period`` for the rep ``rep_id`` (None: for a team)."""
        mine = (period, rep_id)
        return self.days_off[mine] if mine in self.days_off else self.days_off[(period, None)]


def pace(bounds: Mapping[str, tuple[datetime, datetime]], now: datetime, tz: ZoneInfo, calendar: HolidayCalendar,
         time_off: Mapping[str, Leave] | None = None) -> Pace:
    """The `Pace` of each period of ``bounds`` (label -> (start, end)) at ``now``: the tenant's, and each rep's
    of ``time_off`` (rep -> their leave) whose leave overlaps the period (the others share the tenant's).

    >>> from shared.periods import period_bounds
    >>> berlin = ZoneInfo("Europe/Berlin")
    >>> december = {"2026-12": period_bounds("2026-12", berlin)}
    >>> at = datetime(2026, 12, 29, tzinfo=berlin)
    >>> fair = pace(december, at, berlin, HolidayCalendar("DE", "BE"), {"ann": [(date(2026, 12, 28),) * 2]})
    >>> fair.share("2026-12"), fair.share("2026-12", "ann"), fair.share("2026-12", "bob")
    (Decimal('0.863636'), Decimal('0.857142'), Decimal('0.863636'))
    """
    off: dict[tuple[str, str | None], frozenset[date]] = {}
    shares: dict[tuple[str, str | None], Decimal] = {}
    for period, (start, end) in bounds.items():
        first, last = local_days(start, end, tz)
        off[(period, None)] = days_off(calendar, first, last)
        shares[(period, None)] = working_share(start, end, now, tz, off[(period, None)])
        for rep_id, leave in (time_off or {}).items():
            overlapping = [(a, b) for a, b in leave if a <= last and b >= first]
            if overlapping:
                off[(period, rep_id)] = days_off(calendar, first, last, overlapping)
                shares[(period, rep_id)] = working_share(start, end, now, tz, off[(period, rep_id)])
    return Pace(off, shares)
