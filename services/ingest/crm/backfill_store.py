"""The SQL of backfill jobs and reconciliation watermarks (migration 014_crm_backfill.sql; backfill.py, reconcile.py).

Every function runs in the caller's transaction, scoped to one tenant (`tenant_tx`), except `backfills_due` and
`reconciles_due`, which span tenants through their sweep functions (a `sweep_tx` connection). A runner takes a job
or a pass with a lease (`runner`, `lease_until`) in a short transaction of its own, reads the CRM holding no
connection, then stores each page's effect and position in one transaction that first checks it still holds the
lease (`hold`), so two replicas never both work one job and a job killed midway is taken over once its lease ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from services.ingest.crm.backfill_rules import AfterFailure, Kind


@dataclass(frozen=True, slots=True)
class Job:
    """A backfill job as its progress answers it (`GET /v1/crm/{crm}/backfill`)."""

    crm: str
    kind: Kind
    status: str
    phase: str
    since: datetime
    cursor: str | None
    high_water: datetime | None
    pages: int
    read_count: int
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


_JOB = ("crm, kind, status, phase, since, cursor, high_water, pages, read_count, published, refused, dead_lettered,"
        " failures, error, resume_at, requested_at, requested_by, started_at, updated_at, finished_at")


@dataclass(frozen=True, slots=True)
class PageDone:
    """What one page did: records read and refused; events published; records dead-lettered."""

    cursor: str | None
    high_water: datetime | None
    read: int
    refused: int
    published: int
    dead_lettered: int


class LeaseLost(Exception):
    """Another runner took the job (this one's lease ran out, or the job was restarted): stop, store nothing."""


async def request(conn: asyncpg.Connection, tenant: str, crm: str, kinds: tuple[Kind, ...], since: datetime,
                  now: datetime, by: str | None) -> list[Job] | None:
    """Start a job per kind from `since`, replacing finished ones; None (nothing changed) when one is running."""
    running = await conn.fetchval("SELECT count(*) FROM crm_backfills WHERE tenant = $1 AND crm = $2"
                                  " AND status = 'running'", tenant, crm)
    if running:
        return None
    await conn.execute(
        "INSERT INTO crm_backfills (tenant, crm, kind, requested_at, requested_by, since, updated_at)"
        " SELECT $1, $2, k, $4, $5, $3, $4 FROM unnest($6::text[]) AS k"
        " ON CONFLICT (tenant, crm, kind) DO UPDATE SET requested_at = EXCLUDED.requested_at,"
        " requested_by = EXCLUDED.requested_by, since = EXCLUDED.since, phase = 'queued', cursor = NULL,"
        " high_water = NULL, pages = 0, read_count = 0, published = 0, refused = 0, dead_lettered = 0,"
        " status = 'running', error = NULL, failures = 0, resume_at = NULL, runner = NULL, lease_until = NULL,"
        " started_at = NULL, updated_at = EXCLUDED.updated_at, finished_at = NULL",
        tenant, crm, since, now, by, list(kinds))
    return await jobs(conn, tenant, crm)


async def resume_failed(conn: asyncpg.Connection, tenant: str, crm: str, now: datetime) -> int:
    """Set the failed jobs of `crm` running again from their saved cursor; how many."""
    done: str = await conn.execute(
        "UPDATE crm_backfills SET status = 'running', phase = 'queued', failures = 0, resume_at = NULL,"
        " finished_at = NULL, updated_at = $3 WHERE tenant = $1 AND crm = $2 AND status = 'failed'", tenant, crm, now)
    return int(done.rsplit(maxsplit=1)[-1])


async def jobs(conn: asyncpg.Connection, tenant: str, crm: str) -> list[Job]:
    rows = await conn.fetch(f"SELECT {_JOB} FROM crm_backfills WHERE tenant = $1 AND crm = $2 ORDER BY kind DESC",
                            tenant, crm)
    return [Job(**dict(r)) for r in rows]


async def backfills_due(conn: asyncpg.Connection, now: datetime) -> list[tuple[str, str, Kind]]:
    """(tenant, crm, kind) of every job a runner may take at `now` (across tenants: `sweep_tx`)."""
    rows = await conn.fetch("SELECT tenant, crm, kind FROM sweep_crm_backfills_due($1)", now)
    return [(r["tenant"], r["crm"], r["kind"]) for r in rows]


async def take(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind, runner: str, now: datetime,
               lease: timedelta) -> tuple[datetime, str | None, int] | None:
    """Lease the job to `runner` when it may be taken (`backfill_rules.may_take`): its `since`, cursor and failures
    in a row."""
    row = await conn.fetchrow(
        "UPDATE crm_backfills SET runner = $4, lease_until = $5, phase = 'reading', updated_at = $6,"
        " started_at = COALESCE(started_at, $6) WHERE tenant = $1 AND crm = $2 AND kind = $3 AND status = 'running'"
        " AND (resume_at IS NULL OR resume_at <= $6) AND (lease_until IS NULL OR lease_until < $6)"
        " RETURNING since, cursor, failures", tenant, crm, kind, runner, now + lease, now)
    return None if row is None else (row["since"], row["cursor"], row["failures"])


async def hold(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind, runner: str, cursor: str | None) -> None:
    """Lock the job for storing a page, LeaseLost unless `runner` still holds it at `cursor`."""
    held = await conn.fetchval(
        "SELECT true FROM crm_backfills WHERE tenant = $1 AND crm = $2 AND kind = $3 AND runner = $4"
        " AND status = 'running' AND cursor IS NOT DISTINCT FROM $5 FOR UPDATE", tenant, crm, kind, runner, cursor)
    if not held:
        raise LeaseLost(f"backfill {tenant}/{crm}/{kind}: taken over by another runner")


async def save_page(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind, page: PageDone, now: datetime,
                    lease: timedelta) -> None:
    """Store a page's position and counts (after `hold`, in the transaction that applied it); the last page
    (`cursor` None) finishes the job."""
    last = page.cursor is None
    await conn.execute(
        "UPDATE crm_backfills SET cursor = $4, high_water = GREATEST(high_water, $5::timestamptz), pages = pages + 1,"
        " read_count = read_count + $6, refused = refused + $7, published = published + $8,"
        " dead_lettered = dead_lettered + $9, failures = 0, error = NULL, updated_at = $10::timestamptz,"
        " lease_until = CASE WHEN $11::boolean THEN NULL ELSE $12::timestamptz END,"
        " runner = CASE WHEN $11::boolean THEN NULL ELSE runner END,"
        " status = CASE WHEN $11::boolean THEN 'done' ELSE status END,"
        " phase = CASE WHEN $11::boolean THEN 'finished' ELSE phase END,"
        " finished_at = CASE WHEN $11::boolean THEN $10::timestamptz END WHERE tenant = $1 AND crm = $2 AND kind = $3",
        tenant, crm, kind, page.cursor, page.high_water, page.read, page.refused, page.published, page.dead_lettered,
        now, last, now + lease)


async def failed(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind, runner: str, error: str,
                 after: AfterFailure, now: datetime) -> None:
    """A page could not be read: wait (`after.resume_at`) or fail, the lease given up."""
    await conn.execute(
        "UPDATE crm_backfills SET status = $5::text, phase = $6, failures = $7, resume_at = $8, error = $9,"
        " runner = NULL, lease_until = NULL, updated_at = $10::timestamptz,"
        " finished_at = CASE WHEN $5::text = 'failed' THEN $10::timestamptz END"
        " WHERE tenant = $1 AND crm = $2 AND kind = $3 AND runner = $4",
        tenant, crm, kind, runner, after.status, after.phase, after.failures, after.resume_at, error[:1000], now)


async def release(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind, runner: str) -> None:
    """Give the lease up (the service stops): another replica, or this one after a restart, goes on at once."""
    await conn.execute("UPDATE crm_backfills SET runner = NULL, lease_until = NULL WHERE tenant = $1 AND crm = $2"
                       " AND kind = $3 AND runner = $4", tenant, crm, kind, runner)


async def backfill_running(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind) -> bool:
    return bool(await conn.fetchval("SELECT true FROM crm_backfills WHERE tenant = $1 AND crm = $2 AND kind = $3"
                                    " AND status = 'running'", tenant, crm, kind))


async def backfill_high_water(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind) -> datetime | None:
    """The latest modification time a finished backfill read: where reconciliation may start."""
    found: datetime | None = await conn.fetchval(
        "SELECT high_water FROM crm_backfills WHERE tenant = $1 AND crm = $2 AND kind = $3 AND status = 'done'",
        tenant, crm, kind)
    return found


# ------------------------------------------------------------------------------------------------ reconciliation


@dataclass(frozen=True, slots=True)
class Watermark:
    """A reconciliation's state as the control room shows it."""

    crm: str
    kind: Kind
    watermark: datetime | None
    passes: int
    last_pass_at: datetime | None
    last_read: int
    last_missed: int
    missed_total: int
    last_error: str | None
    error_at: datetime | None


async def reconciles_due(conn: asyncpg.Connection, now: datetime, every: timedelta) -> list[tuple[str, str]]:
    """(tenant, crm) with API access whose reconciliation is due at `now` (across tenants: `sweep_tx`)."""
    rows = await conn.fetch("SELECT tenant, crm FROM sweep_crm_reconcile_due($1, $2)", now, every)
    return [(r["tenant"], r["crm"]) for r in rows]


async def take_pass(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind, runner: str, now: datetime,
                    every: timedelta, lease: timedelta, first: datetime) -> tuple[bool, datetime | None]:
    """Lease the pass of `kind` to `runner` when due and free: (taken, the watermark). The first time a tenant's
    CRM is seen its watermark is set to `first` and its first pass comes an interval later: what changed before
    is history (the backfill's), not what webhooks missed."""
    created = await conn.fetchval(
        "INSERT INTO crm_reconciliations (tenant, crm, kind, watermark, last_pass_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT DO NOTHING RETURNING true", tenant, crm, kind, first, now)
    if created:
        return False, first
    row = await conn.fetchrow(
        "UPDATE crm_reconciliations SET runner = $4, lease_until = $5 WHERE tenant = $1 AND crm = $2 AND kind = $3"
        " AND (last_pass_at IS NULL OR last_pass_at <= $6::timestamptz - $7::interval)"
        " AND (lease_until IS NULL OR lease_until < $6::timestamptz)"
        " RETURNING watermark", tenant, crm, kind, runner, now + lease, now, every)
    return (False, None) if row is None else (True, row["watermark"])


async def hold_pass(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind, runner: str) -> None:
    held = await conn.fetchval("SELECT true FROM crm_reconciliations WHERE tenant = $1 AND crm = $2 AND kind = $3"
                               " AND runner = $4 FOR UPDATE", tenant, crm, kind, runner)
    if not held:
        raise LeaseLost(f"reconciliation {tenant}/{crm}/{kind}: taken over by another runner")


async def pass_done(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind, runner: str,
                    watermark: datetime | None, read: int, missed: int, now: datetime) -> None:
    """A pass read everything since its window: the watermark advances (never back), the counts are added."""
    await conn.execute(
        "UPDATE crm_reconciliations SET watermark = GREATEST(watermark, $5::timestamptz), passes = passes + 1,"
        " last_pass_at = $8, last_read = $6, last_missed = $7, missed_total = missed_total + $7, last_error = NULL,"
        " error_at = NULL, runner = NULL, lease_until = NULL"
        " WHERE tenant = $1 AND crm = $2 AND kind = $3 AND runner = $4", tenant, crm, kind, runner, watermark, read,
        missed, now)


async def pass_failed(conn: asyncpg.Connection, tenant: str, crm: str, kind: Kind, runner: str, error: str,
                      now: datetime) -> None:
    """A pass could not read the CRM: the watermark stays; the next interval tries again."""
    await conn.execute(
        "UPDATE crm_reconciliations SET last_pass_at = $6, last_error = $5, error_at = $6, runner = NULL,"
        " lease_until = NULL WHERE tenant = $1 AND crm = $2 AND kind = $3 AND runner = $4",
        tenant, crm, kind, runner, error[:1000], now)


async def watermarks(conn: asyncpg.Connection, tenant: str, crm: str) -> list[Watermark]:
    rows = await conn.fetch(
        "SELECT crm, kind, watermark, passes, last_pass_at, last_read, last_missed, missed_total, last_error, error_at"
        " FROM crm_reconciliations WHERE tenant = $1 AND crm = $2 ORDER BY kind DESC", tenant, crm)
    return [Watermark(**dict(r)) for r in rows]
