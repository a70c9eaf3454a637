"""The dashboard's single sign-on (OpenID Connect, authorization code with PKCE; docs/security.md "Single
sign-on"). kpi holds no secret of the provider: ingest keeps the tenant's client and mints the session token.

- `GET /signin/sso?tenant=SLUG&next=/path`: state, nonce and PKCE verifier kept in a short-lived HttpOnly
  cookie (`FLOW_COOKIE`), then to the tenant's provider;
- `GET /signin/sso/callback?code&state`: the state checked against that cookie, the code handed to ingest
  (`POST /v1/sessions`), which answers a personal token once it verified the person and mapped their role; kpi
  waits until its own copy of the tokens knows it, then keeps it in the session cookie (`COOKIE`) with a second
  cookie (`SESSION_COOKIE`) saying it is a single sign-on session and its lifetime;
- renewal (`renewed`, from web.session_principal): with less than a third of its life left, a session token is
  exchanged at ingest (`POST /v1/sessions/refresh`) for a new one;
- sign-out (`signed_out`, from pages.signout): ingest revokes the token everywhere, then the browser goes to the
  provider's own sign-out when it has one.

Both cookies are HttpOnly, SameSite=Lax, and Secure when the dashboard is reached over https. The flow cookie
holds no secret of anyone else: tampering with it can only spoil its holder's own sign-in.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import Headers

from services.kpi.dashboard import view
from services.kpi.dashboard.web import COOKIE, Rt, render
from services.kpi.settings import KpiSettings
from shared import token_store
from shared.authz import public
from shared.service import Runtime

log = logging.getLogger(__name__)

FLOW_COOKIE = "attain_sso_flow"
SESSION_COOKIE = "attain_sso"
FLOW_MAX_AGE_S = 600  # a sign-in at the provider must be finished within ten minutes
CALLBACK = "/signin/sso/callback"
SCOPES = "openid email profile groups offline_access"
KNOWN_WITHIN_S = 5.0  # how long kpi waits for a new token to reach its copy (the registry: ~0.3 s)
TIMEOUT_S = 15.0  # ingest calls the provider in turn

router = APIRouter(include_in_schema=False)


# --- pure: the flow's cookie, the session's lifetime ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Flow:
    """One sign-in under way: what the provider's answer must match, and where to go after."""

    tenant: str
    state: str
    nonce: str
    code_verifier: str
    next: str

    @classmethod
    def start(cls, tenant: str, next_path: str) -> Flow:
        """A new flow with fresh random state, nonce and PKCE verifier (48 characters each)."""
        return cls(tenant, generate_token(48), generate_token(48), generate_token(48), view.safe_next(next_path))

    def cookie(self) -> str:
        return base64.urlsafe_b64encode(json.dumps(asdict(self), separators=(",", ":")).encode()).decode()

    @classmethod
    def from_cookie(cls, value: str | None) -> Flow | None:
        """The flow a cookie holds, or None for a missing or damaged one.

        >>> flow = Flow.start("acme", "/reps/ana")
        >>> Flow.from_cookie(flow.cookie()) == flow, Flow.from_cookie("garbage"), Flow.from_cookie(None)
        (True, None, None)
        """
        if not value:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(value.encode()))
            flow = cls(**{k: str(data[k]) for k in ("tenant", "state", "nonce", "code_verifier", "next")})
        except (ValueError, TypeError, KeyError):
            return None
        return flow

    def matches(self, state: str | None) -> bool:
        """Whether the provider's `state` is this flow's (compared in constant time)."""
        return bool(state) and hmac.compare_digest(self.state.encode(), (state or "").encode())

    def authorization_url(self, endpoint: str, client_id: str, redirect_uri: str) -> str:
        """Where the browser signs in: the provider's endpoint with the code flow's parameters (PKCE S256)."""
        query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                           "scope": SCOPES, "state": self.state, "nonce": self.nonce,
                           "code_challenge": create_s256_code_challenge(self.code_verifier),
                           "code_challenge_method": "S256"})
        return endpoint + ("&" if "?" in endpoint else "?") + query


@dataclass(frozen=True, slots=True)
class Lifetime:
    """A single sign-on session token's issue and expiry (seconds since the epoch), as `SESSION_COOKIE` holds."""

    issued: float
    expires: float

    def cookie(self) -> str:
        return f"{int(self.issued)}-{int(self.expires)}"

    @classmethod
    def from_cookie(cls, value: str | None) -> Lifetime | None:
        """The lifetime a cookie holds, or None for a missing or damaged one.

        >>> Lifetime.from_cookie("100-400"), Lifetime.from_cookie("x")
        (Lifetime(issued=100.0, expires=400.0), None)
        """
        issued, _, expires = (value or "").partition("-")
        try:
            found = cls(float(int(issued)), float(int(expires)))
        except ValueError:
            return None
        return found if found.expires > found.issued else None

    def refresh_due(self, now: float) -> bool:
        """Whether less than a third of the token's life is left (and it has not ended).

        >>> life = Lifetime(0, 3600)
        >>> life.refresh_due(2300), life.refresh_due(2500), life.refresh_due(3600)
        (False, True, False)
        """
        left = self.expires - now
        return 0 < left < (self.expires - self.issued) / 3

    def max_age(self, now: float) -> int:
        return max(int(self.expires - now), 1)


def answer_lifetime(answer: Mapping[str, Any]) -> Lifetime:
    """The lifetime of ingest's session answer (`issued_at`, `expires_at`, ISO 8601)."""
    return Lifetime(datetime.fromisoformat(str(answer["issued_at"])).timestamp(),
                    datetime.fromisoformat(str(answer["expires_at"])).timestamp())


# --- calls to ingest ------------------------------------------------------------------------------------------


def _ingest(rt: Runtime) -> str:
    s = rt.settings if isinstance(rt.settings, KpiSettings) else KpiSettings()
    return s.dashboard_ingest_url.rstrip("/")


async def _ingest_call(rt: Runtime, method: str, path: str, *, token: str | None = None,
                       json_body: Any = None) -> tuple[int, Any]:
    """ingest's status and JSON answer; 503 when it does not answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
        try:
            response = await client.request(method, _ingest(rt) + path, json=json_body, headers=headers)
        except httpx.HTTPError as err:
            log.warning("single sign-on: ingest did not answer", extra={"error": type(err).__name__})
            return 503, {"detail": "the sign-in service did not answer; try again in a moment"}
    try:
        return response.status_code, response.json() if response.content else None
    except ValueError:
        return response.status_code, None


def _detail(body: Any, fallback: str) -> str:
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) and detail else fallback


async def _known(rt: Runtime, token: str) -> bool:
    """Whether kpi's copy of the tokens knows `token`, waiting up to KNOWN_WITHIN_S for the registry."""
    deadline = time.monotonic() + KNOWN_WITHIN_S
    while True:
        async with rt.pool.acquire() as conn:
            if await token_store.principal(conn, token, rt.clock.now()) is not None:
                return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


# --- pages ------------------------------------------------------------------------------------------------


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _callback_url(request: Request) -> str:
    base = str(request.base_url).rstrip("/")
    if request.headers.get("x-forwarded-proto") == "https" and base.startswith("http://"):
        base = "https://" + base.removeprefix("http://")
    return base + CALLBACK


def _refused(request: Request, status: int, message: str, tenant: str = "", next_path: str = "") -> HTMLResponse:
    response = render(request, "signin.html", status=status, title="Sign in", next=view.safe_next(next_path),
                      error=None, sso_error=message, organisation=tenant)
    response.delete_cookie(FLOW_COOKIE, path="/signin/sso")
    return response


def onward(request: Request, url: str, title: str, words: str) -> HTMLResponse:
    """A page that sends the browser on to another site (the provider): a redirect after a form is refused by
    the dashboard's Content-Security-Policy (form-action 'self'), a page that refreshes to it is not."""
    return render(request, "sso_onward.html", title=title, url=url, words=words)


def _session_cookies(response: Response, request: Request, token: str, life: Lifetime) -> None:
    secure, max_age = _secure(request), life.max_age(time.time())
    response.set_cookie(COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/")
    response.set_cookie(SESSION_COOKIE, life.cookie(), max_age=max_age, httponly=True, samesite="lax",
                        secure=secure, path="/")


@router.get("/signin/sso", dependencies=[public("single sign-on's first step: it sends the browser to the"
                                                  " organisation's identity provider")])
async def start(request: Request, rt: Rt, tenant: str = "", next: str | None = None) -> Response:
    """To the organisation's identity provider, with a new flow in `FLOW_COOKIE`."""
    slug = tenant.strip().lower()
    if not slug:
        return _refused(request, 400, "Enter your organisation's Attain name to sign in with single sign-on.",
                        next_path=next or "")
    status, body = await _ingest_call(rt, "GET", f"/v1/sso/{quote(slug, safe='')}/client")
    if status != 200 or not isinstance(body, dict):
        message = (f"{slug} has no single sign-on (check the organisation's name, or sign in with a token)"
                   if status in (404, 422) else _detail(body, "single sign-on is not available just now"))
        return _refused(request, 400, message, slug, next or "")
    flow = Flow.start(slug, next or "")
    url = flow.authorization_url(str(body["authorization_endpoint"]), str(body["client_id"]), _callback_url(request))
    response = onward(request, url, "Signing in", "Continuing to your organisation's sign-in page…")
    response.set_cookie(FLOW_COOKIE, flow.cookie(), max_age=FLOW_MAX_AGE_S, httponly=True, samesite="lax",
                        secure=_secure(request), path="/signin/sso")
    return response


@router.get(CALLBACK, dependencies=[public("single sign-on's return: it checks the state against the browser's"
                                             " own flow cookie, and ingest checks the code with the provider")])
async def callback(request: Request, rt: Rt, code: str = "", state: str = "", error: str = "",
                   error_description: str = "") -> Response:
    """The provider's answer: a session for the person it vouches for, or the sign-in page saying why not."""
    flow = Flow.from_cookie(request.cookies.get(FLOW_COOKIE))
    if flow is None or not flow.matches(state):
        return _refused(request, 400, "This sign-in expired or did not start here. Please try again.")
    if error:
        words = error_description.strip()[:200] or error[:100]
        return _refused(request, 400, f"Your identity provider did not sign you in: {words}", flow.tenant, flow.next)
    if not code:
        return _refused(request, 400, "Your identity provider sent no authorization code. Please try again.",
                        flow.tenant, flow.next)
    status, body = await _ingest_call(rt, "POST", "/v1/sessions", json_body={
        "tenant": flow.tenant, "code": code, "code_verifier": flow.code_verifier,
        "redirect_uri": _callback_url(request), "nonce": flow.nonce})
    if status != 201 or not isinstance(body, dict):
        log.info("single sign-on refused", extra={"tenant": flow.tenant, "status": status})
        return _refused(request, 403 if status == 403 else 400,
                        _detail(body, "The sign-in could not be completed. Please try again."), flow.tenant, flow.next)
    token = str(body["token"])
    if not await _known(rt, token):
        return _refused(request, 400, "Your session is not ready yet. Please sign in again.", flow.tenant, flow.next)
    response = RedirectResponse(view.safe_next(flow.next), status_code=303)  # the cookie's, checked again
    _session_cookies(response, request, token, answer_lifetime(body))
    response.delete_cookie(FLOW_COOKIE, path="/signin/sso")
    return response


# --- from web.session_principal and pages.signout ---------------------------------------------------------------


async def renewed(request: Request, rt: Runtime, token: str) -> Headers | None:
    """The Set-Cookie headers of a renewed session when the session cookie holds a single sign-on token with less
    than a third of its life left and ingest renews it (the new token known to kpi); else None (a session the
    provider will not renew ends when its token expires)."""
    life = Lifetime.from_cookie(request.cookies.get(SESSION_COOKIE))
    if life is None or not life.refresh_due(time.time()):
        return None
    status, body = await _ingest_call(rt, "POST", "/v1/sessions/refresh", token=token)
    if status != 201 or not isinstance(body, dict) or not await _known(rt, str(body["token"])):
        log.info("single sign-on session not renewed", extra={"status": status})
        return None
    scratch = Response()
    _session_cookies(scratch, request, str(body["token"]), answer_lifetime(body))
    return Headers(raw=[(k, v) for k, v in scratch.raw_headers if k == b"set-cookie"])


async def signed_out(request: Request, rt: Runtime) -> Response:
    """Sign out: a single sign-on session's token revoked at ingest (everywhere), the cookies cleared, then the
    provider's own sign-out when it has one, else the sign-in page."""
    token = request.cookies.get(COOKIE, "").strip()
    where: Any = None
    if token and request.cookies.get(SESSION_COOKIE):
        status, where = await _ingest_call(rt, "DELETE", "/v1/sessions/current", token=token)
        if status >= 400:
            log.info("single sign-on sign-out: ingest refused", extra={"status": status})
    end = where.get("end_session_endpoint") if isinstance(where, dict) else None
    if isinstance(end, str) and end:
        back = str(request.base_url).rstrip("/") + "/signin"
        url = end + ("&" if "?" in end else "?") + urlencode({"client_id": where.get("client_id", ""),
                                                             "post_logout_redirect_uri": back})
        response: Response = onward(request, url, "Signing out", "Signing you out of your identity provider too…")
    else:
        response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response

