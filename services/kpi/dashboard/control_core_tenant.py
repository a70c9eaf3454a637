"""The control room's tenant settings (see control_core.py): time zone, base currency, fiscal year start month and
locale, read from and written to ingest's `GET|PUT /v1/settings` with the admin's token (ingest validates,
stores and announces them on the registry, signed, as `tenants create` and `tenants locale` do). Each field says
what a change recomputes, as the services do it today (`services/ingest/tenant_settings_api.py`)."""

from __future__ import annotations

import calendar
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.kpi.dashboard.control import Admin, call, field, form_of, page, session_token
from services.kpi.dashboard.control_core_events import back
from services.kpi.dashboard.web import Rt

router = APIRouter(include_in_schema=False)
PATH = "/admin/settings"
WORDS = {"timezone": "time zone", "currency": "currency", "fiscal_start_month": "fiscal year start",
         "locale": "locale"}
# what changing each one recomputes (services/ingest/tenant_settings_api.py says how)
EFFECTS = {
    "timezone": "Periods begin and end at midnight in this zone. A change makes kpi recount every figure of every"
                " period from the deals and activities it holds (a deal closed late in the evening may fall in"
                " another day, month or quarter), and coaching and recognition judge pace and streaks in the new"
                " zone from their next batch. Targets keep their period labels.",
    "currency": "The base currency every money figure is counted in. A change makes kpi recount every money figure,"
                " converting each deal with the tenant's exchange rates into the new currency (a deal in a currency"
                " without a rate is left out until one is set). Targets are not converted: they keep their numbers.",
    "fiscal_start_month": "Quarters and years follow it. A change makes kpi recount every figure: a label such as"
                          " 2026-Q1 then names other months, and a quarter's targets keep their label, so they apply"
                          " to the new months. Coaching and recognition count with it from their next batch.",
    "locale": "How numbers, money and dates are written on the dashboard and in exports. Nothing is recounted:"
              " pages show the new way from the next load.",
}


@cache
def zones() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


@router.get(PATH)
async def settings_page(request: Request, rt: Rt, who: Admin) -> HTMLResponse:
    answer = await call(rt, "ingest", "GET", "/v1/settings", session_token(request))
    current: dict[str, Any] | None = answer.body if answer.ok and isinstance(answer.body, dict) else None
    return await page(request, rt, who, "control_tenant.html", "Tenant settings", current=current,
                      unavailable="" if current else f"ingest answered {answer.status}: {answer.detail}",
                      zones=zones(), months=list(enumerate(calendar.month_name))[1:], effects=EFFECTS)


@router.post(PATH)
async def save_settings(request: Request, rt: Rt, who: Admin) -> Response:
    form = await form_of(request)
    body: dict[str, Any] = {name: field(form, name) for name in ("timezone", "currency", "locale") if field(form, name)}
    month = field(form, "fiscal_start_month")
    if month:
        if not month.isdigit():
            return back(PATH, {}, error=f"Nothing was changed: fiscal year start {month!r} is not a month")
        body["fiscal_start_month"] = int(month)
    answer = await call(rt, "ingest", "PUT", "/v1/settings", session_token(request), json=body)
    if not answer.ok:
        return back(PATH, {}, error=f"Nothing was changed: {answer.detail or answer.status}")
    changed = [WORDS[c] for c in answer.body.get("changed", [])] if isinstance(answer.body, dict) else []
    if not changed:
        return back(PATH, {}, said="Nothing was different: nothing changed.")
    recount = any(c != "locale" for c in changed)
    return back(PATH, {}, said=f"Changed the {', '.join(changed)}." + (
        " kpi is recounting the tenant's figures with it (seconds to minutes, by the tenant's size)." if recount
        else " Pages show it from the next load."))
