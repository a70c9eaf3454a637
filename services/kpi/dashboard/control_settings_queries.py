"""What the settings sections read from kpi's own projection: the roster, for the rep and team choosers (the
settings themselves are read from their owning services' APIs)."""

from __future__ import annotations

import asyncpg


async def active_reps(conn: asyncpg.Connection, tenant: str) -> list[asyncpg.Record]:
    """The tenant's active reps, by id: `rep_id`, `name`, `team_id`."""
    return list(await conn.fetch("SELECT rep_id, name, team_id FROM reps WHERE tenant = $1 AND active"
                                 " ORDER BY rep_id", tenant))


async def team_ids(conn: asyncpg.Connection, tenant: str) -> list[str]:
    """Every team the roster names (a team with active reps, or one announced by `team.upserted`), by id."""
    return [r["team_id"] for r in await conn.fetch(
        "SELECT team_id FROM reps WHERE tenant = $1 AND active AND team_id IS NOT NULL"
        " UNION SELECT team_id FROM teams WHERE tenant = $1 ORDER BY team_id", tenant)]
