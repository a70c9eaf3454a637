"""The inbox, batched: which of a batch's derived events were never applied before (ARCHITECTURE.md).

Consumers of derived topics deduplicate by CloudEvents identity (tenant, source, id). One statement
claims a whole batch: the rows it inserts are the events applied now; a conflict (applied in an
earlier batch, or earlier in this one) is a duplicate. The claim commits with the state it guards,
in the batch's one transaction, so a rolled-back batch claims nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import asyncpg
from prometheus_client import Counter, Gauge

from shared import retention
from shared.cloudevents import CloudEvent


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


# --- retention: the inbox stays bounded (shared/retention.py, through shared/migrations/004) --------------

EXPIRY = retention.Expiry(
    "inbox-retention", "sweep_expired_inbox", "inbox",
    Gauge("attain_inbox_rows", "Derived-event ids remembered for deduplication (estimate)."),
    Counter("attain_inbox_pruned_total", "Inbox ids forgotten after INBOX_RETENTION_DAYS."))


async def prune_once(pool: asyncpg.Pool, kept: timedelta, batch: int = retention.BATCH) -> int:
    """Forget every tenant's inbox ids older than `kept`, `batch` rows per transaction; return how many."""
    return await retention.prune_once(pool, EXPIRY, kept, batch)


async def prune_forever(pool: asyncpg.Pool, kept: timedelta) -> None:
    """The timer every service runs (shared/service.py)."""
    await retention.prune_forever(pool, EXPIRY, kept)
