"""A person's own notification pages (issue 19): `/me/notifications`, where a rep or a manager (or an admin whose
session speaks for a person) chooses what reaches them on which channel, their quiet hours and daily cap; and
`/unsubscribe`, where the link in an e-mail's footer and `List-Unsubscribe` header lands, with no sign-in.

Both write through notify's API only: the preferences with the person's own session token
(`GET|PUT /v1/notify/preferences/me`: notify decides whose they are from the token, never from the form), the
unsubscribe with the sealed token the link carries (`POST /v1/notify/unsubscribe`, public: the token is its
authentication). A `GET /unsubscribe` changes nothing: mail scanners and link previews fetch links; it shows a
page whose button posts the change."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from services.kpi.dashboard.control import call, done, form_of, session_token
from services.kpi.dashboard.notify_forms import (
    CHANNEL_WORDS,
    KIND_WORDS,
    KINDS,
    PREFERENCE_FIELDS,
    entered_preferences,
    offered,
    one_click,
    preferences_body,
    preferences_form,
    refusals,
)
from services.kpi.dashboard.web import Rt, basics, csrf_token, render, session_for
from shared import ratelimit
from shared.authz import Principal, public

router = APIRouter(include_in_schema=False)
PATH = "/me/notifications"
UNSUBSCRIBE = "/unsubscribe"
# The unsubscribe page has no session: its form's token comes from a cookie of its own, set by the page (a form
# posted from another site does not carry the cookie's value, as with the session's `csrf_token`).
FORM_COOKIE = "attain_unsubscribe"
MAX_FORM_FIELDS = 5
FIELD_WORDS = {"channels": "Channels", "public_celebrations": "Celebrate me in the team channel",
               "quiet_start": "Quiet from", "quiet_end": "Quiet until", "weekends_quiet": "Quiet at weekends",
               "daily_cap": "At most per day"}

Someone = Annotated[Principal, Depends(session_for("admin", "manager", "rep"))]


def _person(who: Principal) -> str:
    person = who.rep_id or who.manager_id
    if not person:
        raise HTTPException(403, "this session speaks for no person: sign in with your own token to choose what"
                                 " reaches you")
    return person


# --- a person's preferences ------------------------------------------------------------------------------------


async def _preferences_page(request: Request, rt: Rt, who: Principal, status: int = 200,
                            entered: Any = None, errors: dict[str, str] | None = None,
                            summary: str = "") -> HTMLResponse:
    person = _person(who)
    answer = await call(rt, "notify", "GET", "/v1/notify/preferences/me", session_token(request))
    document: dict[str, Any] = answer.body if answer.ok and isinstance(answer.body, dict) else {}
    t, _, _ = await basics(rt, who.tenant)
    kinds = [str(k) for k in document.get("kinds") or KINDS]
    return render(request, "me_notifications.html", status=status, title="My notifications", tenant=t,
                  person=person, kinds=kinds, channels=offered(document), kind_words=KIND_WORDS,
                  channel_words=CHANNEL_WORDS, words=FIELD_WORDS, csrf=csrf_token(session_token(request)),
                  values=entered if entered is not None else preferences_form(document) if document else None,
                  unavailable="" if answer.ok else f"notify answered {answer.status}: {answer.detail}",
                  field_errors=errors or {}, summary=summary, said=request.query_params.get("said", ""),
                  error=request.query_params.get("error", ""))


@router.get(PATH)
async def my_notifications(request: Request, rt: Rt, who: Someone) -> HTMLResponse:
    return await _preferences_page(request, rt, who)


@router.post(PATH, response_model=None)
async def save_my_notifications(request: Request, rt: Rt, who: Someone) -> Response:
    form = await form_of(request)  # first, as every dashboard POST: the body's limit and the form's CSRF token
    _person(who)
    kinds = [k for k in (form.get("kinds") or [",".join(KINDS)])[0].split(",") if k] or list(KINDS)
    body = preferences_body(form, kinds)
    answer = await call(rt, "notify", "PUT", "/v1/notify/preferences/me", session_token(request), json=body)
    if answer.status == 422:
        by_field, rest = refusals(answer.body, PREFERENCE_FIELDS)
        return await _preferences_page(request, rt, who, 422, entered_preferences(form, kinds), by_field,
                                       "notify refused the preferences, nothing was saved"
                                       + (f": {rest}" if rest else "."))
    return done(PATH, said="Saved: from now on your notifications follow these choices." if answer.ok else "",
                error="" if answer.ok else f"Nothing was saved: {answer.detail or answer.status}")


# --- one-click unsubscribe -------------------------------------------------------------------------------------


def _unsubscribe_page(request: Request, status: int = 200, **context: Any) -> HTMLResponse:
    return render(request, "unsubscribe.html", status=status, title="Unsubscribe", kind_words=KIND_WORDS,
                  channel_words=CHANNEL_WORDS, **context)


@router.get(UNSUBSCRIBE, dependencies=[public("an e-mail's unsubscribe link: it only shows a button; nothing changes")])
async def unsubscribe_page(request: Request, t: str = "") -> HTMLResponse:
    """The confirm page: nothing changes on a GET (mail scanners follow links); its button posts the change."""
    nonce = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)
    response = _unsubscribe_page(request, token=t, csrf=csrf_token(nonce), result=None, problem="" if t else
                                 "This link has no unsubscribe token. Open the link in the e-mail again, or sign in to"
                                 " choose what reaches you.")
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(FORM_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict", secure=secure,
                        path=UNSUBSCRIBE)
    return response


@router.post(UNSUBSCRIBE, dependencies=[public(
    "an e-mail's unsubscribe: the sealed token it carries is its authentication (notify opens it)")])
async def unsubscribe(request: Request, rt: Rt) -> HTMLResponse:
    """The confirm page's button (form fields `t` and `csrf`), or RFC 8058's one-click POST (the body
    ``List-Unsubscribe=One-Click``, the token in the query string)."""
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    fields = {k: [str(v) for v in form.getlist(k)] for k in form}
    if one_click(fields):
        # RFC 8058: the mail provider posts this itself, with no cookie and so no form token; the token in the URL,
        # sealed by notify and naming one person and one kind of message, is what authenticates it. This is the
        # one form of the dashboard without the CSRF check: all it can do is switch that e-mail off.
        token = request.query_params.get("t", "")
    else:
        check_csrf_of_page(request, (fields.get("csrf") or [""])[0])
        token = (fields.get("t") or [""])[0].strip()
    answer = await call(rt, "notify", "POST", "/v1/notify/unsubscribe", "", json={"token": token})
    if answer.ok and isinstance(answer.body, dict):
        return _unsubscribe_page(request, token="", csrf="", result=answer.body, problem="")
    if answer.status in (400, 422):  # a token notify did not seal (or none)
        ratelimit.note_failed_authentication(request.scope)  # a guessed token counts as a bad bearer token does
        return _unsubscribe_page(request, 400, token="", csrf="", result=None,
                                 problem="This unsubscribe link is not valid. Sign in to choose what reaches you.")
    if answer.status == 404:  # a genuine link, but its person has left the roster: nothing is sent to them
        return _unsubscribe_page(request, 404, token="", csrf="", result=None,
                                 problem=f"Nothing to change: {answer.detail or 'no such person'}.")
    return _unsubscribe_page(request, 503, token=token, csrf=(fields.get("csrf") or [""])[0], result=None,
                             problem=f"Nothing was changed: {answer.detail or answer.status}. Try again.")


def check_csrf_of_page(request: Request, given: str) -> None:
    """The confirm page's form token: that of the cookie the page set (`FORM_COOKIE`), as `control.check_csrf`
    checks a session's (403 for a form posted from another site, or after the cookie expired)."""
    nonce = request.cookies.get(FORM_COOKIE, "")
    if not nonce or not secrets.compare_digest(given, csrf_token(nonce)):
        raise HTTPException(403, "this form did not come from this dashboard (open the link in the e-mail again)")
