"""A tenant's OAuth 2.0 connection to its CRM through ingest's API (crm/oauth.py, oauth_store.py, oauth_rules.py).

- `PUT /v1/crm/{crm}/oauth/client` (admin): the OAuth client (app) the tenant registered at its CRM; the secret is
  written, never shown (left out, the stored one is kept);
- `POST /v1/crm/{crm}/oauth/authorize` (admin): the CRM's authorization URL to send the admin's browser to, its
  `state` and PKCE verifier stored for ten minutes (oauth_rules.PENDING_TTL);
- `GET /v1/crm/oauth/callback/{tenant}/{crm}` (public: the CRM sends the browser here; the `state` it carries,
  taken once, is the credential): the code exchanged for tokens, the connection `connected`;
- `DELETE /v1/crm/{crm}/oauth` (admin): the tokens forgotten and the refresh token revoked at the CRM (the client
  kept; `?forget_client=true` forgets it too);
- `GET /v1/crm/oauth` (admin, integration): each CRM's connection as the control room shows it: `pending`,
  `connected`, `revoked` with the CRM's reason, or `error` with the last error; for Salesforce, where each
  change-event channel of the Streaming API stands (`streams`: replay id, last error, a gap since when).

No answer, log line or audit entry holds a secret, a code or a token. The CRM is never called while a transaction
is open here: the callback takes its pending authorization in one transaction, exchanges the code, and stores the
tokens in a second.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from services.ingest.auth import AdminPrincipal, Context, ReaderTenant, admit
from services.ingest.crm import oauth, oauth_store, stream_store
from services.ingest.crm.oauth_rules import (
    PENDING_TTL,
    CrmOAuthError,
    Denied,
    EndpointRefused,
    StateMismatch,
    Unreachable,
)
from services.ingest.crm_api import Crm, LimitedBody
from shared import audit
from shared.authz import public
from shared.db import tenant_tx
from shared.secret_box import Undecryptable

router = APIRouter(prefix="/v1/crm", tags=["crm oauth"], route_class=LimitedBody)
log = logging.getLogger(__name__)
# No tenant label: /metrics answers anyone who reaches the port (issue 16); the tenant is in the log line.
CALLBACKS = Counter("attain_ingest_crm_oauth_callbacks_total",
                    "OAuth authorizations come back from a CRM, by CRM and outcome (connected, denied, refused,"
                    " unknown_state, unreachable).", ["crm", "outcome"])
Line = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\s]+$")]


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_id: Line
    client_secret: Annotated[str, Field(min_length=1, max_length=2000)] | None = Field(
        default=None, description="Needed the first time; left out, the stored one is kept. Never shown again.")
    auth_base: Annotated[str, Field(min_length=8, max_length=500)] | None = Field(
        default=None, description="Another origin for the CRM's OAuth endpoints: a Salesforce sandbox"
                                  " (https://test.salesforce.com) or My Domain. Unset: the CRM's documented ones.")
    scopes: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=50, description="Scopes to ask for; empty: the CRM's defaults (crm/oauth.py)")


class ClientOut(BaseModel):
    crm: str
    client_id: str
    client_secret_set: bool
    redirect_uri: str  # to register at the CRM, exactly


class Authorization(BaseModel):
    crm: str
    authorization_url: str
    redirect_uri: str
    expires_at: datetime  # the callback is refused after this


class Disconnected(BaseModel):
    crm: str
    revoked_at_crm: bool  # False: the CRM documents no revocation (Pipedrive: uninstall the app there)


def redirect_uri(request: Request, public_base_url: str | None, tenant: str, crm: str) -> str:
    """Where the CRM sends the browser back: PUBLIC_BASE_URL (behind an ingress) or this ingest's own address."""
    base = (public_base_url or str(request.base_url)).rstrip("/")
    return f"{base}/v1/crm/oauth/callback/{tenant}/{crm}"


def _origin(value: str | None, allowed: list[str]) -> str | None:
    """`auth_base` as an origin; 422 when it is not https (or http to an allowed stand-in) or has a path."""
    if value is None or not value.strip():
        return None
    try:
        oauth.authorization_url("salesforce", "x", "https://x.invalid/", "s", "v" * 43,
                                oauth.endpoints("salesforce", value), allowed_hosts=allowed)
    except CrmOAuthError as err:
        raise HTTPException(422, f"auth_base: {err}") from None
    return value.strip().rstrip("/")


@router.put("/{crm}/oauth/client", response_model=ClientOut)
async def put_client(crm: Crm, who: AdminPrincipal, ctx: Context, body: ClientIn, request: Request) -> ClientOut:
    """Set the OAuth client the tenant registered at `crm` (its secret sealed, never shown). Another client id
    than before forgets the tokens the other client was granted: authorize again."""
    base = _origin(body.auth_base, ctx.settings.crm_api_allowed_hosts.split(","))
    now = ctx.rt.clock.now()
    async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
        before = await conn.fetchrow("SELECT client_id, auth_base, scopes FROM crm_oauth WHERE tenant = $1"
                                     " AND crm = $2", who.tenant, crm)
        try:
            await oauth_store.save_client(conn, who.tenant, crm, body.client_id, body.client_secret, ctx.box,
                                          auth_base=base, scopes=tuple(body.scopes))
        except oauth_store.NotConfigured as err:
            raise HTTPException(422, str(err)) from None
        await audit.record(
            conn, tenant=who.tenant, who=who, action="crm.oauth.client_set", subject=f"crm:{crm}/oauth",
            before={**dict(before), "scopes": list(before["scopes"])} if before else None,
            after={"client_id": body.client_id, "auth_base": base, "scopes": body.scopes,
                   "client_secret": body.client_secret}, at=now, service="ingest")
    return ClientOut(crm=crm, client_id=body.client_id, client_secret_set=True,
                     redirect_uri=redirect_uri(request, ctx.settings.public_base_url, who.tenant, crm))


@router.post("/{crm}/oauth/authorize", response_model=Authorization)
async def authorize(crm: Crm, who: AdminPrincipal, ctx: Context, request: Request) -> Authorization:
    """Start an authorization: the URL of the CRM's consent page for the admin's browser (state and PKCE kept
    here); 404 when the tenant set no OAuth client for `crm`."""
    now = ctx.rt.clock.now()
    state, verifier = oauth.new_state(), oauth.new_verifier()
    back = redirect_uri(request, ctx.settings.public_base_url, who.tenant, crm)
    try:
        async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
            found = await oauth_store.connection(conn, who.tenant, crm, ctx.box)
            if found is None:
                raise oauth_store.NotConfigured(f"{crm}: set the tenant's OAuth client first")
            url = oauth.authorization_url(crm, found.client.client_id, back, state, verifier,
                                          oauth.endpoints(crm, found.auth_base), scopes=found.scopes or None,
                                          allowed_hosts=ctx.settings.crm_api_allowed_hosts.split(","))
            await oauth_store.start_authorization(conn, who.tenant, crm, state=state, code_verifier=verifier,
                                                  redirect_uri=back, now=now, box=ctx.box)
    except oauth_store.NotConfigured as err:
        raise HTTPException(404, str(err)) from None
    except Undecryptable:
        raise HTTPException(409, f"{crm}: the stored client secret cannot be decrypted; set the client again")\
            from None
    except CrmOAuthError as err:
        raise HTTPException(422, str(err)) from None
    return Authorization(crm=crm, authorization_url=url, redirect_uri=back, expires_at=now + PENDING_TTL)


def _page(status: int, title: str, text: str) -> HTMLResponse:
    body = (f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
            "<p>You can close this window and return to the control room.</p></html>")
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store",
                                                           "Referrer-Policy": "no-referrer"})


def _noted(crm: str, tenant: str, outcome: str) -> None:
    CALLBACKS.labels(crm, outcome).inc()
    log.info("crm oauth callback", extra={"tenant": tenant, "crm": crm, "outcome": outcome})


@router.get("/oauth/callback/{tenant}/{crm}", response_class=HTMLResponse, dependencies=[public(
    "the CRM redirects the admin's browser here after consent; the state it carries, stored by an admin's"
    " authorize and taken once, is the credential")])
async def callback(tenant: Annotated[str, Path(max_length=100)], crm: Crm, ctx: Context,
                   state: Annotated[str, Query(max_length=200)] = "",
                   code: Annotated[str | None, Query(max_length=4000)] = None,
                   error: Annotated[str | None, Query(max_length=200)] = None,
                   error_description: Annotated[str | None, Query(max_length=1000)] = None) -> HTMLResponse:
    """Finish an authorization: the code exchanged for tokens (with the PKCE verifier), the connection stored."""
    admit(ctx, tenant)
    name = crm.capitalize() if crm != "hubspot" else "HubSpot"
    now = ctx.rt.clock.now()
    try:
        async with tenant_tx(ctx.rt.pool, tenant) as conn:
            pending = await oauth_store.take_pending(conn, tenant, crm, state, now, ctx.box) if state else None
            found = await oauth_store.connection(conn, tenant, crm, ctx.box) if pending else None
    except Undecryptable:
        pending = found = None
    if pending is None or found is None:
        _noted(crm, tenant, "unknown_state")
        return _page(400, "Not connected", "This authorization is unknown or older than ten minutes. Start again"
                                           f" from the control room's CRM page ({name}: Connect).")
    callback_params = {k: v for k, v in (("state", state), ("code", code), ("error", error),
                                         ("error_description", error_description)) if v is not None}
    try:
        tokens = await oauth.exchange_code(crm, found.client, callback=callback_params, state=pending.state,
                                           code_verifier=pending.code_verifier, redirect_uri=pending.redirect_uri,
                                           endpoints=oauth.endpoints(crm, found.auth_base), now=now,
                                           allowed_hosts=ctx.settings.crm_api_allowed_hosts.split(","))
    except Denied:
        _noted(crm, tenant, "denied")
        return _page(403, "Not connected", f"The authorization was declined at {name}.")
    except StateMismatch:
        _noted(crm, tenant, "unknown_state")
        return _page(400, "Not connected", "This authorization is unknown. Start again from the control room.")
    except Unreachable as err:
        _noted(crm, tenant, "unreachable")
        return _page(502, "Not connected", f"{name} did not answer ({err}). Start again in a moment.")
    except (EndpointRefused, CrmOAuthError) as err:
        _noted(crm, tenant, "refused")
        return _page(400, "Not connected", f"{name} refused: {err}")
    async with tenant_tx(ctx.rt.pool, tenant) as conn:
        await oauth_store.save_tokens(conn, tenant, crm, tokens, now, ctx.box, authorized=True)
        await audit.record(conn, tenant=tenant, who=None, action="crm.oauth.connected", subject=f"crm:{crm}/oauth",
                           before={"status": found.status}, after={"status": "connected",
                                                                   "scopes": list(tokens.scopes)},
                           at=now, service="ingest", actor=audit.actor_of(None, name="oauth callback"))
    _noted(crm, tenant, "connected")
    return _page(200, f"Connected to {name}", f"Attain now reads {name} for this tenant.")


@router.delete("/{crm}/oauth", response_model=Disconnected)
async def disconnect(crm: Crm, who: AdminPrincipal, ctx: Context,
                     forget_client: Annotated[bool, Query()] = False) -> Disconnected:
    """Disconnect: the tokens forgotten here, then the refresh token revoked at the CRM (best effort: a CRM that
    does not answer is logged; the tokens are gone here all the same). 404 without a connection."""
    now = ctx.rt.clock.now()
    async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
        try:
            found = await oauth_store.connection(conn, who.tenant, crm, ctx.box)
        except Undecryptable:
            found = None
        status = await conn.fetchval("SELECT status FROM crm_oauth WHERE tenant = $1 AND crm = $2", who.tenant, crm)
        if status is None:
            raise HTTPException(404, f"{crm}: no OAuth connection")
        try:
            token = await oauth_store.disconnect(conn, who.tenant, crm, ctx.box)
        except Undecryptable:
            token = None
        if forget_client:
            await oauth_store.delete(conn, who.tenant, crm)
        await audit.record(conn, tenant=who.tenant, who=who, action="crm.oauth.disconnected",
                           subject=f"crm:{crm}/oauth", before={"status": status},
                           after=None if forget_client else {"status": "pending"}, at=now, service="ingest")
    revoked = False
    if token and found is not None:
        try:
            revoked = await oauth.revoke(crm, found.client, token, endpoints=oauth.endpoints(crm, found.auth_base),
                                         allowed_hosts=ctx.settings.crm_api_allowed_hosts.split(","))
        except CrmOAuthError as err:
            log.warning("crm oauth revocation failed", extra={"tenant": who.tenant, "crm": crm, "error": str(err)})
    return Disconnected(crm=crm, revoked_at_crm=revoked)


@router.get("/oauth")
async def status(tenant: ReaderTenant, ctx: Context, request: Request) -> dict[str, Any]:
    """Each CRM's OAuth connection (no secret): its status (`pending`, `connected`, `revoked`, `error`), the
    last error (a revoked refresh token: the CRM's reason), and the redirect URI to register at the CRM."""
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        found = {view.crm: view.as_json() for view in await oauth_store.views(conn, tenant.slug)}
        streams = [_position(p) for p in await stream_store.positions(conn, tenant.slug)]
    crms = list(oauth.VENDORS)
    return {"connections": [
        {**found.get(crm, {"crm": crm, "client_id": None, "status": "not_configured", "scopes": [],
                           "expires_at": None, "connected_at": None, "last_error": None, "error_at": None}),
         "redirect_uri": redirect_uri(request, ctx.settings.public_base_url, tenant.slug, crm)}
        | ({"streams": streams} if crm == "salesforce" else {})
        for crm in crms]}


def _position(p: stream_store.StreamPosition) -> dict[str, Any]:
    """A Salesforce change-event channel as the control room shows it: where it stands, its last error, a gap."""
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    return {"channel": p.channel, "replay_id": p.replay_id, "updated_at": iso(p.updated_at),
            "last_error": p.last_error, "error_at": iso(p.error_at), "gap_since": iso(p.gap_since)}
