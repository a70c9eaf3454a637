"""The chaos suite's oracle: the figures Attain must end up with, recomputed from scratch from the events.

Independent on purpose: this module imports nothing from ``services/`` or ``shared/`` (standard library only)
and shares no code with them. It takes the full list of canonical events as POSTed to ingest's
``POST /v1/events`` (``{"type", "id", "source", "time", "data"}``, timestamps ISO 8601 with an offset, amounts
as decimal strings) and says what kpi's ``attainment`` table, recognition's quota thresholds and coaching's
``behind_pace`` rule should hold once every event has been applied. Nothing is incremental: every call parses
the events, settles each entity's final state, and adds up the contributions of what is left.

What it computes

- `final_figures`: the actual of all nine metrics of every (scope, id, period) that has a non-empty tally
  or a target (kpi's ``attainment.actual``).
- `final_targets`: every target's value (kpi's ``attainment.target``).
- `thresholds_crossed`: the quota thresholds reached by the final figures (recognition's ``quota_*``).
- `behind_pace`: the (rep, period, metric) coaching's ``behind_pace`` rule finds at an instant.
- `thresholds_reachable`: the quota thresholds some figure kpi may have reported while the events streamed
  in could have reached (a bound: a celebration outside it was never earned, even for a moment).
- `behind_pace_possible`: which claims "rep behind pace on (period, metric) at instant t" coaching could
  have made on some figure kpi may have reported while the events streamed in.

The semantics re-implemented, and where each was read

1. Duplicates (``services/ingest/intake.py`` ``_claim``): an event is identified by (source, id); a second
   copy counts nothing. Two DIFFERENT events under one (source, id) are ambiguous (ingest keeps whichever
   arrives first): `OracleError`.
2. Deals (``services/kpi/repository.py`` ``apply_deals``, ``delete_deal``; ``docs/architecture.md`` "kpi"):
   of all upserts and deletions of a deal the one with the greatest (``data.updated_at``, envelope ``id``)
   wins; ids compare by code point (collation "C" = Python's ``str`` order). If it is a deletion the deal
   counts nothing; an upsert newer than the deletion brings the deal back (the tombstone is overwritten with
   ``deleted = false``). Two different events with the same (updated_at, id) are ambiguous: `OracleError`.
3. Activities (``repository.add_activities``): once per ``activity_id`` (the first stored wins: two events
   with one activity_id that differ in rep, kind or moment are ambiguous: `OracleError`).
4. What counts where (``services/kpi/contributions.py``, module docstring): a contribution lands in the
   month, (fiscal) quarter, ISO week and (fiscal) year of the tenant-local day of its moment, for the rep,
   for the team the rep was in at that moment and for every team above that one as the hierarchy stands
   now. A deal with ``created_at`` adds its amount to pipeline_created at creation; a won deal adds 1 to
   deals_won and its amount to won_revenue at ``closed_at``; a lost deal adds 1 to deals_lost at
   ``closed_at``; an activity adds 1 to activities and to calls / emails / meetings for kinds call / email /
   meeting (demo, task, other: activities only). Sums are exact.
5. Period labels (``shared/periods.py`` ``labels_of_day``, ``period_of``, ``period_bounds``): ``2026-11``,
   ``2026-Q4``, ``2026-W48``, ``2026``; months and ISO weeks are calendar, quarters and years fiscal. With
   fiscal start month m != 1, fiscal year N runs from the 1st of month m of year N-1 to the 1st of month m of
   year N (named by the year it ends in). Boundaries are local midnights in the tenant's zone.
6. Currency (``contributions.Books.in_base``): a deal in the tenant's base currency counts as it is. Our
   scenarios have only base-currency deals, so there is no conversion here: a deal whose final version is in
   another currency raises `OracleError` (versions superseded or deleted do not matter).
7. Teams over time (``services/kpi/roster.py``, ``Books.team_at``): a rep is in the team of their latest
   ``rep.upserted`` whose envelope ``time`` is not after the moment; the rep's earliest ``rep.upserted``
   holds for all history before it (kpi: "a rep's first known team holds for all their history"), whatever
   order the events arrive in. A rep with no ``rep.upserted`` counts for no team. Two ``rep.upserted`` of one
   rep at the same time naming different teams are ambiguous: `OracleError`.
8. Nesting (``repository.upsert_team``, ``Books.lineage``): a team's parent is the ``parent_team_id`` of its
   ``team.upserted`` with the latest envelope ``time`` (ties with different parents: `OracleError`); the
   walk up stops at a team without a parent or at one already on the chain (a cycle in the data).
9. Targets (``repository.set_targets``): per (scope, scope_id, metric, period) the ``target.set`` with the
   latest envelope ``time`` wins (ties with different values: `OracleError`).
10. Metrics (``services/kpi/metrics.py`` ``values``): deals_won, calls, emails, meetings, activities are the
    counts; won_revenue and pipeline_created the sums; win_rate = won / (won + lost) and avg_deal_size =
    won_revenue / won, each rounded half-even to 4 places, and 0 when there is nothing to divide by.
11. Which keys exist (``contributions.Ledger.changed``, ``handlers._apply`` / ``_recompute``): kpi writes all
    nine metrics of a (scope, id, period) whose tally moved or whose target was set. A contribution that
    adds nothing (the pipeline of a deal of amount 0) makes no key. kpi never deletes a row, so its table
    may ALSO hold keys that counted something at some point and nothing at the end (a reassigned or deleted
    deal's old owner); which ones depends on delivery order, so the oracle does not list them. Compare as
    ``services/kpi/rebuild.py`` does: a kpi row absent here must have actual 0 and no target.
12. Quota thresholds (``services/recognition/rules.py`` ``quota_crossings``, ``model.Settings``; attainment
    from ``services/kpi/figures.py`` ``ratio``): threshold t% is reached when the target is > 0 and
    actual / target, rounded half-even to 4 places, is >= t / 100 (so 99.995 % reads as 100 %). Defaults
    50 / 100 / 150, for every metric with a target, reps and teams alike.
13. Behind pace (``services/coaching/rules.py`` ``behind_pace`` and ``_active``, ``services/coaching/
    calendar.py`` ``working_share``, defaults in ``services/coaching/model.py`` ``Policy``): for each rep
    target > 0 of won_revenue, deals_won or pipeline_created whose period holds ``at``: share = the
    elapsed share of the period's Monday-to-Friday days in the tenant's zone (whole days before today plus
    the elapsed part of today when it is a weekday, rounded DOWN to 6 places); nothing before share 0.1;
    expected = target x share rounded half-even to 0.01; behind when expected > 0 and actual / expected <
    pace threshold (0.7). Holidays and time off are not modelled (our scenarios have none), nor is coaching's
    grace for a newly seen target (``new_target_grace_s``: the oracle assumes every target was seen long
    enough before ``at``). Coaching evaluates the figures kpi last reported with ``now`` as a parameter, not
    the events up to ``now``: so `behind_pace` uses the figures of ALL the events it is given, and the
    instant only for the share. To ask what coaching says mid-stream, pass the events delivered by then.
    Coaching raises one task per rep, for the worst of these (lowest pace), and only for reps it knows.

Every timestamp must carry an offset; events are assumed valid under the contract (ingest rejects the
others, and the oracle does not re-validate them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, Rounded
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

__all__ = [
    "METRICS",
    "PACE_METRICS",
    "Key",
    "OracleError",
    "TenantConfig",
    "behind_pace",
    "behind_pace_possible",
    "final_figures",
    "final_targets",
    "thresholds_crossed",
    "thresholds_reachable",
]

Key = tuple[str, str, str, str]  # (scope "rep"|"team", scope_id, period label, metric)
TallyKey = tuple[str, str, str]  # (scope, scope_id, period label)

METRICS = ("won_revenue", "deals_won", "win_rate", "pipeline_created", "avg_deal_size", "calls", "emails",
           "meetings", "activities")
PACE_METRICS = ("won_revenue", "deals_won", "pipeline_created")  # coaching's Policy.pace_metrics
DEFAULT_GRACE_SHARE = Decimal("0.1")  # coaching's Policy.pace_grace_share

_ZERO = Decimal(0)
_FOUR_PLACES = Decimal("0.0001")
_CENT = Decimal("0.01")
_EXACT = Context(prec=400, traps=[Inexact, Rounded])  # sums: raise rather than round
_WIDE = Context(prec=100)  # ratios: far more digits than the 4 kept, so rounding them once is exact
_ACTIVITY_METRIC = {"call": "calls", "email": "emails", "meeting": "meetings"}
_RATIO_METRICS = ("win_rate", "avg_deal_size")
_MICRO = 1_000_000

_V = TypeVar("_V", bound=Hashable)


class OracleError(ValueError):
    """The events are outside what the oracle can answer: the services' result would depend on delivery
    order (two different events tied where the services keep the first to arrive), or a deal is not in the
    tenant's base currency."""


@dataclass(frozen=True)
class TenantConfig:
    slug: str
    timezone: str  # IANA
    currency: str = "EUR"
    fiscal_start_month: int = 1


# --- reading the events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Deal:
    rep_id: str
    amount: Decimal
    currency: str
    stage: str
    created_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class _Activity:
    rep_id: str
    kind: str
    occurred_at: datetime


@dataclass
class _Facts:
    """Every version the events state, before deciding which one wins."""

    deals: defaultdict[str, list[tuple[tuple[datetime, str], _Deal | None]]]  # None: a deletion
    activities: defaultdict[str, list[_Activity]]
    teams_of_rep: defaultdict[str, list[tuple[datetime, str]]]
    parents: defaultdict[str, list[tuple[datetime, str | None]]]
    targets: defaultdict[Key, list[tuple[datetime, Decimal]]]


def _moment(value: Any, name: str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise OracleError(f"{name} must carry a UTC offset, got {value!r}")
    return moment


def _optional_moment(value: Any, name: str) -> datetime | None:
    return None if value is None else _moment(value, name)


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, float):
        raise OracleError(f"{name} must be a decimal string, not the float {value!r}")
    return Decimal(str(value))


def _read(events: Iterable[Mapping[str, Any]]) -> _Facts:
    facts = _Facts(defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list))
    seen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for event in events:
        identity = (event["source"], event["id"])
        if identity in seen:
            if seen[identity] != event:
                raise OracleError(f"two different events share source and id {identity}: ingest keeps the first")
            continue
        seen[identity] = event
        kind, data, event_id = event["type"], event["data"], event["id"]
        if kind == "deal.upserted":
            deal = _Deal(data["rep_id"], _decimal(data["amount"], "amount"), data["currency"], data["stage"],
                         _optional_moment(data.get("created_at"), "created_at"),
                         _optional_moment(data.get("closed_at"), "closed_at"))
            facts.deals[data["deal_id"]].append(((_moment(data["updated_at"], "updated_at"), event_id), deal))
        elif kind == "deal.deleted":
            facts.deals[data["deal_id"]].append(((_moment(data["updated_at"], "updated_at"), event_id), None))
        elif kind == "activity.logged":
            facts.activities[data["activity_id"]].append(
                _Activity(data["rep_id"], data["kind"], _moment(data["occurred_at"], "occurred_at")))
        elif kind == "rep.upserted":
            facts.teams_of_rep[data["rep_id"]].append((_moment(event["time"], "time"), data["team_id"]))
        elif kind == "team.upserted":
            facts.parents[data["team_id"]].append((_moment(event["time"], "time"), data.get("parent_team_id")))
        elif kind == "target.set":
            key = (data["scope"], data["scope_id"], data["period"], data["metric"])
            facts.targets[key].append((_moment(event["time"], "time"), _decimal(data["value"], "value")))
        else:
            raise OracleError(f"unknown event type {kind!r}")
    return facts


def _newest(versions: Iterable[tuple[Any, _V]], what: str) -> _V:
    """The value of the greatest version; two different values tied at the top are ambiguous."""
    versions = list(versions)
    top = max(version for version, _ in versions)
    values = {value for version, value in versions if version == top}
    if len(values) > 1:
        raise OracleError(f"{what}: different values tied at version {top}; the result depends on delivery order")
    return values.pop()


# --- the roster -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Roster:
    moves: dict[str, list[tuple[datetime, str]]]  # rep -> (from when, team), oldest first, one per instant
    parents: dict[str, str]

    def team_at(self, rep_id: str, moment: datetime) -> str | None:
        moves = self.moves.get(rep_id)
        if not moves:
            return None
        team = moves[0][1]  # the first known team holds for everything before it too
        for since, later in moves:
            if since <= moment:
                team = later
        return team

    def teams_at(self, rep_id: str, moment: datetime) -> list[str]:
        """The rep's team at `moment` and every team above it now, nearest first."""
        team = self.team_at(rep_id, moment)
        if team is None:
            return []
        chain = [team]
        while (parent := self.parents.get(chain[-1])) is not None and parent not in chain:
            chain.append(parent)
        return chain


def _roster(facts: _Facts) -> _Roster:
    moves: dict[str, list[tuple[datetime, str]]] = {}
    for rep_id, stated in facts.teams_of_rep.items():
        by_instant: defaultdict[datetime, set[str]] = defaultdict(set)
        for at, team in stated:
            by_instant[at].add(team)
        for at, teams in by_instant.items():
            if len(teams) > 1:
                raise OracleError(f"rep {rep_id!r} put in teams {sorted(teams)} at the same time {at}")
        moves[rep_id] = sorted((at, teams.pop()) for at, teams in by_instant.items())
    parents = {}
    for team_id, stated_parents in facts.parents.items():
        parent = _newest(stated_parents, f"parent of team {team_id!r}")
        if parent is not None:
            parents[team_id] = parent
    return _Roster(moves, parents)


# --- periods --------------------------------------------------------------------------------------------


def _fiscal_year_and_quarter(day: date, fiscal_start_month: int) -> tuple[int, int]:
    """Fiscal year N ends in calendar year N; with a January start it is the calendar year."""
    if fiscal_start_month == 1:
        return day.year, (day.month - 1) // 3 + 1
    if day.month >= fiscal_start_month:
        year, months_in = day.year + 1, day.month - fiscal_start_month
    else:
        year, months_in = day.year, day.month - fiscal_start_month + 12
    return year, months_in // 3 + 1


def _labels_of_day(day: date, fiscal_start_month: int) -> tuple[str, str, str, str]:
    """Month, quarter, ISO week and year labels of a local day."""
    fiscal_year, quarter = _fiscal_year_and_quarter(day, fiscal_start_month)
    iso = day.isocalendar()
    return (f"{day.year:04d}-{day.month:02d}", f"{fiscal_year:04d}-Q{quarter}", f"{iso.year:04d}-W{iso.week:02d}",
            f"{fiscal_year:04d}")


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + (first.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def _local_dates(label: str, fiscal_start_month: int) -> tuple[date, date]:
    """The first local day of the period and the first day after it."""
    year = int(label[:4])
    fiscal_year_start = date(year if fiscal_start_month == 1 else year - 1, fiscal_start_month, 1)
    if len(label) == 4:
        return fiscal_year_start, _add_months(fiscal_year_start, 12)
    if label[5] == "Q":
        first = _add_months(fiscal_year_start, 3 * (int(label[6]) - 1))
        return first, _add_months(first, 3)
    if label[5] == "W":
        first = date.fromisocalendar(year, int(label[6:]), 1)
        return first, first + timedelta(days=7)
    first = date(year, int(label[5:]), 1)
    return first, _add_months(first, 1)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # fold=0: a midnight inside a DST gap is read with the offset before it, i.e. the transition instant
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _bounds(label: str, tenant: TenantConfig) -> tuple[datetime, datetime]:
    """[start, end) of the period: local midnights in the tenant's zone."""
    zone = ZoneInfo(tenant.timezone)
    first, after = _local_dates(label, tenant.fiscal_start_month)
    return _midnight(first, zone), _midnight(after, zone)


def _weekdays(first: date, after: date) -> int:
    """Monday-to-Friday days in [first, after)."""
    return sum(1 for n in range((after - first).days) if (first + timedelta(days=n)).weekday() < 5)


def _working_share(label: str, tenant: TenantConfig, at: datetime) -> Decimal:
    """Elapsed share of the period's Monday-to-Friday days at `at`, rounded down to 6 places."""
    zone = ZoneInfo(tenant.timezone)
    start, end = _bounds(label, tenant)
    if at <= start:
        return Decimal("0.000000")
    if at >= end:
        return Decimal("1.000000")
    first, after = _local_dates(label, tenant.fiscal_start_month)
    total = _weekdays(first, after)  # every contract period holds at least one whole Monday-to-Friday week
    today = at.astimezone(zone).date()
    whole = _weekdays(first, today)
    elapsed_us, day_us = 0, 1
    if today.weekday() < 5:
        midnight, next_midnight = _midnight(today, zone), _midnight(today + timedelta(days=1), zone)
        elapsed_us = (at - midnight) // timedelta(microseconds=1)
        day_us = (next_midnight - midnight) // timedelta(microseconds=1)  # 23 or 25 hours on DST days
    # floor(1e6 x (whole days + elapsed part of today) / total), in integers
    micro = min((whole * day_us + elapsed_us) * _MICRO // (total * day_us), _MICRO)
    return Decimal(micro).scaleb(-6)


# --- tallies and metrics --------------------------------------------------------------------------------


@dataclass
class _Tally:
    won_revenue: Decimal = _ZERO
    deals_won: int = 0
    deals_lost: int = 0
    pipeline_created: Decimal = _ZERO
    calls: int = 0
    emails: int = 0
    meetings: int = 0
    activities: int = 0

    def is_empty(self) -> bool:
        return not (self.won_revenue or self.deals_won or self.deals_lost or self.pipeline_created or self.calls
                    or self.emails or self.meetings or self.activities)

    def metrics(self) -> dict[str, Decimal]:
        closed = self.deals_won + self.deals_lost
        win_rate = _ratio(Decimal(self.deals_won), Decimal(closed)) if closed else _ZERO
        avg = _ratio(self.won_revenue, Decimal(self.deals_won)) if self.deals_won else _ZERO
        return {"won_revenue": self.won_revenue, "deals_won": Decimal(self.deals_won), "win_rate": win_rate,
                "pipeline_created": self.pipeline_created, "avg_deal_size": avg, "calls": Decimal(self.calls),
                "emails": Decimal(self.emails), "meetings": Decimal(self.meetings),
                "activities": Decimal(self.activities)}


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    return _WIDE.divide(numerator, denominator).quantize(_FOUR_PLACES, rounding=ROUND_HALF_EVEN)


def _final_deals(facts: _Facts, tenant: TenantConfig) -> dict[str, _Deal]:
    live = {}
    for deal_id, versions in facts.deals.items():
        deal = _newest(versions, f"deal {deal_id!r}")
        if deal is None:
            continue  # deleted, and nothing newer brought it back
        if deal.currency != tenant.currency:
            raise OracleError(f"deal {deal_id!r} is in {deal.currency}, not the tenant's {tenant.currency}: "
                              "the oracle does not convert currencies")
        live[deal_id] = deal
    return live


def _final_activities(facts: _Facts) -> list[_Activity]:
    final = []
    for activity_id, copies in facts.activities.items():
        if len(set(copies)) > 1:
            raise OracleError(f"activity {activity_id!r} logged twice with different rep, kind or moment: "
                              "kpi keeps the first to arrive")
        final.append(copies[0])
    return final


def _tallies(tenant: TenantConfig, facts: _Facts) -> dict[TallyKey, _Tally]:
    zone = ZoneInfo(tenant.timezone)
    roster = _roster(facts)
    tallies: defaultdict[TallyKey, _Tally] = defaultdict(_Tally)

    def where(rep_id: str, moment: datetime) -> list[_Tally]:
        labels = _labels_of_day(moment.astimezone(zone).date(), tenant.fiscal_start_month)
        owners = [("rep", rep_id)] + [("team", team) for team in roster.teams_at(rep_id, moment)]
        return [tallies[(scope, owner, label)] for scope, owner in owners for label in labels]

    for deal in _final_deals(facts, tenant).values():
        if deal.created_at is not None:
            for tally in where(deal.rep_id, deal.created_at):
                tally.pipeline_created = _EXACT.add(tally.pipeline_created, deal.amount)
        if deal.closed_at is not None and deal.stage == "won":
            for tally in where(deal.rep_id, deal.closed_at):
                tally.won_revenue = _EXACT.add(tally.won_revenue, deal.amount)
                tally.deals_won += 1
        elif deal.closed_at is not None and deal.stage == "lost":
            for tally in where(deal.rep_id, deal.closed_at):
                tally.deals_lost += 1
    for activity in _final_activities(facts):
        metric = _ACTIVITY_METRIC.get(activity.kind)
        for tally in where(activity.rep_id, activity.occurred_at):
            tally.activities += 1
            if metric is not None:
                setattr(tally, metric, getattr(tally, metric) + 1)
    return {key: tally for key, tally in tallies.items() if not tally.is_empty()}


def _targets(facts: _Facts) -> dict[Key, Decimal]:
    return {key: _newest(values, f"target {key}") for key, values in sorted(facts.targets.items())}


def _figures(tenant: TenantConfig, facts: _Facts) -> dict[Key, Decimal]:
    tallies = _tallies(tenant, facts)
    keys = set(tallies) | {(scope, scope_id, period) for scope, scope_id, period, _ in facts.targets}
    figures: dict[Key, Decimal] = {}
    for scope, scope_id, period in sorted(keys):
        for metric, value in tallies.get((scope, scope_id, period), _Tally()).metrics().items():
            figures[(scope, scope_id, period, metric)] = value
    return figures


def _ceilings(tenant: TenantConfig, facts: _Facts) -> dict[Key, Decimal]:
    """Per (scope, id, period, metric) of the summed metrics, the most kpi may ever have held: each deal at its
    most favourable version (see `thresholds_reachable`), every activity."""
    zone = ZoneInfo(tenant.timezone)
    roster = _roster(facts)
    teams_ever: dict[str, set[str]] = {}
    for rep_id, moves in roster.moves.items():
        teams_ever[rep_id] = set()
        for _, team in moves:
            chain = [team]
            while (parent := roster.parents.get(chain[-1])) is not None and parent not in chain:
                chain.append(parent)
            teams_ever[rep_id] |= set(chain)

    def keys(rep_id: str, moment: datetime, metric: str) -> set[Key]:
        labels = _labels_of_day(moment.astimezone(zone).date(), tenant.fiscal_start_month)
        owners = [("rep", rep_id)] + [("team", team) for team in sorted(teams_ever.get(rep_id, ()))]
        return {(scope, owner, label, metric) for scope, owner in owners for label in labels}

    ceilings: defaultdict[Key, Decimal] = defaultdict(lambda: _ZERO)
    for versions in facts.deals.values():
        best: dict[Key, Decimal] = {}  # this deal's largest contribution to each figure, over its versions
        for _, deal in versions:
            if deal is None:
                continue
            contributions: list[tuple[Key, Decimal]] = []
            if deal.created_at is not None:
                contributions += [(k, deal.amount) for k in keys(deal.rep_id, deal.created_at, "pipeline_created")]
            if deal.closed_at is not None and deal.stage == "won":
                contributions += [(k, deal.amount) for k in keys(deal.rep_id, deal.closed_at, "won_revenue")]
                contributions += [(k, Decimal(1)) for k in keys(deal.rep_id, deal.closed_at, "deals_won")]
            for key, value in contributions:
                best[key] = max(best.get(key, _ZERO), value)
        for key, value in best.items():
            ceilings[key] = _EXACT.add(ceilings[key], value)
    for activity in _final_activities(facts):
        metric = _ACTIVITY_METRIC.get(activity.kind)
        for name in ("activities", metric) if metric is not None else ("activities",):
            for key in keys(activity.rep_id, activity.occurred_at, name):
                ceilings[key] += 1
    return dict(ceilings)


# --- the public questions -------------------------------------------------------------------------------


def final_figures(tenant: TenantConfig, events: Iterable[Mapping[str, Any]]) -> dict[Key, Decimal]:
    """Every (scope, id, period, metric) with at least one contribution or a target, and its actual value,
    exactly as kpi's attainment table should hold it at the end (all nine metrics for each such key)."""
    return _figures(tenant, _read(events))


def final_targets(tenant: TenantConfig, events: Iterable[Mapping[str, Any]]) -> dict[Key, Decimal]:
    """Every (scope, id, period, metric) with a target, and the target's value (the newest `target.set`)."""
    return _targets(_read(events))


def thresholds_crossed(tenant: TenantConfig, events: Iterable[Mapping[str, Any]],
                       thresholds: Iterable[int] = (50, 100, 150)) -> set[tuple[str, str, str, str, int]]:
    """(scope, id, period, metric, threshold) whose FINAL actual >= threshold % of a positive target, the
    ratio rounded half-even to 4 places first (the attainment recognition compares)."""
    facts = _read(events)
    figures = _figures(tenant, facts)
    percents = tuple(thresholds)
    crossed = set()
    for key, target in _targets(facts).items():
        if target <= 0:
            continue
        attainment = _ratio(figures[key], target)
        crossed |= {(*key, t) for t in percents if attainment >= Decimal(t) / 100}
    return crossed


def thresholds_reachable(tenant: TenantConfig, events: Iterable[Mapping[str, Any]],
                         thresholds: Iterable[int] = (50, 100, 150)) -> set[tuple[str, str, str, str, int]]:
    """(scope, id, period, metric, threshold) that a figure kpi may have reported at SOME moment while the
    events streamed in could have reached: every `thresholds_crossed` one, and those a transient state
    reached (a won deal later reopened, lost or deleted; an amount corrected down; a stale edit applied
    before the newer version arrived; a deal counted for its first owner or a rep's former team).

    An upper bound, sound for any delivery order and any interleaving of kpi's partitions: kpi holds each
    deal at one of its versions or not at all, so a figure is at most the sum, over its deals, of the
    contribution of the deal's most favourable version (counted for every team the rep was ever stated in,
    and the teams above it as the hierarchy stands at the end), plus every activity; its attainment at most
    that over the smallest positive target ever set for it. Ratio metrics (win_rate, avg_deal_size) have no
    such bound: any of their thresholds with a positive target counts as reachable."""
    facts = _read(events)
    ceilings = _ceilings(tenant, facts)
    percents = tuple(thresholds)
    reachable = set()
    for key, values in sorted(facts.targets.items()):
        positive = [value for _, value in values if value > 0]
        if not positive:
            continue
        metric = key[3]
        if metric in _RATIO_METRICS:
            reachable |= {(*key, t) for t in percents}
            continue
        attainment = _ratio(ceilings.get(key, _ZERO), min(positive))
        reachable |= {(*key, t) for t in percents if attainment >= Decimal(t) / 100}
    return reachable


def behind_pace_possible(tenant: TenantConfig, events: Iterable[Mapping[str, Any]],
                         findings: Iterable[tuple[str, str, str, datetime]],
                         pace_threshold: Decimal = Decimal("0.7"), grace_share: Decimal = DEFAULT_GRACE_SHARE,
                         metrics: Iterable[str] = PACE_METRICS) -> set[tuple[str, str, str, datetime]]:
    """Of `findings`, (rep_id, period, metric, at) claims that a rep was behind pace at the instant `at`, those
    coaching could have found on SOME figure kpi may have reported while the events streamed in.

    kpi may apply a rep's target before any of the rep's deals (they are on other topics and partitions), so
    each rep with a target can stand at 0 for a while: a claim is possible exactly when the rep has a target >
    0 for that period and metric (any value ever set), the metric is one of `metrics`, the period holds `at`,
    at least `grace_share` of its working days have elapsed at `at` and the expected figure (target x share,
    to the cent) is above 0 (then 0 < pace_threshold x expected)."""
    facts = _read(events)
    wanted = set(metrics)
    possible = set()
    for rep_id, period, metric, claimed_at in findings:
        at = _moment(claimed_at, "at")
        targets = [value for _, value in facts.targets.get(("rep", rep_id, period, metric), []) if value > 0]
        if metric not in wanted or not targets:
            continue
        start, end = _bounds(period, tenant)
        share = _working_share(period, tenant, at)
        if not start <= at < end or share < grace_share:
            continue
        expected = _EXACT.multiply(max(targets), share).quantize(_CENT, rounding=ROUND_HALF_EVEN)
        if _EXACT.multiply(pace_threshold, expected) > _ZERO:
            possible.add((rep_id, period, metric, claimed_at))
    return possible


def behind_pace(tenant: TenantConfig, events: Iterable[Mapping[str, Any]], at: datetime,
                pace_threshold: Decimal = Decimal("0.7"), grace_share: Decimal = DEFAULT_GRACE_SHARE,
                metrics: Iterable[str] = PACE_METRICS) -> set[tuple[str, str, str]]:
    """(rep_id, period, metric) behind pace at the instant `at`.

    The figures are those of ALL `events` (what kpi reported once it had applied them; coaching evaluates
    the latest figures it holds, with the instant as a parameter); `at` only fixes which periods are running
    and how much of their working days has elapsed. Pass the events delivered by `at` to model mid-stream.
    """
    at = _moment(at, "at")
    facts = _read(events)
    figures = _figures(tenant, facts)
    wanted = set(metrics)
    behind = set()
    for (scope, rep_id, period, metric), target in _targets(facts).items():
        if scope != "rep" or metric not in wanted or target <= 0:
            continue
        start, end = _bounds(period, tenant)
        if not start <= at < end:
            continue  # only the periods running at `at` are checked
        share = _working_share(period, tenant, at)
        if share < grace_share:
            continue
        expected = _EXACT.multiply(target, share).quantize(_CENT, rounding=ROUND_HALF_EVEN)
        # actual / expected < threshold, without rounding the quotient
        if expected > 0 and figures[(scope, rep_id, period, metric)] < _EXACT.multiply(pace_threshold, expected):
            behind.add((rep_id, period, metric))
    return behind
