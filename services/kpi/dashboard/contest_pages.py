"""The dashboard's contest pages (issue 22, item 4): every contest of the tenant, and one contest's standings.

Every role of the tenant reads them (contests are public in the tenant, like the leaderboard), a TV's share link
too. They show the standings kpi last published (`contesting.refresh`, read through `queries.contests`), and
re-read them live: kpi announces each publication with the label ``contest:<id>`` on the dashboard's stream,
and a page whose `live_period` matches it swaps its <main> in place (`static/dashboard.js`).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from services.kpi.dashboard import contest_view, queries
from services.kpi.dashboard.web import Rt, Tenant, basics, render
from shared.db import tenant_tx

router = APIRouter(include_in_schema=False)


@router.get("/contests")
async def contests_page(request: Request, rt: Rt, tenant: Tenant) -> HTMLResponse:
    """The tenant's contests, newest start first: status, window, metric, prizes, leaders."""
    t, fmt, now = await basics(rt, tenant)
    async with tenant_tx(rt.pool, tenant) as conn:
        found = await queries.contests(conn, t.slug)
    return render(request, "contests.html", title="Contests", fmt=fmt, tenant=t, now=now,
                  contests=[contest_view.shown(s, now) for s in found], live_period=contest_view.ANY_CONTEST)


@router.get("/contests/{contest_id}")
async def contest_page(request: Request, rt: Rt, tenant: Tenant, contest_id: str) -> HTMLResponse:
    """One contest's standings: places (ties shown as ties), values, attainment when ranked by it, the prize of
    each place, the leaders; live."""
    t, fmt, now = await basics(rt, tenant)
    async with tenant_tx(rt.pool, tenant) as conn:
        found = await queries.contests(conn, t.slug, contest_id)
    if not found:
        raise HTTPException(404, f"no contest {contest_id!r} in this tenant")
    shown = contest_view.shown(found[0], now)
    return render(request, "contest.html", title=f"Contest {shown.contest.name}", fmt=fmt, tenant=t, now=now,
                  c=shown, live_period=contest_view.LIVE_PREFIX + contest_id)
