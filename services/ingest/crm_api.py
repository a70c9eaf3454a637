"""Per-tenant CRM mappings, the CRM properties a tenant carries, and dead letters: `/v1/crm/...` (bearer token,
tenant-scoped)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.ingest.auth import AdminTenant, Context, Holder, ReaderTenant
from services.ingest.context import context_of
from services.ingest.crm.pipeline import load_properties, save_properties
from services.ingest.crm.properties import MAX_PROPERTIES, invalid_names
from shared import audit
from shared.authz import Principal
from shared.db import tenant_tx
from shared.events import Text


class LimitedBody(APIRoute):
    """A route whose body is read here before FastAPI reads it whole (of any size): refused with 413 as soon as
    it passes MAX_BODY_BYTES, and with a 400 that says so when its JSON is nested deeper than the parser goes
    (FastAPI says only that the body could not be parsed)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            limit = context_of(request).settings.max_body_bytes
            body = bytearray()
            async for part in request.stream():
                body += part
                if len(body) > limit:
                    raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
            request._body = bytes(body)  # what FastAPI's own `request.body()` returns next
            try:
                json.loads(body or b"null")
            except RecursionError as err:
                raise HTTPException(400, "the body is JSON nested too deeply to read") from err
            except ValueError:
                pass  # not JSON: FastAPI answers that itself, saying where
            return await handler(request)

        return limited


router = APIRouter(prefix="/v1/crm", tags=["crm mappings"], route_class=LimitedBody)
Crm = Literal["hubspot", "pipedrive", "salesforce"]
Key = Annotated[Text, Field(min_length=1, max_length=200)]


class Reprocessed(BaseModel):
    accepted: int
    duplicate: int
    still_dead_lettered: int


class StagesOut(BaseModel):
    stages: dict[str, Literal["open", "won", "lost"]]
    reprocessed: Reprocessed | None = None


class UsersOut(BaseModel):
    users: dict[str, str]
    reprocessed: Reprocessed | None = None


class PropertiesIn(BaseModel):
    """The CRM properties to carry, by the CRM's own names (HubSpot property names, Pipedrive field keys,
    Salesforce field API names); a name given twice counts once."""

    model_config = ConfigDict(extra="forbid")
    properties: Annotated[list[str], Field(max_length=MAX_PROPERTIES, examples=[["hs_lead_source", "segment"]])]

    @field_validator("properties")
    @classmethod
    def _property_names(cls, names: list[str]) -> list[str]:
        bad = invalid_names(names)
        if bad:
            raise ValueError(f"{', '.join(repr(name) for name in bad)}: not a property name (1 to 100 letters, digits,"
                             " '_', '.', ':' or '-', not starting with '.', ':' or '-')")
        return list(dict.fromkeys(names))


class PropertiesOut(BaseModel):
    properties: list[str]


class DeadLetter(BaseModel):
    crm: str
    object_type: str
    object_id: str
    event_id: str
    reason: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


AUDITED = {"crm_stage_map": "stages", "crm_user_map": "users"}  # a mapping's words in the audit log


async def _replace(ctx: Context, tenant: AdminTenant, crm: str, table: str, key: str, value: str,
                   mapping: dict[str, str], who: Principal) -> Reprocessed:
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        before = dict(await conn.fetch(f"SELECT {key}, {value} FROM {table} WHERE tenant = $1 AND crm = $2",
                                       tenant.slug, crm))
        await audit.record(conn, tenant=tenant.slug, who=who, action=f"crm.{AUDITED[table]}.changed",
                           subject=f"crm:{crm}/{AUDITED[table]}", before=before, after=mapping,
                           at=ctx.rt.clock.now(), service="ingest")
        await conn.execute(f"DELETE FROM {table} WHERE tenant = $1 AND crm = $2", tenant.slug, crm)
        await conn.executemany(f"INSERT INTO {table} (tenant, crm, {key}, {value}) VALUES ($1, $2, $3, $4)",
                               [(tenant.slug, crm, k, v) for k, v in mapping.items()])
    summary = await ctx.crm.reprocess(tenant, crm)
    return Reprocessed(accepted=summary.accepted, duplicate=summary.duplicate,
                       still_dead_lettered=summary.dead_lettered)


async def _read(ctx: Context, tenant: ReaderTenant, crm: str, table: str, key: str, value: str) -> dict[str, Any]:
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        return dict(await conn.fetch(f"SELECT {key}, {value} FROM {table} WHERE tenant = $1 AND crm = $2",
                                     tenant.slug, crm))


@router.get("/{crm}/stages", response_model=StagesOut)
async def get_stages(crm: Crm, tenant: ReaderTenant, ctx: Context) -> StagesOut:
    """The tenant's mapping of the CRM's stage ids to open/won/lost (defaults cover the standard pipelines)."""
    return StagesOut(stages=await _read(ctx, tenant, crm, "crm_stage_map", "stage", "status"))


@router.put("/{crm}/stages", response_model=StagesOut)
async def put_stages(crm: Crm, tenant: AdminTenant, who: Holder, ctx: Context,
                     stages: Annotated[dict[Key, Literal["open", "won", "lost"]], Body()]) -> StagesOut:
    """Replace the stage mapping, then retry every dead-lettered record of this CRM."""
    done = await _replace(ctx, tenant, crm, "crm_stage_map", "stage", "status", dict(stages), who)
    return StagesOut(stages=dict(stages), reprocessed=done)


@router.get("/{crm}/users", response_model=UsersOut)
async def get_users(crm: Crm, tenant: ReaderTenant, ctx: Context) -> UsersOut:
    """The tenant's mapping of CRM user ids to rep ids (`"*": "="` maps every other user to the same id)."""
    return UsersOut(users=await _read(ctx, tenant, crm, "crm_user_map", "crm_user_id", "rep_id"))


@router.put("/{crm}/users", response_model=UsersOut)
async def put_users(crm: Crm, tenant: AdminTenant, who: Holder, ctx: Context,
                    users: Annotated[dict[Key, Key], Body()]) -> UsersOut:
    """Replace the user mapping, then retry every dead-lettered record of this CRM."""
    done = await _replace(ctx, tenant, crm, "crm_user_map", "crm_user_id", "rep_id", dict(users), who)
    return UsersOut(users=dict(users), reprocessed=done)


@router.get("/{crm}/properties", response_model=PropertiesOut)
async def get_properties(crm: Crm, tenant: ReaderTenant, ctx: Context) -> PropertiesOut:
    """The CRM properties the tenant's deals and activities from this CRM carry (`properties`), in its order."""
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        return PropertiesOut(properties=list(await load_properties(conn, tenant.slug, crm)))


@router.put("/{crm}/properties", response_model=PropertiesOut)
async def put_properties(crm: Crm, tenant: AdminTenant, who: Holder, ctx: Context,
                         body: PropertiesIn) -> PropertiesOut:
    """Replace the CRM properties to carry (at most 50): each record's next delivery carries them; nothing is
    retried, because no record waits for a property."""
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        before = list(await load_properties(conn, tenant.slug, crm))
        await save_properties(conn, tenant.slug, crm, body.properties)
        await audit.record(conn, tenant=tenant.slug, who=who, action="crm.properties.changed",
                           subject=f"crm:{crm}/properties", before={"properties": before},
                           after={"properties": list(body.properties)}, at=ctx.rt.clock.now(), service="ingest")
    return PropertiesOut(properties=body.properties)


@router.get("/dead-letters", response_model=list[DeadLetter])
async def dead_letters(tenant: ReaderTenant, ctx: Context, crm: Crm | None = None,
                       status: Literal["open", "resolved", "all"] = "open",
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[DeadLetter]:
    """What could not be mapped (open), or was mapped later (resolved), newest first, with the reason."""
    condition = {"open": "resolved_at IS NULL", "resolved": "resolved_at IS NOT NULL", "all": "true"}[status]
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        rows = await conn.fetch(
            f"SELECT crm, object_type, object_id, event_id, reason, created_at, updated_at, resolved_at"
            f" FROM crm_dead_letters WHERE tenant = $1 AND ($2::text IS NULL OR crm = $2) AND {condition}"
            f" ORDER BY updated_at DESC LIMIT $3", tenant.slug, crm, limit)
    return [DeadLetter(**dict(r)) for r in rows]
