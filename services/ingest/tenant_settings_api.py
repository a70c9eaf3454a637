"""`GET|PUT /v1/settings`: a tenant's own settings, for its admins (the control room's tenant settings page).

The time zone, base currency, fiscal year start month and locale live in ingest's `tenants` row, the registry's
record. A change is validated as `tenants create` and `tenants locale` validate them (the same functions), written
and announced on the registry (signed, `tenants.announce`) in one transaction, exactly as the CLI's commands do;
kpi, coaching and recognition take it from there:

- time zone, fiscal year start month, currency: kpi recounts every figure of the tenant from its stored deals and
  activities (`repository.register_tenant` says the calendar or currency changed); coaching and recognition
  count pace, streaks and quotas with the new calendar from their next batch;
- locale: nothing is recounted; figures are written the new way from the next page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from services.ingest import tenant_settings, tenants
from services.ingest.auth import AdminPrincipal, Context
from services.ingest.crm_api import LimitedBody
from shared import audit
from shared.db import tenant_tx

router = APIRouter(prefix="/v1/settings", tags=["tenants"], route_class=LimitedBody)


class SettingsIn(BaseModel):
    """The settings to change; a field left out stays as it is."""

    timezone: Annotated[str, Field(max_length=100, examples=["Europe/Berlin"])] | None = None
    currency: Annotated[str, Field(max_length=10, examples=["EUR"])] | None = None
    fiscal_start_month: int | None = Field(default=None, examples=[1])
    locale: Annotated[str, Field(max_length=50, examples=["de_DE"])] | None = None


class SettingsOut(BaseModel):
    tenant: str
    timezone: str
    currency: str
    fiscal_start_month: int
    locale: str
    changed: list[str] = Field(default_factory=list, description="the fields this request changed")


@router.get("", response_model=SettingsOut)
async def get_settings(who: AdminPrincipal, ctx: Context) -> dict[str, Any]:
    """The tenant's time zone, base currency, fiscal year start month and locale."""
    async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
        found = await tenant_settings.current(conn, who.tenant)
    if found is None:
        raise HTTPException(404, f"no active tenant {who.tenant!r}")
    return {"tenant": who.tenant, **found}


@router.put("", response_model=SettingsOut, responses={422: {"description": "a field's value is refused, by name"}})
async def put_settings(who: AdminPrincipal, ctx: Context, body: SettingsIn) -> dict[str, Any]:
    """Change some of the settings; the registry entry is announced again (signed) in the same transaction, and
    kpi recounts the tenant's figures when the time zone, fiscal year start or currency changed."""
    try:
        wanted = tenant_settings.checked(body.model_dump(exclude_none=True))
        async with tenant_tx(ctx.rt.pool, who.tenant) as conn:
            now, changed = await tenant_settings.change(conn, who.tenant, wanted, signer=ctx.signer,
                                                          actor=audit.actor_of(who))
    except tenants.TenantError as err:
        raise HTTPException(404 if str(err).startswith("no active tenant") else 422, str(err)) from err
    if changed:
        ctx.rt.relay.wake()
    return {"tenant": who.tenant, **now, "changed": changed}
