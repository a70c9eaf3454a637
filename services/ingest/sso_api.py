"""ingest's single sign-on API (docs/contract.md section 4, "Single sign-on"; services/ingest/sso.py).

- `GET|PUT|DELETE /v1/sso` (admin): the tenant's provider, client and role mapping; the client secret is written,
  never shown (`client_secret_set` says whether there is one);
- `GET /v1/sso/{tenant}/client` (public): where kpi sends a browser to sign in;
- `POST /v1/sessions` (public: it checks the authorization code at the provider): a session token;
- `POST /v1/sessions/refresh`, `DELETE /v1/sessions/current` (the session token itself): renew, sign out.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from prometheus_client import Counter
from pydantic import BaseModel, Field

from services.ingest import sso, sso_flow, sso_repository
from services.ingest.auth import AdminPrincipal, Context, admit, principal_for
from services.ingest.crm_api import LimitedBody
from services.ingest.sso import NotConfigured, ProviderError, Refused, SsoConfig, SsoError, Unreachable
from shared import audit
from shared.authz import EVERYONE, Principal, public
from shared.db import tenant_tx

router = APIRouter(tags=["single sign-on"], route_class=LimitedBody)
log = logging.getLogger(__name__)
Session = Annotated[Principal, Depends(principal_for(*EVERYONE))]
Slug = Annotated[str, Field(min_length=1, max_length=100)]


class SsoIn(BaseModel):
    issuer: Annotated[str, Field(min_length=8, max_length=500)]
    client_id: Annotated[str, Field(min_length=1, max_length=500)]
    client_secret: Annotated[str, Field(min_length=1, max_length=2000)] | None = Field(
        default=None, description="Needed the first time; left out, the stored one is kept. Never shown again.")
    admin_groups: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=50)
    viewer_groups: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=50)
    session_minutes: Annotated[Decimal, Field(gt=0, le=1440)] = sso.DEFAULT_SESSION_MINUTES


class SignInIn(BaseModel):
    tenant: Slug
    code: Annotated[str, Field(min_length=1, max_length=4000)]
    code_verifier: Annotated[str, Field(min_length=43, max_length=128)]
    redirect_uri: Annotated[str, Field(min_length=1, max_length=2000)]
    nonce: Annotated[str, Field(min_length=16, max_length=200)]


# No tenant label: /metrics answers anyone who reaches the port (issue 16); the tenant is in the log line.
SESSIONS = Counter("attain_ingest_sso_sessions_total",
                   "Single sign-on steps (sign_in, refresh, sign_out) by outcome (ok, refused, not_configured,"
                   " provider_error, unreachable, unknown_session).", ["step", "outcome"])
# each refusal's outcome (the counter's label) and status; anything else of SsoError: ("invalid", 422)
# (Unreachable before ProviderError, of which it is a kind)
REFUSALS: dict[type[SsoError], tuple[str, int]] = {
    NotConfigured: ("not_configured", 404), Refused: ("refused", 403), Unreachable: ("unreachable", 502),
    ProviderError: ("provider_error", 400)}


def _noted(step: str, tenant: str, outcome: str) -> None:
    """Count a step's outcome and log it by tenant (never the person's e-mail, nor a token)."""
    SESSIONS.labels(step, outcome).inc()
    log.info("single sign-on", extra={"step": step, "tenant": tenant, "outcome": outcome})


def _classed(err: SsoError) -> tuple[str, int]:
    return next((found for kind, found in REFUSALS.items() if isinstance(err, kind)), ("invalid", 422))


def _outcome(err: SsoError) -> str:
    return _classed(err)[0]


def _refusal(err: SsoError) -> HTTPException:
    return HTTPException(_classed(err)[1], str(err))


@router.get("/v1/sso")
async def get_sso(who: AdminPrincipal, ctx: Context) -> dict[str, Any]:
    """The tenant's single sign-on, without the client secret; 404 when it has none."""
    try:
        async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
            return (await sso_repository.config(conn, who.tenant)).as_json()
    except NotConfigured as err:
        raise _refusal(err) from err


@router.put("/v1/sso")
async def put_sso(who: AdminPrincipal, ctx: Context, body: SsoIn) -> dict[str, Any]:
    """Set the tenant's provider, client and role mapping (the secret is sealed, never shown)."""
    try:
        cfg = SsoConfig(who.tenant, sso.check_issuer(body.issuer), body.client_id.strip(),
                        sso.check_groups(body.admin_groups, "admin_groups"),
                        sso.check_groups(body.viewer_groups, "viewer_groups"), sso.check_minutes(body.session_minutes),
                        client_secret_set=True)
        async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
            await sso_repository.save_config(conn, cfg, body.client_secret, ctx.box, actor=audit.actor_of(who))
    except SsoError as err:
        raise HTTPException(422, str(err)) from err
    return cfg.as_json()


@router.delete("/v1/sso", status_code=204)
async def delete_sso(who: AdminPrincipal, ctx: Context) -> None:
    """Turn single sign-on off (sessions already open last until their tokens expire or are revoked)."""
    async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
        if not await sso_repository.delete_config(conn, who.tenant, actor=audit.actor_of(who)):
            raise HTTPException(404, f"{who.tenant!r} has no single sign-on")


@router.get("/v1/sso/{tenant}/client", dependencies=[public(
    "single sign-on's first step: where a browser signs in (issuer, endpoint, client id), no secret")])
async def sso_client(ctx: Context, tenant: str) -> dict[str, Any]:
    """The tenant's provider and client id, for kpi's sign-in redirect; 404 without single sign-on."""
    try:
        return await sso_flow.client(ctx.rt.pool, tenant, lambda: admit(ctx, tenant))
    except SsoError as err:
        raise _refusal(err) from err


@router.post("/v1/sessions", status_code=201, dependencies=[public(
    "single sign-on: it verifies the authorization code with the tenant's identity provider")])
async def sign_in(ctx: Context, body: SignInIn) -> dict[str, Any]:
    """A short-lived personal token for the person of an authorization code (PKCE), with the role their
    provider groups or the roster give them: 400 for a code the provider refuses, 403 for a person not on the
    roster, 404 for a tenant without single sign-on."""
    try:
        minted = await sso_flow.sign_in(ctx.rt.pool, body.tenant, code=body.code, code_verifier=body.code_verifier,
                                        redirect_uri=body.redirect_uri, nonce=body.nonce, signer=ctx.signer,
                                        box=ctx.box, now=ctx.rt.clock.now(), known=lambda: admit(ctx, body.tenant))
    except SsoError as err:
        _noted("sign_in", body.tenant, _outcome(err))
        raise _refusal(err) from err
    _noted("sign_in", body.tenant, "ok")
    ctx.rt.relay.wake()
    return minted.as_json()


@router.post("/v1/sessions/refresh", status_code=201)
async def refresh(who: Session, ctx: Context) -> dict[str, Any]:
    """A new session token for the caller's (renewed at the provider, the role mapped again); the caller's ends
    two minutes later. 404 for a token not made at sign-in (or renewed already); 403, and the caller's token
    revoked, for a person no longer on the roster; 400 when the provider will not renew."""
    try:
        minted = await sso_flow.renew(ctx.rt.pool, who.tenant, who.token_id, signer=ctx.signer, box=ctx.box,
                                      now=ctx.rt.clock.now())
    except LookupError as err:
        _noted("refresh", who.tenant, "unknown_session")
        raise HTTPException(404, str(err)) from err
    except SsoError as err:
        _noted("refresh", who.tenant, _outcome(err))
        if isinstance(err, Refused):  # the caller's token was revoked: announce it now
            ctx.rt.relay.wake()
        raise _refusal(err) from err
    _noted("refresh", who.tenant, "ok")
    ctx.rt.relay.wake()
    return minted.as_json()


@router.delete("/v1/sessions/current")
async def sign_out(who: Session, ctx: Context) -> dict[str, Any]:
    """Sign out: the caller's session token is revoked in every service; the answer says where the provider
    signs its own session out (`end_session_endpoint`, or null). 404 for a token not made at sign-in."""
    try:
        where = await sso_flow.sign_out(ctx.rt.pool, who.tenant, who.token_id, signer=ctx.signer,
                                        now=ctx.rt.clock.now())
    except LookupError as err:
        _noted("sign_out", who.tenant, "unknown_session")
        raise HTTPException(404, str(err)) from err
    _noted("sign_out", who.tenant, "ok")
    ctx.rt.relay.wake()
    return where
