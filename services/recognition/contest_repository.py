"""recognition's contests in PostgreSQL (migration 007): part of `repository.PgRepository`, kept apart by size.

One row per contest: kpi's latest revision of it (the event's data, as published), its status and end, the
participant leading alone and since when, and the leader celebrated last. A batch locks the rows of its
contests (in id order), and so does the lead timer for the rows it may celebrate (skipping those a batch or
another replica's timer holds: its next tick judges them again), so no two transactions judge one contest
at once; a row is written only by a revision at least as new as its own (`save_contests`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from services.recognition.model import Contest
from shared.events import ContestUpdated

__all__ = ["ContestRepository", "PgContestRepository"]

_COLUMNS = "latest, leader, leader_since, celebrated_leader"


def _contest(row: Mapping[str, Any]) -> Contest:
    return Contest(ContestUpdated.model_validate_json(row["latest"]), row["leader"], row["leader_since"],
                   row["celebrated_leader"])


class ContestRepository(Protocol):
    """The contests' part of `repository.Repository`."""

    async def contests(self, tenant: str, contest_ids: Sequence[str]) -> dict[str, Contest]: ...
    async def save_contests(self, tenant: str, contests: Sequence[Contest]) -> None: ...
    async def leading(self, tenant: str) -> list[Contest]: ...
    async def leading_tenants(self, at: datetime) -> list[str]: ...


class PgContestRepository:
    """The contests' statements of `PgRepository` (on its connection, in the caller's transaction)."""

    conn: asyncpg.Connection

    async def contests(self, tenant: str, contest_ids: Sequence[str]) -> dict[str, Contest]:
        """The stored contests of ``contest_ids``, locked (in id order: two replicas cannot deadlock on them)."""
        rows = await self.conn.fetch(f"SELECT {_COLUMNS} FROM contests WHERE tenant = $1 AND contest_id = ANY($2)"
                                     " ORDER BY contest_id FOR UPDATE", tenant, list(contest_ids))
        return {(c := _contest(r)).contest_id: c for r in rows}

    async def save_contests(self, tenant: str, contests: Sequence[Contest]) -> None:
        """Store contests (one per id); a revision older than the stored one changes nothing."""
        await self.conn.execute(
            "INSERT INTO contests (tenant, contest_id, revision, status, ends_at, latest, leader, leader_since,"
            " celebrated_leader) SELECT $1, u.c, u.r, u.s, u.e, u.l::jsonb, u.ld, u.ls, u.cl FROM unnest($2::text[],"
            " $3::bigint[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::timestamptz[], $9::text[])"
            " AS u(c, r, s, e, l, ld, ls, cl) ORDER BY u.c"
            " ON CONFLICT (tenant, contest_id) DO UPDATE SET revision = EXCLUDED.revision, status = EXCLUDED.status,"
            " ends_at = EXCLUDED.ends_at, latest = EXCLUDED.latest, leader = EXCLUDED.leader,"
            " leader_since = EXCLUDED.leader_since, celebrated_leader = EXCLUDED.celebrated_leader"
            " WHERE contests.revision <= EXCLUDED.revision",
            tenant, [c.contest_id for c in contests], [c.latest.revision for c in contests],
            [c.latest.status for c in contests], [c.latest.ends_at for c in contests],
            [c.latest.model_dump_json() for c in contests], [c.candidate for c in contests],
            [c.since for c in contests], [c.celebrated for c in contests])

    async def leading(self, tenant: str) -> list[Contest]:
        """The running contests led alone by someone not celebrated last (what the lead timer judges), locked;
        those locked already are left for the next tick."""
        rows = await self.conn.fetch(
            f"SELECT {_COLUMNS} FROM contests WHERE tenant = $1 AND status = 'running' AND leader IS NOT NULL"
            " AND leader IS DISTINCT FROM celebrated_leader ORDER BY contest_id FOR UPDATE SKIP LOCKED", tenant)
        return [_contest(r) for r in rows]

    async def leading_tenants(self, at: datetime) -> list[str]:
        """Every tenant with such a contest not yet past its end (`sweep_contest_leads`: across tenants)."""
        return [r[0] for r in await self.conn.fetch("SELECT tenant FROM sweep_contest_leads($1)", at)]
