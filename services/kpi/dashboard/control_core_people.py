"""The control room's people and tokens (see control_core.py): the tenant's tokens from ingest's `GET /v1/tokens`,
grouped by the person they speak for (a rep's or a manager's, named from kpi's roster); making, revoking and
rotating a token and making a TV's share link, each through ingest's token API with the admin's token.

A new token's secret (and a share link) is shown once, on the page that answers the form (never in a URL, never
again: ingest keeps only its digest); that page is not cached (`render`: `Cache-Control: no-store`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.kpi.dashboard import queries
from services.kpi.dashboard.control import Admin, Answer, call, field, form_of, page, session_token
from services.kpi.dashboard.control_core_events import back
from services.kpi.dashboard.web import Rt
from shared.authz import Principal
from shared.db import tenant_tx
from shared.events import ROLES
from shared.service import Runtime

router = APIRouter(include_in_schema=False)
PATH = "/admin/people"
OTHERS = "Not a person of the roster: admins, integrations and screens"


def grouped(tokens: Iterable[Mapping[str, Any]], names: Mapping[str, str]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Tokens by the person they speak for (`rep_id`, else `manager_id`: "Name (id)"), people by name, then the
    tokens of no one in particular; each group's tokens as listed (newest first).

    >>> [(g, [t["token_id"] for t in ts]) for g, ts in grouped([{"token_id": "k1", "rep_id": "ana"},
    ...     {"token_id": "k2"}, {"token_id": "k3", "manager_id": "mia"}], {"ana": "Ana"})]
    [('Ana (ana)', ['k1']), ('mia', ['k3']), ('Not a person of the roster: admins, integrations and screens', ['k2'])]
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for token in tokens:
        person = token.get("rep_id") or token.get("manager_id")
        label = (f"{names[person]} ({person})" if names.get(person) else str(person)) if person else OTHERS
        groups.setdefault(label, []).append(token)
    people = sorted((g for g in groups if g != OTHERS), key=str.casefold)
    return [(g, groups[g]) for g in people] + ([(OTHERS, groups[OTHERS])] if OTHERS in groups else [])


async def _people_page(request: Request, rt: Runtime, who: Principal, *, issued: dict[str, Any] | None = None,
                       status: int = 200) -> HTMLResponse:
    answer = await call(rt, "ingest", "GET", "/v1/tokens", session_token(request))
    tokens = answer.body.get("tokens", []) if answer.ok and isinstance(answer.body, dict) else None
    async with tenant_tx(rt.pool, who.tenant) as conn:
        reps = await queries.roster(conn, who.tenant)
    names = {r["rep_id"]: r["name"] for r in reps}
    return await page(request, rt, who, "control_people.html", "People and tokens", status=status,
                      groups=None if tokens is None else grouped(tokens, names), mine=who.token_id,
                      unavailable="" if tokens is not None else f"ingest answered {answer.status}: {answer.detail}",
                      reps=[r for r in reps if r["active"]], roles=ROLES, issued=issued,
                      managers=sorted({r["manager_id"] for r in reps if r["manager_id"]} | set(names)),
                      origin=str(request.base_url).rstrip("/"))


@router.get(PATH)
async def people_page(request: Request, rt: Rt, who: Admin) -> HTMLResponse:
    return await _people_page(request, rt, who)


def _expiry(form: dict[str, list[str]]) -> tuple[float | None, str]:
    days = field(form, "expires_days")
    if not days:
        return None, ""
    try:
        return float(days), ""
    except ValueError:
        return None, f"expires in {days!r} days: not a number"


async def _issued(request: Request, rt: Runtime, who: Principal, answer: Answer, what: str) -> Response:
    if not answer.ok or not isinstance(answer.body, dict):
        return back(PATH, {}, error=f"Nothing was made: {answer.detail or answer.status}")
    return await _people_page(request, rt, who, issued={**answer.body, "what": what}, status=201)


@router.post(PATH + "/tokens")
async def create_token(request: Request, rt: Rt, who: Admin) -> Response:
    form = await form_of(request)
    role = field(form, "role")
    expires, wrong = _expiry(form)
    if wrong:
        return back(PATH, {}, error=f"Nothing was made: {wrong}")
    body: dict[str, Any] = {"role": role, "name": field(form, "name"), "expires_days": expires,
                            "rep_id": (field(form, "rep_id") or None) if role == "rep" else None,
                            "manager_id": (field(form, "manager_id") or None) if role == "manager" else None}
    answer = await call(rt, "ingest", "POST", "/v1/tokens", session_token(request), json=body)
    return await _issued(request, rt, who, answer, f"A new {role} token")


@router.post(PATH + "/share")
async def share_link(request: Request, rt: Rt, who: Admin) -> Response:
    form = await form_of(request)
    expires, wrong = _expiry(form)
    if wrong:
        return back(PATH, {}, error=f"Nothing was made: {wrong}")
    answer = await call(rt, "ingest", "POST", "/v1/tokens/share", session_token(request),
                        json={"name": field(form, "name"), "expires_days": expires})
    return await _issued(request, rt, who, answer, "A TV share link")


@router.post(PATH + "/tokens/{token_id}/revoke")
async def revoke_token(request: Request, rt: Rt, who: Admin, token_id: str) -> Response:
    await form_of(request)
    answer = await call(rt, "ingest", "DELETE", f"/v1/tokens/{quote(token_id, safe='')}", session_token(request))
    if not answer.ok:
        return back(PATH, {}, error=f"Token {token_id} was not revoked: {answer.detail or answer.status}")
    return back(PATH, {}, said=f"Token {token_id} is revoked: every service refuses it within seconds.")


@router.post(PATH + "/tokens/{token_id}/rotate")
async def rotate_token(request: Request, rt: Rt, who: Admin, token_id: str) -> Response:
    form = await form_of(request)
    try:
        grace = float(field(form, "grace_hours", "24") or "24")
    except ValueError:
        return back(PATH, {}, error=f"Token {token_id} was not rotated: grace hours must be a number")
    answer = await call(rt, "ingest", "POST", f"/v1/tokens/{quote(token_id, safe='')}/rotate", session_token(request),
                        json={"grace_hours": grace})
    if not answer.ok:
        return back(PATH, {}, error=f"Token {token_id} was not rotated: {answer.detail or answer.status}")
    return await _issued(request, rt, who, answer, f"The token replacing {token_id} (valid alongside it for"
                                                   f" {grace:g} hours)")

