"""The sales floor dashboard, served by kpi at `/` (CONTRACT.md): server-rendered pages with a little
JavaScript for live updates, TV rotation and PNG export; no build step.

Sign-in stores the tenant's bearer token in an HttpOnly cookie (SameSite=Lax, Secure behind HTTPS):
every page is scoped to that tenant exactly as the read API is. Check-ins, action plans, celebrations
and manager scorecards come from coaching's and recognition's read APIs with the same token (kpi does
not read their tables); when one does not answer, the page says so and shows the rest. What every page
shares (the session, formats, periods, rendering) is in `web.py`; the contest pages in `contest_pages.py`.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from collections.abc import Collection
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import httpx
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from services.kpi import pace
from services.kpi.custom import BUILT_IN
from services.kpi.dashboard import (
    contest_pages,
    contest_view,
    control,
    control_audit,
    control_core,
    control_notify,
    control_settings,
    forecast_view,
    live,
    notify_pages,
    queries,
    sso,
    view,
)
from services.kpi.dashboard.web import (
    COOKIE,
    COOKIE_DAYS,
    HERE,
    SHARED,
    Actor,
    Anyone,
    Coach,
    Fmt,
    People,
    Period,
    Planner,
    Rt,
    Tenant,
    bar,
    basics,
    csrf_token,
    holder,
    make_context,
    metric_of,
    page_period,
    period_choices,
    render,
    rep_period,
)
from services.kpi.figures import figures
from services.kpi.ranking import RankBy, rank_by_value, ranked
from services.kpi.settings import KpiSettings
from shared import ratelimit, share_link, token_store
from shared.auth import reps_visible, see_rep
from shared.authz import Principal, public
from shared.db import tenant_tx
from shared.events import Metric
from shared.service import Runtime

__all__ = ["COOKIE", "csrf_token", "make_context", "router"]  # what app.py wires and the tests use

log = logging.getLogger(__name__)

SERVICE_TIMEOUT_S = 2.0
STATIC = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}
TREND_WORDS = {"up": ("▲", "ahead of the pace needed this week"), "flat": ("▶", "on the pace needed this week"),
               "down": ("▼", "behind the pace needed this week")}
# a period that has ended: the trend of its last week
ENDED_TREND_WORDS = {"up": ("▲", "ahead of the pace needed in its last week"),
                     "flat": ("▶", "on the pace needed in its last week"),
                     "down": ("▼", "behind the pace needed in its last week")}

router = APIRouter(include_in_schema=False)
router.include_router(contest_pages.router)  # /contests, /contests/{contest_id}
for _section in (control.router, control_core.router, control_settings.router, control_notify.router,
                 control_audit.router):
    router.include_router(_section)  # the control room: /admin/...
router.include_router(notify_pages.router)  # a person's notifications: /me/notifications, /unsubscribe
router.include_router(sso.router)  # single sign-on: /signin/sso, /signin/sso/callback

# --- sign-in --------------------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    return view.safe_next(value)  # a path of this site, never another site (no open redirect)


@router.get("/signin", dependencies=[public("the sign-in page")])
async def signin_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "signin.html", title="Sign in", next=_safe_next(next), error=None)


@router.post("/signin", dependencies=[public("signing in: it checks the token it is given")])
async def signin(request: Request, rt: Rt) -> Response:
    form = parse_qs((await request.body()).decode(errors="replace"))
    token = (form.get("token") or [""])[0].strip()
    next_path = _safe_next((form.get("next") or [""])[0])
    async with rt.pool.acquire() as conn:  # the tokens are readable before the tenant is known
        who = await token_store.principal(conn, token, rt.clock.now()) if token else None
    if who is None:
        return render(request, "signin.html", status=401, title="Sign in", next=next_path,
                      error="That token is not valid (or was revoked, or expired). Ask your Attain administrator for "
                            "a token of your own.")
    response = RedirectResponse(next_path, status_code=303)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(COOKIE, token, max_age=COOKIE_DAYS * 86400, httponly=True, samesite="lax", secure=secure,
                        path="/")
    response.delete_cookie(sso.SESSION_COOKIE, path="/")  # a token's session is no single sign-on's to renew
    return response


@router.get(share_link.PREFIX + "{link}", dependencies=[public(
    "a TV's share link: it admits only a live viewer token that ingest's key vouches for")])
async def open_share_link(request: Request, rt: Rt, link: str) -> Response:
    """A screen opens the TV with a share link: a session on the link's viewer token, then to `/tv`. A link
    that is forged, or whose token is revoked, expired or not a viewer's, is a 404 (the screen needs a new one)."""
    who = await holder(rt, SHARED + link)
    if who is None:
        ratelimit.note_failed_authentication(request.scope)
        raise HTTPException(404, "no such share link (revoked, expired or never made)")
    response = RedirectResponse("/tv", status_code=303)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(COOKIE, SHARED + link, max_age=COOKIE_DAYS * 86400, httponly=True, samesite="lax",
                        secure=secure, path="/")
    return response


@router.post("/signout", dependencies=[public(
    "signing out: it clears the cookies, and has ingest revoke a single sign-on session's own token")])
async def signout(request: Request, rt: Rt) -> Response:
    return await sso.signed_out(request, rt)


@router.get("/")
async def home(tenant: Tenant) -> Response:
    return RedirectResponse("/leaderboard", status_code=303)


# --- leaderboard ----------------------------------------------------------------------------------


async def _standings(rt: Runtime, t: queries.Tenant, p: Period, metric: str, team_id: str | None,
                     now: datetime, by: RankBy = RankBy.AMOUNT) -> list[dict[str, Any]]:
    """The reps' figures of `metric` (built in or a KPI), ranked; a trend only for a built-in additive metric
    (a KPI has no series of points)."""
    async with tenant_tx(rt.pool, t.slug) as conn:
        rows = await queries.standings(conn, t.slug, p.label, metric, team_id)
        rep_ids = [r["rep_id"] for r in rows]
        # each rep's pace counts their own time off as days off (one read for all of them)
        leave = await queries.time_off(conn, t.slug, rep_ids, *pace.local_days(p.start, p.end, t.timezone))
        gains: dict[str, Decimal] = {}
        # the trend of the last 7 days: up to now while the period runs, its last week once it has ended
        upto, words = (now, TREND_WORDS) if now < p.end else (p.end, ENDED_TREND_WORDS)
        trended = metric in queries.ADDITIVE and p.start <= now
        if trended and rows:
            books = await queries.books_of(conn, t.slug)
            since = max(p.start, upto - timedelta(days=7))
            for rep_id, _, amount in await queries.points(conn, t.slug, books, rep_ids, Metric(metric), since, upto):
                gains[rep_id] = gains.get(rep_id, Decimal(0)) + amount
    out = []
    for e in ranked(rows, lambda r: rank_by_value(r["actual"], r["target"], by), lambda r: r["rep_id"]):
        r = e.entry
        mine = rep_period(p, t, leave.get(r["rep_id"], []), now)
        fig = figures(r["actual"], r["target"], mine.share)
        direction = (view.trend(gains.get(r["rep_id"], Decimal(0)), r["target"], p.start, p.end, upto, t.timezone,
                                days_off=mine.days_off) if trended else None)
        out.append({"rank": e.rank, "tied": e.tied, "rep_id": r["rep_id"], "name": r["name"] or r["rep_id"],
                    "team_id": r["team_id"], "team_name": r.get("team_name") or r["team_id"],
                    "actual": r["actual"], "target": r["target"], "attainment": fig.attainment, "pace": fig.pace,
                    "bar": bar(fig.attainment, mine.share),
                    "trend": direction, "trend_words": words.get(direction or "")})
    return out


async def _team_standings(rt: Runtime, t: queries.Tenant, p: Period, metric: str,
                          by: RankBy) -> list[dict[str, Any]]:
    async with tenant_tx(rt.pool, t.slug) as conn:
        rows = await queries.team_standings(conn, t.slug, p.label, metric)
    out = []
    for e in ranked(rows, lambda r: rank_by_value(r["actual"], r["target"], by), lambda r: r["team_id"]):
        fig = figures(e.entry["actual"], e.entry["target"], p.share)
        out.append({"rank": e.rank, "tied": e.tied, "team_id": e.entry["team_id"],
                    "name": e.entry["name"] or e.entry["team_id"], "actual": e.entry["actual"],
                    "target": e.entry["target"], "attainment": fig.attainment, "bar": bar(fig.attainment, p.share)})
    return out


def _rank_by(text: str | None) -> RankBy:
    try:
        return RankBy(text or RankBy.AMOUNT)
    except ValueError:
        raise HTTPException(422, f"rank_by must be 'amount' or 'attainment', not {text!r}") from None


@router.get("/leaderboard")
async def leaderboard(request: Request, rt: Rt, tenant: Tenant, period: str | None = None,
                      metric: str | None = None, team: str | None = None, rank_by: str | None = None) -> HTMLResponse:
    t, fmt, now = await basics(rt, tenant)
    p, m, by = page_period(t, period, now), metric_of(metric, fmt.metrics), _rank_by(rank_by)
    rows = await _standings(rt, t, p, m, team or None, now, by)
    team_board = await _team_standings(rt, t, p, m, by) if not team else []
    async with tenant_tx(rt.pool, tenant) as conn:
        team_rows = await queries.teams(conn, t.slug, p.label)
    csv_query = {"period": p.label, "metric": m, "rank_by": by.value} | ({"team": team} if team else {})
    csv_link = "/leaderboard.csv?" + urlencode(csv_query)
    return render(request, "leaderboard.html", title=f"Leaderboard · {fmt.name(m)} · {p.label}", fmt=fmt,
                  tenant=t, period=p, metric=m, metric_names=fmt.metrics.names, rows=rows, team=team or "",
                  teams=team_rows, team_board=team_board, rank_by=by.value, periods=period_choices(t, now),
                  csv_link=csv_link, now=now, live_period=p.label)


@router.get("/leaderboard.csv")
async def leaderboard_csv(rt: Rt, tenant: Tenant, period: str | None = None, metric: str | None = None,
                          team: str | None = None, rank_by: str | None = None) -> Response:
    t, fmt, now = await basics(rt, tenant)
    p, m = page_period(t, period, now), metric_of(metric, fmt.metrics)
    rows = await _standings(rt, t, p, m, team or None, now, _rank_by(rank_by))
    body = view.leaderboard_csv(rows, m, p.label)
    name = f"leaderboard-{t.slug}-{p.label}-{m}.csv"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


# --- rep scorecard --------------------------------------------------------------------------------


def _kpi(rt: Runtime) -> KpiSettings:
    return rt.settings if isinstance(rt.settings, KpiSettings) else KpiSettings()


async def _from(client: httpx.AsyncClient, url: str, token: str) -> dict[str, Any] | None:
    """A read from coaching or recognition with the viewer's token; None when it did not answer well."""
    try:
        response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as err:
        log.info("dashboard: a service did not answer", extra={"url": url, "error": repr(err)})
        return None
    if response.status_code != 200:
        log.info("dashboard: a service refused", extra={"url": url, "status": response.status_code})
        return None
    body: dict[str, Any] = response.json()
    return body


@router.get("/reps/{rep_id}")
async def rep_scorecard(request: Request, rt: Rt, caller: People, rep_id: str,
                        period: str | None = None) -> HTMLResponse:
    tenant = caller.tenant
    t, fmt, now = await basics(rt, tenant)
    p = page_period(t, period, now)
    async with tenant_tx(rt.pool, tenant) as conn:
        await see_rep(conn, caller, rep_id)
        who = await queries.profile(conn, t.slug, rep_id)
        rows = await queries.figures_of(conn, t.slug, "rep", rep_id, p.label)
        books = await queries.books_of(conn, t.slug)
        leave = await queries.time_off(conn, t.slug, [rep_id], *pace.local_days(p.start, p.end, t.timezone))
        p = rep_period(p, t, leave.get(rep_id, []), now)  # the rep's pace: their time off off too
        cards: list[dict[str, Any]] = []
        for r in rows:
            m: str = r["metric"]  # a built-in metric or a KPI: a KPI has neither a chart nor a list behind it
            fig = figures(r["actual"], r["target"], p.share)
            chart, deals = None, None
            if m in queries.ADDITIVE and r["target"] is not None:
                pts = await queries.points(conn, t.slug, books, [rep_id], Metric(m), p.start, p.end)
                actual = view.cumulative_series([(at, v) for _, at, v in pts], p.start, p.end, now, t.timezone)
                expected = view.expected_series(r["target"], p.start, p.end, t.timezone, p.days_off)
                chart = view.svg_chart(
                    actual, expected, chart_id=f"chart-{m}",
                    title=f"{fmt.name(m)}: actual against expected pace, {p.label}",
                    description=f"Cumulative {fmt.name(m).lower()} through {p.label}: "
                                f"{fmt.value(m, fig.actual)} so far against "
                                f"{fmt.value(m, fig.expected)} expected by now "
                                f"(target {fmt.value(m, fig.target)}).",
                    value_label=functools.partial(fmt.value, m))
            if m in BUILT_IN:
                deals = await queries.contributions(conn, t.slug, rep_id, Metric(m), p.start, p.end)
            cards.append({"metric": m, "fig": fig, "bar": bar(fig.attainment, p.share), "chart": chart,
                          "behind": deals})
    if who is None and not rows:
        raise HTTPException(404, f"no rep {rep_id!r} in this tenant")
    ahead = await _forecast_panel(rt, t, fmt, "rep", rep_id, p, rows, now, None)  # the rep's own deals only
    targeted = [c for c in cards if c["fig"].target is not None]
    others = [c for c in cards if c["fig"].target is None]
    token = request.cookies.get(COOKIE, "")
    coaching, recognition = _kpi(rt).dashboard_coaching_url, _kpi(rt).dashboard_recognition_url
    async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT_S) as client:
        open_tasks, acked_tasks, plans, cheers = await asyncio.gather(
            _from(client, f"{coaching}/v1/tasks?" + urlencode({"rep_id": rep_id, "status": "open"}), token),
            _from(client, f"{coaching}/v1/tasks?" + urlencode({"rep_id": rep_id, "status": "acknowledged"}), token),
            _from(client, f"{coaching}/v1/action-plans?" + urlencode({"rep_id": rep_id, "status": "open"}), token),
            _from(client, f"{recognition}/v1/celebrations?" + urlencode({"scope_id": rep_id, "limit": 10}), token))
    tasks = None if open_tasks is None or acked_tasks is None else open_tasks["tasks"] + acked_tasks["tasks"]
    name = (who["name"] if who else None) or rep_id
    return render(request, "scorecard.html", title=f"{name} · {p.label}", fmt=fmt, tenant=t, period=p,
                  periods=period_choices(t, now), rep=who, rep_id=rep_id, name=name, cards=targeted, others=others,
                  tasks=tasks, plans=None if plans is None else plans["action_plans"],
                  celebrations=None if cheers is None else cheers["celebrations"], now=now, live_period=p.label,
                  acts=_acts(caller), csrf=csrf_token(token), back=request.url.path, forecast=ahead)


async def _forecast_panel(rt: Runtime, t: queries.Tenant, fmt: Fmt, scope: str, scope_id: str, p: Period,
                          rows: list[Any], now: datetime, visible: Collection[str] | None) -> dict[str, Any] | None:
    """The won-revenue forecast of a page's period while it has not ended (None after: nothing open can close
    in it), as the read API explains it: the full budget, each deal's swing; deals of reps not `visible`
    counted, not listed."""
    if p.end <= now:
        return None
    async with tenant_tx(rt.pool, t.slug) as conn:
        found = await queries.forecast_of(conn, t.slug, scope, scope_id, p.label, rows, (p.start, p.end), now)
        listed, hidden = forecast_view.lines(found, visible)
        names = await queries.rep_names(conn, t.slug, sorted({line.rep_id for line in listed}))
    target = next((r["target"] for r in rows if r["metric"] == Metric.WON_REVENUE.value), None)
    return {"f": found.forecast, "target": target, "lines": listed, "hidden": hidden, "names": names,
            "categories": forecast_view.CATEGORY_WORDS,
            "how": forecast_view.method_words(found.forecast, error=fmt.margin, count=fmt.count)}


# --- check-ins: managers (and reps, for their own) act on them here -------------------------------


def _acts(who: Principal) -> dict[str, bool]:
    """What the page offers: acknowledging and completing (admin, manager, rep), making a plan (admin,
    manager). coaching checks each action against the check-in's rep all the same."""
    return {"check_ins": who.role in ("admin", "manager", "rep"), "plans": who.role in ("admin", "manager")}


@router.get("/check-ins")
async def check_ins_page(request: Request, rt: Rt, caller: People) -> HTMLResponse:
    """The open and acknowledged check-ins the caller may see: a manager's reps', a rep's own, everyone's for
    an admin; each with what the caller may do about it."""
    t, fmt, now = await basics(rt, caller.tenant)
    token = request.cookies.get(COOKIE, "")
    coaching = _kpi(rt).dashboard_coaching_url
    async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT_S) as client:
        found = await asyncio.gather(*(_from(client, f"{coaching}/v1/tasks?" + urlencode({"status": status,
                                                                                        "limit": 500}), token)
                                       for status in ("open", "acknowledged")))
    tasks = None if any(f is None for f in found) else [task for f in found if f for task in f["tasks"]]
    return render(request, "check_ins.html", title="Check-ins", fmt=fmt, tenant=t, tasks=tasks,
                  acts=_acts(caller), csrf=csrf_token(token), back="/check-ins", now=now)


EFFECT_GROUPINGS = {"rule": "Rule", "response": "What the manager did", "manager": "Manager", "team": "Team",
                    "quarter": "Quarter"}


@router.get("/coaching-effect")
async def coaching_effect_page(request: Request, rt: Rt, caller: Coach, by: str = "rule",
                               since: date | None = None, until: date | None = None) -> HTMLResponse:
    """Did it help? coaching's measurement (`GET /v1/effectiveness`, of the check-ins opened from `since` to
    `until`: by default the last 90 days), read with the caller's own token: a manager sees their reps', an
    admin everyone's. Check-ins against the findings that got none."""
    t, fmt, now = await basics(rt, caller.tenant)
    if by not in EFFECT_GROUPINGS:
        raise HTTPException(422, f"by must be one of {', '.join(EFFECT_GROUPINGS)}, not {by!r}")
    coaching = _kpi(rt).dashboard_coaching_url
    query = {"by": by, **{k: v.isoformat() for k, v in (("since", since), ("until", until)) if v is not None}}
    async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT_S) as client:
        effect = await _from(client, f"{coaching}/v1/effectiveness?" + urlencode(query),
                             request.cookies.get(COOKIE, ""))
    return render(request, "coaching_effect.html", title="Coaching effect", fmt=fmt, tenant=t,
                  effect=_decimals(effect), by=by, groupings=EFFECT_GROUPINGS, since=since, until=until, now=now)


def _decimals(value: Any) -> Any:
    """A JSON document with its numbers as Decimals (the page formats shares as percentages, in the locale)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


async def _act(request: Request, rt: Rt, caller: Principal, task_id: str, path: str,
               body: dict[str, Any] | None) -> Response:
    """Check the form's token, ask coaching (with the caller's own token: it decides), then back to the page
    the form was on; coaching's refusal is shown with its status."""
    form = parse_qs((await request.body()).decode(errors="replace"))
    token = request.cookies.get(COOKIE, "")
    if not hmac.compare_digest((form.get("csrf") or [""])[0], csrf_token(token)):
        raise HTTPException(403, "this form did not come from this dashboard (reload the page and try again)")
    if body is not None and "outcome" in body:
        body["outcome"] = (form.get("outcome") or [""])[0].strip()
    url = f"{_kpi(rt).dashboard_coaching_url}/v1/{path}"
    async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT_S) as client:
        try:
            answer = await client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as err:
            raise HTTPException(503, "coaching did not answer; try again", headers={"Retry-After": "5"}) from err
    if answer.status_code >= 400:
        detail = answer.json().get("detail", "") if answer.headers.get("content-type", "").startswith(
            "application/json") else ""
        raise HTTPException(answer.status_code, str(detail) or "coaching refused this")
    return RedirectResponse(_safe_next((form.get("next") or ["/check-ins"])[0]), status_code=303)


@router.post("/check-ins/{task_id}/ack")
async def acknowledge_check_in(request: Request, rt: Rt, caller: Actor, task_id: str) -> Response:
    return await _act(request, rt, caller, task_id, f"tasks/{quote(task_id, safe='')}/ack", None)


@router.post("/check-ins/{task_id}/complete")
async def complete_check_in(request: Request, rt: Rt, caller: Actor, task_id: str) -> Response:
    return await _act(request, rt, caller, task_id, f"tasks/{quote(task_id, safe='')}/complete", {"outcome": ""})


@router.post("/check-ins/{task_id}/plan")
async def plan_from_check_in(request: Request, rt: Rt, caller: Planner, task_id: str) -> Response:
    return await _act(request, rt, caller, task_id, "action-plans", {"task_id": task_id})


# --- teams ----------------------------------------------------------------------------------------


@router.get("/teams")
async def teams_page(request: Request, rt: Rt, tenant: Tenant, period: str | None = None) -> HTMLResponse:
    t, fmt, now = await basics(rt, tenant)
    p = page_period(t, period, now)
    async with tenant_tx(rt.pool, tenant) as conn:
        rows = await queries.teams(conn, t.slug, p.label)
    out = [dict(r) | {"fig": figures(r["actual"], r["target"], p.share) if r["actual"] is not None else None}
           for r in rows]
    for row in out:
        row["bar"] = bar(row["fig"].attainment if row["fig"] else None, p.share)
    return render(request, "teams.html", title=f"Teams · {p.label}", fmt=fmt, tenant=t, period=p, teams=out,
                  periods=period_choices(t, now), now=now, live_period=p.label)


@router.get("/teams/{team_id}")
async def team_page(request: Request, rt: Rt, caller: Anyone, team_id: str, period: str | None = None) -> HTMLResponse:
    """A team's rollup, its reps and its manager's scorecard (every role); its won-revenue forecast lists only the
    open deals of reps the caller may read, and counts the others."""
    tenant = caller.tenant
    t, fmt, now = await basics(rt, tenant)
    p = page_period(t, period, now)
    async with tenant_tx(rt.pool, tenant) as conn:
        info = await queries.team(conn, t.slug, team_id)
        rows = await queries.figures_of(conn, t.slug, "team", team_id, p.label)
    cards = [{"metric": r["metric"], "fig": (fig := figures(r["actual"], r["target"], p.share)),
              "bar": bar(fig.attainment, p.share)} for r in rows]
    reps = await _standings(rt, t, p, Metric.WON_REVENUE.value, team_id, now)
    manager_id = info["manager_id"] if info else None
    card = None
    if manager_id:
        async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT_S) as client:
            card = await _from(client, f"{_kpi(rt).dashboard_coaching_url}/v1/managers/"
                               f"{quote(manager_id, safe='')}/scorecard?" + urlencode({"period": p.label}),
                               request.cookies.get(COOKIE, ""))
    if not rows and not reps:
        raise HTTPException(404, f"no team {team_id!r} in this tenant")
    async with tenant_tx(rt.pool, tenant) as conn:
        visible = await reps_visible(conn, caller)
    ahead = await _forecast_panel(rt, t, fmt, "team", team_id, p, rows, now, visible)
    name = (info["name"] if info else None) or team_id
    return render(request, "team.html", title=f"Team {name} · {p.label}", fmt=fmt, tenant=t, period=p,
                  periods=period_choices(t, now), team_id=team_id, name=name, cards=cards, reps=reps,
                  manager_id=manager_id, manager=card, now=now, live_period=p.label,
                  forecast=ahead)


# --- TV, live stream, static files ----------------------------------------------------------------


@router.get("/tv")
async def tv(request: Request, rt: Rt, tenant: Tenant, every: int = 20) -> HTMLResponse:
    """Full screen, no navigation: the leaderboards of the targeted metrics and every team, in turn, beside the
    running contests' top five; a celebration takes the screen when it arrives."""
    t, fmt, now = await basics(rt, tenant)
    p = page_period(t, None, now)
    async with tenant_tx(rt.pool, tenant) as conn:
        targeted = await queries.targeted_metrics(conn, t.slug, p.label)
        team_ids = [r["team_id"] for r in await queries.teams(conn, t.slug, p.label)]
        contests = [c for s in await queries.contests(conn, t.slug) if (c := contest_view.shown(s, now)).on_air]
    # a target may name a KPI before it is defined: its leaderboard joins the rotation once it is
    shown = [m for m in targeted if m in fmt.metrics.names] or [Metric.WON_REVENUE.value]
    views = [f"/leaderboard?{urlencode({'metric': m, 'period': p.label})}" for m in shown]
    views += [f"/teams/{quote(team_id, safe='')}?{urlencode({'period': p.label})}" for team_id in team_ids]
    return render(request, "tv.html", title=f"Attain · {t.slug}", fmt=fmt, tenant=t, views=views,
                  every=max(5, min(every, 600)), now=now, contests=contests, any_contest=contest_view.ANY_CONTEST)


@router.get("/dashboard/stream")
async def stream(rt: Rt, tenant: Tenant) -> StreamingResponse:
    """Server-sent events: `attainment` and `celebration` updates for the signed-in tenant; `bye` when this
    replica stops (reconnect)."""
    return StreamingResponse(live.stream(rt.context.hub, tenant, rt.draining), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/static/{name}", dependencies=[public("the dashboard's own CSS and JavaScript")])
async def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(404, "no such file")
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                    headers={"Cache-Control": "public, max-age=300"})
