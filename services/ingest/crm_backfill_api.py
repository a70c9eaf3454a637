"""Reading a tenant's CRM through its API, for its admins (issue 21; `crm/backfill.py`, `crm/reconcile.py`):

- `POST /v1/crm/{crm}/backfill` (admin): import the deals and activities changed since the start of the tenant's
  current fiscal year (or `since`); answered at once (202), the work done by ingest's backfill timer, resumed after
  a restart. `{"resume": true}` sets a failed job going again from where it stopped. 409 while one is running or
  when the tenant gave no API access to the CRM.
- `GET /v1/crm/{crm}/backfill` (admin, integration): each kind's progress (pages, records read, events published,
  refused, dead-lettered, the latest modification time read), and the reconciliation's watermark and what the
  webhooks missed.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import AwareDatetime, BaseModel, ConfigDict

from services.ingest.auth import AdminTenant, Context, Holder, ReaderTenant
from services.ingest.crm import backfill_store
from services.ingest.crm.backfill import BackfillRefused, request_backfill
from services.ingest.crm_api import Crm, LimitedBody
from shared import audit
from shared.db import tenant_tx

router = APIRouter(prefix="/v1/crm", tags=["crm backfill"], route_class=LimitedBody)


class BackfillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime | None = None  # default: the start of the tenant's current fiscal year
    resume: bool = False  # go on with a failed job from its cursor instead of starting again


class JobOut(BaseModel):
    kind: str
    status: str  # running, done, failed
    phase: str  # queued, reading, throttled (a rate limit: until resume_at), retrying, finished
    since: datetime
    high_water: datetime | None
    pages: int
    read: int
    published: int
    refused: int
    dead_lettered: int
    failures: int
    error: str | None
    resume_at: datetime | None
    requested_at: datetime
    requested_by: str | None
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None


class ReconciliationOut(BaseModel):
    kind: str
    watermark: datetime | None
    passes: int
    last_pass_at: datetime | None
    last_read: int
    last_missed: int
    missed_total: int
    last_error: str | None
    error_at: datetime | None


class BackfillOut(BaseModel):
    crm: str
    jobs: list[JobOut]
    reconciliation: list[ReconciliationOut]


def _job(job: backfill_store.Job) -> JobOut:
    fields = asdict(job)
    fields.pop("crm")
    fields.pop("cursor")  # opaque, and of no use to a reader
    fields["read"] = fields.pop("read_count")
    return JobOut(**fields)


async def _progress(ctx: Context, tenant: str, crm: str) -> BackfillOut:
    async with tenant_tx(ctx.rt.pool, tenant) as conn:
        jobs = await backfill_store.jobs(conn, tenant, crm)
        marks = await backfill_store.watermarks(conn, tenant, crm)
    reconciliation = []
    for mark in marks:
        fields = asdict(mark)
        fields.pop("crm")
        reconciliation.append(ReconciliationOut(**fields))
    return BackfillOut(crm=crm, jobs=[_job(j) for j in jobs], reconciliation=reconciliation)


@router.post("/{crm}/backfill", response_model=BackfillOut, status_code=202, responses={
    409: {"description": "a backfill of this CRM is running, or the tenant gave no API access to it"}})
async def post_backfill(crm: Crm, tenant: AdminTenant, who: Holder, ctx: Context,
                        body: BackfillIn | None = None) -> BackfillOut:
    """Start importing the deals and activities changed since `since` (default: the start of the tenant's current
    fiscal year), or with `resume` go on with a failed one. Progress: `GET` the same path."""
    asked = body or BackfillIn()
    now = ctx.rt.clock.now()
    async with tenant_tx(ctx.rt.pool, tenant.slug) as conn:
        try:
            since = await request_backfill(conn, tenant, crm, asked.since, asked.resume, now, ctx.box,
                                           f"token:{who.token_id}")
        except BackfillRefused as err:
            raise HTTPException(409, str(err)) from None
        await audit.record(conn, tenant=tenant.slug, who=who, action="crm.backfill.requested",
                           subject=f"crm:{crm}/backfill", before=None,
                           after={"since": since.isoformat(), "resume": asked.resume}, at=now, service="ingest")
    return await _progress(ctx, tenant.slug, crm)


@router.get("/{crm}/backfill", response_model=BackfillOut)
async def get_backfill(crm: Crm, tenant: ReaderTenant, ctx: Context) -> BackfillOut:
    """Each kind's backfill progress, and the reconciliation's watermark and what webhooks missed."""
    return await _progress(ctx, tenant.slug, crm)
