"""recognition's HTTP API, tenant-scoped by the bearer token: the celebrations (contract), each rep's
trophy case, and the tenant's settings (thresholds, switched-off kinds, locale, headline templates)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import ValidationError

from services.recognition.batch import baseline, first_sightings
from services.recognition.config import ConfigCache
from services.recognition.model import Entry, Settings
from services.recognition.repository import PgRepository
from shared import audit
from shared.auth import Admin, Anyone, Reader
from shared.db import tenant_tx
from shared.events import Scope
from shared.service import Runtime, runtime_of

router = APIRouter(prefix="/v1", tags=["recognition"])
Rt = Annotated[Runtime, Depends(runtime_of)]
BASELINE_HEADLINE = "(already past when switched on)"


def _celebration(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["celebration_id"] = str(out["celebration_id"])
    out["value"] = format(out["value"], "f")
    out["facts"] = json.loads(out["facts"]) if isinstance(out["facts"], str) else out["facts"]
    out.pop("status", None)
    return out


@router.get("/celebrations")
async def list_celebrations(rt: Rt, who: Anyone, scope_id: str | None = None, period: str | None = None,
                            limit: Annotated[int, Query(ge=1, le=500)] = 100,
                            before: datetime | None = None) -> dict[str, Any]:
    """Celebrations, newest first; `before` (an `occurred_at`) pages back. Public in the tenant: every role."""
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        rows = await PgRepository(conn).celebrations(tenant, scope_id=scope_id, period=period, limit=limit,
                                                     before=before)
    items = [_celebration(r) for r in rows]
    return {"celebrations": items, "next_before": items[-1]["occurred_at"] if len(items) == limit else None}


@router.get("/reps/{rep_id}/trophies")
async def trophy_case(rt: Rt, who: Anyone, rep_id: str) -> dict[str, Any]:
    """Every milestone the rep has reached, newest first, with what each headline said: celebrations, which
    every role of the tenant sees."""
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        repo = PgRepository(conn)
        rows = await repo.celebrations(tenant, scope_id=rep_id, period=None, limit=1000)
        profile = (await repo.profiles(tenant, [rep_id])).get(rep_id)
    trophies = [_celebration(r) for r in rows if r["scope"] == Scope.REP.value]
    return {"rep_id": rep_id, "name": profile.name if profile else None, "count": len(trophies),
            "trophies": trophies}


@router.get("/recognition/settings")
async def get_settings(rt: Rt, who: Reader) -> dict[str, Any]:
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        own = await PgRepository(conn).overrides(tenant)
    return {"overrides": own, "effective": Settings.model_validate(own).model_dump(mode="json")}


@router.put("/recognition/settings")
async def put_settings(rt: Rt, who: Admin, overrides: dict[str, Any]) -> dict[str, Any]:
    """Replace the tenant's overrides. A quota threshold or kind switched on now does not fire for figures
    already past it: those are put in the ledger quietly (`catch_up` counts them) and are never celebrated,
    so only genuine crossings from now on are. Every replica's consumer uses the new settings from its next
    batch on (the settings row's version moves; see `config.py`)."""
    try:
        fresh = Settings.model_validate(overrides)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise HTTPException(422, problems) from err
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        repo = PgRepository(conn)
        before = await repo.overrides(tenant)
        await repo.set_overrides(tenant, overrides)
        await audit.record(conn, tenant=tenant, who=who, action="recognition_settings.changed",
                           subject="recognition_settings:tenant", before=before, after=overrides,
                           at=rt.clock.now(), service="recognition")
        sightings = first_sightings(baseline(await repo.targeted_figures(tenant), fresh))
        created = await repo.record(tenant, [Entry(s.found, BASELINE_HEADLINE, s.metric, "baseline")
                                             for s in sightings])
    if isinstance(rt.context, ConfigCache):
        rt.context.forget(tenant)
    return {"overrides": overrides, "effective": fresh.model_dump(mode="json"),
            "catch_up": sum(cid is not None for cid in created)}
