"""The control room's decisions about targets and roster moves, as pure functions (no I/O, time a parameter):
which cells of the targets table an admin changed, whether an uploaded CSV of targets is good line by line,
which of the previous period's targets to copy, and the moment a team move takes effect.

The handlers in `control_core.py` load what these need, call them, and post what they decide to ingest as
`target.set` / `rep.upserted` events."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from shared.periods import PeriodError, local_midnight, parse_period, period_bounds, period_of

CSV_HEADER = ("scope", "scope_id", "metric", "period", "value")
SCOPES = ("rep", "team")
CELL = "v:"  # a table cell's input: "v:<scope>:<metric>:<scope id>" (the id last: it may hold a colon)
WAS = "was:"  # the value the cell showed when the page was drawn, same key
MAX_DIGITS, MAX_PLACES = 20, 4  # as `target.set`'s value (shared/events.py)
METRIC = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True, slots=True, order=True)
class TargetKey:
    scope: str
    scope_id: str
    metric: str


@dataclass(frozen=True, slots=True)
class NewTarget:
    """One `target.set` to post: `value` of `metric` for the rep or team in `period`."""

    scope: str
    scope_id: str
    metric: str
    period: str
    value: Decimal

    @property
    def key(self) -> TargetKey:
        return TargetKey(self.scope, self.scope_id, self.metric)


def cell_name(key: TargetKey) -> str:
    return f"{CELL}{key.scope}:{key.metric}:{key.scope_id}"


def was_name(key: TargetKey) -> str:
    """The hidden input holding the value a cell was drawn with."""
    return f"{WAS}{key.scope}:{key.metric}:{key.scope_id}"


def _key_of(name: str, prefix: str) -> TargetKey | None:
    scope, _, rest = name.removeprefix(prefix).partition(":")
    metric, _, scope_id = rest.partition(":")
    if scope not in SCOPES or not METRIC.match(metric) or not scope_id:
        return None
    return TargetKey(scope, scope_id, metric)


def amount(text: str) -> tuple[Decimal | None, str | None]:
    """A target's value as typed (`1 500`, `1500.50`): the Decimal, or why it is not one.

    >>> amount("1 500.5"), amount("ten")[1], amount("-3")[1]
    ((Decimal('1500.5'), None), "'ten' is not a number", 'must not be negative')
    """
    cleaned = text.strip().replace(" ", "").replace("\u00a0", "").replace("_", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None, f"{text.strip()!r} is not a number"
    if not value.is_finite():
        return None, f"{text.strip()!r} is not a number"
    if value < 0:
        return None, "must not be negative"
    exponent = value.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if places > MAX_PLACES:
        return None, f"{text.strip()!r} has more than {MAX_PLACES} decimal places"
    if len(value.as_tuple().digits) > MAX_DIGITS:
        return None, f"{text.strip()!r} has more than {MAX_DIGITS} digits"
    return value, None


def changed_cells(form: Mapping[str, str], period: str) -> tuple[list[NewTarget], list[str]]:
    """The targets an admin changed in the table (a cell whose value differs from the one it was drawn with),
    and the cells that cannot be saved, each with its reason. An emptied cell is refused: there is no event
    that removes a target (set it to 0 instead).

    >>> new, bad = changed_cells({"v:rep:won_revenue:ana": "900", "was:rep:won_revenue:ana": "800",
    ...                           "v:rep:calls:ana": "40", "was:rep:calls:ana": "40"}, "2026-Q4")
    >>> [(t.scope_id, t.metric, t.value) for t in new], bad
    ([('ana', 'won_revenue', Decimal('900'))], [])
    """
    out: list[NewTarget] = []
    problems: list[str] = []
    for name, typed in sorted(form.items()):
        if not name.startswith(CELL):
            continue
        key = _key_of(name, CELL)
        if key is None:
            continue
        before = form.get(WAS + name.removeprefix(CELL), "").strip()
        now = typed.strip()
        if now == before:
            continue
        where = f"{key.scope} {key.scope_id}, {key.metric}"
        if not now:
            problems.append(f"{where}: a target cannot be removed, only changed (set it to 0)")
            continue
        value, why = amount(now)
        if value is None:
            problems.append(f"{where}: {why}")
            continue
        if before and amount(before)[0] == value:  # "900" for "900.00": no change
            continue
        out.append(NewTarget(key.scope, key.scope_id, key.metric, period, value))
    return out, problems


def check_csv(text: str, *, reps: Collection[str], teams: Collection[str],
              metrics: Collection[str]) -> tuple[list[NewTarget], list[str]]:
    """Every line of an uploaded targets CSV (header `scope,scope_id,metric,period,value`) checked: the
    targets, or (when any line is bad) none and every problem by its line number; the header is line 1.

    >>> good, bad = check_csv("scope,scope_id,metric,period,value\\nrep,ana,won_revenue,2026-Q4,ten\\n",
    ...                       reps={"ana"}, teams=set(), metrics={"won_revenue"})
    >>> good, bad
    ([], ["line 2: value 'ten' is not a number"])
    """
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows or tuple(c.strip().lower() for c in rows[0]) != CSV_HEADER:
        got = ",".join(rows[0]) if rows else "nothing"
        return [], [f"line 1: the header must be {','.join(CSV_HEADER)} (got {got!r})"]
    targets: list[NewTarget] = []
    problems: list[str] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(CSV_HEADER):
            problems.append(f"line {number}: expected {len(CSV_HEADER)} fields ({','.join(CSV_HEADER)}),"
                            f" got {len(row)}")
            continue
        scope, scope_id, metric, period, typed = (c.strip() for c in row)
        wrong = _line_problems(scope, scope_id, metric, period, reps=reps, teams=teams, metrics=metrics)
        value, why = amount(typed)
        if why:
            wrong.append(f"value {why}" if why.startswith("'") else f"value {typed!r} {why}")
        if wrong:
            problems.extend(f"line {number}: {w}" for w in wrong)
            continue
        assert value is not None
        label = parse_period(period).label
        first = seen.setdefault((scope, scope_id, metric, label), number)
        if first != number:
            problems.append(f"line {number}: the same target as line {first} ({scope} {scope_id}, {metric},"
                            f" {label})")
            continue
        targets.append(NewTarget(scope, scope_id, metric, label, value))
    if not targets and not problems:
        problems.append("the file holds a header and no targets")
    return ([], problems) if problems else (targets, [])


def _line_problems(scope: str, scope_id: str, metric: str, period: str, *, reps: Collection[str],
                   teams: Collection[str], metrics: Collection[str]) -> list[str]:
    wrong = []
    if scope not in SCOPES:
        wrong.append(f"scope {scope!r} is not rep or team")
    elif scope == "rep" and scope_id not in reps:
        wrong.append(f"no active rep {scope_id!r} on the roster")
    elif scope == "team" and scope_id not in teams:
        wrong.append(f"no team {scope_id!r}")
    if metric not in metrics:
        wrong.append(f"metric {metric!r} is not a metric of this tenant")
    try:
        parse_period(period)
    except PeriodError:
        wrong.append(f"period {period!r} is not a period such as 2026-Q4, 2026-11, 2026-W48 or 2026")
    return wrong


def previous_period(label: str) -> str:
    """The period of the same kind just before `label` (labels do not depend on the zone or fiscal year).

    >>> previous_period("2027-Q1"), previous_period("2026-01"), previous_period("2026")
    ('2026-Q4', '2025-12', '2025')
    """
    period = parse_period(label)
    start, _ = period_bounds(period, "UTC")
    return period_of(period.kind, start - timedelta(microseconds=1), "UTC").label


@dataclass(frozen=True, slots=True)
class CopyPlan:
    copy: list[NewTarget]
    kept: int  # already had a target in the period: left as it is
    skipped: int  # a rep no longer active, or a team gone: not copied


def copy_plan(previous: Iterable[tuple[TargetKey, Decimal]], existing: Collection[TargetKey], period: str, *,
              reps: Collection[str], teams: Collection[str]) -> CopyPlan:
    """Which of the previous period's targets to copy into `period`: each one whose rep or team has no target
    of that metric there yet, for reps still active and teams still there.

    >>> ana = TargetKey("rep", "ana", "won_revenue")
    >>> plan = copy_plan([(ana, Decimal(9)), (TargetKey("rep", "gone", "calls"), Decimal(5))], set(), "2026-Q4",
    ...                  reps={"ana"}, teams=set())
    >>> [(t.scope_id, t.period, t.value) for t in plan.copy], plan.kept, plan.skipped
    ([('ana', '2026-Q4', Decimal('9'))], 0, 1)
    """
    copy: list[NewTarget] = []
    kept = skipped = 0
    for key, value in sorted(previous):
        if key in existing:
            kept += 1
        elif key.scope_id not in (reps if key.scope == "rep" else teams):
            skipped += 1
        else:
            copy.append(NewTarget(key.scope, key.scope_id, key.metric, period, value))
    return CopyPlan(copy, kept, skipped)


def move_moment(day: date, zone: ZoneInfo, *, now: datetime, newest_version: datetime | None) -> datetime:
    """The `time` of the `rep.upserted` that moves a rep to another team from the local day `day` on: now for
    today, else that day's midnight in the tenant's zone (kpi's roster versions date a rep's teams by their
    event's `time`: `services/kpi/roster.py`).

    ValueError when the events cannot say it: a day after today (ingest refuses an event dated later than its
    clock plus MAX_EVENT_AHEAD_S, and kpi would apply it at once anyway), or a day not after the rep's newest
    roster version (that later version would put them back in its team, and kpi keeps the newest version's
    name and manager).

    >>> from datetime import UTC
    >>> move_moment(date(2026, 10, 1), ZoneInfo("Europe/Berlin"), now=datetime(2026, 12, 1, tzinfo=UTC),
    ...             newest_version=None).isoformat()
    '2026-09-30T22:00:00+00:00'
    """
    today = now.astimezone(zone).date()
    if day > today:
        raise ValueError(f"{day.isoformat()} is in the future: a move can take effect today or on a past day"
                         " only (the roster's events cannot be dated ahead); make the move on that day")
    moment = now if day == today else local_midnight(day, zone)
    if newest_version is not None and moment <= newest_version:
        raise ValueError(f"{day.isoformat()} is not after this rep's last roster change"
                         f" ({newest_version.astimezone(zone).date().isoformat()}): a move must take effect after it")
    return moment
