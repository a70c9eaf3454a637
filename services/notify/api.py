"""notify's API: what could not be delivered, for the control room (admins only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from services.notify.repository import PgRepository
from shared.auth import Admin
from shared.db import tenant_tx
from shared.service import Runtime, runtime_of

router = APIRouter(prefix="/v1/notify", tags=["notify"])
Rt = Annotated[Runtime, Depends(runtime_of)]
Status = Literal["pending", "sent", "failed", "dead"]


@router.get("/deliveries")
async def list_deliveries(rt: Rt, who: Admin, status: Status | None = None,
                          limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """The tenant's deliveries, newest first (``status=dead``: those kept with the reason they failed)."""
    async with tenant_tx(rt.pool, who.tenant) as conn:
        rows = await PgRepository(conn).deliveries(who.tenant, status, limit)
    return {"deliveries": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                           for r in rows]}
