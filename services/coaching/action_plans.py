"""Action plans: create them, keep their progress, settle their steps (the rules: `plan_rules.py`; the SQL:
`repository.py`).

Progress is recounted from coaching's own activity and deal tables, never incremented, so a
duplicate or late event cannot count twice; a step settles once (`UPDATE ... WHERE status = 'open'`),
and only that transaction announces it on `coaching.plans.v1`. A refresh costs a handful of statements
whatever the number of reps and steps: one recounts every open step, one writes new progress, one
settles, and the announcements go to the outbox together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.coaching import repository as repo
from services.coaching.plan_rules import StepDraft, StepStatus, plan_status, settle
from services.coaching.repository import PgStore
from services.coaching.store import Outgoing
from shared import topics
from shared.events import Metric, PlanStepSettled

NAMESPACE = uuid.UUID("3b0f6c1e-6a57-4d1f-9a43-52e1d7c0b8e2")


async def create(conn: asyncpg.Connection, tenant: str, rep_id: str, title: str, steps: Sequence[StepDraft],
                 now: datetime, task_id: str | None = None) -> uuid.UUID:
    plan_id = uuid.uuid4()
    await repo.insert_plan(conn, tenant, plan_id, rep_id, task_id, title,
                           [(uuid.uuid5(plan_id, str(i)), i, s.title, s.metric.value, s.target, s.due_at)
                            for i, s in enumerate(steps, 1)], now)
    await refresh(conn, tenant, rep_id, now)
    return plan_id


async def refresh(conn: asyncpg.Connection, tenant: str, rep_id: str, now: datetime) -> int:
    """`refresh_reps` for one rep."""
    return await refresh_reps(conn, tenant, [rep_id], now)


async def refresh_reps(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], now: datetime) -> int:
    """Recount the reps' open steps; settle and announce those now completed or missed. Returns how many."""
    steps = await repo.open_steps(conn, tenant, rep_ids)
    judged = [(step, Decimal(step["counted"]), settle(Decimal(step["counted"]), step["target"], step["due_at"], now))
              for step in steps]
    await repo.set_progress(conn, [(s["step_id"], p) for s, p, status in judged
                                   if status == "open" and p != s["progress"]])
    settled = await repo.settle_steps(conn, [(s["step_id"], p, status) for s, p, status in judged if status != "open"],
                                      now)
    done = [(s, p, status) for s, p, status in judged if s["step_id"] in settled]
    if done:
        await _announce(conn, tenant, done, now)
    return len(done)


async def _announce(conn: asyncpg.Connection, tenant: str, done: Sequence[tuple[Any, Decimal, StepStatus]],
                    now: datetime) -> None:
    """Each settled step's event, in order, with its plan's status as it stood once that step settled (a
    later step of the same plan settling in this pass was still open then); every plan's final status."""
    statuses = await repo.plan_step_statuses(conn, sorted({s["plan_id"] for s, _, _ in done}))
    later = {s["step_id"] for s, _, _ in done}
    managers = await repo.managers_of(conn, tenant, sorted({s["rep_id"] for s, _, _ in done}))
    events = []
    for step, progress, status in done:
        later.discard(step["step_id"])
        whole = plan_status("open" if sid in later else st for sid, st in statuses[step["plan_id"]])
        data = PlanStepSettled(
            plan_id=str(step["plan_id"]), step_id=str(step["step_id"]), rep_id=step["rep_id"],
            manager_id=managers.get(step["rep_id"]), title=step["title"], metric=Metric(step["metric"]),
            target=step["target"], progress=progress, due_at=step["due_at"], status=status, settled_at=now,
            plan_status=whole)
        events.append(Outgoing(step["rep_id"], f"coaching.plan.step.{status}", f"{step['step_id']}:{status}", data,
                               topics.PLANS))
    await repo.set_plan_statuses(conn, {pid: plan_status(st for _, st in steps) for pid, steps in statuses.items()})
    await PgStore(conn).publish(tenant, events, now)


async def plans(conn: asyncpg.Connection, tenant: str, rep_id: str | None, status: str | None,
                plan_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Plans with their steps, as the API returns them."""
    rows, steps = await repo.plans(conn, tenant, rep_id, status, plan_id)
    out = []
    for row in rows:
        plan = dict(row) | {"plan_id": str(row["plan_id"]),
                            "task_id": str(row["task_id"]) if row["task_id"] else None}
        plan["steps"] = [dict(s) | {"step_id": str(s["step_id"])} for s in steps if s["plan_id"] == row["plan_id"]]
        for s in plan["steps"]:
            s.pop("plan_id")
        out.append(plan)
    return out
