"""recognition's HTTP API, tenant-scoped by the bearer token: the celebrations (contract), each rep's
trophy case, and the tenant's settings (thresholds, switched-off kinds, locale, headline templates)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import ValidationError

from services.recognition import repository as repo
from services.recognition.model import Settings
from services.recognition.rules import quota_crossings
from shared.auth import ReadTenant
from shared.db import tenant_tx
from shared.events import Metric, Scope
from shared.service import Runtime, runtime_of

router = APIRouter(prefix="/v1", tags=["recognition"])
Rt = Annotated[Runtime, Depends(runtime_of)]


def _celebration(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["celebration_id"] = str(out["celebration_id"])
    out["value"] = format(out["value"], "f")
    out["facts"] = json.loads(out["facts"]) if isinstance(out["facts"], str) else out["facts"]
    out.pop("status", None)
    return out


@router.get("/celebrations")
async def list_celebrations(rt: Rt, tenant: ReadTenant, scope_id: str | None = None, period: str | None = None,
                            limit: Annotated[int, Query(ge=1, le=500)] = 100,
                            before: datetime | None = None) -> dict[str, Any]:
    """Celebrations, newest first; `before` (an `occurred_at`) pages back."""
    async with tenant_tx(rt.pool, tenant) as conn:
        rows = await repo.celebrations(conn, tenant, scope_id=scope_id, period=period, limit=limit, before=before)
    items = [_celebration(r) for r in rows]
    return {"celebrations": items, "next_before": items[-1]["occurred_at"] if len(items) == limit else None}


@router.get("/reps/{rep_id}/trophies")
async def trophy_case(rt: Rt, tenant: ReadTenant, rep_id: str) -> dict[str, Any]:
    """Every milestone the rep has reached, newest first, with what each headline said."""
    async with tenant_tx(rt.pool, tenant) as conn:
        rows = await repo.celebrations(conn, tenant, scope_id=rep_id, period=None, limit=1000)
        profile = await repo.rep(conn, tenant, rep_id)
    trophies = [_celebration(r) for r in rows if r["scope"] == Scope.REP.value]
    return {"rep_id": rep_id, "name": profile["name"] if profile else None, "count": len(trophies),
            "trophies": trophies}


@router.get("/recognition/settings")
async def get_settings(rt: Rt, tenant: ReadTenant) -> dict[str, Any]:
    async with tenant_tx(rt.pool, tenant) as conn:
        own = await repo.overrides(conn, tenant)
    return {"overrides": own, "effective": Settings.model_validate(own).model_dump(mode="json")}


@router.put("/recognition/settings")
async def put_settings(rt: Rt, tenant: ReadTenant, overrides: dict[str, Any]) -> dict[str, Any]:
    """Replace the tenant's overrides. A quota threshold or kind switched on now does not fire for figures
    already past it: those are put in the ledger quietly (`catch_up` counts them) and are never celebrated,
    so only genuine crossings from now on are."""
    try:
        fresh = Settings.model_validate(overrides)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise HTTPException(422, problems) from err
    caught_up = 0
    async with tenant_tx(rt.pool, tenant) as conn:
        await repo.set_overrides(conn, tenant, overrides)
        rows = await conn.fetch("SELECT scope, scope_id, period, metric, actual, target, attainment, name, as_of"
                                " FROM attainment WHERE tenant = $1 AND target > 0", tenant)
        for r in rows:
            for found in quota_crossings(Scope(r["scope"]), r["scope_id"], r["period"], Metric(r["metric"]), None,
                                         r["attainment"], r["actual"], r["target"], r["as_of"], fresh, r["name"]):
                caught_up += await repo.record(conn, tenant, found, "(already past when switched on)",
                                               status="baseline", metric=r["metric"]) is not None
    return {"overrides": overrides, "effective": fresh.model_dump(mode="json"), "catch_up": caught_up}
