"""The backfill: a tenant's deals and activities changed since the start of its fiscal year (or a `since` it names),
read through the CRM's API page by page (crm/reading) and delivered as a webhook's changes are (`CrmPipeline`).

Policy:
- One transaction per page: the page's effect (deal states merged, events claimed and published, activities noted)
  and the job's cursor and counts commit together (`CrmPipeline.apply` on the runner's connection, then
  `backfill_store.save_page`). A job killed midway resumes after the last page stored; a page redone after a crash
  before its commit publishes the same event ids again (a deal's id names its version, an activity's its reading),
  which the consumers drop; a page already stored changes nothing when read again (each deal's emitted version, the
  activities noted in `crm_activities`).
- No connection is held while the CRM answers: the page is read, what it leaves incomplete fetched
  (`CrmPipeline.prepare`), and only then a connection taken for the page's transaction.
- The CRM's rate limits: the reader waits short pauses in place (`transport.Calls`); a longer one (`RateLimited`, a
  daily budget spent) gives the lease up and the job waits until then (`backfill_rules.after_failure`). Any other
  failure is tried again with doubling pauses; the job fails after `MAX_FAILURES` in a row, its cursor kept (a
  request with `resume` goes on from it).
- History is not celebrated: events keep the CRM's own times (a deal's `updated_at` and `closed_at`, an activity's
  `occurred_at`), so recognition records milestones older than the tenant's history horizon quietly.
- The timer (`backfill_forever`) takes every due job every CRM_BACKFILL_POLL_S, a few at a time, under a lease
  renewed each page: a job a stopped replica left running is taken over when its lease ends, by any replica.
Events say `source` "backfill".
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import asyncpg
from prometheus_client import Counter

from services.ingest.crm import backfill_rules, backfill_store
from services.ingest.crm.backfill_rules import Kind
from services.ingest.crm.backfill_store import LeaseLost, PageDone
from services.ingest.crm.fetch import CrmAccess, load_access
from services.ingest.crm.model import ActivityChange, Change, Crm, DealChange
from services.ingest.crm.pipeline import CrmPipeline, load_properties
from services.ingest.crm.reading.model import CrmReader, Page, RateLimited, ReadingError
from services.ingest.crm.reading.readers import reader_for
from services.ingest.crm.reading.transport import GuardedTransport
from services.ingest.intake import KafkaUnavailable
from services.ingest.settings import IngestSettings
from services.ingest.tenants import Tenant, by_slug
from shared.clock import Clock
from shared.consumer import TRANSIENT
from shared.db import sweep_tx, tenant_tx
from shared.secret_box import SecretBox
from shared.service import Runtime

log = logging.getLogger(__name__)
SOURCE = "backfill"
RECORDS = Counter("attain_ingest_crm_backfill_records_total",
                  "Records a backfill read from a CRM's API, by what became of them (published: a canonical event;"
                  " refused: unreadable; dead_lettered: not mappable yet).", ["crm", "kind", "outcome"])


def runner_id() -> str:
    """This process's name on the leases it takes."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def read_page(reader: CrmReader, kind: Kind, access: CrmAccess, since: datetime, cursor: str | None,
                    properties: tuple[str, ...]) -> Page[DealChange] | Page[ActivityChange]:
    """One page of `kind` changed since `since`, from `cursor` on."""
    if kind == "deals":
        return await reader.changed_deals(access, since, cursor, properties)
    return await reader.changed_activities(access, since, cursor, properties)


@dataclass(frozen=True)
class Opened:
    """What a run needs from the database before it reads the CRM (then the connection goes back)."""

    tenant: Tenant
    access: CrmAccess | None
    properties: tuple[str, ...]


async def open_tenant(conn: asyncpg.Connection, slug: str, crm: str, box: SecretBox, clock: Clock) -> Opened | None:
    tenant = await by_slug(conn, slug)
    if tenant is None:
        return None
    access = await load_access(conn, slug, crm, box, clock.now())
    return Opened(tenant, access, await load_properties(conn, slug, crm))


class BackfillRefused(Exception):
    """A backfill cannot be requested now (one is running; no API access; nothing failed to resume)."""


async def request_backfill(conn: asyncpg.Connection, tenant: Tenant, crm: Crm, since: datetime | None, resume: bool,
                           now: datetime, box: SecretBox, by: str) -> datetime:
    """Ask for a backfill of `crm` since `since` (None: the start of the tenant's current fiscal year), or with
    `resume` set the failed one going again from its cursor; the timer does the work. The `since` asked for."""
    start = since or backfill_rules.fiscal_year_start(now, tenant.timezone, tenant.fiscal_start_month)
    if await load_access(conn, tenant.slug, crm, box, now) is None:
        raise BackfillRefused(f"no API access to {crm}: connect it with OAuth or set an API token first")
    if resume:
        if not await backfill_store.resume_failed(conn, tenant.slug, crm, now):
            raise BackfillRefused(f"no failed backfill of {crm} to resume")
    elif await backfill_store.request(conn, tenant.slug, crm, backfill_rules.KINDS, start, now, by) is None:
        raise BackfillRefused(f"a backfill of {crm} is running: see GET /v1/crm/{crm}/backfill")
    return start


class Backfiller:
    """Runs backfill jobs (module docstring)."""

    def __init__(self, pool: asyncpg.Pool, pipeline: CrmPipeline, box: SecretBox, reader: Callable[[Crm], CrmReader],
                 clock: Clock, lease: timedelta, runner: str | None = None) -> None:
        self._pool, self._pipeline, self._box, self.reader = pool, pipeline, box, reader
        self._clock, self._lease, self.runner = clock, lease, runner or runner_id()

    async def run(self, slug: str, crm: Crm, kind: Kind) -> str:
        """Work the job until it is done, must wait, fails or is taken over; what became of it."""
        async with tenant_tx(self._pool, slug) as conn:
            taken = await backfill_store.take(conn, slug, crm, kind, self.runner, self._clock.now(), self._lease)
            opened = await open_tenant(conn, slug, crm, self._box, self._clock) if taken else None
        if taken is None or opened is None:
            return "not taken"
        since, cursor, failures = taken
        access = opened.access
        reader = self.reader(crm)
        try:
            while True:
                if access is None:
                    raise ReadingError(f"no API access to {crm}: set an API token or connect {crm} with OAuth")
                page = await read_page(reader, kind, access, since, cursor, opened.properties)
                changes: list[Change] = list(page.records)
                prepared = await self._pipeline.prepare(opened.tenant, crm, changes)
                async with tenant_tx(self._pool, slug) as conn:
                    await backfill_store.hold(conn, slug, crm, kind, self.runner, cursor)
                    summary = await self._pipeline.apply(conn, opened.tenant, crm, prepared, source=SOURCE)
                    done = PageDone(page.cursor, page.high_water, len(page.records) + len(page.refused),
                                    len(page.refused), summary.accepted, summary.dead_lettered)
                    await backfill_store.save_page(conn, slug, crm, kind, done, self._clock.now(), self._lease)
                    access = await load_access(conn, slug, crm, self._box, self._clock.now())
                for outcome, count in (("published", done.published), ("refused", done.refused),
                                       ("dead_lettered", done.dead_lettered)):
                    RECORDS.labels(crm, kind, outcome).inc(count)
                if page.cursor is None:
                    log.info("crm backfill done", extra={"tenant": slug, "crm": crm, "kind": kind})
                    return "done"
                cursor, failures = page.cursor, 0
        except LeaseLost:
            log.warning("crm backfill taken over", extra={"tenant": slug, "crm": crm, "kind": kind})
            return "taken over"
        except (ReadingError, KafkaUnavailable, *TRANSIENT) as err:
            wait = err.wait_s if isinstance(err, RateLimited) else None
            after = backfill_rules.after_failure(self._clock.now(), failures, wait)
            log.warning("crm backfill paused" if after.status == "running" else "crm backfill failed",
                        extra={"tenant": slug, "crm": crm, "kind": kind, "error": str(err),
                               "resume_at": after.resume_at})
            async with tenant_tx(self._pool, slug) as conn:
                await backfill_store.failed(conn, slug, crm, kind, self.runner, f"{type(err).__name__}: {err}",
                                            after, self._clock.now())
            return after.phase


def backfiller(rt: Runtime, pipeline: CrmPipeline, box: SecretBox) -> Backfiller:
    """The runtime's backfiller: readers through the guarded transport, CRM_API_* settings."""
    settings = rt.settings
    assert isinstance(settings, IngestSettings)
    transport = GuardedTransport(timeout_s=settings.crm_api_timeout_s,
                                 allowed_hosts=settings.crm_api_allowed_hosts.split(","))

    def reader(crm: Crm) -> CrmReader:
        return reader_for(crm, transport, max_wait_s=settings.crm_read_max_wait_s)

    return Backfiller(rt.pool, pipeline, box, reader, rt.clock, timedelta(seconds=settings.crm_backfill_lease_s))


async def backfill_forever(rt: Runtime) -> None:
    """Every CRM_BACKFILL_POLL_S: take the due jobs (requested, resumed after a restart, done waiting), at most
    CRM_BACKFILL_CONCURRENCY at a time in this replica."""
    settings = rt.settings
    assert isinstance(settings, IngestSettings)
    runner = backfiller(rt, rt.context.crm, rt.context.box)
    running: dict[tuple[str, str, str], asyncio.Task[str]] = {}
    try:
        while True:
            for key, task in list(running.items()):
                if task.done():
                    del running[key]
                    if not task.cancelled() and (err := task.exception()) is not None:
                        log.error("crm backfill crashed", extra={"job": "/".join(key), "error": repr(err)},
                                  exc_info=err)
            try:
                async with sweep_tx(rt.pool) as conn:
                    due = await backfill_store.backfills_due(conn, rt.clock.now())
            except TRANSIENT as err:
                log.warning("crm backfill sweep failed, will retry", extra={"error": repr(err)})
                due = []
            for tenant, crm, kind in due:
                if (tenant, crm, kind) not in running and len(running) < settings.crm_backfill_concurrency:
                    running[(tenant, crm, kind)] = asyncio.create_task(
                        runner.run(tenant, cast(Crm, crm), kind), name=f"crm-backfill-{crm}-{kind}")
            await asyncio.sleep(settings.crm_backfill_poll_s)
    finally:
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
