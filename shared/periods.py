"""The one period calendar of Attain: what "2026-11" or "2027-Q1" means for a tenant.

Period strings (contract): ``2026-11`` (month), ``2026-Q4`` (quarter), ``2026-W48``
(ISO week), ``2026`` (year). Only these canonical spellings parse (four-digit year,
two-digit month and week, upper-case ``Q``/``W``); years run from 1970 to 9999.

Fiscal convention. A tenant may set a fiscal year start month ``m`` (1..12, default 1).
Quarters and years are fiscal, months and ISO weeks are always calendar. With ``m = 1``
the fiscal year is the calendar year. With ``m != 1`` fiscal year N is named by the
calendar year in which it ENDS: it runs from the 1st of month ``m`` of year N-1 up to
the 1st of month ``m`` of year N, and quarter ``N-Qk`` is its k-th block of three
months. Example, ``m = 2``: "2027" is 2026-02-01 .. 2027-02-01 and "2027-Q1" is
Feb-Apr 2026; ``m = 4``: "2027" is 2026-04-01 .. 2027-04-01. A label alone does not
say which fiscal start it was made with: always pass the tenant's month.

Zone convention. Boundaries are local midnights in the tenant's IANA zone (DST-correct),
returned as aware datetimes in UTC, half-open ``[start, end)``. UTC is returned because
subtracting two datetimes that share one ZoneInfo uses wall-clock time and gets DST
days wrong; UTC values compare, subtract and store (timestamptz) without surprises.
If a local midnight falls into a DST gap, the period starts at the first instant of
that local day (the transition). Moments in any zone are accepted; naive datetimes
are rejected with ValueError.

Elapsed time: ``elapsed_share``/``share_between`` count real seconds; ``business_share``
counts Monday-to-Friday days in the tenant's zone. The pace every service holds reps to counts
working days instead (``shared.workdays.working_share``: minus holidays and time off).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "MAX_YEAR",
    "MIN_YEAR",
    "Period",
    "PeriodError",
    "PeriodKind",
    "elapsed_share",
    "local_midnight",
    "parse_period",
    "period_bounds",
    "period_of",
    "periods_containing",
    "require_aware",
    "share_between",
    "validate_timezone",
    "weekdays",
]

MIN_YEAR = 1970
MAX_YEAR = 9999

_LABEL = re.compile(
    r"(?P<year>[0-9]{4})(?:-(?:(?P<month>[0-9]{2})|Q(?P<quarter>[0-9])|W(?P<week>[0-9]{2})))?"
)
_MICROSECOND = timedelta(microseconds=1)


class PeriodError(ValueError):
    """A period string that is not one of the contract's forms, or lies out of range."""


class PeriodKind(StrEnum):
    """The kinds of period the contract knows."""

    MONTH = "month"
    QUARTER = "quarter"
    WEEK = "week"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class Period:
    """A validated period: its kind and its canonical label (``str()`` gives the label)."""

    kind: PeriodKind
    label: str

    def __post_init__(self) -> None:
        kind = _split(self.label)[0]
        if kind != self.kind:
            raise PeriodError(f"period {self.label!r} is a {kind}, not a {self.kind}")
        object.__setattr__(self, "kind", kind)

    def __str__(self) -> str:
        return self.label


def parse_period(text: str) -> Period:
    """Parse a contract period string such as ``2026-11``, ``2026-Q4``, ``2026-W48``, ``2026``.

    Raises PeriodError naming the text when it is malformed or out of range.
    """
    return Period(_split(text)[0], text)


def validate_timezone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name`` (e.g. ``Europe/Berlin``); ValueError if unknown."""
    try:
        return ZoneInfo(name)
    # ValueError: malformed keys such as ""; OSError: directories such as "America".
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}: expected an IANA name such as 'Europe/Berlin'"
        ) from exc


def period_bounds(
    period: Period | str, tz: str | ZoneInfo, fiscal_start_month: int = 1
) -> tuple[datetime, datetime]:
    """Return ``(start, end)`` of the period in UTC: local midnights in ``tz``, half-open.

    Quarters and years follow the tenant's fiscal start month (see module docstring).
    """
    label = period.label if isinstance(period, Period) else parse_period(period).label
    zone = _zone(tz)
    shift = _fiscal_shift(fiscal_start_month)
    kind, year, number = _split(label)
    try:
        if kind is PeriodKind.WEEK:
            first = date.fromisocalendar(year, number, 1)
            after = first + timedelta(days=7)
        else:
            if kind is PeriodKind.MONTH:
                index, months = year * 12 + number - 1, 1
            elif kind is PeriodKind.QUARTER:
                index, months = year * 12 + shift + 3 * (number - 1), 3
            else:
                index, months = year * 12 + shift, 12
            first, after = _month_start(index), _month_start(index + months)
    except (ValueError, OverflowError) as exc:
        raise PeriodError(f"period {label!r} ends after year {MAX_YEAR}") from exc
    return local_midnight(first, zone), local_midnight(after, zone)


def period_of(
    kind: PeriodKind | str,
    moment: datetime,
    tz: str | ZoneInfo,
    fiscal_start_month: int = 1,
) -> Period:
    """Return the period of ``kind`` that contains ``moment`` as seen in the zone ``tz``."""
    kind = _kind(kind)
    zone = _zone(tz)
    shift = _fiscal_shift(fiscal_start_month)
    day = require_aware(moment, "moment").astimezone(zone).date()
    if kind is PeriodKind.WEEK:
        iso = day.isocalendar()
        return Period(kind, f"{iso.year:04d}-W{iso.week:02d}")
    if kind is PeriodKind.MONTH:
        return Period(kind, f"{day.year:04d}-{day.month:02d}")
    fiscal_year, offset = divmod(day.year * 12 + day.month - 1 - shift, 12)
    if kind is PeriodKind.QUARTER:
        return Period(kind, f"{fiscal_year:04d}-Q{offset // 3 + 1}")
    return Period(kind, f"{fiscal_year:04d}")


def periods_containing(
    moment: datetime, tz: str | ZoneInfo, fiscal_start_month: int = 1
) -> list[Period]:
    """Return the month, quarter, week and year (in that order) that contain ``moment``."""
    return [period_of(kind, moment, tz, fiscal_start_month) for kind in PeriodKind]


@lru_cache(maxsize=8192)
@lru_cache(maxsize=8192)  # pure, and a stream's moments fall on few days: kpi asks once per contribution
def labels_of_day(day: date, fiscal_start_month: int = 1) -> tuple[str, ...]:
    """The labels of the month, quarter, week and year (in that order) holding the local calendar ``day``.

    Every period starts at a local midnight, so a local day lies in exactly one period of each kind:
    callers that bucket many moments convert each to its local day once and share these labels.
    """
    noon = datetime.combine(day, time(12), tzinfo=UTC)
    return tuple(p.label for p in periods_containing(noon, "UTC", fiscal_start_month))


def elapsed_share(
    period: Period | str,
    now: datetime,
    tz: str | ZoneInfo,
    fiscal_start_month: int = 1,
) -> Decimal:
    """Return the share of the period elapsed at ``now``, from 0 to 1, as a Decimal.

    Elapsed real seconds over total real seconds (a DST month is 743 or 745 hours long),
    clamped to [0, 1] and rounded DOWN to exactly 6 decimal places, so ``1.000000`` is
    only reached once the period is over. No float is involved.
    """
    start, end = period_bounds(period, tz, fiscal_start_month)
    return share_between(start, end, now)


def share_between(start: datetime, end: datetime, now: datetime) -> Decimal:
    """Return the share of ``[start, end)`` elapsed at ``now`` (as ``elapsed_share`` does)."""
    elapsed = min(max(require_aware(now, "now") - start, timedelta(0)), end - start)
    micro = (elapsed // _MICROSECOND) * 1_000_000 // ((end - start) // _MICROSECOND)
    whole, fraction = divmod(micro, 1_000_000)
    return Decimal(f"{whole}.{fraction:06d}")


def business_share(start: datetime, end: datetime, now: datetime, tz: str | ZoneInfo) -> Decimal:
    """Return the share of the business days (Monday to Friday, local to ``tz``) of ``[start, end)``
    elapsed at ``now``: whole business days before today, plus the elapsed part of today when today
    is one. Weekends add nothing, so linear pace stands still over a weekend instead of running
    ahead of a team that does not work then. Rounded down to 6 places like ``share_between``; a
    period without a business day falls back to ``share_between``.
    """
    zone = _zone(tz)
    first, after = start.astimezone(zone).date(), end.astimezone(zone).date()
    total = weekdays(first, after)
    if total == 0:
        return share_between(start, end, now)
    now = require_aware(now, "now")
    if now <= start:
        return Decimal("0.000000")
    if now >= end:
        return Decimal("1.000000")
    today = now.astimezone(zone).date()
    # in micro-days: whole business days before today, and the elapsed part of today's real length
    micro = weekdays(first, today) * 1_000_000
    if today.weekday() < 5:
        midnight, next_midnight = local_midnight(today, zone), local_midnight(today + timedelta(days=1), zone)
        micro += ((now - midnight) // _MICROSECOND) * 1_000_000 // ((next_midnight - midnight) // _MICROSECOND)
    whole, fraction = divmod(micro // total, 1_000_000)
    return Decimal(f"{whole}.{fraction:06d}")


def weekdays(first: date, after: date) -> int:
    """Monday-to-Friday days in ``[first, after)``."""
    days = (after - first).days
    if days <= 0:
        return 0
    weeks, rest = divmod(days, 7)
    return weeks * 5 + sum(1 for i in range(rest) if (first.weekday() + i) % 7 < 5)


def _split(text: str) -> tuple[PeriodKind, int, int]:
    """Parse ``text`` into (kind, year, number); number is 0 for a year."""
    match = _LABEL.fullmatch(text)
    if match is None:
        raise PeriodError(
            f"{text!r} is not a period: expected YYYY, YYYY-MM, YYYY-Qn or YYYY-Www"
        )
    year = int(match["year"])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"period {text!r}: year must be {MIN_YEAR}..{MAX_YEAR}")
    if match["month"] is not None:
        kind, number, limit = PeriodKind.MONTH, int(match["month"]), 12
    elif match["quarter"] is not None:
        kind, number, limit = PeriodKind.QUARTER, int(match["quarter"]), 4
    elif match["week"] is not None:
        # 28 December always lies in the last ISO week of its year.
        kind, number = PeriodKind.WEEK, int(match["week"])
        limit = date(year, 12, 28).isocalendar().week
    else:
        return PeriodKind.YEAR, year, 0
    if not 1 <= number <= limit:
        where = f" in ISO year {year}" if kind is PeriodKind.WEEK else ""
        raise PeriodError(f"period {text!r}: {kind} must be 1..{limit}{where}")
    return kind, year, number


def _kind(kind: PeriodKind | str) -> PeriodKind:
    try:
        return PeriodKind(kind)
    except ValueError as exc:
        choices = ", ".join(PeriodKind)
        raise PeriodError(f"unknown period kind {kind!r}: expected {choices}") from exc


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else validate_timezone(tz)


def _fiscal_shift(fiscal_start_month: int) -> int:
    """Months from January of year N to the start of fiscal year N (-11..0)."""
    if not 1 <= fiscal_start_month <= 12:
        raise ValueError(
            f"fiscal start month must be 1..12, got {fiscal_start_month!r}"
        )
    return 0 if fiscal_start_month == 1 else fiscal_start_month - 13


def require_aware(moment: datetime, name: str) -> datetime:
    """`moment`, when it is timezone-aware; ValueError naming it otherwise."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware, got naive {moment.isoformat()}"
        )
    return moment


def _month_start(index: int) -> date:
    """The first day of the month ``index`` months after January of year 0."""
    return date(index // 12, index % 12 + 1, 1)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of the local ``day``, in UTC."""
    # fold=0: a midnight inside a DST gap maps to the transition, the day's first instant.
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
