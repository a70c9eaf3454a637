"""The control room's notifications section, `/admin/notifications` (issue 19): where notify sends a team's
messages, the tenant's own connection, and what could not be delivered.

Everything is notify's, through its API with the admin's own token (see control.py):
- team channels: the roster's teams (and any team notify still holds channels for), each with whether its Slack
  and Microsoft Teams webhooks are set (`GET /v1/notify/teams`): a webhook URL is a secret, so it is never shown,
  only typed in to set or replace it, or cleared (`PUT /v1/notify/teams/{team}`: absent keeps, null clears);
- the connection: the Slack bot token and the generic webhook's signing secret likewise write-only, the webhook
  URL shown (`GET|PUT /v1/notify/connection`);
- not delivered: the dead deliveries with notify's reason (`GET /v1/notify/deliveries?status=dead`), retried one
  by one or all at once (`POST /v1/notify/deliveries/retry`).
A value notify refuses (422) is shown next to the field it names, nothing saved; the form's pure parts are in
`notify_forms`."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.kpi.dashboard import control_settings_queries as roster
from services.kpi.dashboard import queries
from services.kpi.dashboard.control import Admin, Answer, call, done, field, form_of, page, session_token
from services.kpi.dashboard.notify_forms import (
    CHANNEL_WORDS,
    KIND_WORDS,
    TEAM_FIELDS,
    connection_body,
    recipient_words,
    refusals,
    secrets_body,
)
from services.kpi.dashboard.web import Rt
from shared.db import tenant_tx

router = APIRouter(include_in_schema=False)
PATH = "/admin/notifications"
DEAD_SHOWN = 200  # the newest undelivered messages on the page
FIELD_WORDS = {"slack_webhook": "Slack webhook", "teams_webhook": "Teams webhook", "slack_bot_token": "Slack bot token",
               "webhook_url": "Webhook URL", "webhook_secret": "Webhook signing secret"}
CONNECTION_FIELDS = ("slack_bot_token", "webhook_url", "webhook_secret")


def _said(answer: Answer, what: str) -> str:
    return "" if answer.ok else f"{what}: {answer.detail or answer.status}"


async def _page(request: Request, rt: Rt, who: Admin, status: int = 200,
                team_errors: dict[str, dict[str, str]] | None = None, connection_errors: dict[str, str] | None = None,
                summary: str = "") -> HTMLResponse:
    token = session_token(request)
    channels, connection, dead = await asyncio.gather(
        call(rt, "notify", "GET", "/v1/notify/teams", token),
        call(rt, "notify", "GET", "/v1/notify/connection", token),
        call(rt, "notify", "GET", "/v1/notify/deliveries", token, params={"status": "dead", "limit": DEAD_SHOWN}))
    async with tenant_tx(rt.pool, who.tenant) as conn:
        teams = {r["team_id"]: r["name"] for r in await queries.all_teams(conn, who.tenant)}
        names = {r["rep_id"]: r["name"] for r in await roster.active_reps(conn, who.tenant)}
    held = {t["team_id"]: t for t in ((channels.body or {}).get("teams") or [])} if channels.ok else {}
    rows = [{"team_id": t, "name": teams.get(t) or t, "known": channels.ok,
             **{f: bool((held.get(t) or {}).get(f)) for f in TEAM_FIELDS}}
            for t in sorted(set(teams) | set(held))]
    undelivered = [dict(d, to=recipient_words(str(d.get("recipient", "")), names))
                   for d in ((dead.body or {}).get("deliveries") or [] if dead.ok else [])]
    problems = [p for p in (_said(channels, "the team channels"), _said(connection, "the connection"),
                            _said(dead, "what was not delivered")) if p]
    return await page(request, rt, who, "control_notify.html", "Notifications", status=status, teams=rows,
                      team_fields=TEAM_FIELDS, connection=connection.body if connection.ok else None,
                      undelivered=undelivered, problems=problems, team_errors=team_errors or {},
                      connection_errors=connection_errors or {}, summary=summary, words=FIELD_WORDS,
                      kind_words=KIND_WORDS, channel_words=CHANNEL_WORDS)


@router.get(PATH)
async def notifications(request: Request, rt: Rt, who: Admin) -> HTMLResponse:
    return await _page(request, rt, who)


@router.post(PATH + "/teams/{team_id}", response_model=None)
async def set_team(request: Request, rt: Rt, who: Admin, team_id: str) -> Response:
    form = await form_of(request)
    body, unreadable = secrets_body(form, TEAM_FIELDS)
    if unreadable:
        return await _page(request, rt, who, 422, team_errors={team_id: unreadable},
                           summary=f"Nothing was saved for team {team_id}.")
    if not body:
        return done(PATH, error=f"Nothing was changed for team {team_id}: type a webhook URL or tick \"clear\".")
    answer = await call(rt, "notify", "PUT", f"/v1/notify/teams/{quote(team_id, safe='')}", session_token(request),
                        json=body)
    if answer.status == 422:
        by_field, rest = refusals(answer.body, TEAM_FIELDS)
        return await _page(request, rt, who, 422, team_errors={team_id: by_field},
                           summary=f"notify refused team {team_id}'s channels, nothing was saved"
                                   + (f": {rest}" if rest else "."))
    changed = ", ".join(f"{FIELD_WORDS[f]} {'cleared' if v is None else 'set'}" for f, v in body.items())
    return done(PATH, said=f"Team {team_id}: {changed}." if answer.ok else "",
                error=_said(answer, f"team {team_id}'s channels were not saved"))


@router.post(PATH + "/connection", response_model=None)
async def set_connection(request: Request, rt: Rt, who: Admin) -> Response:
    form = await form_of(request)
    body, unreadable = connection_body(form)
    if unreadable:
        return await _page(request, rt, who, 422, connection_errors=unreadable, summary="Nothing was saved.")
    answer = await call(rt, "notify", "PUT", "/v1/notify/connection", session_token(request), json=body)
    if answer.status == 422:
        by_field, rest = refusals(answer.body, CONNECTION_FIELDS)
        return await _page(request, rt, who, 422, connection_errors=by_field,
                           summary="notify refused the connection, nothing was saved" + (f": {rest}" if rest else "."))
    return done(PATH, said="The connection is saved." if answer.ok else "",
                error=_said(answer, "the connection was not saved"))


@router.post(PATH + "/retry")
async def retry(request: Request, rt: Rt, who: Admin) -> RedirectResponse:
    """One undelivered message (`key`), or every one (`all`), handed back to notify's worker."""
    form = await form_of(request)
    key = field(form, "key")
    every = field(form, "all") == "1"
    if not key and not every:
        return done(PATH, error="Nothing to retry: choose a message.")
    body: dict[str, Any] = {"all_dead": True} if every else {"keys": [key]}
    answer = await call(rt, "notify", "POST", "/v1/notify/deliveries/retry", session_token(request), json=body)
    count = (answer.body or {}).get("requeued", 0) if answer.ok and isinstance(answer.body, dict) else 0
    said = (f"{count} message{'s' if count != 1 else ''} handed back to be sent again: "
            "each goes out within seconds, or comes back here with its new reason.")
    return done(PATH, said=said if answer.ok else "", error=_said(answer, "nothing was retried"))
