"""Each service's copy of the reps' time off (`time_off.set`): one repository module for the `leaves` table
kpi, coaching and recognition each keep in their own schema (migrations 012, 007 and 006), as
`shared/token_store.py` is for tokens.

A time off is kept by id; the newest version wins by event time, then event id, so a redelivery or an older
version arriving late changes nothing, and a cancelled one stays cancelled (it is no day off, and an older
version cannot bring it back). Set-based: one statement per batch, rows in key order (two writers lock rows
in the same order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

import asyncpg

from shared.events import TimeOffSet

__all__ = ["ranges", "store"]

Leave = tuple[TimeOffSet, datetime, str]  # the event's data, its time, its id


async def store(conn: asyncpg.Connection, tenant: str, items: Sequence[Leave], *, with_reason: bool = False) -> None:
    """Each time off of `items` into the caller's schema's `leaves` (and its reason, where the table keeps
    one: coaching lists it back)."""
    newest: dict[str, Leave] = {}
    for item in items:
        seen = newest.get(item[0].time_off_id)
        if seen is None or (seen[1], seen[2]) < (item[1], item[2]):
            newest[item[0].time_off_id] = item
    if not newest:
        return
    rows = [newest[k] for k in sorted(newest)]
    reason = (", reason", ", $9::text[]", ", reason = EXCLUDED.reason") if with_reason else ("", "", "")
    await conn.execute(
        f"INSERT INTO leaves (tenant, time_off_id, rep_id, first_day, last_day, cancelled, version_at, version_id"
        f"{reason[0]}) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::date[], $5::date[], $6::bool[],"
        f" $7::timestamptz[], $8::text[]{reason[1]}) ON CONFLICT (tenant, time_off_id) DO UPDATE SET"
        f" rep_id = EXCLUDED.rep_id, first_day = EXCLUDED.first_day, last_day = EXCLUDED.last_day,"
        f" cancelled = EXCLUDED.cancelled, version_at = EXCLUDED.version_at, version_id = EXCLUDED.version_id"
        f"{reason[2]} WHERE (leaves.version_at, leaves.version_id) < (EXCLUDED.version_at, EXCLUDED.version_id)",
        tenant, [t.time_off_id for t, _, _ in rows], [t.rep_id for t, _, _ in rows],
        [t.first_day for t, _, _ in rows], [t.last_day for t, _, _ in rows], [t.cancelled for t, _, _ in rows],
        [at for _, at, _ in rows], [event_id for _, _, event_id in rows],
        *([[t.reason for t, _, _ in rows]] if with_reason else []))


async def ranges(conn: asyncpg.Connection, tenant: str, rep_ids: Iterable[str], first: date | None = None,
                 last: date | None = None) -> dict[str, list[tuple[date, date]]]:
    """The time off (first day, last day) of each of `rep_ids` that is not cancelled (and overlaps the local
    days `first` to `last`, when given), in one statement; a rep without any is left out."""
    wanted = sorted(set(rep_ids))
    if not wanted:
        return {}
    out: dict[str, list[tuple[date, date]]] = {}
    for r in await conn.fetch(
            "SELECT rep_id, first_day, last_day FROM leaves WHERE tenant = $1 AND rep_id = ANY($2::text[])"
            " AND NOT cancelled AND ($3::date IS NULL OR last_day >= $3) AND ($4::date IS NULL OR first_day <= $4)"
            " ORDER BY rep_id, first_day, last_day", tenant, wanted, first, last):
        out.setdefault(r["rep_id"], []).append((r["first_day"], r["last_day"]))
    return out
