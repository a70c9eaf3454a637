"""ingest's token administration API, for admins (docs/contract.md, "Tokens and roles"): the same as
`python -m services.ingest tokens ...`, each change announced on the registry in its transaction."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from services.ingest import tokens
from services.ingest.auth import AdminPrincipal, Context
from services.ingest.crm_api import LimitedBody
from services.ingest.tenants import TenantError
from shared import audit
from shared.db import tenant_tx
from shared.events import Role

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], route_class=LimitedBody)


class TokenIn(BaseModel):
    role: Role
    rep_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    manager_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    expires_days: Annotated[float, Field(gt=0, le=tokens.MAX_EXPIRY_DAYS)] | None = None


class RotateIn(BaseModel):
    grace_hours: Annotated[float, Field(ge=0, le=720)] = 24.0


def _unprocessable(err: TenantError) -> HTTPException:
    return HTTPException(404 if "has no unrevoked token" in str(err) else 422, str(err))


@router.get("")
async def list_tokens(who: AdminPrincipal, ctx: Context) -> dict[str, Any]:
    """The tenant's tokens, newest first, without their secrets."""
    async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
        return {"tokens": await tokens.listed(conn, who.tenant)}


@router.post("", status_code=201)
async def create_token(who: AdminPrincipal, ctx: Context, body: TokenIn) -> dict[str, Any]:
    """A new token with a role; the answer is the only place its secret appears."""
    try:
        async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
            made = await tokens.create(conn, who.tenant, role=body.role, signer=ctx.signer, now=ctx.rt.clock.now(),
                                       rep_id=body.rep_id, manager_id=body.manager_id, name=body.name,
                                       expires_days=body.expires_days, actor=audit.actor_of(who))
    except TenantError as err:
        raise _unprocessable(err) from err
    ctx.rt.relay.wake()
    return made.as_json()


class ShareIn(BaseModel):
    name: Annotated[str, Field(max_length=200)] = ""
    expires_days: Annotated[float, Field(gt=0, le=tokens.MAX_EXPIRY_DAYS)] | None = None


@router.post("/share", status_code=201)
async def share_link(who: AdminPrincipal, ctx: Context, body: ShareIn) -> dict[str, Any]:
    """A TV's read-only share link: `path` goes after the dashboard's address; `DELETE /v1/tokens/{token_id}`
    ends it."""
    try:
        async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
            made = await tokens.share(conn, who.tenant, signer=ctx.signer, now=ctx.rt.clock.now(), name=body.name,
                                      expires_days=body.expires_days, actor=audit.actor_of(who))
    except TenantError as err:
        raise _unprocessable(err) from err
    ctx.rt.relay.wake()
    return made


@router.delete("/{token_id}", status_code=204)
async def revoke_token(who: AdminPrincipal, ctx: Context, token_id: str) -> None:
    """Revoke one token: every service refuses it once the registry entry arrives (seconds)."""
    try:
        async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
            await tokens.revoke(conn, who.tenant, token_id, signer=ctx.signer, now=ctx.rt.clock.now(),
                                actor=audit.actor_of(who))
    except TenantError as err:
        raise _unprocessable(err) from err
    ctx.rt.relay.wake()


@router.post("/{token_id}/rotate", status_code=201)
async def rotate_token(who: AdminPrincipal, ctx: Context, token_id: str, body: RotateIn) -> dict[str, Any]:
    """A new token like this one; this one stays valid for `grace_hours` more."""
    try:
        async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
            made = await tokens.rotate(conn, who.tenant, token_id, signer=ctx.signer, now=ctx.rt.clock.now(),
                                       grace_hours=body.grace_hours, actor=audit.actor_of(who))
    except TenantError as err:
        raise _unprocessable(err) from err
    ctx.rt.relay.wake()
    return made.as_json() | {"replaces": token_id}
