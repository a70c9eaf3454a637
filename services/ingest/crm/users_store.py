"""The statements of the CRM user sync (`users_sync.py`): the tenant's reps and user mapping, its sync settings
and state (`crm_user_sync`, 013_crm_users.sql), and the sweep that lists the syncs due across tenants. Each
function runs in the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import asyncpg

from services.ingest.crm.users_rules import DEFAULT_MODE, DEFAULT_TEAM, Mode, Rep

# What `mapping.deal_data` and `mapping.activity_data` say of an owner no mapping names (tested against them).
UNMAPPED_OWNER = "is not mapped to a rep"


@dataclass(frozen=True, slots=True)
class SyncSettings:
    mode: Mode = DEFAULT_MODE
    team_id: str = DEFAULT_TEAM


async def reps(conn: asyncpg.Connection, tenant: str) -> list[Rep]:
    """The tenant's reps as ingest knows them: `people` (every accepted `rep.upserted`), with the name the roster
    last gave (`audit_values`), and any rep only the audit values know (accepted before `people` existed)."""
    rows = await conn.fetch(
        "SELECT p.rep_id, p.email, p.active, v.value->>'name' AS name FROM people p"
        " LEFT JOIN audit_values v ON v.tenant = p.tenant AND v.subject = 'rep:' || p.rep_id WHERE p.tenant = $1"
        " UNION ALL"
        " SELECT substr(v.subject, 5), v.value->>'email', coalesce((v.value->>'active')::boolean, true),"
        " v.value->>'name' FROM audit_values v WHERE v.tenant = $1 AND v.subject LIKE 'rep:%'"
        " AND NOT EXISTS (SELECT 1 FROM people p WHERE p.tenant = $1 AND p.rep_id = substr(v.subject, 5))",
        tenant)
    return [Rep(r["rep_id"], r["name"], r["email"], r["active"]) for r in rows]


async def user_mapping(conn: asyncpg.Connection, tenant: str, crm: str) -> dict[str, str]:
    return dict(await conn.fetch("SELECT crm_user_id, rep_id FROM crm_user_map WHERE tenant = $1 AND crm = $2",
                                 tenant, crm))


async def add_mapping(conn: asyncpg.Connection, tenant: str, crm: str, added: Mapping[str, str]) -> None:
    """Add entries; a user mapped meanwhile (by hand) keeps its rep."""
    await conn.executemany(
        "INSERT INTO crm_user_map (tenant, crm, crm_user_id, rep_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant, crm, crm_user_id) DO NOTHING", [(tenant, crm, k, v) for k, v in added.items()])


async def settings(conn: asyncpg.Connection, tenant: str, crm: str, *, lock: bool = False) -> SyncSettings:
    """The tenant's sync settings for `crm` (the defaults when it set none). `lock`: the row is made if missing and
    locked, so that two syncs of one tenant's CRM run one after the other."""
    if lock:
        await conn.execute("INSERT INTO crm_user_sync (tenant, crm) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                           tenant, crm)
    row = await conn.fetchrow("SELECT mode, team_id FROM crm_user_sync WHERE tenant = $1 AND crm = $2"
                              + (" FOR UPDATE" if lock else ""), tenant, crm)
    return SyncSettings() if row is None else SyncSettings(cast(Mode, row["mode"]), row["team_id"])


async def save_settings(conn: asyncpg.Connection, tenant: str, crm: str, wanted: SyncSettings) -> SyncSettings:
    """Set the mode and team; the settings before."""
    before = await settings(conn, tenant, crm, lock=True)
    await conn.execute("UPDATE crm_user_sync SET mode = $3, team_id = $4, updated_at = now()"
                       " WHERE tenant = $1 AND crm = $2", tenant, crm, wanted.mode, wanted.team_id)
    return before


async def claim(conn: asyncpg.Connection, tenant: str, crm: str, now: datetime, retry: timedelta) -> bool:
    """Start a sync at `now` unless one started within `retry` (another replica's, or a moment ago): the debounce."""
    found = await conn.fetchval(
        "INSERT INTO crm_user_sync (tenant, crm, attempted_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant, crm) DO UPDATE SET attempted_at = EXCLUDED.attempted_at"
        " WHERE crm_user_sync.attempted_at IS NULL OR crm_user_sync.attempted_at <= $3 - $4::interval"
        " RETURNING true", tenant, crm, now, retry)
    return bool(found)


async def finished(conn: asyncpg.Connection, tenant: str, crm: str, started: datetime, error: str | None) -> None:
    """A sync that started at `started` ended: successful (`error` None: synced as of its start, so a request
    that came meanwhile asks again), or failed with `error`."""
    if error is None:
        await conn.execute("UPDATE crm_user_sync SET synced_at = $3, last_error = NULL WHERE tenant = $1 AND crm = $2",
                           tenant, crm, started)
    else:
        await conn.execute("UPDATE crm_user_sync SET last_error = $3 WHERE tenant = $1 AND crm = $2",
                           tenant, crm, error[:500])


async def request(conn: asyncpg.Connection, tenant: str, crm: str, now: datetime) -> bool:
    """Ask for a sync when the tenant is in automatic mode and an open dead letter of `crm` waits for an owner no
    mapping names; whether it asked (False too when one is asked for and not yet done)."""
    found = await conn.fetchval(
        "INSERT INTO crm_user_sync AS s (tenant, crm, requested_at)"
        " SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM crm_dead_letters d WHERE d.tenant = $1 AND d.crm = $2"
        "   AND d.resolved_at IS NULL AND strpos(d.reason, $4) > 0)"
        " ON CONFLICT (tenant, crm) DO UPDATE SET requested_at = EXCLUDED.requested_at WHERE s.mode = 'automatic'"
        " AND (s.requested_at IS NULL OR s.requested_at <= s.synced_at)"  # else one is asked for already
        " RETURNING true", tenant, crm, now, UNMAPPED_OWNER)
    return bool(found)


async def owner_now_mapped(conn: asyncpg.Connection, tenant: str, crm: str) -> bool:
    """Whether an open dead letter of `crm`, held back for an owner no mapping named, has an owner the mapping now
    names (its payload: a deal's field state, `owner.v`; an activity's change, `owner`)."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM crm_dead_letters d JOIN crm_user_map m ON m.tenant = d.tenant AND m.crm = d.crm"
        "  AND m.crm_user_id = coalesce(d.payload->'owner'->>'v', d.payload->>'owner')"
        " WHERE d.tenant = $1 AND d.crm = $2 AND d.resolved_at IS NULL AND strpos(d.reason, $3) > 0)",
        tenant, crm, UNMAPPED_OWNER)
    return bool(found)


async def due(conn: asyncpg.Connection, now: datetime, every: timedelta, retry: timedelta) -> list[tuple[str, str]]:
    """(tenant, crm) of every sync due at `now`, across tenants, through `sweep_crm_users_due` (a `sweep_tx`
    connection)."""
    rows = await conn.fetch("SELECT tenant, crm FROM sweep_crm_users_due($1, $2, $3)", now, every, retry)
    return [(r["tenant"], r["crm"]) for r in rows]
