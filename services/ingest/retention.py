"""The id store stays bounded: ids older than ID_RETENTION_DAYS are forgotten, a batch at a time.

A CRM retry comes within minutes or hours; after the retention window a resent event would be
published again, and the consumers still absorb it (deal versions, activity ids, inboxes).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from prometheus_client import Gauge

from services.ingest.settings import IngestSettings
from shared import metrics
from shared.consumer import transient
from shared.db import sweep_tx
from shared.service import Runtime

log = logging.getLogger(__name__)
ID_STORE_ROWS = Gauge("attain_ingest_id_store_rows", "Event ids remembered for deduplication (estimate).")
INTERVAL_S = 3600
BATCH = 10_000


async def prune_once(rt: Runtime, retention: timedelta) -> int:
    """Delete expired ids; return how many."""
    removed = 0
    while True:
        async with sweep_tx(rt.pool) as conn:  # expiry is the same for every tenant (006_sweeps.sql)
            count = int(await conn.fetchval("SELECT sweep_expired_ids($1::interval, $2)", retention, BATCH))
            removed += count
            if count < BATCH:
                ID_STORE_ROWS.set(await conn.fetchval(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = 'accepted_events'::regclass"))
                return removed


async def prune_forever(rt: Runtime) -> None:
    settings = rt.settings
    assert isinstance(settings, IngestSettings)
    retention = timedelta(days=settings.id_retention_days)
    while True:
        try:
            removed = await prune_once(rt, retention)
            if removed:
                log.info("expired event ids forgotten", extra={"removed": removed})
        except Exception as err:  # never dies: the id store would grow without bound
            metrics.count_timer_failure("id-retention", err, transient(err))
        await asyncio.sleep(INTERVAL_S)
