"""The control room's CRM connections (see control_settings.py): per CRM whether a webhook secret is set (never
its value) and a form to set or replace it, ingest's `PUT /v1/crm/{crm}/secret`; each CRM's OAuth connection
(`GET /v1/crm/oauth`: connected, or revoked with the CRM's reason), its client (`PUT /v1/crm/{crm}/oauth/client`),
"Connect with <CRM>" (`POST /v1/crm/{crm}/oauth/authorize`, then the browser goes on to the CRM's consent page)
and "Disconnect" (`DELETE /v1/crm/{crm}/oauth`); the stage and user mappings as
editable tables (`PUT /v1/crm/{crm}/stages|users`); the users from the CRM: what a sync would do (`GET
/v1/crm/{crm}/users/proposal`, read only when asked: it reads the CRM), "Sync users now" (`POST .../users/sync`)
and automatic or manual (`GET|PUT .../user-mapping-mode`); the backfill: start or resume it (`POST
/v1/crm/{crm}/backfill`) and its progress and the reconciliation's (`GET` the same); and the records held back
(`GET /v1/crm/dead-letters`), with a one-click mapping for a record waiting for an unmapped CRM user.

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

from services.kpi.dashboard import control_settings_crm_forms as crm_forms
from services.kpi.dashboard import control_settings_queries as roster
from services.kpi.dashboard import queries
from services.kpi.dashboard.control import Admin, Answer, call, done, field, form_of, page, session_token
from services.kpi.dashboard.control_settings_forms import table_from, unmapped_user
from services.kpi.dashboard.sso import onward
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
CRM_READ_TIMEOUT_S = 30.0  # ingest reads every user of the CRM, page by page, for a proposal or a sync


def _said(answer: Answer, what: str) -> str:
    return "" if answer.ok else f"{what}: {answer.detail or answer.status}"


def _back(crm: str, said: str = "", error: str = "") -> RedirectResponse:
    return done("/admin/crm", said, error, {"crm": crm})


@router.get("/admin/crm")
async def crm_page(request: Request, rt: Rt, who: Admin, crm: Crm = "hubspot", propose: bool = False) -> HTMLResponse:
    """The page; with `propose` also what a users sync would do now (ingest reads the CRM for it, so only when
    asked)."""
    token = session_token(request)
    answers = await asyncio.gather(
        *(call(rt, "ingest", "GET", f"/v1/crm/{c}/connection", token) for c in CRMS),
        call(rt, "ingest", "GET", f"/v1/crm/{crm}/stages", token),
        call(rt, "ingest", "GET", f"/v1/crm/{crm}/users", token),
        call(rt, "ingest", "GET", "/v1/crm/dead-letters", token, params={"status": "open", "limit": 200}),
        call(rt, "ingest", "GET", "/v1/crm/oauth", token),
        call(rt, "ingest", "GET", f"/v1/crm/{crm}/user-mapping-mode", token),
        call(rt, "ingest", "GET", f"/v1/crm/{crm}/backfill", token),
        call(rt, "ingest", "GET", f"/v1/crm/{crm}/users/proposal", token, wait_s=CRM_READ_TIMEOUT_S) if propose
        else _nothing())
    connections, (stages, users, held, oauth, mode, backfill, proposal) = answers[:len(CRMS)], answers[len(CRMS):]
    async with tenant_tx(rt.pool, who.tenant) as conn:
        reps = [dict(r) for r in await roster.active_reps(conn, who.tenant)]
    records = [dict(r, user=unmapped_user(str(r.get("reason", "")), str(r.get("crm", ""))))
               for r in (held.body if held.ok and isinstance(held.body, list) else [])]
    problems = [p for p in (*(_said(a, f"the {NAMES[c]} connection") for c, a in zip(CRMS, connections,
                                                                                     strict=True)),
                            _said(stages, "the stage mapping"), _said(users, "the user mapping"),
                            _said(held, "the records held back"), _said(oauth, "the OAuth connections"),
                            _said(mode, f"the {NAMES[crm]} user mapping mode"),
                            _said(backfill, f"the {NAMES[crm]} backfill"),
                            _said(proposal, f"the proposal for the {NAMES[crm]} users")) if p]
    return await page(
        request, rt, who, "control_crm.html", "CRM connections", crms=CRMS, names=NAMES, crm=crm,
        secret_words=SECRET_WORDS, blank_rows=BLANK_ROWS, reps=reps, records=records, problems=problems,
        connections={c: a.body for c, a in zip(CRMS, connections, strict=True) if a.ok}, oauth=oauth_by_crm(oauth),
        oauth_words=oauth_words, mode=_dict(mode), backfill=_dict(backfill), proposal=_dict(proposal),
        teams=sorted({str(r["team_id"]) for r in reps if r.get("team_id")}), forms=crm_forms,
        stages=sorted(((stages.body or {}).get("stages") or {}).items()) if stages.ok else [],
        users=sorted(((users.body or {}).get("users") or {}).items()) if users.ok else [])


async def _nothing() -> Answer:
    return Answer(204, None)


def _dict(answer: Answer) -> dict[str, Any] | None:
    return answer.body if answer.ok and isinstance(answer.body, dict) else None


def oauth_by_crm(answer: Answer) -> dict[str, dict[str, Any]]:
    """ingest's `GET /v1/crm/oauth` by CRM (nothing when it did not answer)."""
    found = (answer.body or {}).get("connections") if answer.ok and isinstance(answer.body, dict) else None
    return {str(c["crm"]): c for c in found or [] if isinstance(c, dict) and "crm" in c}


def oauth_words(connection: dict[str, Any] | None) -> str:
    """A CRM's OAuth connection in a few words, a revoked one with the CRM's reason.

    >>> oauth_words({"status": "revoked", "last_error": "refresh token is invalid, expired or revoked"})
    'revoked: refresh token is invalid, expired or revoked'
    """
    if not connection:
        return "unknown"
    status = str(connection.get("status") or "unknown")
    words = {"not_configured": "no OAuth client set", "pending": "not connected yet"}.get(status, status)
    reason = connection.get("last_error")
    return f"{words}: {reason}" if reason and status in ("revoked", "error") else words


@router.post("/admin/crm/{crm}/oauth/client")
async def set_oauth_client(request: Request, rt: Rt, who: Admin, crm: Crm) -> RedirectResponse:
    form = await form_of(request)
    body: dict[str, Any] = {"client_id": field(form, "client_id"),
                            "client_secret": field(form, "client_secret") or None,
                            "auth_base": field(form, "auth_base") or None}
    answer = await call(rt, "ingest", "PUT", f"/v1/crm/{crm}/oauth/client", session_token(request), json=body)
    return _back(crm, said=f"the {NAMES[crm]} OAuth client is set; now connect with {NAMES[crm]}" if answer.ok
                 else "", error=_said(answer, f"the {NAMES[crm]} OAuth client was not set"))


@router.post("/admin/crm/{crm}/oauth/connect", response_model=None)
async def connect(request: Request, rt: Rt, who: Admin, crm: Crm) -> HTMLResponse | RedirectResponse:
    """"Connect with <CRM>": ingest starts the authorization; the browser goes on to the CRM's consent page."""
    await form_of(request)
    answer = await call(rt, "ingest", "POST", f"/v1/crm/{crm}/oauth/authorize", session_token(request))
    url = (answer.body or {}).get("authorization_url") if answer.ok and isinstance(answer.body, dict) else None
    if not isinstance(url, str):
        return _back(crm, error=_said(answer, f"could not connect with {NAMES[crm]}") or "no authorization URL")
    return onward(request, url, f"Connect with {NAMES[crm]}", f"Continuing to {NAMES[crm]} to allow Attain…")


@router.post("/admin/crm/{crm}/oauth/disconnect")
async def disconnect(request: Request, rt: Rt, who: Admin, crm: Crm) -> RedirectResponse:
    await form_of(request)
    answer = await call(rt, "ingest", "DELETE", f"/v1/crm/{crm}/oauth", session_token(request))
    revoked = isinstance(answer.body, dict) and answer.body.get("revoked_at_crm")
    return _back(crm, said=f"disconnected from {NAMES[crm]}" + ("" if revoked else
                                                                 f" (uninstall the app at {NAMES[crm]} too)")
                 if answer.ok else "", error=_said(answer, f"could not disconnect from {NAMES[crm]}"))


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


@router.post("/admin/crm/{crm}/users/sync")
async def sync_users(request: Request, rt: Rt, who: Admin, crm: Crm) -> RedirectResponse:
    """"Sync users now": ingest maps and creates reps from the CRM's users and publishes what waited for them; in
    manual mode only proposes, so the page shows the proposal."""
    await form_of(request)
    answer = await call(rt, "ingest", "POST", f"/v1/crm/{crm}/users/sync", session_token(request),
                        wait_s=CRM_READ_TIMEOUT_S)
    if not answer.ok or not isinstance(answer.body, dict):
        return _back(crm, error=_said(answer, f"the {NAMES[crm]} users were not synced") or "no answer")
    said = crm_forms.sync_words(NAMES[crm], answer.body)
    return done("/admin/crm", said, query={"crm": crm, **({} if answer.body.get("applied") else {"propose": "1"})})


@router.post("/admin/crm/{crm}/users/mode")
async def set_user_mapping_mode(request: Request, rt: Rt, who: Admin, crm: Crm) -> RedirectResponse:
    form = await form_of(request)
    body: dict[str, Any] = {"mode": field(form, "mode")}
    if team := field(form, "team_id"):
        body["team_id"] = team
    answer = await call(rt, "ingest", "PUT", f"/v1/crm/{crm}/user-mapping-mode", session_token(request), json=body)
    now = _dict(answer) or {}
    return _back(crm, said=f"{NAMES[crm]} users: {now.get('mode')}, new reps join team {now.get('team_id')}"
                 if answer.ok else "", error=_said(answer, f"the {NAMES[crm]} user mapping mode was not saved"))


@router.post("/admin/crm/{crm}/backfill")
async def start_backfill(request: Request, rt: Rt, who: Admin, crm: Crm) -> RedirectResponse:
    """"Start backfill": since the day typed (its first instant in the tenant's zone), else ingest's default."""
    form = await form_of(request)
    async with tenant_tx(rt.pool, who.tenant) as conn:
        tenant = await queries.tenant(conn, who.tenant)
    since, problem = crm_forms.since_of(field(form, "since"), tenant.timezone)
    if problem:
        return _back(crm, error=f"the backfill was not started: {problem}")
    body = {"since": since} if since else {}
    answer = await call(rt, "ingest", "POST", f"/v1/crm/{crm}/backfill", session_token(request), json=body)
    return _back(crm, said=f"the {NAMES[crm]} backfill is started; its progress is below" if answer.ok else "",
                 error=_said(answer, f"the {NAMES[crm]} backfill was not started"))


@router.post("/admin/crm/{crm}/backfill/resume")
async def resume_backfill(request: Request, rt: Rt, who: Admin, crm: Crm) -> RedirectResponse:
    """"Resume": ingest sets the failed backfill going again from where it stopped."""
    await form_of(request)
    answer = await call(rt, "ingest", "POST", f"/v1/crm/{crm}/backfill", session_token(request),
                        json={"resume": True})
    return _back(crm, said=f"the {NAMES[crm]} backfill goes on from where it stopped" if answer.ok else "",
                 error=_said(answer, f"the {NAMES[crm]} backfill was not resumed"))
