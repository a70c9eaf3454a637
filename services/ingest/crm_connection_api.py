"""A tenant's CRM connection through the API: `PUT /v1/crm/{crm}/secret` (admin, write-only) sets the webhook
secret exactly as `python -m services.ingest tenants set-secret` does (`tenants.set_secret`: sealed with
CRM_SECRET_KEYS, the replaced one valid for the grace period); `GET /v1/crm/{crm}/connection` says whether one
is set, never what it is, and the webhook URL to paste into the CRM.

A secret never appears in an answer, a log line or an error: the body is read and checked here, so a refused
one is not echoed back the way a validation error echoes its input."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from pydantic import BaseModel

from services.ingest import tenants
from services.ingest.auth import AdminPrincipal, Context, ReaderTenant
from services.ingest.crm_api import Crm, LimitedBody
from shared import audit
from shared.db import tenant_tx

router = APIRouter(prefix="/v1/crm", tags=["crm connections"], route_class=LimitedBody)
MAX_SECRET_CHARS = 1000
MAX_ORG_ID_CHARS = 100
MAX_GRACE_HOURS = 720.0


class SecretSet(BaseModel):
    crm: str
    set: bool


class Connection(BaseModel):
    crm: str
    secret_set: bool
    org_id: str | None
    updated_at: datetime | None
    previous_valid_until: datetime | None  # the replaced secret is accepted until then
    webhook_url: str


def secret_body(raw: Any) -> tuple[str, str | None, float | None]:
    """The secret (as given, like the CLI's one line), the Salesforce org id and the grace hours of a
    `PUT .../secret` body; ValueError saying what is wrong without repeating any value."""
    if not isinstance(raw, dict):
        raise ValueError('the body must be a JSON object: {"secret": "...", "org_id": "..." (optional)}')
    if set(raw) - {"secret", "org_id", "grace_hours"}:  # not named: a secret pasted as a key would be repeated
        raise ValueError("unknown field: the body takes only secret, org_id and grace_hours")
    secret, org_id, grace = raw.get("secret"), raw.get("org_id"), raw.get("grace_hours")
    if not isinstance(secret, str) or not secret:
        raise ValueError("secret: required, a non-empty string")
    if len(secret) > MAX_SECRET_CHARS or "\n" in secret or "\r" in secret:
        raise ValueError(f"secret: one line of at most {MAX_SECRET_CHARS} characters")
    if org_id is not None and (not isinstance(org_id, str) or len(org_id) > MAX_ORG_ID_CHARS):
        raise ValueError(f"org_id: a string of at most {MAX_ORG_ID_CHARS} characters, or null")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int | float)
                              or not 0 <= grace <= MAX_GRACE_HOURS):
        raise ValueError(f"grace_hours: a number from 0 to {MAX_GRACE_HOURS:g}")
    return secret, (org_id.strip() or None) if isinstance(org_id, str) else None, grace


def webhook_url(request: Request, public_base_url: str | None, crm: str, tenant: str) -> str:
    """Where the CRM must send its webhooks: PUBLIC_BASE_URL (behind an ingress) or this ingest's own address."""
    base = (public_base_url or str(request.base_url)).rstrip("/")
    return f"{base}/v1/webhooks/{crm}/{tenant}"


@router.put("/{crm}/secret", response_model=SecretSet)
async def put_secret(crm: Crm, who: AdminPrincipal, ctx: Context,
                     body: Annotated[Any, Body(description='{"secret": "...", "org_id": "00D..." (Salesforce,'
                                                           ' optional), "grace_hours": 24 (optional)}')]
                     ) -> SecretSet:
    """Set or replace the CRM's webhook secret (HubSpot: the app's client secret; Pipedrive: the basic-auth
    password; Salesforce: the endpoint's `?token=`, with `org_id` every message must carry). Stored encrypted;
    the replaced one stays valid `grace_hours` (default SECRET_ROTATION_GRACE_HOURS). The answer says only that
    it is set."""
    try:
        secret, org_id, grace = secret_body(body)
    except ValueError as err:
        raise HTTPException(422, str(err)) from None
    hours = ctx.settings.secret_rotation_grace_hours if grace is None else grace
    try:
        async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
            await tenants.set_secret(conn, who.tenant, crm, secret, org_id, timedelta(hours=hours), box=ctx.box,
                                     actor=audit.actor_of(who))
    except tenants.TenantError as err:
        raise HTTPException(422, str(err)) from None
    return SecretSet(crm=crm, set=True)


@router.get("/{crm}/connection", response_model=Connection)
async def get_connection(crm: Crm, tenant: ReaderTenant, ctx: Context, request: Request) -> Connection:
    """Whether a webhook secret is set (never its value), Salesforce's org id, and the webhook URL."""
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        row = await conn.fetchrow("SELECT org_id, updated_at, CASE WHEN previous_valid_until > now()"
                                  " THEN previous_valid_until END AS previous_valid_until"
                                  " FROM tenant_secrets WHERE tenant = $1 AND crm = $2", tenant.slug, crm)
    found = dict(row) if row else {"org_id": None, "updated_at": None, "previous_valid_until": None}
    return Connection(crm=crm, secret_set=row is not None, webhook_url=webhook_url(
        request, ctx.settings.public_base_url, crm, tenant.slug), **found)
