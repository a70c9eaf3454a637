"""The id store stays bounded: ids older than ID_RETENTION_DAYS are forgotten, a batch at a time.

A CRM retry comes within minutes or hours; after the retention window a resent event would be
published again, and the consumers still absorb it (deal versions, activity ids, inboxes).
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Gauge

from services.ingest.settings import IngestSettings
from shared import retention
from shared.retention import Expiry
from shared.service import Runtime

ID_STORE = Expiry("id-retention", "sweep_expired_ids", "accepted_events",
                  Gauge("attain_ingest_id_store_rows", "Event ids remembered for deduplication (estimate)."))


async def prune_once(rt: Runtime, kept: timedelta) -> int:
    """Delete expired ids (through the owner's `sweep_expired_ids`, 006_sweeps.sql); return how many."""
    return await retention.prune_once(rt.pool, ID_STORE, kept)


async def prune_forever(rt: Runtime) -> None:
    settings = rt.settings
    assert isinstance(settings, IngestSettings)
    await retention.prune_forever(rt.pool, ID_STORE, timedelta(days=settings.id_retention_days))
