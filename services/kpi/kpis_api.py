"""The KPIs a tenant defines (issue 22, item 5: `custom.py`): admins define, change and remove them; every role
reads the list (a KPI is a metric name like the built-in ones, in targets, leaderboards and contests).

Defining or changing a KPI counts it at once from the deals and activities kpi stores (a KPI defined
mid-period has its figures for the whole period), under the tenant's exclusive lock so that no batch counts
in between, and publishes the figures of it that have a target, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel

from services.kpi import repository as repo
from services.kpi.custom import BUILT_IN, Aggregation, Kpi, KpiDefinition, KpiFilter, Source
from services.kpi.handlers import republish
from services.kpi.ports import PgRepository
from shared import audit
from shared.auth import Admin, Anyone
from shared.db import tenant_tx
from shared.service import Runtime, runtime_of

router = APIRouter(prefix="/v1", tags=["kpis"])
Rt = Annotated[Runtime, Depends(runtime_of)]
KpiId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=["demos_held"])]


class KpiOut(BaseModel):
    kpi_id: str
    name: str
    source: Source
    filter: KpiFilter
    aggregation: Aggregation
    updated_at: datetime


def _out(kpi_id: str, definition: KpiDefinition, at: datetime) -> KpiOut:
    return KpiOut(kpi_id=kpi_id, name=definition.name, source=definition.source, filter=definition.filter,
                  aggregation=definition.aggregation, updated_at=at)


@router.put("/kpis/{kpi_id}", response_model=KpiOut, responses={401: {}, 403: {}, 422: {}})
async def put_kpi(kpi_id: KpiId, body: KpiDefinition, who: Admin, rt: Rt) -> KpiOut:
    """Define or change a KPI (admins): a filter over deals or activities and an aggregation. It is counted at
    once from what kpi stores, for every period, and its targeted figures are published."""
    if kpi_id in BUILT_IN:
        raise HTTPException(422, f"kpi_id: {kpi_id!r} is a built-in metric; choose another id")
    tenant, now = who.tenant, rt.clock.now()
    async with tenant_tx(rt.pool, tenant) as conn:
        await repo.lock_tenant(conn, tenant, exclusive=True)  # no batch counts while it is recounted
        await repo.put_kpi(conn, tenant, kpi_id, body, now)
        await audit.record(conn, tenant=tenant, who=who, action="kpi.defined", subject=f"kpi:{kpi_id}", before=None,
                           after=body.model_dump(mode="json"), at=now, service="kpi")
        keys = await repo.recount_kpi(conn, tenant, Kpi.of(kpi_id, body))
        await republish(PgRepository(conn), tenant, keys, now)
    rt.relay.wake()
    return _out(kpi_id, body, now)


@router.get("/kpis", response_model=list[KpiOut], responses={401: {}})
async def list_kpis(who: Anyone, rt: Rt) -> list[KpiOut]:
    """The tenant's own KPIs (every role: their names appear on leaderboards and contests)."""
    async with tenant_tx(rt.pool, who.tenant) as conn:
        return [_out(*row) for row in await repo.kpi_definitions(conn, who.tenant)]


@router.delete("/kpis/{kpi_id}", status_code=204, responses={401: {}, 403: {}, 404: {}, 409: {}})
async def delete_kpi(kpi_id: KpiId, who: Admin, rt: Rt) -> None:
    """Remove a KPI and its figures (admins). Its targets stay, and count again if it is defined again. 409
    while a contest that is not over ranks by it."""
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        await repo.lock_tenant(conn, tenant, exclusive=True)
        using = [s.contest.contest_id for s in await repo.open_contests(conn, tenant) if s.contest.metric == kpi_id]
        if using:
            raise HTTPException(409, f"kpi {kpi_id!r} ranks contest(s) {', '.join(using)}: cancel them first")
        if not await repo.delete_kpi(conn, tenant, kpi_id):
            raise HTTPException(404, f"no kpi {kpi_id!r}")
        await audit.record(conn, tenant=tenant, who=who, action="kpi.removed", subject=f"kpi:{kpi_id}",
                           before={"kpi_id": kpi_id}, after=None, at=rt.clock.now(), service="kpi")
