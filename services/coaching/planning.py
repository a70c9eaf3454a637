"""Action plans in PostgreSQL: create them, keep their progress, settle their steps (rules: `plans.py`).

Progress is recounted from coaching's own activity and deal tables, never incremented, so a
duplicate or late event cannot count twice; a step settles once (`UPDATE ... WHERE status = 'open'`),
and only that transaction announces it on `coaching.plans.v1`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.coaching.outbound import publish
from services.coaching.plans import KIND_OF, StepDraft, plan_status, settle
from shared import topics
from shared.events import Metric, PlanStepSettled

NAMESPACE = uuid.UUID("3b0f6c1e-6a57-4d1f-9a43-52e1d7c0b8e2")
PLAN_COLUMNS = "plan_id, rep_id, task_id, title, status, created_at"
STEP_COLUMNS = "step_id, plan_id, position, title, metric, target, starts_at, due_at, progress, status, settled_at"


async def create(conn: asyncpg.Connection, tenant: str, rep_id: str, title: str, steps: Sequence[StepDraft],
                 now: datetime, task_id: str | None = None) -> uuid.UUID:
    plan_id = uuid.uuid4()
    await conn.execute("INSERT INTO action_plans (plan_id, tenant, rep_id, task_id, title, created_at)"
                       " VALUES ($1, $2, $3, $4, $5, $6)", plan_id, tenant, rep_id, task_id, title, now)
    await conn.executemany(
        "INSERT INTO plan_steps (step_id, plan_id, position, title, metric, target, starts_at, due_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [(uuid.uuid5(plan_id, str(i)), plan_id, i, s.title, s.metric.value, s.target, now, s.due_at)
         for i, s in enumerate(steps, 1)])
    await refresh(conn, tenant, rep_id, now)
    return plan_id


async def _progress(conn: asyncpg.Connection, tenant: str, rep_id: str, step: asyncpg.Record) -> Decimal:
    metric = Metric(step["metric"])
    if metric in KIND_OF:
        found = await conn.fetchval(
            "SELECT count(*) FROM activities WHERE tenant = $1 AND rep_id = $2 AND occurred_at >= $3"
            " AND occurred_at < $4 AND ($5::text IS NULL OR kind = $5)",
            tenant, rep_id, step["starts_at"], step["due_at"], KIND_OF[metric])
    else:
        found = await conn.fetchval(
            "SELECT " + ("count(*)" if metric is Metric.DEALS_WON else "coalesce(sum(amount), 0)") +
            " FROM deals WHERE tenant = $1 AND rep_id = $2 AND NOT deleted AND stage = 'won'"
            " AND closed_at >= $3 AND closed_at < $4", tenant, rep_id, step["starts_at"], step["due_at"])
    return Decimal(found)


async def refresh(conn: asyncpg.Connection, tenant: str, rep_id: str, now: datetime) -> int:
    """`refresh_reps` for one rep."""
    return await refresh_reps(conn, tenant, [rep_id], now)


async def refresh_reps(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], now: datetime) -> int:
    """Recount the reps' open steps; settle and announce those now completed or missed. Returns how many.
    One query finds the open steps of all the reps (most have none)."""
    steps = await conn.fetch(
        f"SELECT p.rep_id, s.{STEP_COLUMNS.replace(', ', ', s.')} FROM plan_steps s JOIN action_plans p"
        " USING (plan_id) WHERE p.tenant = $1 AND p.rep_id = ANY($2::text[]) AND s.status = 'open'"
        " ORDER BY p.rep_id, s.plan_id, s.position", tenant, sorted(set(rep_ids)))
    settled = 0
    for step in steps:
        rep_id = step["rep_id"]
        progress = await _progress(conn, tenant, rep_id, step)
        status = settle(progress, step["target"], step["due_at"], now)
        if status == "open":
            if progress != step["progress"]:
                await conn.execute("UPDATE plan_steps SET progress = $2 WHERE step_id = $1 AND status = 'open'",
                                   step["step_id"], progress)
            continue
        done = await conn.fetchval("UPDATE plan_steps SET progress = $2, status = $3, settled_at = $4"
                                   " WHERE step_id = $1 AND status = 'open' RETURNING 1",
                                   step["step_id"], progress, status, now)
        if done:
            settled += 1
            await _announce(conn, tenant, rep_id, step, progress, status, now)
    return settled


async def _announce(conn: asyncpg.Connection, tenant: str, rep_id: str, step: asyncpg.Record, progress: Decimal,
                    status: str, now: datetime) -> None:
    statuses = [r["status"] for r in await conn.fetch("SELECT status FROM plan_steps WHERE plan_id = $1",
                                                      step["plan_id"])]
    whole = plan_status(statuses)
    await conn.execute("UPDATE action_plans SET status = $2 WHERE plan_id = $1", step["plan_id"], whole)
    manager = await conn.fetchval("SELECT manager_id FROM reps WHERE tenant = $1 AND rep_id = $2", tenant, rep_id)
    data = PlanStepSettled(
        plan_id=str(step["plan_id"]), step_id=str(step["step_id"]), rep_id=rep_id, manager_id=manager,
        title=step["title"], metric=Metric(step["metric"]), target=step["target"], progress=progress,
        due_at=step["due_at"], status=status, settled_at=now, plan_status=whole)
    await publish(conn, tenant, rep_id, f"coaching.plan.step.{status}", f"{step['step_id']}:{status}", data, now,
                  topics.PLANS)


async def plans(conn: asyncpg.Connection, tenant: str, rep_id: str | None, status: str | None,
                plan_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {PLAN_COLUMNS} FROM action_plans WHERE tenant = $1 AND ($2::text IS NULL OR rep_id = $2)"
        " AND ($3::text IS NULL OR status = $3) AND ($4::uuid IS NULL OR plan_id = $4)"
        " ORDER BY created_at, plan_id LIMIT 500", tenant, rep_id, status, plan_id)
    steps = await conn.fetch(f"SELECT {STEP_COLUMNS} FROM plan_steps WHERE plan_id = ANY($1::uuid[])"
                             " ORDER BY plan_id, position", [r["plan_id"] for r in rows])
    out = []
    for row in rows:
        plan = dict(row) | {"plan_id": str(row["plan_id"]),
                            "task_id": str(row["task_id"]) if row["task_id"] else None}
        plan["steps"] = [dict(s) | {"step_id": str(s["step_id"])} for s in steps if s["plan_id"] == row["plan_id"]]
        for s in plan["steps"]:
            s.pop("plan_id")
        out.append(plan)
    return out


async def due_reps(conn: asyncpg.Connection, now: datetime) -> list[tuple[str, str]]:
    """Reps with an open step past its due date (the timer settles them)."""
    rows = await conn.fetch("SELECT DISTINCT p.tenant, p.rep_id FROM plan_steps s JOIN action_plans p USING"
                            " (plan_id) WHERE s.status = 'open' AND s.due_at <= $1", now)
    return [(r["tenant"], r["rep_id"]) for r in rows]
