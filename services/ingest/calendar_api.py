"""The tenant calendar through the API, for admins: `GET /v1/calendar`, `POST /v1/calendar/days`,
`DELETE /v1/calendar/days/{day}`. The same change as `python -m services.ingest tenants holidays` (one path:
`tenants.set_holidays`), announced on the registry in its transaction, so kpi, coaching and recognition count
the same working days."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from services.ingest import tenants
from services.ingest.auth import AdminPrincipal, Context, ReaderTenant
from services.ingest.crm_api import LimitedBody
from shared import audit
from shared.authz import Principal
from shared.db import tenant_tx
from shared.events import Text
from shared.workdays import NO_CALENDAR, HolidayCalendar

router = APIRouter(prefix="/v1/calendar", tags=["calendar"], route_class=LimitedBody)


class DayIn(BaseModel):
    """A day off of the tenant's own (a company day, a bridge day), or a new name for one."""

    model_config = ConfigDict(extra="forbid")
    day: date
    name: Annotated[Text, Field(min_length=1, max_length=200)]


def described(calendar: HolidayCalendar, year: int) -> dict[str, Any]:
    """The calendar (as `tenants holidays` prints it) and its holidays of `year`, each saying whether the tenant
    added it (`added`) or it is the country's (`public`)."""
    listed = sorted(calendar.between(date(year, 1, 1), date(year, 12, 31)).items())
    return {**calendar.to_json(), "year": year,
            "holidays": [{"day": d.isoformat(), "name": n, "source": "added" if d in calendar.added else "public"}
                         for d, n in listed]}


async def _change(ctx: Context, who: Principal, year: int, **change: Any) -> dict[str, Any]:
    tenant = who.tenant
    try:
        async with tenant_tx(ctx.rt.pool, tenant) as conn:
            calendar = await tenants.set_holidays(conn, tenant, signer=ctx.signer, actor=audit.actor_of(who), **change)
    except tenants.TenantError as err:
        raise HTTPException(422, str(err)) from err
    ctx.rt.relay.wake()
    return described(calendar, year)


def _this_year(ctx: Context, timezone: str) -> int:
    return ctx.rt.clock.now().astimezone(ZoneInfo(timezone)).year


@router.get("")
async def get_calendar(tenant: ReaderTenant, ctx: Context,
                       year: Annotated[int | None, Query(ge=1900, le=2999)] = None) -> dict[str, Any]:
    """The tenant calendar: its country (and subdivision) whose public holidays count, the days it added and
    the public holidays it works (`removed`), and its holidays of `year` (default: this year in its zone)."""
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        raw = await conn.fetchval("SELECT holidays FROM tenants WHERE slug = $1", tenant.slug)
    calendar = NO_CALENDAR if raw is None else HolidayCalendar.of(raw, tenant.slug)
    return described(calendar, year or _this_year(ctx, tenant.timezone))


@router.post("/days")
async def add_day(who: AdminPrincipal, ctx: Context, body: DayIn,
                  year: Annotated[int | None, Query(ge=1900, le=2999)] = None) -> dict[str, Any]:
    """Add a day off (or rename one the tenant added; a public holiday it worked counts again), announced. The
    answer lists the holidays of `year` (default: the day's year)."""
    return await _change(ctx, who, year or body.day.year, add={body.day: body.name})


@router.delete("/days/{day}")
async def remove_day(who: AdminPrincipal, ctx: Context, day: date,
                     year: Annotated[int | None, Query(ge=1900, le=2999)] = None) -> dict[str, Any]:
    """Take a day out: a day the tenant added is dropped, a public holiday is worked. Announced. The answer lists
    the holidays of `year` (default: the day's year)."""
    return await _change(ctx, who, year or day.year, remove=frozenset({day}))
