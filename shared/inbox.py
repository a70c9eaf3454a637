"""The inbox, batched: which of a batch's derived events were never applied before (ARCHITECTURE.md).

Consumers of derived topics deduplicate by CloudEvents identity (tenant, source, id). One statement
claims a whole batch: the rows it inserts are the events applied now; a conflict (applied in an
earlier batch, or earlier in this one) is a duplicate. The claim commits with the state it guards,
in the batch's one transaction, so a rolled-back batch claims nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
from prometheus_client import Counter, Gauge

from shared import db, metrics
from shared.cloudevents import CloudEvent
from shared.consumer import transient

log = logging.getLogger(__name__)


async def claim_many(conn: asyncpg.Connection, events: Sequence[CloudEvent]) -> list[bool]:
    """Record `events` in the inbox; per event, in order, True for the first delivery ever (False for
    one applied before, and for a repeat of an id earlier in the same batch)."""
    if not events:
        return []
    rows = await conn.fetch(
        "INSERT INTO inbox (tenant, source, event_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING"
        " RETURNING tenant, source, event_id",
        [e.tenant for e in events], [e.source for e in events], [e.id for e in events])
    fresh = {(r[0], r[1], r[2]) for r in rows}
    out: list[bool] = []
    for e in events:
        key = (e.tenant, e.source, e.id)
        out.append(key in fresh)
        fresh.discard(key)  # a repeat inside the batch is a duplicate of the first
    return out


# --- retention: the inbox stays bounded ---------------------------------------------------------------

INBOX_ROWS = Gauge("attain_inbox_rows", "Derived-event ids remembered for deduplication (estimate).")
INBOX_PRUNED = Counter("attain_inbox_pruned_total", "Inbox ids forgotten after INBOX_RETENTION_DAYS.")
PRUNE_INTERVAL_S = 3600
PRUNE_BATCH = 10_000


async def prune_once(pool: asyncpg.Pool, retention: timedelta, batch: int = PRUNE_BATCH) -> int:
    """Forget every tenant's ids older than `retention`, `batch` rows per transaction (through the owner's
    `sweep_expired_inbox`: shared/migrations/004); return how many."""
    removed = 0
    while True:
        async with db.sweep_tx(pool) as conn:
            count = int(await conn.fetchval("SELECT sweep_expired_inbox($1::interval, $2)", retention, batch))
            removed += count
            if count < batch:
                INBOX_ROWS.set(await conn.fetchval(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = 'inbox'::regclass"))
        INBOX_PRUNED.inc(count)
        if count < batch:
            return removed


async def prune_forever(pool: asyncpg.Pool, retention: timedelta, interval_s: float = PRUNE_INTERVAL_S) -> None:
    """The timer every service runs: prune now, then every `interval_s`; a failed pass is counted and logged,
    and the next one runs anyway (the inbox would grow without bound)."""
    while True:
        try:
            removed = await prune_once(pool, retention)
            if removed:
                log.info("expired inbox ids forgotten", extra={"removed": removed})
        except Exception as err:
            metrics.count_timer_failure("inbox-retention", err, transient(err))
        await asyncio.sleep(interval_s)
