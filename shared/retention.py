"""Forgetting expired ids in batches, on a timer that never dies: the inbox of every service
(shared/inbox.py) and ingest's id store (services/ingest/retention.py).

Each store names the owner's `sweep_*` function that deletes up to a batch of its expired rows across
tenants (a working role cannot span tenants on its own: shared/db.py) and returns how many, the table it
prunes (for the row estimate) and its metrics.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from prometheus_client import Counter, Gauge

from shared import db, metrics
from shared.consumer import transient

log = logging.getLogger(__name__)
INTERVAL_S = 3600
BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Expiry:
    """One store whose ids expire: `sweep(retention interval, lim integer) RETURNS bigint` prunes `table`."""

    component: str  # in logs and in the timer metrics (`metrics.count_timer_failure`)
    sweep: str
    table: str
    rows: Gauge  # the table's row estimate after a pass
    pruned: Counter | None = None


async def prune_once(pool: asyncpg.Pool, expiry: Expiry, retention: timedelta, batch: int = BATCH) -> int:
    """Forget every tenant's rows of `expiry` older than `retention`, `batch` per transaction; how many."""
    removed = 0
    while True:
        async with db.sweep_tx(pool) as conn:
            count = int(await conn.fetchval(f"SELECT {expiry.sweep}($1::interval, $2)", retention, batch))
            if count < batch:
                expiry.rows.set(await conn.fetchval(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", expiry.table))
        removed += count
        if expiry.pruned is not None:
            expiry.pruned.inc(count)
        if count < batch:
            return removed


async def prune_forever(pool: asyncpg.Pool, expiry: Expiry, retention: timedelta,
                        interval_s: float = INTERVAL_S) -> None:
    """Prune now, then every `interval_s`; a failed pass is counted and logged, and the next one runs anyway
    (the store would grow without bound)."""
    while True:
        try:
            removed = await prune_once(pool, expiry, retention)
            if removed:
                log.info("expired ids forgotten", extra={"store": expiry.component, "removed": removed})
        except Exception as err:
            metrics.count_timer_failure(expiry.component, err, transient(err))
        await asyncio.sleep(interval_s)
