"""The SQL of the Salesforce change-event stream (salesforce_stream.py): per tenant and channel, the replay id of the
last event stored, the last failure, and whether events may have been missed since when (migration 012).

Every statement runs in the caller's transaction, scoped to one tenant (row-level security, shared/db.py). The
caller's `on_events` stores what the events change and calls `save_replay` in that same transaction, so the
position can never run ahead of, or lag behind, what was stored. `now` is always the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a tenant's channel stands."""

    tenant: str
    channel: str
    replay_id: int | None  # None: no event stored yet
    updated_at: datetime  # when replay_id was last stored (or the row made)
    last_error: str | None
    error_at: datetime | None
    gap_since: datetime | None  # events after this time may be missing; None: no gap

    @property
    def gap(self) -> bool:
        return self.gap_since is not None


async def replay_id(conn: asyncpg.Connection, tenant: str, channel: str) -> int | None:
    """The replay id stored for the channel (`load_replay`); None when none is."""
    found: int | None = await conn.fetchval(
        "SELECT replay_id FROM crm_streams WHERE tenant = $1 AND channel = $2", tenant, channel)
    return found


async def save_replay(conn: asyncpg.Connection, tenant: str, channel: str, replay: int, now: datetime) -> None:
    """Store the replay id of the last event whose effect this transaction stores; a stored failure is over."""
    await conn.execute(
        "INSERT INTO crm_streams (tenant, channel, replay_id, updated_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant, channel) DO UPDATE SET replay_id = EXCLUDED.replay_id,"
        " updated_at = EXCLUDED.updated_at, last_error = NULL, error_at = NULL", tenant, channel, replay, now)


async def record_gap(conn: asyncpg.Connection, tenant: str, channel: str, now: datetime) -> None:
    """Events may have been missed: since the last event stored (an open gap keeps its earlier start)."""
    await conn.execute(
        "INSERT INTO crm_streams (tenant, channel, updated_at, gap, gap_since) VALUES ($1, $2, $3, true, $3)"
        " ON CONFLICT (tenant, channel) DO UPDATE SET gap = true,"
        " gap_since = COALESCE(crm_streams.gap_since, crm_streams.updated_at)", tenant, channel, now)


async def clear_gap(conn: asyncpg.Connection, tenant: str, channel: str, reconciled_from: datetime) -> bool:
    """A reconciliation that read every record changed since `reconciled_from` covered the gap, if the gap began
    no earlier; returns whether it did (a gap that began earlier stays open)."""
    done: str = await conn.execute(
        "UPDATE crm_streams SET gap = false, gap_since = NULL"
        " WHERE tenant = $1 AND channel = $2 AND gap AND gap_since >= $3", tenant, channel, reconciled_from)
    return done == "UPDATE 1"


async def record_error(conn: asyncpg.Connection, tenant: str, channel: str, error: str, now: datetime) -> None:
    """The client's last failure (`on_error`, or what ended `run`), until an event is stored again."""
    await conn.execute(
        "INSERT INTO crm_streams (tenant, channel, updated_at, last_error, error_at) VALUES ($1, $2, $3, $4, $3)"
        " ON CONFLICT (tenant, channel) DO UPDATE SET last_error = EXCLUDED.last_error,"
        " error_at = EXCLUDED.error_at", tenant, channel, now, error[:2000])


async def positions(conn: asyncpg.Connection, tenant: str) -> list[StreamPosition]:
    """Every channel of the tenant, by name: for the control room and the reconciliation's list of gaps."""
    rows = await conn.fetch(
        "SELECT tenant, channel, replay_id, updated_at, last_error, error_at, gap_since FROM crm_streams"
        " WHERE tenant = $1 ORDER BY channel", tenant)
    return [StreamPosition(row["tenant"], row["channel"], row["replay_id"], row["updated_at"], row["last_error"],
                           row["error_at"], row["gap_since"]) for row in rows]  # fmt: skip


async def streaming_tenants(conn: asyncpg.Connection) -> list[str]:
    """Every tenant with a connected Salesforce OAuth connection, through `sweep_crm_streaming_tenants` (a
    `sweep_tx` connection): the stream supervisor keeps one subscription for each."""
    rows = await conn.fetch("SELECT tenant FROM sweep_crm_streaming_tenants()")
    return [row["tenant"] for row in rows]
