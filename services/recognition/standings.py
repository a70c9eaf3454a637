"""Where each rep of a team stands in a metric at a period's close, from recognition's own state: pure.

kpi publishes figures only for targeted keys (CONTRACT.md section 3), so a leaderboard, which ranks every
rep, cannot read its figures from the attainment events. It counts them as kpi does instead (see kpi's
``contributions``), from the deals and activities recognition keeps:

- ``won_revenue``, ``deals_won``: won deals whose ``closed_at`` falls in the period (the tenant's zone);
  ``deals_lost`` likewise for the win rate;
- ``pipeline_created``: deals whose ``created_at`` falls in the period, whatever their stage;
- money in the tenant's base currency at the rate valid on the deal's local day (the newest rate from
  that day or before; a deal whose currency has no rate is left out, as kpi leaves it out);
- ``win_rate`` = won / (won + lost), ``avg_deal_size`` = won revenue / deals won, rounded half-even to
  4 places, 0 when there is nothing to divide by;
- ``calls``, ``emails``, ``meetings`` by activity kind; ``activities`` all of them.

Deleted deals count nowhere. A rep belongs to the team the roster has now.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, Rounded

from services.recognition.model import Calendar, Profile, Standing, StoredDeal, WonDeal
from shared.events import Metric

__all__ = ["in_base", "rep_figures", "standings_by_team", "teams_of", "won_in"]

_EXACT = Context(prec=400, traps=[Inexact, Rounded])  # a sum that would need rounding raises
_CENT = Decimal("0.0001")
_KINDS = {Metric.CALLS: "call", Metric.EMAILS: "email", Metric.MEETINGS: "meeting"}


def in_base(amount: Decimal, currency: str, moment: datetime, calendar: Calendar) -> Decimal | None:
    """``amount`` in the base currency at the rate of the local day of ``moment``; None without a rate.

    Example, base EUR, USD rates 0.90 from 2026-01-01 and 0.95 from 2026-07-01: 100 USD closed on
    2026-08-03 is 95.00 EUR; closed on 2025-12-31 it has no rate (None).
    """
    currency = currency.strip()
    if calendar.currency is None or currency == calendar.currency:
        return amount
    rates = calendar.rates.get(currency, ())
    i = bisect_right(rates, moment.astimezone(calendar.timezone).date(), key=lambda rate: rate[0])
    return _EXACT.multiply(amount, rates[i - 1][1]) if i else None


def rep_figures(metric: Metric, deals: Sequence[StoredDeal], activities: Mapping[tuple[str, str | None], int],
                calendar: Calendar, start: datetime, end: datetime) -> dict[str, Decimal]:
    """Each rep's ``metric`` in the period ``[start, end)``; ``activities`` counts per (rep, kind) there.

    Example, won revenue: r1 won 50,000 and 30,000 EUR, lost one, r2 won 10,000 USD with no rate:
    r1 80,000 (win rate 0.6667), r2 0 (deals won 1).
    """
    if metric in _KINDS or metric is Metric.ACTIVITIES:
        return _counted(metric, activities)
    won, revenue, lost, pipeline = _tallies(deals, calendar, start, end)
    match metric:
        case Metric.WON_REVENUE:
            return revenue
        case Metric.DEALS_WON:
            return won
        case Metric.PIPELINE_CREATED:
            return pipeline
        case Metric.AVG_DEAL_SIZE:
            return {rep: (revenue.get(rep, Decimal(0)) / n).quantize(_CENT, ROUND_HALF_EVEN) for rep, n in won.items()}
        case _:  # win rate
            reps = set(won) | set(lost)
            return {rep: (won.get(rep, Decimal(0)) / (won.get(rep, 0) + lost.get(rep, 0))).quantize(
                _CENT, ROUND_HALF_EVEN) for rep in reps}


def _counted(metric: Metric, activities: Mapping[tuple[str, str | None], int]) -> dict[str, Decimal]:
    counts: dict[str, Decimal] = {}
    for (rep_id, kind), n in activities.items():
        if metric is Metric.ACTIVITIES or kind == _KINDS[metric]:
            counts[rep_id] = counts.get(rep_id, Decimal(0)) + n
    return counts


def _tallies(deals: Sequence[StoredDeal], calendar: Calendar, start: datetime, end: datetime,
             ) -> tuple[dict[str, Decimal], dict[str, Decimal], dict[str, int], dict[str, Decimal]]:
    """Per rep: deals won, won revenue, deals lost, pipeline created in ``[start, end)``."""
    won: dict[str, Decimal] = {}
    revenue: dict[str, Decimal] = {}
    lost: dict[str, int] = {}
    pipeline: dict[str, Decimal] = {}
    for deal in deals:
        if deal.deleted:
            continue
        if deal.created_at is not None and start <= deal.created_at < end:
            amount = in_base(deal.amount, deal.currency, deal.created_at, calendar)
            pipeline[deal.rep_id] = _EXACT.add(pipeline.get(deal.rep_id, Decimal(0)), amount or Decimal(0))
        if deal.closed_at is None or not start <= deal.closed_at < end:
            continue
        if deal.stage == "won":
            won[deal.rep_id] = won.get(deal.rep_id, Decimal(0)) + 1
            amount = in_base(deal.amount, deal.currency, deal.closed_at, calendar)
            revenue[deal.rep_id] = _EXACT.add(revenue.get(deal.rep_id, Decimal(0)), amount or Decimal(0))
        elif deal.stage == "lost":
            lost[deal.rep_id] = lost.get(deal.rep_id, 0) + 1
    return won, revenue, lost, pipeline


def standings_by_team(figures: Mapping[str, Decimal], roster: Mapping[str, Profile]) -> dict[str, list[Standing]]:
    """Per team (as the roster has it now), its reps' figures; reps without a team stand nowhere."""
    teams: dict[str, list[Standing]] = {}
    for rep_id, actual in sorted(figures.items()):
        profile = roster.get(rep_id)
        if profile is not None and profile.team_id is not None:
            teams.setdefault(profile.team_id, []).append(Standing(rep_id, profile.name, actual))
    return teams


def teams_of(roster: Mapping[str, Profile]) -> dict[str, list[str]]:
    """Each team's reps (as the roster has them now), in rep id order."""
    teams: dict[str, list[str]] = {}
    for rep_id in sorted(roster):
        if (team := roster[rep_id].team_id) is not None:
            teams.setdefault(team, []).append(rep_id)
    return teams


def won_in(deals: Sequence[StoredDeal], rep_ids: Sequence[str], start: datetime, end: datetime) -> list[WonDeal]:
    """The live won deals of ``rep_ids`` closed in ``[start, end)``."""
    members = set(rep_ids)
    return [WonDeal(d.deal_id, d.rep_id, d.amount, d.currency.strip(), d.closed_at) for d in deals
            if d.won and d.rep_id in members and d.closed_at is not None and start <= d.closed_at < end]
