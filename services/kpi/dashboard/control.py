"""The control room (issue 17, item 5): where an admin sets the tenant up in the browser, at `/admin/...`.

kpi writes nothing of its own here. Every change goes through the owning service's HTTP API with the admin's own
session token, exactly as a script with that token would: targets and the roster as `target.set` and
`rep.upserted` events to ingest's `POST /v1/events`; tokens, tenant settings and CRM connections to ingest's admin
API; holidays, time off and policies to coaching's; recognition settings to recognition's. One path, not two: the
services decide (and audit) as they do for the API. Each section lives in a module of its own (`control_core`,
`control_settings`, `control_audit`); this one holds what they share: the admin-only session, the section list,
calling a service, reading a form (with its CSRF token) and rendering a control-room page.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from services.kpi.dashboard.web import COOKIE, Rt, basics, csrf_token, render, session_for
from services.kpi.settings import KpiSettings
from shared.authz import Principal
from shared.service import Runtime

log = logging.getLogger(__name__)

SERVICE_TIMEOUT_S = 5.0
Service = Literal["ingest", "coaching", "recognition", "notify"]

# (path, words, what it is for): the control room's sections, in its menu's order
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("/admin", "Overview", "what is set up, and what needs attention"),
    ("/admin/people", "People and tokens", "who may sign in, with which role; tokens made, rotated and revoked"),
    ("/admin/targets", "Targets", "each rep's and team's targets per period: edit, upload a CSV, copy last quarter"),
    ("/admin/roster", "Roster and teams", "reps, their teams and managers, and the date a move takes effect"),
    ("/admin/calendar", "Holidays and time off", "the tenant's holidays and each rep's time off"),
    ("/admin/coaching", "Coaching policies", "when check-ins are raised and escalated, per team; the playbooks"),
    ("/admin/recognition", "Recognition", "what is celebrated"),
    ("/admin/notifications", "Notifications", "team Slack and Teams channels, the tenant's connection, what was not"
                                              " delivered"),
    ("/admin/settings", "Tenant settings", "time zone, currency, fiscal year start, locale, single sign-on"),
    ("/admin/crm", "CRM connections", "secrets, stage and user mappings, records held back"),
    ("/admin/audit", "Audit log", "every change: who, when, before and after"),
)

Admin = Annotated[Principal, Depends(session_for("admin"))]


@dataclass(frozen=True)
class Answer:
    """A service's answer: its status and its JSON body (None when it had none)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def detail(self) -> str:
        """What the service said was wrong, in its words (FastAPI's `detail`, or a list of per-event reasons)."""
        body = self.body
        if isinstance(body, dict):
            detail = body.get("detail", "")
            if isinstance(detail, list):  # a validation error's list
                return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
            return str(detail or body.get("error", "") or "")
        return "" if body is None else str(body)


def _base(rt: Runtime, service: Service) -> str:
    s = rt.settings if isinstance(rt.settings, KpiSettings) else KpiSettings()
    return {"ingest": s.dashboard_ingest_url, "coaching": s.dashboard_coaching_url,
            "recognition": s.dashboard_recognition_url, "notify": s.dashboard_notify_url}[service].rstrip("/")


async def call(rt: Runtime, service: Service, method: str, path: str, token: str, *, json: Any = None,
               content: bytes | str | None = None, content_type: str | None = None,
               params: dict[str, Any] | None = None, wait_s: float = SERVICE_TIMEOUT_S) -> Answer:
    """One request to `service` with the caller's own token (none: a public route, such as notify's unsubscribe);
    a service that does not answer (each step within `wait_s` seconds) is a 503 Answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if content_type:
        headers["Content-Type"] = content_type
    url = _base(rt, service) + path
    async with httpx.AsyncClient(timeout=wait_s) as client:
        try:
            response = await client.request(method, url, json=json, content=content, params=params,
                                            headers=headers)
        except httpx.HTTPError as err:
            log.info("control room: a service did not answer", extra={"service": service, "error": repr(err)})
            return Answer(503, {"detail": f"{service} did not answer; try again"})
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = response.text
    return Answer(response.status_code, body)


def session_token(request: Request) -> str:
    return request.cookies.get(COOKIE, "")


async def form_of(request: Request) -> dict[str, list[str]]:
    """An url-encoded form posted by a control-room page, its CSRF token checked (403 when it is not this
    session's: a form posted from another site)."""
    form = parse_qs((await request.body()).decode(errors="replace"), keep_blank_values=True)
    check_csrf(request, (form.get("csrf") or [""])[0])
    return form


def check_csrf(request: Request, given: str) -> None:
    if not hmac.compare_digest(given, csrf_token(session_token(request))):
        raise HTTPException(403, "this form did not come from this dashboard (reload the page and try again)")


def field(form: dict[str, list[str]], name: str, default: str = "") -> str:
    return (form.get(name) or [default])[0].strip()


def back_to(path: str, query: Mapping[str, str] | None = None, said: str = "", error: str = "") -> str:
    """Where a change sends the browser back to: `path` with its own query and the one line the change left.

    >>> back_to("/admin/calendar", {"year": "2031"}, said="added")
    '/admin/calendar?year=2031&said=added'
    >>> back_to("/admin/targets?period=2026-Q4", error="bad")
    '/admin/targets?period=2026-Q4&error=bad'
    """
    params = {k: v for k, v in {**(query or {}), "said": said, "error": error}.items() if v}
    joint = "&" if "?" in path else "?"
    return path + (f"{joint}{urlencode(params)}" if params else "")


def done(path: str, said: str = "", error: str = "", query: Mapping[str, str] | None = None) -> RedirectResponse:
    """Back to a control-room page after a change, with one line saying what happened (or what went wrong)."""
    return RedirectResponse(back_to(path, query, said, error), status_code=303)


async def page(request: Request, rt: Runtime, who: Principal, template: str, title: str, status: int = 200,
               **context: Any) -> HTMLResponse:
    """A control-room page: the tenant's formats, the section menu, the form token, and the one line a change
    left (`said`, `error`)."""
    t, fmt, now = await basics(rt, who.tenant)
    return render(request, template, status=status, title=title, tenant=t, fmt=fmt, now=now, sections=SECTIONS,
                  csrf=csrf_token(session_token(request)), said=request.query_params.get("said", ""),
                  error=request.query_params.get("error", ""), is_admin=True, **context)


router = APIRouter(include_in_schema=False)


@router.get("/admin")
async def overview(request: Request, rt: Rt, who: Admin) -> HTMLResponse:
    return await page(request, rt, who, "control_home.html", "Control room")

