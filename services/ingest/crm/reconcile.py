"""Reconciliation: every CRM_RECONCILE_INTERVAL_S, for each tenant with API access to a CRM, what the CRM's API says
changed since the last pass is delivered as a webhook's changes are; whatever that publishes is what the webhooks
missed: its events say `source` "reconciliation", and attain_ingest_crm_reconciled_total{crm,kind} counts them.

Policy:
- A pass of one kind (deals, activities) reads from its watermark less CRM_RECONCILE_OVERLAP_S (the CRM's indexing
  delay). The first time a tenant's CRM is seen with API access the watermark is set (where a finished backfill
  stopped, else the settle time) and the first pass comes an interval later: what changed before is history.
- A change newer than CRM_RECONCILE_SETTLE_S is left for the next pass (its webhook may be on the way), and the
  watermark stops before it (`backfill_rules.settled`).
- What was delivered already publishes nothing again: a deal's state equals what was emitted, an activity is
  noted in `crm_activities` whichever way it came (`CrmPipeline.apply`).
- Each page is applied in a transaction of its own, no connection held while the CRM answers; the watermark
  advances only when the whole pass succeeded (a failed pass reads the same again next time: harmless).
- A kind whose backfill is running is not reconciled (the backfill reads it; its events are not "missed").
- A Salesforce deals pass that covered a Change Data Capture gap closes it (`stream_store.clear_gap`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

import asyncpg
from prometheus_client import Counter

from services.ingest.crm import backfill_rules, backfill_store, stream_store
from services.ingest.crm.backfill import backfiller, open_tenant, read_page, runner_id
from services.ingest.crm.backfill_rules import KINDS, Kind
from services.ingest.crm.backfill_store import LeaseLost
from services.ingest.crm.model import Change, Crm
from services.ingest.crm.pipeline import CrmPipeline
from services.ingest.crm.reading.model import CrmReader, ReadingError
from services.ingest.crm.salesforce_stream import OPPORTUNITY_CHANGES
from services.ingest.intake import KafkaUnavailable
from services.ingest.settings import IngestSettings
from shared.clock import Clock
from shared.consumer import TRANSIENT
from shared.db import sweep_tx, tenant_tx
from shared.secret_box import SecretBox
from shared.service import Runtime

log = logging.getLogger(__name__)
SOURCE = "reconciliation"
RECONCILED = Counter("attain_ingest_crm_reconciled_total",
                     "Canonical events published by reconciliation: changes the CRM's webhooks missed.",
                     ["crm", "kind"])


class Reconciler:
    """Runs reconciliation passes (module docstring)."""

    def __init__(self, pool: asyncpg.Pool, pipeline: CrmPipeline, box: SecretBox,
                 reader: Callable[[Crm], CrmReader], clock: Clock, *, every: timedelta, overlap: timedelta,
                 settle: timedelta, lease: timedelta, runner: str | None = None) -> None:
        self._pool, self._pipeline, self._box, self._reader, self._clock = pool, pipeline, box, reader, clock
        self._every, self._overlap, self._settle, self._lease = every, overlap, settle, lease
        self.runner = runner or runner_id()

    async def run(self, slug: str, crm: Crm) -> dict[str, int]:
        """A pass of each kind that is due; what each found missed (kinds not passed are left out)."""
        found: dict[str, int] = {}
        for kind in KINDS:
            missed = await self.run_kind(slug, crm, kind)
            if missed is not None:
                found[kind] = missed
        return found

    async def run_kind(self, slug: str, crm: Crm, kind: Kind) -> int | None:
        """One pass of `kind` when due and free: how many events it published (None: not run, or failed)."""
        now = self._clock.now()
        async with tenant_tx(self._pool, slug) as conn:
            if await backfill_store.backfill_running(conn, slug, crm, kind):
                return None
            first = await backfill_store.backfill_high_water(conn, slug, crm, kind) or now - self._settle
            taken, watermark = await backfill_store.take_pass(conn, slug, crm, kind, self.runner, now, self._every,
                                                              self._lease, first)
            if not taken:
                return None
            opened = await open_tenant(conn, slug, crm, self._box, self._clock)
        since = backfill_rules.reconcile_window(watermark, first, self._overlap)
        read = missed = 0
        top: datetime | None = None
        try:
            if opened is None or opened.access is None:
                raise ReadingError(f"no API access to {crm}")
            reader, cursor = self._reader(crm), None
            while True:
                page = await read_page(reader, kind, opened.access, since, cursor, opened.properties)
                judged = backfill_rules.settled(page.records, page.high_water, now, self._settle)
                changes: list[Change] = list(judged.changes)
                prepared = await self._pipeline.prepare(opened.tenant, crm, changes)
                async with tenant_tx(self._pool, slug) as conn:
                    await backfill_store.hold_pass(conn, slug, crm, kind, self.runner)
                    summary = await self._pipeline.apply(conn, opened.tenant, crm, prepared, source=SOURCE)
                read += len(page.records)
                missed += summary.accepted
                RECONCILED.labels(crm, kind).inc(summary.accepted)
                if judged.watermark is not None:
                    top = judged.watermark if top is None else max(top, judged.watermark)
                if page.cursor is None:
                    break
                cursor = page.cursor
        except LeaseLost:
            return None
        except (ReadingError, KafkaUnavailable, *TRANSIENT) as err:
            log.warning("crm reconciliation failed", extra={"tenant": slug, "crm": crm, "kind": kind,
                                                            "error": str(err)})
            async with tenant_tx(self._pool, slug) as conn:
                await backfill_store.pass_failed(conn, slug, crm, kind, self.runner, f"{type(err).__name__}: {err}",
                                                 self._clock.now())
            return None
        async with tenant_tx(self._pool, slug) as conn:
            await backfill_store.pass_done(conn, slug, crm, kind, self.runner, top or since, read, missed,
                                           self._clock.now())
            if crm == "salesforce" and kind == "deals":
                await stream_store.clear_gap(conn, slug, OPPORTUNITY_CHANGES, since)
        if missed:
            log.warning("crm webhooks missed changes; reconciliation published them",
                        extra={"tenant": slug, "crm": crm, "kind": kind, "published": missed, "since": since})
        return missed


def reconciler(rt: Runtime) -> Reconciler:
    """The runtime's reconciler (CRM_RECONCILE_* settings; the backfill's readers)."""
    settings = rt.settings
    assert isinstance(settings, IngestSettings)
    readers = backfiller(rt, rt.context.crm, rt.context.box)
    return Reconciler(rt.pool, rt.context.crm, rt.context.box, readers.reader, rt.clock,
                      every=timedelta(seconds=settings.crm_reconcile_interval_s),
                      overlap=timedelta(seconds=settings.crm_reconcile_overlap_s),
                      settle=timedelta(seconds=settings.crm_reconcile_settle_s),
                      lease=timedelta(seconds=settings.crm_backfill_lease_s))


async def reconcile_forever(rt: Runtime) -> None:
    """Every minute (at most every CRM_RECONCILE_INTERVAL_S): a pass for each tenant and CRM that is due."""
    settings = rt.settings
    assert isinstance(settings, IngestSettings)
    passes = reconciler(rt)
    every = timedelta(seconds=settings.crm_reconcile_interval_s)
    while True:
        try:
            async with sweep_tx(rt.pool) as conn:
                due = await backfill_store.reconciles_due(conn, rt.clock.now(), every)
            for tenant, crm in due:
                await passes.run(tenant, cast(Crm, crm))
        except TRANSIENT as err:
            log.warning("crm reconciliation sweep failed, will retry", extra={"error": repr(err)})
        await asyncio.sleep(min(60.0, settings.crm_reconcile_interval_s))
