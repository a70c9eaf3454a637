"""The control room's CRM connections (see control_settings.py): per CRM whether a webhook secret is set (never
its value) and a form to set or replace it, ingest's `PUT /v1/crm/{crm}/secret`; the stage and user mappings as
editable tables (`PUT /v1/crm/{crm}/stages|users`); and the records held back (`GET /v1/crm/dead-letters`),
with a one-click mapping for a record waiting for an unmapped CRM user.

"Map and publish" adds that one user to the mapping (read, then written whole: the API replaces the mapping).
ingest then retries every open held-back record of the CRM by itself (`CrmPipeline.reprocess`, right after the
mapping commits): each record it can now map is published through its intake, which claims the event id first,
so a record is published once even when a retry or a later delivery races it, and one it still cannot map stays
held back with its new reason."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from services.kpi.dashboard import control_settings_queries as roster
from services.kpi.dashboard.control import Admin, Answer, call, done, field, form_of, page, session_token
from services.kpi.dashboard.control_settings_forms import table_from, unmapped_user
from services.kpi.dashboard.web import Rt
from shared.db import tenant_tx

router = APIRouter(include_in_schema=False)
Crm = Literal["hubspot", "pipedrive", "salesforce"]
CRMS: tuple[Crm, ...] = ("hubspot", "pipedrive", "salesforce")
NAMES = {"hubspot": "HubSpot", "pipedrive": "Pipedrive", "salesforce": "Salesforce"}
SECRET_WORDS = {"hubspot": "the app's client secret (it signs X-HubSpot-Signature-v3)",
                "pipedrive": "the webhook's HTTP basic-auth password",
                "salesforce": "the token the endpoint URL carries as ?token="}
BLANK_ROWS = 3  # empty rows under a mapping table, to add entries


def _said(answer: Answer, what: str) -> str:
    return "" if answer.ok else f"{what}: {answer.detail or answer.status}"


def _back(crm: str, said: str = "", error: str = "") -> RedirectResponse:
    return done("/admin/crm", said, error, {"crm": crm})


@router.get("/admin/crm")
async def crm_page(request: Request, rt: Rt, who: Admin, crm: Crm = "hubspot") -> HTMLResponse:
    token = session_token(request)
    answers = await asyncio.gather(
        *(call(rt, "ingest", "GET", f"/v1/crm/{c}/connection", token) for c in CRMS),
        call(rt, "ingest", "GET", f"/v1/crm/{crm}/stages", token),
        call(rt, "ingest", "GET", f"/v1/crm/{crm}/users", token),
        call(rt, "ingest", "GET", "/v1/crm/dead-letters", token, params={"status": "open", "limit": 200}))
    connections, (stages, users, held) = answers[:len(CRMS)], answers[len(CRMS):]
    async with tenant_tx(rt.pool, who.tenant) as conn:
        reps = [dict(r) for r in await roster.active_reps(conn, who.tenant)]
    records = [dict(r, user=unmapped_user(str(r.get("reason", "")), str(r.get("crm", ""))))
               for r in (held.body if held.ok and isinstance(held.body, list) else [])]
    problems = [p for p in (*(_said(a, f"the {NAMES[c]} connection") for c, a in zip(CRMS, connections,
                                                                                     strict=True)),
                            _said(stages, "the stage mapping"), _said(users, "the user mapping"),
                            _said(held, "the records held back")) if p]
    return await page(
        request, rt, who, "control_crm.html", "CRM connections", crms=CRMS, names=NAMES, crm=crm,
        secret_words=SECRET_WORDS, blank_rows=BLANK_ROWS, reps=reps, records=records, problems=problems,
        connections={c: a.body for c, a in zip(CRMS, connections, strict=True) if a.ok},
        stages=sorted(((stages.body or {}).get("stages") or {}).items()) if stages.ok else [],
        users=sorted(((users.body or {}).get("users") or {}).items()) if users.ok else [])


@router.post("/admin/crm/{crm}/secret")
async def set_secret(request: Request, rt: Rt, who: Admin, crm: Crm) -> RedirectResponse:
    form = await form_of(request)
    body: dict[str, Any] = {"secret": field(form, "secret")}
    if crm == "salesforce":
        body["org_id"] = field(form, "org_id") or None
    answer = await call(rt, "ingest", "PUT", f"/v1/crm/{crm}/secret", session_token(request), json=body)
    return _back(crm, said=f"the {NAMES[crm]} secret is set (the one it replaced is accepted for a grace period)"
                if answer.ok else "",
                error=_said(answer, f"the {NAMES[crm]} secret was not set"))


async def _mapping(request: Request, rt: Rt, crm: Crm, which: Literal["stages", "users"], keys: str,
                   values: str) -> RedirectResponse:
    form = await form_of(request)
    mapping, problem = table_from(form.get(keys, []), form.get(values, []))
    words = "stage mapping" if which == "stages" else "user mapping"
    if problem:
        return _back(crm, error=f"the {words} was not saved: {problem}")
    answer = await call(rt, "ingest", "PUT", f"/v1/crm/{crm}/{which}", session_token(request), json=mapping)
    return _back(crm, said=f"the {NAMES[crm]} {words} saved{_published(answer)}"
                if answer.ok else "", error=_said(answer, f"the {words} was not saved"))


def _published(answer: Answer) -> str:
    """What ingest's retry of the held-back records did, in words."""
    done_ = (answer.body or {}).get("reprocessed") if isinstance(answer.body, dict) else None
    if not isinstance(done_, dict):
        return ""
    return (f": {done_.get('accepted', 0)} held-back record(s) published, {done_.get('still_dead_lettered', 0)}"
            " still held back")


@router.post("/admin/crm/{crm}/stages")
async def set_stages(request: Request, rt: Rt, who: Admin, crm: Crm) -> RedirectResponse:
    return await _mapping(request, rt, crm, "stages", "stage", "status")


@router.post("/admin/crm/{crm}/users")
async def set_users(request: Request, rt: Rt, who: Admin, crm: Crm) -> RedirectResponse:
    return await _mapping(request, rt, crm, "users", "crm_user", "rep_id")


@router.post("/admin/crm/{crm}/map")
async def map_and_publish(request: Request, rt: Rt, who: Admin, crm: Crm) -> RedirectResponse:
    """One click: the held-back record's CRM user mapped to the rep chosen, then ingest publishes what waited."""
    form = await form_of(request)
    user, rep = field(form, "crm_user"), field(form, "rep_id")
    if not user or not rep:
        return _back(crm, error="choose a rep to map the CRM user to")
    token = session_token(request)
    current = await call(rt, "ingest", "GET", f"/v1/crm/{crm}/users", token)
    if not current.ok:
        return _back(crm, error=_said(current, "the user mapping could not be read"))
    users = dict((current.body or {}).get("users") or {})
    users[user] = rep
    answer = await call(rt, "ingest", "PUT", f"/v1/crm/{crm}/users", token, json=users)
    return _back(crm, said=f"{NAMES[crm]} user {user} mapped to {rep}{_published(answer)}"
                if answer.ok else "", error=_said(answer, f"{NAMES[crm]} user {user} was not mapped"))
