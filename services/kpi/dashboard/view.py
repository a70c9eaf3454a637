"""The dashboard's view helpers: chart series, the trend arrow, display text, the CSV export, the chart.

Pure: no I/O, no database, no web framework, and "now" is always a parameter, so everything a page
computes is tested in milliseconds. Days are the tenant's local calendar days and pace counts its
working days: Monday to Friday minus the ``days_off`` a page passes, the tenant's holidays and on a rep's
page the rep's time off (`shared.workdays.working_share`, the same pace as kpi's figures and coaching's
check-ins); money stays Decimal until it becomes text here. Everything that returns markup escapes its
text, so templates only place it.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from babel.numbers import format_currency, format_decimal, format_percent

from shared.formatting import locale_of
from shared.periods import local_midnight, require_aware
from shared.workdays import working_share

__all__ = [
    "CSV_COLUMNS",
    "NO_VALUE",
    "cumulative_series",
    "duration",
    "expected_series",
    "leaderboard_csv",
    "margin",
    "money",
    "number",
    "percent",
    "safe_next",
    "svg_chart",
    "trend",
]

# `tied` last: the columns before it are where they always were
CSV_COLUMNS = ("rank", "rep_id", "name", "team_id", "metric", "period", "actual", "target", "attainment", "tied")
NO_VALUE = "–"  # what a missing percentage reads as: a dash, never "0%"

_MICROSECOND = timedelta(microseconds=1)
_CENT = Decimal("0.01")
_UP, _DOWN = Decimal("1.1"), Decimal("0.9")  # gain within ±10 % of the needed pace reads "flat"
# OWASP's CSV injection list: a spreadsheet runs a cell starting with these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
HOME = "/leaderboard"  # where sign-in lands when it was given nowhere (or nowhere safe) to go

# Chart geometry, in viewBox units. Colours have at least 4.5:1 contrast on white.
_WIDTH, _HEIGHT = 640, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 104, 624, 44, 220  # the plot area; y labels sit left of _LEFT
_TEXT, _ACTUAL, _EXPECTED, _GRID, _AXIS = "#1f2937", "#1d4ed8", "#6b7280", "#e5e7eb", "#6b7280"
_MANTISSAS = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5))


def safe_next(value: str | None, home: str = HOME) -> str:
    """Where sign-in may send the browser after it: ``value`` when it is a path of this site, else ``home``.

    A path of this site starts with one ``/`` followed by anything but ``/`` or ``\\`` (``//host`` and
    ``/\\host`` are other sites to a browser, which reads ``\\`` as ``/``), judged after percent-decoding
    (as often as it decodes, so ``/%255Chost`` is judged as ``/\\host``), and holds no backslash, control
    character or whitespace but the plain space anywhere (browsers drop tabs and newlines from a URL, so a
    tab between two slashes makes ``//host``).

    >>> safe_next("/reps/ana?period=2026-Q4"), safe_next("/\\evil.example"), safe_next("/%5Cevil.example")
    ('/reps/ana?period=2026-Q4', '/leaderboard', '/leaderboard')
    """
    if not value:
        return home
    decoded = value
    for _ in range(len(value)):  # each pass that changes the text shortens it: this ends
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    if len(decoded) < 2 or decoded[0] != "/" or decoded[1] in "/\\":
        return home
    if "\\" in decoded or any((c.isspace() and c != " ") or not c.isprintable() for c in decoded):
        return home
    parts = urlsplit(decoded)
    return value if not parts.scheme and not parts.netloc else home


def cumulative_series(
    points: Sequence[tuple[datetime, Decimal]], start: datetime, end: datetime, now: datetime, tz: ZoneInfo
) -> list[tuple[date, Decimal]]:
    """The running total of ``points`` per local day of ``[start, end)``, from the first day up to today.

    One entry per local calendar day in ``tz`` from ``start``'s day to the day of ``now`` (or the
    period's last day once it is over); a day's value sums every point in ``[start, end)`` on or before
    that day, so the line the chart draws stops at today instead of running flat into the future.
    Points outside ``[start, end)`` are ignored; before the period starts the series is empty.
    """
    _check_aware(start=start, end=end, now=now)
    if now < start:
        return []
    per_day: dict[date, Decimal] = {}
    for moment, amount in points:
        if start <= moment < end:
            day = moment.astimezone(tz).date()
            per_day[day] = per_day.get(day, Decimal(0)) + amount
    total = Decimal(0)
    series: list[tuple[date, Decimal]] = []
    for day in _days(_local_day(start, tz), _local_day(min(now, end - _MICROSECOND), tz)):
        total += per_day.get(day, Decimal(0))
        series.append((day, total))
    return series


def expected_series(target: Decimal, start: datetime, end: datetime, tz: ZoneInfo,
                    days_off: frozenset[date] = frozenset()) -> list[tuple[date, Decimal]]:
    """Where linear working-day pace toward ``target`` stands at the end of each local day of the period.

    A day's value is ``target`` times the working share of the period elapsed at that day's end (the
    next local midnight, or ``end``), to the cent (half-even): flat over weekends and ``days_off`` (the
    tenant's holidays, and a rep's time off on their page; none: Monday to Friday), like kpi's own expected
    figure. The last day's value is ``target`` itself, unrounded, so the line ends on the goal.
    """
    _check_aware(start=start, end=end)
    series: list[tuple[date, Decimal]] = []
    for day in _days(_local_day(start, tz), _local_day(end - _MICROSECOND, tz)):
        day_end = min(local_midnight(day + timedelta(days=1), tz), end)
        share = working_share(start, end, day_end, tz, days_off)
        series.append((day, (target * share).quantize(_CENT, rounding=ROUND_HALF_EVEN)))
    if series:
        series[-1] = (series[-1][0], target)
    return series


def trend(
    gain: Decimal,
    target: Decimal | None,
    start: datetime,
    end: datetime,
    now: datetime,
    tz: ZoneInfo,
    days: int = 7,
    days_off: frozenset[date] = frozenset(),
) -> Literal["up", "flat", "down"] | None:
    """Is the rep gaining faster or slower than the target needs? Compares ``gain``, what the rep added
    over the last ``days`` days, with what working-day pace (Monday to Friday minus ``days_off``: the
    tenant's holidays and the rep's time off) needed over the same window.

    The window runs from the same local clock time ``days`` calendar days before ``now`` (but never
    before ``start``) to ``now``: ``days`` whole local days, whatever DST does. The caller's ``gain``
    must cover that window. needed = target * (share(now) - share(window start)). "up" when gain >= 1.1 *
    needed, "down" when gain < 0.9 * needed, "flat" in between; when nothing was needed (a window of
    weekends and days off, a period not started) any gain is "up" and none is "flat". None without a
    positive target.

    Example: a period of four whole weeks without days off (20 working days) with target 20,000 needs
    1,000 per working day. At Monday midnight of week 3 the last 7 days held 5 working days, so needed =
    5,000: a gain of 5,500 or more is "up", less than 4,500 is "down", 4,500 up to 5,499.99 is "flat".
    With one of those 5 days off, 19 working days need 20,000/19 each, and the window 4 of them.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    _check_aware(start=start, end=end, now=now)
    if target is None or target <= 0:
        return None
    since = max(start, (now.astimezone(tz) - timedelta(days=days)).astimezone(UTC))
    needed = target * (working_share(start, end, now, tz, days_off) - working_share(start, end, since, tz, days_off))
    if needed == 0:
        return "up" if gain > 0 else "flat"
    if gain >= _UP * needed:
        return "up"
    if gain < _DOWN * needed:
        return "down"
    return "flat"


def money(amount: Decimal, currency: str | None, locale: str | None) -> str:
    """``amount`` as money in ``locale``: ``€1,234.50`` (en), ``1.234,50 €`` (de_DE); without a
    currency, a grouped number with two decimals (``1,234.50``). An unknown locale reads as English."""
    where = locale_of(locale)
    if not currency:
        return format_decimal(amount, format="#,##0.00", locale=where)
    return format_currency(amount, currency, locale=where)


def number(value: Decimal, locale: str | None) -> str:
    """``value`` grouped in ``locale`` with every decimal it has and no padding: ``1,234.5``,
    ``0.125``, ``12`` (also for ``12.00``). Never rounded, unlike Babel's default of three decimals."""
    return format_decimal(_unsigned_zero(value), locale=locale_of(locale), decimal_quantization=False)


def duration(seconds: Decimal, locale: str | None) -> str:
    """Seconds (an activity KPI's sum or average) as hours and minutes, to the nearest minute (half-even), the
    hours grouped in ``locale``.

    >>> duration(Decimal(7500), "en"), duration(Decimal("2729.5"), "en"), duration(Decimal(4_500_000), "de_DE")
    ('2 h 05 min', '0 h 45 min', '1.250 h 00 min')
    """
    minutes = int(_unsigned_zero((seconds / 60).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)))
    hours, rest = divmod(abs(minutes), 60)
    sign = "-" if minutes < 0 else ""
    return f"{sign}{format_decimal(hours, locale=locale_of(locale))} h {rest:02d} min"


def percent(ratio: Decimal | None, locale: str | None) -> str:
    """A ratio as a whole percentage rounded DOWN, like the celebration headlines: 0.7512 -> ``75%``
    (en), ``75 %`` (de, with a no-break space); 0.996 never reads ``100%``. None -> `NO_VALUE`, an en dash."""
    if ratio is None or not ratio.is_finite():
        return NO_VALUE
    whole = _unsigned_zero((ratio * 100).quantize(Decimal(1), rounding=ROUND_DOWN))
    return format_percent(whole / 100, locale=locale_of(locale))


def margin(ratio: Decimal, locale: str | None) -> str:
    """A probability's error as ``±`` a percentage to a tenth of a point, rounded UP (never understated):
    0.0091 -> ``±1%``, 0.0087 -> ``±0.9%`` (en), ``±0,9 %`` (de); 0 -> ``±0%``."""
    tenths = _unsigned_zero((ratio * 1000).quantize(Decimal(1), rounding=ROUND_CEILING)) / 1000
    return "±" + format_percent(tenths, locale=locale_of(locale), decimal_quantization=False)


def leaderboard_csv(rows: Sequence[Mapping[str, Any]], metric: str, period: str) -> str:
    """The leaderboard as CSV: a header of `CSV_COLUMNS`, then one row per entry, ``\\r\\n`` line ends.

    Rows carry ``rank`` (None: unranked, empty), ``rep_id``, ``actual`` and optionally ``name``,
    ``team_id``, ``target``, ``attainment`` and ``tied`` ("yes" when another row shares the rank).
    Numbers are exact plain strings (``1234.50``, never ``1.2345E+3``) and None is empty. Text a
    spreadsheet would run as a formula (a rep named ``=HYPERLINK(...)``) gets a leading
    ``'``: the export leaves the dashboard, and a spreadsheet must show it, not execute it.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([
            _cell(row["rank"]), _text_cell(row["rep_id"]), _text_cell(row.get("name")),
            _text_cell(row.get("team_id")), _text_cell(metric), _text_cell(period),
            _cell(row["actual"]), _cell(row.get("target")), _cell(row.get("attainment")),
            "yes" if row.get("tied") else "",
        ])
    return out.getvalue()


def svg_chart(
    actual: Sequence[tuple[date, Decimal]],
    expected: Sequence[tuple[date, Decimal]],
    *,
    title: str,
    description: str,
    value_label: Callable[[Decimal], str],
    chart_id: str,
) -> str:
    """An accessible inline SVG line chart: ``actual`` (solid) against ``expected`` pace (dashed).

    The x axis spans ``expected``'s days (the whole period), so ``actual`` stops at today; y runs from
    0 to the largest value (at least 1; a negative value extends it below 0), with 3 to 5 gridlines at
    round values labelled by ``value_label``. Screen readers read ``title`` and ``description``
    (``role="img"``), so they should say what the lines show; ``chart_id`` must be a page-unique HTML id.
    """
    days = [day for day, _ in expected] or [day for day, _ in actual]
    first, last = (days[0], days[-1]) if days else (date.min, date.min)
    values = [value for _, value in (*actual, *expected)]
    low, high = min([*values, Decimal(0)]), max([*values, Decimal(1)])
    ticks = _ticks(low, high)

    def x(day: date) -> float:
        return _LEFT + (_RIGHT - _LEFT) * (day - first).days / max((last - first).days, 1)

    def y(value: Decimal) -> float:
        return _BOTTOM - (_BOTTOM - _TOP) * float((value - low) / (high - low))

    def points(series: Sequence[tuple[date, Decimal]]) -> str:
        return " ".join(f"{x(day):.1f},{y(value):.1f}" for day, value in series)

    cid = _escape(chart_id)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{cid}" role="img"'
        f' aria-labelledby="{cid}-title {cid}-desc" viewBox="0 0 {_WIDTH} {_HEIGHT}" width="100%"'
        ' font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="{cid}-title">{_escape(title)}</title>',
        f'<desc id="{cid}-desc">{_escape(description)}</desc>',
    ]
    for tick in ticks:
        colour = _AXIS if tick == 0 else _GRID
        parts.append(f'<line x1="{_LEFT}" x2="{_RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{colour}"/>')
        parts.append(_label(_LEFT - 8, y(tick) + 4, "end", value_label(tick)))
    if days:
        middle = first + timedelta(days=(last - first).days // 2)
        # first, middle and last; a day that is two of them is labelled once, the first wins
        for day, anchor in {last: "end", middle: "middle", first: "start"}.items():
            parts.append(_label(x(day), _BOTTOM + 20, anchor, day.isoformat()))
    if expected:
        parts.append(f'<polyline class="expected" points="{points(expected)}" fill="none" stroke="{_EXPECTED}"'
                     ' stroke-width="2" stroke-dasharray="6 4"/>')
    if actual:
        parts.append(f'<polyline class="actual" points="{points(actual)}" fill="none" stroke="{_ACTUAL}"'
                     ' stroke-width="3" stroke-linejoin="round"/>')
        day, value = actual[-1]  # a dot on today: a one-day line would draw nothing
        parts.append(f'<circle cx="{x(day):.1f}" cy="{y(value):.1f}" r="4" fill="{_ACTUAL}"/>')
    parts += [*_legend(), "</svg>"]
    return "\n".join(parts)


def _check_aware(**moments: datetime) -> None:
    for name, moment in moments.items():
        require_aware(moment, name)


def _local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def _days(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included (none if ``last`` is earlier)."""
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _unsigned_zero(value: Decimal) -> Decimal:
    """``-0`` and ``-0.00`` (a rounded tiny refund) as plain zero, so no page shows ``-0``."""
    return value.copy_abs() if value.is_zero() else value


def _cell(value: Any) -> str:
    """A CSV cell for a number: exact and plain. Anything else is text, guarded like text."""
    if value is None:
        return ""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return format(Decimal(value), "f")
    return _text_cell(value)


def _text_cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def _escape(text: str) -> str:
    """``text`` safe in SVG content and attribute values; characters XML forbids are dropped."""
    return html.escape(_XML_ILLEGAL.sub("", text), quote=True)


def _label(x: float, y: float, anchor: str, text: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{_TEXT}">{_escape(text)}</text>'


def _legend() -> list[str]:
    """A line sample and a name for each series, above the plot."""
    return [
        f'<line x1="{_LEFT}" x2="{_LEFT + 24}" y1="16" y2="16" stroke="{_ACTUAL}" stroke-width="3"/>',
        _label(_LEFT + 30, 20, "start", "Actual"),
        f'<line x1="{_LEFT + 110}" x2="{_LEFT + 134}" y1="16" y2="16" stroke="{_EXPECTED}" stroke-width="2"'
        ' stroke-dasharray="6 4"/>',
        _label(_LEFT + 140, 20, "start", "Expected pace"),
    ]


def _ticks(low: Decimal, high: Decimal) -> list[Decimal]:
    """Round gridline values in ``[low, high]`` (``low`` <= 0 < ``high``), multiples of the smallest
    step of 1, 2, 2.5 or 5 times a power of ten that gives at most 5 lines. Consecutive steps differ by
    at most 2x, so from 0 up there are always at least 3: 0, 10,000 and 20,000 for 22,000."""
    exponent = ((high - low) / 5).adjusted()
    while True:
        for mantissa in _MANTISSAS:
            step = mantissa.scaleb(exponent)
            first = int((low / step).to_integral_value(rounding=ROUND_CEILING))
            last = int((high / step).to_integral_value(rounding=ROUND_FLOOR))
            if last - first < 5:
                return [_plain(index * step) for index in range(first, last + 1)]
        exponent += 1


def _plain(value: Decimal) -> Decimal:
    """A tick without exponent or trailing zeros: 2500, not 2.5E+3; 0.25, not 0.250."""
    value = _unsigned_zero(value)
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()
