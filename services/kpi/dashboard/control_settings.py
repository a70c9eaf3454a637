"""The control room's settings sections (see control.py): holidays and time off, coaching policies and
playbooks, recognition; CRM connections in `control_settings_crm`, included below.

Each change goes through the one path the system treats as the record, with the admin's own token:
- holidays: the tenant calendar, ingest's `POST /v1/calendar/days` and `DELETE /v1/calendar/days/{day}` (the
  same change as `tenants holidays`, announced on the registry, so kpi, coaching and recognition count the same
  days off). coaching's `POST /v1/holidays` is gone (410); a day entered there before counts in coaching only,
  and is shown and removable (coaching's `DELETE /v1/holidays/{day}`);
- time off: a `time_off.set` event to ingest's `POST /v1/events` (coaching's `POST .../time-off` is gone too);
  coaching's `GET /v1/reps/{rep}/time-off` lists what is in force;
- policies and playbooks: coaching's `PUT /v1/policies`, `PUT /v1/policies/teams/{team}`, `PUT /v1/catalogue/{rule}`;
- recognition: recognition's `PUT /v1/recognition/settings`.
The forms' pure parts (fields, conversions, errors) are in `control_settings_forms`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.kpi.dashboard import control_settings_crm
from services.kpi.dashboard import control_settings_queries as roster
from services.kpi.dashboard.control import Admin, Answer, call, done, field, form_of, page, session_token
from services.kpi.dashboard.control_settings_forms import (
    POLICY,
    RECOGNITION,
    field_errors,
    fields_of,
    lines,
    overrides_from,
    shown,
    time_off_event,
)
from services.kpi.dashboard.web import Rt
from shared.db import tenant_tx
from shared.service import Runtime

router = APIRouter(include_in_schema=False)


def _done(path: str, query: dict[str, str] | None, said: str = "", error: str = "") -> RedirectResponse:
    return done(path, said, error, query)


def _said(answer: Answer, what: str) -> str:
    return "" if answer.ok else f"{what}: {answer.detail or answer.status}"


async def _reps(rt: Runtime, tenant: str) -> list[dict[str, Any]]:
    async with tenant_tx(rt.pool, tenant) as conn:
        return [dict(r) for r in await roster.active_reps(conn, tenant)]


# --- holidays and time off ------------------------------------------------------------------------------------


@router.get("/admin/calendar")
async def calendar(request: Request, rt: Rt, who: Admin, rep: str | None = None,
                   year: int | None = None) -> HTMLResponse:
    token = session_token(request)
    params = {"year": year} if year else None
    reps = await _reps(rt, who.tenant)
    chosen = rep if rep in {r["rep_id"] for r in reps} else (reps[0]["rep_id"] if reps else None)
    own, counted, leave = await asyncio.gather(
        call(rt, "ingest", "GET", "/v1/calendar", token, params=params),
        call(rt, "coaching", "GET", "/v1/holidays", token, params=params),
        call(rt, "coaching", "GET", f"/v1/reps/{quote(chosen, safe='')}/time-off", token) if chosen else _none())
    problems = [p for p in (_said(own, "the calendar"), _said(counted, "coaching's holidays"),
                            _said(leave, "time off")) if p]
    legacy = [h for h in (counted.body or {}).get("holidays", []) if h.get("source") == "coaching"] \
        if counted.ok else []
    return await page(request, rt, who, "control_calendar.html", "Holidays and time off",
                      calendar=own.body if own.ok else None, legacy=legacy, reps=reps, chosen=chosen,
                      time_off=(leave.body or {}).get("time_off", []) if leave.ok else [],
                      problems=problems)


async def _none() -> Answer:
    return Answer(200, None)


@router.post("/admin/calendar/holidays")
async def add_holiday(request: Request, rt: Rt, who: Admin) -> RedirectResponse:
    form = await form_of(request)
    day, name = field(form, "day"), field(form, "name")
    answer = await call(rt, "ingest", "POST", "/v1/calendar/days", session_token(request),
                        json={"day": day, "name": name})
    said = f"{day} {name} added: every service counts it as a day off" if answer.ok else ""
    return _done("/admin/calendar", {"year": day[:4]} if answer.ok else None, said=said,
                 error=_said(answer, "the holiday was not added"))


@router.post("/admin/calendar/holidays/remove")
async def remove_holiday(request: Request, rt: Rt, who: Admin) -> RedirectResponse:
    form = await form_of(request)
    day = field(form, "day")
    legacy = field(form, "source") == "coaching"  # a day entered through coaching's old API: coaching's alone
    path = ("/v1/holidays/" if legacy else "/v1/calendar/days/") + quote(day, safe="")
    answer = await call(rt, "coaching" if legacy else "ingest", "DELETE", path, session_token(request))
    return _done("/admin/calendar", {"year": day[:4]} if answer.ok else None,
                 said=f"{day} removed: a working day again" if answer.ok else "",
                error=_said(answer, "the holiday was not removed"))


@router.post("/admin/calendar/time-off")
async def add_time_off(request: Request, rt: Rt, who: Admin) -> RedirectResponse:
    form = await form_of(request)
    rep = field(form, "rep_id")
    cancelled = field(form, "cancel") == "1"
    try:
        event = time_off_event(event_id=f"control-{uuid.uuid4()}",
                               time_off_id=field(form, "time_off_id") or f"control-{uuid.uuid4()}", rep_id=rep,
                               first_day=field(form, "first_day"), last_day=field(form, "last_day"),
                               reason=field(form, "reason"), now=rt.clock.now().isoformat(), cancelled=cancelled)
    except ValueError as err:
        return _done("/admin/calendar", {"rep": rep}, error=f"the time off was not saved: {err}")
    answer = await call(rt, "ingest", "POST", "/v1/events", session_token(request), json=[event])
    refused = _refused(answer)
    what = "cancelled" if cancelled else "added"
    return _done("/admin/calendar", {"rep": rep},
                 said="" if refused else f"time off of {rep} {what}: {event['data']['first_day']} to "
                                        f"{event['data']['last_day']} (it shows here once coaching has it)",
                error=f"the time off was not saved: {refused}" if refused else "")


def _refused(answer: Answer) -> str:
    """What ingest said against an event it did not accept (its per-event results), or ''."""
    body = answer.body if isinstance(answer.body, dict) else {}
    for result in body.get("results", []):
        if isinstance(result, dict) and result.get("status") == "rejected":
            return str(result.get("reason") or "rejected")
    return "" if answer.ok else answer.detail or str(answer.status)


# --- coaching policies and playbooks ---------------------------------------------------------------------------


async def _coaching(request: Request, rt: Rt, who: Admin, team: str | None, status: int = 200,
                    entered: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                    summary: str = "") -> HTMLResponse:
    token = session_token(request)
    path = f"/v1/policies/teams/{quote(team, safe='')}" if team else "/v1/policies"
    policy, book, below = await asyncio.gather(
        call(rt, "coaching", "GET", path, token), call(rt, "coaching", "GET", "/v1/catalogue", token),
        call(rt, "coaching", "GET", "/v1/policies", token) if team else _none())
    async with tenant_tx(rt.pool, who.tenant) as conn:
        teams = await roster.team_ids(conn, who.tenant)
    fields = fields_of(POLICY)
    own = (policy.body or {}).get("overrides", {}) if policy.ok else {}
    values = entered if entered is not None else {n: shown(own.get(n), f.kind) for n, f in fields.items()}
    effective = (policy.body or {}).get("effective", {}) if policy.ok else {}
    inherited = ((below.body or {}).get("effective", {}) if team and below.ok else {})
    problems = [p for p in (_said(policy, "the policy"), _said(book, "the playbooks")) if p]
    return await page(request, rt, who, "control_coaching.html", "Coaching policies", status=status,
                      groups=POLICY, labels={n: f.label for n, f in fields.items()}, values=values,
                      effective={n: shown(effective.get(n), f.kind) for n, f in fields.items()},
                      inherited={n: shown(inherited.get(n), f.kind) for n, f in fields.items()},
                      field_errors=errors or {}, summary=summary, team=team, teams=teams,
                      catalogue=(book.body or {}) if book.ok else {}, problems=problems)


@router.get("/admin/coaching")
async def coaching(request: Request, rt: Rt, who: Admin, team: str | None = None) -> HTMLResponse:
    return await _coaching(request, rt, who, team or None)


@router.post("/admin/coaching/policy", response_model=None)
async def set_policy(request: Request, rt: Rt, who: Admin) -> Response:
    form = await form_of(request)
    team = field(form, "team") or None
    fields = fields_of(POLICY)
    entered = {n: field(form, n) for n in fields}
    body, unreadable = overrides_from(entered, fields)
    if unreadable:
        return await _coaching(request, rt, who, team, 422, entered, unreadable,
                               "Nothing was saved.")
    path = f"/v1/policies/teams/{quote(team, safe='')}" if team else "/v1/policies"
    answer = await call(rt, "coaching", "PUT", path, session_token(request), json=body)
    if answer.status == 422:
        by_field, rest = field_errors(answer.detail, list(fields))
        return await _coaching(request, rt, who, team, 422, entered, by_field,
                               "coaching refused the policy, nothing was saved" + (f": {rest}" if rest else ""))
    whose = f"team {team}'s" if team else "the tenant's"
    said = f"{whose} policy saved: {len(body)} value(s) set, the rest as underneath" if answer.ok else ""
    return _done("/admin/coaching", {"team": team} if team else None, said=said,
                 error=_said(answer, "the policy was not saved"))


@router.post("/admin/coaching/playbooks/{rule}")
async def set_playbook(request: Request, rt: Rt, who: Admin, rule: str) -> RedirectResponse:
    form = await form_of(request)
    body = {"suggested_actions": lines(field(form, "suggested_actions")), "training": lines(field(form, "training"))}
    answer = await call(rt, "coaching", "PUT", f"/v1/catalogue/{quote(rule, safe='')}", session_token(request),
                        json=body)
    return _done("/admin/coaching", None, said=f"the playbook of {rule} saved" if answer.ok else "",
                error=_said(answer, f"the playbook of {rule} was not saved"))


# --- recognition ------------------------------------------------------------------------------------------------


async def _recognition(request: Request, rt: Rt, who: Admin, status: int = 200,
                       entered: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                       summary: str = "") -> HTMLResponse:
    answer = await call(rt, "recognition", "GET", "/v1/recognition/settings", session_token(request))
    fields = fields_of(RECOGNITION)
    own = (answer.body or {}).get("overrides", {}) if answer.ok else {}
    effective = (answer.body or {}).get("effective", {}) if answer.ok else {}
    values = entered if entered is not None else {n: shown(own.get(n), f.kind) for n, f in fields.items()}
    return await page(request, rt, who, "control_recognition.html", "Recognition", status=status,
                      groups=RECOGNITION, labels={n: f.label for n, f in fields.items()}, values=values,
                      effective={n: shown(effective.get(n), f.kind) for n, f in fields.items()},
                      field_errors=errors or {}, summary=summary,
                      problems=[p for p in (_said(answer, "the settings"),) if p])


@router.get("/admin/recognition")
async def recognition(request: Request, rt: Rt, who: Admin) -> HTMLResponse:
    return await _recognition(request, rt, who)


@router.post("/admin/recognition", response_model=None)
async def set_recognition(request: Request, rt: Rt, who: Admin) -> Response:
    form = await form_of(request)
    fields = fields_of(RECOGNITION)
    entered = {n: field(form, n) for n in fields}
    body, unreadable = overrides_from(entered, fields)
    if unreadable:
        return await _recognition(request, rt, who, 422, entered, unreadable,
                                  "Nothing was saved.")
    answer = await call(rt, "recognition", "PUT", "/v1/recognition/settings", session_token(request), json=body)
    if answer.status == 422:
        by_field, rest = field_errors(answer.detail, list(fields))
        return await _recognition(request, rt, who, 422, entered, by_field,
                                  "recognition refused the settings, nothing was saved"
                                  + (f": {rest}" if rest else ""))
    caught = (answer.body or {}).get("catch_up", 0) if answer.ok and isinstance(answer.body, dict) else 0
    quietly = f" ({caught} milestone(s) already passed are recorded quietly, never celebrated)" if caught else ""
    return _done("/admin/recognition", None, said=f"recognition settings saved{quietly}" if answer.ok else "",
                 error=_said(answer, "the settings were not saved"))

router.include_router(control_settings_crm.router)
