"""The control room's roster and teams (see control_core.py): the reps and teams as kpi holds them; adding or
changing a rep is a `rep.upserted` event, naming a team a `team.upserted`, each posted to ingest with the
admin's token.

A move to another team takes effect on a chosen day: kpi dates a rep's teams by the `time` of their
`rep.upserted` events (`services/kpi/roster.py`), so the event is sent dated that day's midnight in the
tenant's zone (today: now), and kpi moves what the rep did from then on into the new team. The events cannot
say a future day (ingest refuses an event dated ahead of its clock), nor a day before the rep's last roster
change (that later version would put them back): both are refused here with the reason (`move_moment`)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.kpi.dashboard import queries
from services.kpi.dashboard.control import Admin, field, form_of, page, session_token
from services.kpi.dashboard.control_core_events import back, event, listed, post_events
from services.kpi.dashboard.control_core_rules import move_moment
from services.kpi.dashboard.web import Rt, basics
from shared.db import tenant_tx

router = APIRouter(include_in_schema=False)
PATH = "/admin/roster"


@router.get(PATH)
async def roster_page(request: Request, rt: Rt, who: Admin, rep: str | None = None,
                      team: str | None = None) -> HTMLResponse:
    t, _, now = await basics(rt, who.tenant)
    async with tenant_tx(rt.pool, who.tenant) as conn:
        reps = await queries.roster(conn, who.tenant)
        teams = await queries.all_teams(conn, who.tenant)
    editing = next((r for r in reps if r["rep_id"] == rep), None)
    return await page(request, rt, who, "control_roster.html", "Roster and teams", reps=reps, teams=teams,
                      editing=editing, team=next((r for r in teams if r["team_id"] == team), None),
                      today=now.astimezone(t.timezone).date().isoformat(),
                      zone=editing["timezone"] if editing else t.timezone.key)


@router.post(PATH + "/rep")
async def save_rep(request: Request, rt: Rt, who: Admin) -> Response:
    form = await form_of(request)
    t, _, now = await basics(rt, who.tenant)
    rep_id, team_id = field(form, "rep_id"), field(form, "team_id")
    if not rep_id or not team_id or not field(form, "name"):
        return back(PATH, {}, error="A rep needs an id, a name and a team.")
    async with tenant_tx(rt.pool, who.tenant) as conn:
        known = next((r for r in await queries.roster(conn, who.tenant) if r["rep_id"] == rep_id), None)
    # an edit in place is dated now, or just after the rep's newest version when a CRM's clock put that ahead
    # (kpi keeps the newest version: an edit dated before it would be lost)
    at = max(now, known["version"] + timedelta(microseconds=1)) if known is not None else now
    moved = known is not None and known["team_id"] != team_id
    if moved:
        try:
            day = date.fromisoformat(field(form, "effective") or now.astimezone(t.timezone).date().isoformat())
            at = move_moment(day, t.timezone, now=now, newest_version=known["version"] if known else None)
        except ValueError as err:
            return back(PATH, {"rep": rep_id}, error=f"Nothing was saved: {err}")
    data: dict[str, Any] = {"rep_id": rep_id, "name": field(form, "name"), "team_id": team_id,
                            "manager_id": field(form, "manager_id") or None, "email": field(form, "email") or None,
                            "timezone": field(form, "timezone") or t.timezone.key,
                            "active": field(form, "active") == "on"}
    _, refused = await post_events(rt, session_token(request), [event("rep.upserted", data, at)])
    if refused:
        return back(PATH, {"rep": rep_id}, error="Refused: " + listed([why for _, why in refused]))
    what = "added" if known is None else (f"moved to team {team_id} from {at.astimezone(t.timezone).date()}"
                                          if moved else "changed")
    return back(PATH, {}, said=f"Rep {rep_id} {what}; the roster shows it once kpi has applied it (seconds).")


@router.post(PATH + "/team")
async def save_team(request: Request, rt: Rt, who: Admin) -> Response:
    form = await form_of(request)
    team_id = field(form, "team_id")
    if not team_id:
        return back(PATH, {}, error="A team needs an id.")
    data = {"team_id": team_id, "name": field(form, "name") or None,
            "parent_team_id": field(form, "parent_team_id") or None}
    _, refused = await post_events(rt, session_token(request), [event("team.upserted", data, rt.clock.now())])
    if refused:
        return back(PATH, {}, error="Refused: " + listed([why for _, why in refused]))
    return back(PATH, {}, said=f"Team {team_id} saved; the list shows it once kpi has applied it (seconds).")

