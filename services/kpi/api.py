"""kpi's read API (CONTRACT.md, section 5): scorecards, team scorecards, leaderboards, and what each
figure is made of. Tenant-scoped by the bearer token; responses carry `as_of` and an `ETag`, and a
request with a matching `If-None-Match` gets `304 Not Modified`, so dashboards can poll cheaply.

A scorecard's expected, pace and projection are computed when asked, over working days (`pace.py`): Monday
to Friday in the tenant's zone minus its holidays, and on a rep's scorecard minus the rep's time off too."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from services.kpi import pace
from services.kpi import repository as repo
from services.kpi.custom import BUILT_IN, Kpi
from services.kpi.dashboard import forecast_view, queries
from services.kpi.figures import figures, ratio
from services.kpi.outlook import Explained
from services.kpi.ranking import RankBy, rank_by_value, ranked
from shared.auth import Anyone, People, reps_visible, see_rep
from shared.authz import Principal
from shared.db import tenant_tx
from shared.events import Dec, Forecast, ForecastCategory, Metric, MetricName
from shared.periods import PeriodError, PeriodKind, parse_period, period_bounds, period_of
from shared.service import Runtime, runtime_of

router = APIRouter(prefix="/v1", tags=["read"])
Rt = Annotated[Runtime, Depends(runtime_of)]
MetricQuery = Annotated[str, Query(pattern=r"^[a-z][a-z0-9_]{0,39}$",
                                   description="a built-in metric or a KPI the tenant defined (GET /v1/kpis)")]


class Figure(BaseModel):
    metric: MetricName
    actual: Dec
    target: Dec | None
    attainment: Dec | None
    expected: Dec | None
    pace: Dec | None
    projected: Dec | None
    explain: str  # the deals or activities this figure is made of
    forecast: Forecast | None = Field(
        None, description="won_revenue while its period has not ended: the forecast from the open pipeline (the"
                          " `/forecast` route explains it deal by deal)")


class _OfAPeriod(BaseModel):
    """Whose figures, in which period, as of when."""

    scope: Literal["rep", "team"]
    scope_id: str
    period: str
    period_start: datetime
    period_end: datetime
    as_of: datetime


class Scorecard(_OfAPeriod):
    figures: list[Figure]
    trailing: dict[str, dict[str, int]]  # activity counts over the last 7 and 30 days


class Standing(BaseModel):
    rank: int | None = Field(description="competition rank (1, 2, 2, 4): tied entries share it; null by attainment"
                                         " for a rep without a target, listed after the ranked ones")
    tied: bool = Field(False, description="another entry holds the same rank")
    rep_id: str
    name: str | None
    team_id: str | None
    actual: Dec
    target: Dec | None
    attainment: Dec | None


class Leaderboard(BaseModel):
    period: str
    metric: MetricName
    rank_by: RankBy = RankBy.AMOUNT
    as_of: datetime
    standings: list[Standing]
    next_cursor: str | None


class TeamStanding(BaseModel):
    rank: int | None = Field(description="competition rank: tied teams share it; null by attainment without a"
                                         " target")
    tied: bool = False
    team_id: str
    name: str | None
    actual: Dec
    target: Dec | None
    attainment: Dec | None


class TeamLeaderboard(BaseModel):
    period: str
    metric: MetricName
    rank_by: RankBy
    as_of: datetime
    standings: list[TeamStanding]


class ForecastLine(BaseModel):
    """One open deal of a forecast, explained."""

    deal_id: str
    rep_id: str
    amount: Dec = Field(description="in the tenant's base currency")
    probability: Dec
    basis: Literal["crm", "history"]
    reason: str = Field(description="where the probability comes from: the CRM, or which win rate of whose")
    forecast_category: ForecastCategory
    expected_close_at: datetime
    weighted: Dec = Field(description="amount x probability")
    swing: Dec | None = Field(description="the chance of reaching the target if this deal is won minus if it is"
                                          " lost: the deal to ask about has the largest; null without a target")


class ForecastView(_OfAPeriod):
    target: Dec | None
    forecast: Forecast | None = Field(description="null once the period has ended: nothing open can close in it")
    deals: list[ForecastLine] = Field(description="every open deal counted, largest swing first (then weighted)")
    hidden_deals: int = Field(0, description="deals of reps the caller may not see: counted in the totals, not"
                                             " listed")
    how: str = Field(description="how the chance was computed, and its error")


class Contribution(BaseModel):
    kind: Literal["deal", "activity"]
    id: str  # the CRM's own id
    amount: Dec | None
    currency: str | None
    stage: str | None
    at: datetime


def _etagged(request: Request, payload: BaseModel) -> Response:
    body = payload.model_dump_json().encode()
    tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag})
    return Response(body, media_type="application/json", headers={"ETag": tag, "Cache-Control": "no-cache"})


async def _period(rt: Runtime, tenant: str, period: str | None) -> tuple[str, repo.TenantCalendar]:
    """The period asked for, or by default the quarter the dashboard shows: the current one once it has figures,
    else the latest earlier one that has (`queries.shown_quarter`)."""
    async with tenant_tx(rt.pool, tenant) as conn:
        cal = await repo.calendar(conn, tenant)
        if period is None:
            current = period_of(PeriodKind.QUARTER, rt.clock.now(), cal.timezone, cal.fiscal_start_month).label
            return await queries.shown_quarter(conn, tenant, current), cal
    try:
        return parse_period(period).label, cal
    except PeriodError as err:
        raise HTTPException(422, f"period: {err}") from err


async def _scorecard(request: Request, rt: Runtime, tenant: str, scope: Literal["rep", "team"], scope_id: str,
                     period: str | None) -> Response:
    label, cal = await _period(rt, tenant, period)
    start, end = period_bounds(label, cal.timezone, cal.fiscal_start_month)
    now, tz = rt.clock.now(), ZoneInfo(cal.timezone)
    async with tenant_tx(rt.pool, tenant) as conn:
        rows = await queries.figures_of(conn, tenant, scope, scope_id, label)
        leave: pace.Leave = []  # a rep's pace counts their time off as days off too; a team's, the holidays alone
        if scope == "rep":
            leave = (await repo.time_off(conn, tenant, [scope_id], *pace.local_days(start, end, tz))).get(scope_id, [])
        trailing = {}
        for days in (7, 30):
            counts = await queries.activity_counts(conn, tenant, scope, scope_id, now - timedelta(days=days), now)
            trailing[f"last_{days}_days"] = {**counts, "activities": sum(counts.values())}
    if not rows:
        raise HTTPException(404, f"no figures for {scope} {scope_id!r} in {label}")
    base = str(request.url_for("contributions", rep_id=scope_id)) if scope == "rep" else None
    share = pace.share(start, end, now, tz, cal.holidays, leave)
    ahead = await _forecast(rt, tenant, scope, scope_id, label, rows, (start, end)) if end > now else None
    cards = []
    for r in rows:
        fig = figures(r["actual"], r["target"], share)
        cards.append(Figure(metric=r["metric"], actual=fig.actual, target=fig.target, attainment=fig.attainment,
                            expected=fig.expected, pace=fig.pace, projected=fig.projected,
                            explain=f"{base}?period={label}&metric={r['metric']}" if base else "",
                            forecast=ahead.forecast if ahead and r["metric"] == Metric.WON_REVENUE.value else None))
    return _etagged(request, Scorecard(scope=scope, scope_id=scope_id, period=label, period_start=start,
                                       period_end=end, as_of=now, figures=cards, trailing=trailing))


async def _forecast(rt: Runtime, tenant: str, scope: str, scope_id: str, label: str, rows: list[Any],
                    bounds: tuple[datetime, datetime], *, full: bool = False) -> Explained:
    """The won_revenue figure's forecast now (`queries.forecast_of`): the handler's budget on a scorecard, the
    full one (and each deal's swing) when explained."""
    async with tenant_tx(rt.pool, tenant) as conn:
        return await queries.forecast_of(conn, tenant, scope, scope_id, label, rows, bounds, rt.clock.now(),
                                         full=full)


async def _forecast_view(request: Request, rt: Runtime, who: Principal, scope: Literal["rep", "team"],
                         scope_id: str, period: str | None) -> Response:
    tenant = who.tenant
    label, cal = await _period(rt, tenant, period)
    start, end = period_bounds(label, cal.timezone, cal.fiscal_start_month)
    now = rt.clock.now()
    async with tenant_tx(rt.pool, tenant) as conn:
        rows = await queries.figures_of(conn, tenant, scope, scope_id, label)
        visible = await reps_visible(conn, who)
    target = next((r["target"] for r in rows if r["metric"] == Metric.WON_REVENUE.value), None)
    if end <= now:
        return _etagged(request, ForecastView(scope=scope, scope_id=scope_id, period=label, period_start=start,
                                              period_end=end, as_of=now, target=target, forecast=None, deals=[],
                                              how="the period has ended: nothing open can close in it"))
    found = await _forecast(rt, tenant, scope, scope_id, label, rows, (start, end), full=True)
    shown, hidden = forecast_view.lines(found, visible)  # what the dashboard shows too
    f = found.forecast
    lines = [ForecastLine(**asdict(line)) for line in shown]
    how = forecast_view.method_words(f)
    return _etagged(request, ForecastView(scope=scope, scope_id=scope_id, period=label, period_start=start,
                                          period_end=end, as_of=now, target=target, forecast=f, deals=lines,
                                          hidden_deals=hidden, how=how))


@router.get("/scorecards/{rep_id}", response_model=Scorecard, responses={304: {}, 401: {}, 404: {}})
async def rep_scorecard(rep_id: str, request: Request, who: People, rt: Rt,
                        period: str | None = None) -> Response:
    """Every metric of a rep in a period (default: the current quarter once it has figures, else the latest that
    has), with target, pace and projection.
    A rep reads their own, a manager the reps under them (404 for any other)."""
    async with tenant_tx(rt.pool, who.tenant) as conn:
        await see_rep(conn, who, rep_id)
    return await _scorecard(request, rt, who.tenant, "rep", rep_id, period)


@router.get("/scorecards/{rep_id}/forecast", response_model=ForecastView, responses={304: {}, 401: {}, 404: {}})
async def rep_forecast(rep_id: str, request: Request, who: People, rt: Rt, period: str | None = None) -> Response:
    """A rep's won-revenue forecast in a period (default: the current quarter once it has figures), explained deal
    by deal: each open deal expected to close in it, its probability and where that comes from, its weighted
    amount and its swing on the chance of reaching the target. A rep reads their own, a manager the reps under
    them."""
    async with tenant_tx(rt.pool, who.tenant) as conn:
        await see_rep(conn, who, rep_id)
    return await _forecast_view(request, rt, who, "rep", rep_id, period)


@router.get("/teams/{team_id}/forecast", response_model=ForecastView, responses={304: {}, 401: {}})
async def team_forecast(team_id: str, request: Request, who: Anyone, rt: Rt, period: str | None = None) -> Response:
    """A team's won-revenue forecast (its reps' open deals, and those of every team under it): the totals for
    every role; the deals listed are those of reps the caller may read (`hidden_deals` counts the others)."""
    return await _forecast_view(request, rt, who, "team", team_id, period)


@router.get("/teams/{team_id}/scorecard", response_model=Scorecard, responses={304: {}, 401: {}, 404: {}})
async def team_scorecard(team_id: str, request: Request, who: Anyone, rt: Rt,
                         period: str | None = None) -> Response:
    """Every metric of a team in a period: what its reps did while they were in it (team totals: every role)."""
    return await _scorecard(request, rt, who.tenant, "team", team_id, period)


@router.get("/leaderboard", response_model=Leaderboard, responses={304: {}, 401: {}})
async def leaderboard(request: Request, who: Anyone, rt: Rt, period: str | None = None,
                      metric: MetricQuery = Metric.WON_REVENUE.value, team_id: str | None = None,
                      rank_by: RankBy = RankBy.AMOUNT,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50,
                      cursor: Annotated[str | None, Query(pattern=r"^[0-9]+$")] = None) -> Response:
    """Reps ranked by a metric in a period, by amount or by % of target (`rank_by`), `limit` at a time;
    `next_cursor` pages on. Ties share a rank (1, 2, 2, 4) on every page; by attainment a rep without a target
    has no rank and comes last."""
    tenant = who.tenant
    label, _ = await _period(rt, tenant, period)
    offset = int(cursor or 0)
    async with tenant_tx(rt.pool, tenant) as conn:
        await _known(conn, tenant, metric)
        rows = await queries.standings(conn, tenant, label, metric, team_id)
    board = ranked(rows, lambda r: rank_by_value(r["actual"], r["target"], rank_by), lambda r: r["rep_id"])
    page = board[offset:offset + limit]
    standings = [Standing(rank=e.rank, tied=e.tied, rep_id=e.entry["rep_id"], name=e.entry["name"],
                          team_id=e.entry["team_id"], actual=e.entry["actual"], target=e.entry["target"],
                          attainment=ratio(e.entry["actual"], e.entry["target"])) for e in page]
    return _etagged(request, Leaderboard(period=label, metric=metric, rank_by=rank_by, as_of=rt.clock.now(),
                                         standings=standings,
                                         next_cursor=str(offset + limit) if len(board) > offset + limit else None))


@router.get("/leaderboard/teams", response_model=TeamLeaderboard, responses={304: {}, 401: {}})
async def team_leaderboard(request: Request, who: Anyone, rt: Rt, period: str | None = None,
                           metric: MetricQuery = Metric.WON_REVENUE.value,
                           rank_by: RankBy = RankBy.ATTAINMENT) -> Response:
    """Team against team: every team's figure of a metric in a period, ranked by % of its target (default:
    teams of different sizes compare fairly) or by amount. Ties share a rank. Every role."""
    tenant = who.tenant
    label, _ = await _period(rt, tenant, period)
    async with tenant_tx(rt.pool, tenant) as conn:
        await _known(conn, tenant, metric)
        rows = await queries.team_standings(conn, tenant, label, metric)
    board = ranked(rows, lambda r: rank_by_value(r["actual"], r["target"], rank_by), lambda r: r["team_id"])
    standings = [TeamStanding(rank=e.rank, tied=e.tied, team_id=e.entry["team_id"], name=e.entry["name"],
                              actual=e.entry["actual"], target=e.entry["target"],
                              attainment=ratio(e.entry["actual"], e.entry["target"])) for e in board]
    return _etagged(request, TeamLeaderboard(period=label, metric=metric, rank_by=rank_by, as_of=rt.clock.now(),
                                             standings=standings))


@router.get("/scorecards/{rep_id}/contributions", response_model=list[Contribution], name="contributions")
async def contributions(rep_id: str, who: People, rt: Rt, metric: MetricQuery, period: str | None = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[Contribution]:
    """Why a figure is what it is: the deals (or activities) that make it up, with the CRM's own ids (for a KPI
    the tenant defined, the records its filter counts, as its tallies count them)."""
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        await see_rep(conn, who, rep_id)
        kpi = await _known(conn, tenant, metric)
    label, cal = await _period(rt, tenant, period)
    start, end = period_bounds(label, cal.timezone, cal.fiscal_start_month)
    async with tenant_tx(rt.pool, tenant) as conn:
        if kpi is not None:
            return (await _counted_by(conn, tenant, rep_id, kpi, start, end))[:limit]
        metric = Metric(metric)
        if metric in queries.DEAL_METRICS:
            rows = await queries.contributing_deals(conn, tenant, rep_id, metric, start, end, limit)
            return [Contribution(kind="deal", id=r["deal_id"], amount=r["amount"], currency=r["currency"],
                                 stage=r["stage"], at=r["at"]) for r in rows]
        rows = await queries.contributing_activities(conn, tenant, rep_id, metric, start, end, limit)
    return [Contribution(kind="activity", id=r["activity_id"], amount=None, currency=None, stage=r["kind"],
                         at=r["occurred_at"]) for r in rows]





async def _known(conn: Any, tenant: str, metric: str) -> Kpi | None:
    """None for a built-in metric, the KPI for one the tenant defined; 422 naming the metric otherwise."""
    if metric in BUILT_IN:
        return None
    found = next((k for k in await repo.kpis_of(conn, tenant) if k.kpi_id == metric), None)
    if found is None:
        raise HTTPException(422, f"metric: {metric!r} is neither a built-in metric ({', '.join(sorted(BUILT_IN))})"
                                 " nor a KPI the tenant defined")
    return found


async def _counted_by(conn: Any, tenant: str, rep_id: str, kpi: Kpi, start: datetime,
                      end: datetime) -> list[Contribution]:
    """The rep's records a KPI counts in [start, end): the same filter and moments as its tallies."""
    books = await repo.books(conn, tenant)
    deals, activities = await repo.histories(conn, tenant, [rep_id], start)
    out: list[Contribution] = []
    if kpi.source == "deals":
        for d in deals:
            moment = kpi.deal_moment(d.stage, d.created_at, d.closed_at)
            if moment is not None and start <= moment < end and kpi.deal_passes(
                    d.stage_label, books.in_base(d.amount, d.currency, moment.astimezone(books.timezone).date()),
                    d.properties):
                out.append(Contribution(kind="deal", id=d.deal_id, amount=d.amount, currency=d.currency,
                                        stage=d.stage, at=moment))
    else:
        for a in activities:
            if start <= a.occurred_at < end and kpi.activity_passes(a.kind, a.deal_id, a.properties):
                out.append(Contribution(kind="activity", id=a.activity_id, amount=None, currency=None, stage=a.kind,
                                        at=a.occurred_at))
    return sorted(out, key=lambda c: (c.at, c.id))
