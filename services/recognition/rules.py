"""Which milestones the numbers reached: pure rules, each documented with a worked example.

A rule takes plain data (`model.WonDeal`, `model.Standing`, `model.Day`, attainment shares), the
tenant's `model.Settings` and the moments it needs; it returns `model.Found` milestones and never
reads the clock or a database. A rule may find the same milestone again (a re-crossing after a drop,
a streak that goes on, a replayed deal): the ledger, unique per (tenant, scope, scope id, milestone,
period), decides what is new, so only a first finding is ever announced, under `celebration_id`.

Each milestone kind can be switched off with its name in ``settings.disabled``: ``quota``,
``team_goal``, ``first_win_ever``, ``first_win``, ``personal_record``, ``activity_streak``,
``leaderboard`` and ``team_largest_deal``; and a contest's ``contest_started``, ``contest_lead`` and
``contest_won`` (their rules are in `contests.py`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from services.recognition.model import (
    FIRST_WIN,
    FIRST_WIN_EVER,
    PERSONAL_RECORD,
    STREAK,
    TEAM_GOAL,
    TEAM_LARGEST_DEAL,
    Day,
    Found,
    Settings,
    Standing,
    WonDeal,
    quota_milestone,
)
from shared.events import Metric, Scope
from shared.periods import PeriodKind, period_bounds, period_of

__all__ = [
    "EVER",
    "LEADERBOARD_METRIC",
    "NAMESPACE",
    "activity_days",
    "celebration_id",
    "closed_periods",
    "deal_milestones",
    "leaderboard_finishes",
    "leaderboard_milestone",
    "quota_crossings",
    "quota_drops",
    "rank",
    "streak",
    "team_largest_deal",
]

# Never change: every celebration id ever issued is derived from it.
NAMESPACE = uuid.UUID("0b7d3c61-5f0e-4c1e-8e55-3f2a9d7c4b20")
EVER = "ever"  # the period of a milestone that happens once in a career
# A rep can place in several metrics of one period; the ledger key holds no metric, so the name does.
LEADERBOARD_METRIC = "leaderboard_{place}_{metric}"

_MICROSECOND = timedelta(microseconds=1)


def celebration_id(tenant: str, scope: str, scope_id: str, milestone: str, period: str,
                   occasion: str = "") -> uuid.UUID:
    """Stable: the same milestone of the same scope and period always has the same id. A milestone that may
    recur in one period (a contest's lead) has an ``occasion`` too, which the id includes; without one the id
    is what it always was.

    >>> str(celebration_id("acme", "rep", "r1", "quota_100", "2026-Q4")) == str(
    ...     uuid.uuid5(NAMESPACE, "acme|rep|r1|quota_100|2026-Q4"))
    True
    >>> str(celebration_id("acme", "rep", "r1", "contest_lead", "c1", "2026-11-02T09:00:00+00:00")) == str(
    ...     uuid.uuid5(NAMESPACE, "acme|rep|r1|contest_lead|c1|2026-11-02T09:00:00+00:00"))
    True
    """
    key = f"{tenant}|{scope}|{scope_id}|{milestone}|{period}"
    return uuid.uuid5(NAMESPACE, f"{key}|{occasion}" if occasion else key)


_CAREER_RANK: Mapping[str, int] = {FIRST_WIN_EVER: 10_002, PERSONAL_RECORD: 10_001, FIRST_WIN: 10_000}
_PERCENT = re.compile(r"quota_(\d+)(?:_[a-z_]+)?")
_PLACE = re.compile(r"leaderboard_(\d+)_[a-z_]+")


def rank(milestone: str) -> int:
    """How high a milestone stands when one record reaches several (a celebration carries them highest first).

    A deal's career milestones: ``first_win_ever`` > ``personal_record`` > ``first_win``. A figure's: the
    higher threshold first (``quota_150`` > ``quota_100`` = ``team_goal`` > ``quota_50``). A leaderboard
    place: 1st > 2nd. Anything else ranks 0.

    >>> sorted(["first_win", "first_win_ever"], key=rank, reverse=True)
    ['first_win_ever', 'first_win']
    >>> sorted(["quota_50", "quota_150", "quota_100"], key=rank, reverse=True)
    ['quota_150', 'quota_100', 'quota_50']
    """
    if milestone in _CAREER_RANK:
        return _CAREER_RANK[milestone]
    if milestone == TEAM_GOAL:
        return 100
    if match := _PERCENT.fullmatch(milestone):
        return int(match.group(1))
    if match := _PLACE.fullmatch(milestone):
        return -int(match.group(1))
    return 0


def quota_crossings(
    scope: Scope,
    scope_id: str,
    period: str,
    metric: Metric | str,  # a built-in metric or the id of a KPI the tenant defined
    previous: Decimal | None,
    current: Decimal | None,
    actual: Decimal,
    target: Decimal | None,
    at: datetime,
    settings: Settings,
    name: str | None = None,
) -> list[Found]:
    """The attainment thresholds one update of a figure crossed upwards, lowest first.

    ``previous`` and ``current`` are the attainment shares (actual / target) before and after the
    update. A threshold ``t`` of ``settings.quota_thresholds`` is crossed when
    ``(previous or 0) < t <= current``: only a genuine upward crossing fires. ``previous`` None means
    we had no figure (or no target) before, so it counts as 0: the first figure we see that already
    stands above a threshold fires it. Nothing fires without a target (None or 0), for a metric not
    in ``settings.quota_metrics`` (when that is set), or when ``quota`` is disabled (that switches
    off the team goal too). The milestone is ``quota_<percent>`` for won revenue and
    ``quota_<percent>_<metric>`` for any other metric (each metric celebrated on its own); a team's won
    revenue at ``t == 1`` is ``team_goal`` instead, unless ``team_goal`` is disabled, when it stays ``quota_100``.

    Example, thresholds 0.5 / 1 / 1.5, target 90,000: 0.40 -> 1.05 (actual 94,500) finds quota_50
    and quota_100; 1.05 -> 1.20 finds nothing (it stays above); 1.20 -> 0.95 finds nothing (see
    `quota_drops`); 0.95 -> 1.01 finds quota_100 again, which the ledger already holds. None -> 1.2
    finds quota_50 and quota_100.
    """
    if not target or current is None or "quota" in settings.disabled:
        return []
    if settings.quota_metrics is not None and metric not in settings.quota_metrics:
        return []
    before = previous if previous is not None else Decimal(0)
    found = []
    for threshold in sorted(set(settings.quota_thresholds)):
        if not before < threshold <= current:
            continue
        percent = int(threshold * 100)
        milestone = quota_milestone(percent, str(metric))
        if scope is Scope.TEAM and metric == Metric.WON_REVENUE and threshold == 1 and (
                "team_goal" not in settings.disabled):
            milestone = TEAM_GOAL
        facts = {"name": name or scope_id, "metric": str(metric), "period": period, "actual": actual,
                 "target": target, "attainment": current, "threshold": percent}
        found.append(Found(scope, scope_id, milestone, period, actual, at, facts))
    return found


def quota_drops(previous: Decimal | None, current: Decimal | None, thresholds: Iterable[Decimal]) -> list[Decimal]:
    """The thresholds an attainment fell back below (``previous >= t > current``), lowest first.

    The caller may announce a correction for a celebrated one (``settings.corrections``), never a
    second celebration. Without a figure on either side (None) nothing dropped: a target that
    disappears is not a fall. Example: 1.20 -> 0.45 with 0.5 / 1 / 1.5 dropped below 0.5 and 1.
    """
    if previous is None or current is None:
        return []
    return sorted(t for t in set(thresholds) if previous >= t > current)


def deal_milestones(
    deal: WonDeal,
    earlier_won: Sequence[WonDeal],
    tz: ZoneInfo,
    fiscal_start_month: int,
    settings: Settings,
    name: str | None = None,
) -> list[Found]:
    """A won deal's career milestones for its rep: first win ever, first win of the quarter, record.

    ``earlier_won`` are the rep's other won deals in any order; those that closed after ``deal``
    (deals delivered out of order) are ignored, as is ``deal`` itself. "Before" is by
    ``(closed_at, deal_id)``, so of two deals closed at the same instant the smaller id is first.

    - ``first_win_ever`` (period ``ever``): no other won deal closed before this one.
    - ``first_win`` (period: the fiscal quarter of ``closed_at`` in ``tz``): none closed earlier in
      that quarter. A first win ever is also the quarter's first win: both are found.
    - ``personal_record`` (period: the local day of ``closed_at`` in ``tz``, ``YYYY-MM-DD``): larger
      than every earlier won deal in the SAME currency, and there is at least one such deal; deals in
      other currencies are not compared (their amounts are not on one scale).

    All are found at ``deal.closed_at``. Example: deals of 50,000 EUR (2026-10-05) and 80,000 EUR
    (2026-11-02), then one of 120,000 EUR closes 2026-11-20: personal_record for "2026-11-20" with
    previous_record 80,000. If the 50,000 deal arrives last, it is a first_win_ever and first_win of
    2026-Q4 (the ledger already holds both from the 80,000 deal, so nothing new is announced).
    """
    key = (deal.closed_at, deal.deal_id)
    earlier = [d for d in earlier_won if d.deal_id != deal.deal_id and (d.closed_at, d.deal_id) < key]
    who = name or deal.rep_id
    facts = {"name": who, "deal_id": deal.deal_id, "amount": deal.amount, "currency": deal.currency}
    found = []
    if not earlier and FIRST_WIN_EVER not in settings.disabled:
        found.append(Found(Scope.REP, deal.rep_id, FIRST_WIN_EVER, EVER, deal.amount, deal.closed_at,
                           {**facts, "period": EVER}))
    quarter = _quarter(deal.closed_at, tz, fiscal_start_month)
    in_quarter = [d for d in earlier if _quarter(d.closed_at, tz, fiscal_start_month) == quarter]
    if not in_quarter and FIRST_WIN not in settings.disabled:
        found.append(Found(Scope.REP, deal.rep_id, FIRST_WIN, quarter, deal.amount, deal.closed_at,
                           {**facts, "period": quarter}))
    comparable = [d.amount for d in earlier if d.currency == deal.currency]
    if comparable and deal.amount > max(comparable) and PERSONAL_RECORD not in settings.disabled:
        day = deal.closed_at.astimezone(tz).date().isoformat()
        found.append(Found(Scope.REP, deal.rep_id, PERSONAL_RECORD, day, deal.amount, deal.closed_at,
                           {**facts, "period": day, "previous_record": max(comparable)}))
    return found


@lru_cache(maxsize=65536)
def _quarter(at: datetime, tz: ZoneInfo, fiscal_start_month: int) -> str:
    """The fiscal quarter of ``at`` in ``tz`` (remembered: a batch asks it of the same deals again and again)."""
    return period_of(PeriodKind.QUARTER, at, tz, fiscal_start_month).label


def activity_days(moments: Iterable[datetime], tz: ZoneInfo) -> list[Day]:
    """Bucket activity moments into the local days of ``tz`` (the rep's zone), oldest first.

    Example: a call at 2026-11-16 23:30 in Los Angeles (2026-11-17 07:30 UTC) counts for 2026-11-16.
    """
    counts: dict[date, int] = {}
    for moment in moments:
        day = moment.astimezone(tz).date()
        counts[day] = counts.get(day, 0) + 1
    return [Day(day, counts[day]) for day in sorted(counts)]


def streak(
    days: Sequence[Day],
    today: date,
    settings: Settings,
    days_off: frozenset[date] = frozenset(),
    *,
    rep_id: str,
    at: datetime,
    name: str | None = None,
) -> Found | None:
    """The rep's current run of business days at the daily activity goal, once it is long enough.

    ``days`` are local days of the rep's zone (see `activity_days`; several entries for one day add
    up), ``today`` is the rep's local date at ``at``. A business day is Monday to Friday and not in
    ``days_off``; weekends and days off neither break nor extend a run, whatever was logged on them.
    Walking back from today, each business day with at least ``settings.streak_daily_activities``
    extends the run and the first one short of it ends the run; today counts only once it meets the
    goal (a short today does not break the run yet). Days after ``today`` are ignored. When the run
    is at least ``settings.streak_days`` long: ``activity_streak`` for the rep, period the ISO date
    of the run's FIRST day (one celebration per run, however long it grows), value the run's length.

    Example, goal 5 a day for 5 days: 6, 5, 7, 5 activities Monday 2026-11-16 to Thursday, nothing on
    Friday 2026-11-20 (a day off), nothing at the weekend, then 5 on Monday 2026-11-23: a 5-day streak
    "2026-11-16" on that Monday. A Tuesday with 4 would have ended it (a run from the 17th on).
    """
    if STREAK in settings.disabled or not days:
        return None
    counts: dict[date, int] = {}
    for entry in days:
        counts[entry.day] = counts.get(entry.day, 0) + entry.activities
    goal = settings.streak_daily_activities
    earliest = min(counts)
    run: list[date] = []
    day = today
    while day >= earliest:
        if day.weekday() < 5 and day not in days_off:
            if counts.get(day, 0) >= goal:
                run.append(day)
            elif day != today:
                break
        day -= timedelta(days=1)
    if len(run) < settings.streak_days:
        return None
    first = run[-1]
    facts = {"name": name or rep_id, "days": len(run), "daily_goal": goal, "first_day": first.isoformat(),
             "last_day": run[0].isoformat()}
    return Found(Scope.REP, rep_id, STREAK, first.isoformat(), Decimal(len(run)), at, facts)


def leaderboard_milestone(place: int, metric: Metric) -> str:
    """The milestone name of a leaderboard finish: ``leaderboard_1_won_revenue``.

    `model.LEADERBOARD` (``leaderboard_{place}``) plus the metric, because the ledger's key has no
    metric and a rep may place in several metrics of one period.
    """
    return LEADERBOARD_METRIC.format(place=place, metric=metric.value)


def leaderboard_finishes(
    team_id: str,
    period: str,
    metric: Metric,
    standings: Sequence[Standing],
    closed_at: datetime,
    settings: Settings,
) -> list[Found]:
    """At a period's close, the team's top ``settings.leaderboard_places`` reps in ``metric``.

    Ranked by actual, highest first; equal actuals are ordered by rep id ascending, so every place is
    held by exactly one rep and a replay ranks the same way. Reps with an actual of 0 or less do not
    place. Nothing for a metric outside ``settings.leaderboard_metrics`` or when ``leaderboard`` is
    disabled. Each finish is the rep's (scope rep) `leaderboard_milestone` in ``period``.

    Example, 3 places, won revenue 2026-11: r2 90,000, r1 50,000, r3 50,000, r4 0 -> r2 1st, r1 2nd
    (r1 < r3), r3 3rd; r4 does not place.
    """
    if "leaderboard" in settings.disabled or metric not in settings.leaderboard_metrics:
        return []
    ranked = sorted((s for s in standings if s.actual > 0), key=lambda s: (-s.actual, s.rep_id))
    return [
        Found(Scope.REP, s.rep_id, leaderboard_milestone(place, metric), period, s.actual, closed_at,
              {"name": s.name or s.rep_id, "place": place, "metric": metric.value, "team_id": team_id,
               "actual": s.actual, "period": period})
        for place, s in enumerate(ranked[: settings.leaderboard_places], start=1)
    ]


def team_largest_deal(
    team_id: str,
    period: str,
    deals: Sequence[WonDeal],
    closed_at: datetime,
    settings: Settings,
    base_currency: str | None,
    *,
    team_name: str | None = None,
    rep_names: Mapping[str, str] | None = None,
) -> Found | None:
    """At a quarter's close, the team's largest won deal of ``period`` (scope team).

    ``deals`` are the team's won deals of the period. With ``base_currency`` only deals in it are
    compared; without it every amount is taken as it is. Equal amounts go to the smaller deal id.
    Deals of 0 or less do not count. Example: 40,000 EUR (d1), 120,000 EUR (d3), 120,000 EUR (d2),
    150,000 USD, base EUR -> d2.
    """
    if TEAM_LARGEST_DEAL in settings.disabled:
        return None
    eligible = [d for d in deals if d.amount > 0 and (base_currency is None or d.currency == base_currency)]
    if not eligible:
        return None
    best = min(eligible, key=lambda d: (-d.amount, d.deal_id))
    rep = (rep_names or {}).get(best.rep_id) or best.rep_id
    facts = {"name": team_name or team_id, "team_id": team_id, "rep": rep, "rep_id": best.rep_id,
             "deal_id": best.deal_id, "amount": best.amount, "currency": best.currency, "period": period}
    return Found(Scope.TEAM, team_id, TEAM_LARGEST_DEAL, period, best.amount, closed_at, facts)


def closed_periods(now: datetime, tz: ZoneInfo, fiscal_start_month: int) -> list[str]:
    """The latest month and the latest (fiscal) quarter that had closed at ``now`` in the zone ``tz``.

    Both are always returned, not only on the day they close: a periodic job that missed the exact
    midnight (downtime, a slow tick) still settles them, and the ledger makes each finish once.

    Examples in Europe/Berlin: at 2026-12-01 00:30 -> ["2026-11", "2026-Q3"]; one microsecond before
    2027-01-01 00:00 -> ["2026-11", "2026-Q3"]; at 2027-01-01 00:00 -> ["2026-12", "2026-Q4"]. With
    fiscal_start_month 4, at 2026-04-01 00:00 -> ["2026-03", "2026-Q4"] (Jan-Mar 2026 closes fiscal
    2026).
    """
    labels = []
    for kind in (PeriodKind.MONTH, PeriodKind.QUARTER):
        start, _ = period_bounds(period_of(kind, now, tz, fiscal_start_month), tz, fiscal_start_month)
        labels.append(period_of(kind, start - _MICROSECOND, tz, fiscal_start_month).label)
    return labels
