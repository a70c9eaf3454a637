"""What coaching does on the clock, so slipping by doing nothing is caught too.

Every `COACHING_EVALUATION_INTERVAL_S` one pass (`tick`): evaluate every active rep, escalate check-ins
nobody acknowledged by their due date, settle plan steps past due, publish the weekly reviews that are
due. Each unit of work (up to 100 reps of one tenant, an escalation chunk, a review) is its own
transaction, guarded in SQL (cool-down gate, `FOR UPDATE SKIP LOCKED`, `WHERE status = ...`, unique
review keys), so several replicas may tick at once and still issue each task, escalation, settlement
and review once. Each unit reads the tenant's configuration through the cache (`config.py`: one version
read) and writes set-based (escalations: one update and one outbox insert per tenant and chunk). The
clock is the runtime's: tests move it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.coaching import action_plans, digests
from services.coaching import repository as repo
from services.coaching.handlers import base_policy, evaluate_reps
from services.coaching.metrics import EVALUATIONS, OPEN_TASKS, OWED_EVALUATIONS, TASK_EVENTS
from services.coaching.model import RULES, Policy
from services.coaching.repository import PgStore
from services.coaching.settings import CoachingSettings
from services.coaching.store import Outgoing
from shared.consumer import transient
from shared.db import set_tenant, sweep_tx, tenant_tx
from shared.events import TaskEscalated
from shared.service import Runtime, every

log = logging.getLogger(__name__)
ESCALATION_CHUNK = 500
EVALUATION_CHUNK = 100  # reps evaluated per transaction (their views fetched together)
OWED_CHUNK = 200  # owed evaluations taken per transaction


@dataclass
class Tally:
    created: int = 0
    escalated: int = 0
    settled: int = 0
    reviews: int = 0

    def __bool__(self) -> bool:
        return bool(self.created or self.escalated or self.settled or self.reviews)


async def tick(pool: asyncpg.Pool, now: datetime, defaults: Policy) -> Tally:
    """One pass of everything time-driven, at `now`."""
    done = Tally()
    async with sweep_tx(pool) as conn:
        reps = await repo.active_reps(conn)
    for tenant, chunk in _chunks(reps):
        async with tenant_tx(pool, tenant) as conn:
            done.created += await evaluate_reps(conn, tenant, chunk, now, defaults)
    done.escalated = await escalate_overdue(pool, now)
    async with sweep_tx(pool) as conn:
        due = await repo.due_plan_reps(conn, now)
    for tenant, chunk in _chunks(due):
        async with tenant_tx(pool, tenant) as conn:
            done.settled += await action_plans.refresh_reps(conn, tenant, chunk, now)
    done.reviews = await digests.publish_due(pool, now, defaults)
    async with sweep_tx(pool) as conn:
        open_by_rule = await repo.live_tasks_by_rule(conn)
    for rule in RULES:
        OPEN_TASKS.labels(rule).set(open_by_rule.get(rule, 0))
    return done


def _chunks(reps: Sequence[tuple[str, str]], size: int = 0) -> Iterator[tuple[str, list[str]]]:
    """(tenant, up to `size` (`EVALUATION_CHUNK`) of its reps) in order: one transaction each."""
    size = size or EVALUATION_CHUNK
    by_tenant: dict[str, list[str]] = {}
    for tenant, rep_id in reps:
        by_tenant.setdefault(tenant, []).append(rep_id)
    for tenant, rep_ids in by_tenant.items():
        for i in range(0, len(rep_ids), size):
            yield tenant, rep_ids[i:i + size]


async def escalate_overdue(pool: asyncpg.Pool, now: datetime) -> int:
    """Raise every check-in still unacknowledged past its due date to the manager's manager."""
    escalated = 0
    while True:
        async with sweep_tx(pool) as conn:
            rows = await repo.overdue_unacknowledged(conn, now, ESCALATION_CHUNK)
            for tenant, mine in _by_tenant(rows):
                await set_tenant(conn, tenant)  # these rows' tenant for the rest of their work
                above = await repo.managers_of(conn, tenant, sorted({r["manager_id"] for r in mine if r["manager_id"]}))
                to = [above.get(r["manager_id"]) if r["manager_id"] else None for r in mine]
                await repo.mark_escalated_many(conn, tenant, [(r["task_id"], t) for r, t in zip(mine, to, strict=True)],
                                               now)
                await PgStore(conn).publish(tenant, [_escalated(r, t, now) for r, t in zip(mine, to, strict=True)], now)
        escalated += len(rows)
        if len(rows) < ESCALATION_CHUNK:
            return escalated


def _by_tenant(rows: Sequence[asyncpg.Record]) -> list[tuple[str, list[asyncpg.Record]]]:
    out: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        out.setdefault(row["tenant"], []).append(row)
    return list(out.items())


def _escalated(row: asyncpg.Record, to: str | None, now: datetime) -> Outgoing:
    TASK_EVENTS.labels("escalated", row["rule"]).inc()
    data = TaskEscalated(task_id=str(row["task_id"]), rep_id=row["rep_id"], manager_id=row["manager_id"],
                         escalated_to=to, rule=row["rule"], severity=row["severity"], summary=row["summary"],
                         due_at=row["due_at"], escalated_at=now)
    return Outgoing(row["rep_id"], "coaching.task.escalated", f"{row['task_id']}:escalated", data)


async def evaluate_owed(pool: asyncpg.Pool, now: datetime, defaults: Policy) -> int:
    """Evaluate every rep owed an evaluation (new events touched it), `OWED_CHUNK` reps per transaction,
    each rep once; returns how many. The owed rows are deleted in the transaction that evaluates them, so
    a crash leaves them owed. A chunk that fails on something else than a transient error is redone one
    rep at a time, and a rep that fails alone is dropped (logged, counted): it never blocks the others,
    and the periodic pass or its next event tries it again."""
    evaluated = 0
    while True:
        try:
            async with sweep_tx(pool) as conn:
                owed = await repo.take_owed(conn, OWED_CHUNK)
                await _evaluate(conn, owed, now, defaults)
        except Exception as err:
            if transient(err):
                raise
            log.exception("evaluation failed, evaluating its reps one by one")
            owed = await _evaluate_one_by_one(pool, now, defaults)
        evaluated += len(owed)
        EVALUATIONS.labels("evaluated").inc(len(owed))
        if len(owed) < OWED_CHUNK:
            return evaluated


async def _evaluate(conn: asyncpg.Connection, owed: Sequence[tuple[str, str]], now: datetime,
                    defaults: Policy) -> None:
    """Each tenant's reps of `owed` in that tenant's scope: rules, then plan progress."""
    for tenant, reps in _chunks(owed, len(owed) or 1):
        await set_tenant(conn, tenant)
        await evaluate_reps(conn, tenant, reps, now, defaults)
        await action_plans.refresh_reps(conn, tenant, reps, now)


async def _evaluate_one_by_one(pool: asyncpg.Pool, now: datetime, defaults: Policy) -> list[tuple[str, str]]:
    async with sweep_tx(pool) as conn:  # the chunk that failed (it is still owed): each on its own below
        owed = await repo.peek_owed(conn, OWED_CHUNK)
    done = []
    for tenant, rep_id in owed:
        try:
            async with tenant_tx(pool, tenant) as conn:
                await repo.drop_owed(conn, tenant, rep_id)
                await _evaluate(conn, [(tenant, rep_id)], now, defaults)
            done.append((tenant, rep_id))
        except Exception as err:
            if transient(err):
                raise
            log.exception("evaluation of one rep failed, dropped", extra={"tenant": tenant, "rep_id": rep_id})
            EVALUATIONS.labels("failed").inc()
            async with tenant_tx(pool, tenant) as conn:
                await repo.drop_owed(conn, tenant, rep_id)
    return done


async def evaluator(rt: Runtime) -> None:
    """The timer: every `COACHING_EVALUATION_DELAY_S`, evaluate the reps new events touched."""
    settings = rt.settings
    assert isinstance(settings, CoachingSettings)
    defaults = base_policy(rt)

    async def work() -> None:
        if await evaluate_owed(rt.pool, rt.clock.now(), defaults):
            rt.relay.wake()
        async with sweep_tx(rt.pool) as conn:
            OWED_EVALUATIONS.set(await repo.owed_count(conn))

    await every(settings.coaching_evaluation_delay_s, work, "coaching-evaluator")


async def periodic_evaluation(rt: Runtime) -> None:
    """The timer: `tick` every interval."""
    settings = rt.settings
    assert isinstance(settings, CoachingSettings)
    defaults = base_policy(rt)

    async def work() -> None:
        done = await tick(rt.pool, rt.clock.now(), defaults)
        if done:
            rt.relay.wake()
            log.info("periodic evaluation", extra={"tasks_created": done.created, "escalated": done.escalated,
                                                   "settled": done.settled, "reviews": done.reviews})

    await every(settings.coaching_evaluation_interval_s, work, "coaching-timer")

