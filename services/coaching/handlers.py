"""coaching: attainment in, check-in tasks out, on every update and on a timer."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.coaching.rules import BEHIND_PACE, Policy, Snapshot, behind_pace
from services.coaching.settings import CoachingSettings
from shared import metrics, topics
from shared.cloudevents import CloudEvent, message_key
from shared.consumer import TRANSIENT, Handler, Incoming, claim
from shared.events import AttainmentUpdated, Metric, Scope, TaskCreated
from shared.outbox import enqueue
from shared.service import Runtime

log = logging.getLogger(__name__)
SOURCE = "attain/coaching"
MODELS = {"kpi.attainment.updated": AttainmentUpdated}
SNAPSHOT_SQL = (
    "SELECT tenant, scope_id AS rep_id, name, manager_id, period, metric, actual, target, period_start,"
    " period_end, first_seen_at FROM attainment WHERE scope = 'rep'"
)


def _policy(rt: Runtime) -> Policy:
    settings = rt.settings
    assert isinstance(settings, CoachingSettings)
    return settings.policy()


def _snapshot(row: asyncpg.Record) -> Snapshot:
    return Snapshot(**{**dict(row), "metric": Metric(row["metric"])})


async def evaluate(conn: asyncpg.Connection, snapshot: Snapshot, now: datetime, policy: Policy) -> bool:
    """Run the rules for one snapshot; a task passes the cool-down gate and goes to the outbox."""
    task = behind_pace(snapshot, now, policy)
    if task is None:
        return False
    gate = await conn.fetchval(
        "INSERT INTO cooldowns (tenant, rep_id, rule, last_task_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant, rep_id, rule) DO UPDATE SET last_task_at = EXCLUDED.last_task_at"
        " WHERE cooldowns.last_task_at <= EXCLUDED.last_task_at - $5::interval RETURNING 1",
        snapshot.tenant, snapshot.rep_id, BEHIND_PACE, now, policy.cooldown,
    )
    if gate is None:
        return False
    return await _store(conn, snapshot.tenant, task, now)


async def _store(conn: asyncpg.Connection, tenant: str, task: TaskCreated, now: datetime) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO tasks (task_id, tenant, rep_id, manager_id, rule, severity, summary, evidence,"
        " suggested_actions, training, created_at, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb,"
        " $9::jsonb, $10::jsonb, $11, $12) ON CONFLICT DO NOTHING RETURNING 1",
        task.task_id, tenant, task.rep_id, task.manager_id, task.rule, task.severity, task.summary,
        task.evidence.model_dump_json(), json.dumps(task.suggested_actions), json.dumps(task.training),
        now, task.due_at,
    )
    if inserted:
        await enqueue(conn, topics.TASKS.name, message_key(tenant, task.rep_id),
                      CloudEvent(id=task.task_id, type="coaching.task.created", source=SOURCE, time=now,
                                 tenant=tenant, data=task.model_dump(mode="json")))
    return inserted is not None


def make_handler(rt: Runtime) -> Handler:
    policy = _policy(rt)

    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        """Keep the latest attainment per rep key; evaluate the rules on each update."""
        now = rt.clock.now()
        keys = set()
        for msg in batch:
            update = msg.data
            assert isinstance(update, AttainmentUpdated)
            if update.scope != Scope.REP or update.period_start is None or update.period_end is None:
                continue
            if not await claim(conn, msg.event):
                continue
            await conn.execute(
                "INSERT INTO attainment (tenant, scope, scope_id, period, metric, actual, target, name, manager_id,"
                " period_start, period_end, as_of, first_seen_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                " ON CONFLICT (tenant, scope, scope_id, period, metric) DO UPDATE SET actual = EXCLUDED.actual,"
                " target = EXCLUDED.target, name = EXCLUDED.name, manager_id = EXCLUDED.manager_id,"
                " as_of = EXCLUDED.as_of WHERE attainment.as_of <= EXCLUDED.as_of",
                msg.event.tenant, update.scope.value, update.scope_id, update.period, update.metric.value,
                update.actual, update.target, update.name, update.manager_id, update.period_start,
                update.period_end, update.as_of, now,
            )
            keys.add((msg.event.tenant, update.scope_id, update.period, update.metric.value))
        for tenant, rep_id, period, metric in sorted(keys):
            row = await conn.fetchrow(SNAPSHOT_SQL + " AND tenant = $1 AND scope_id = $2 AND period = $3"
                                      " AND metric = $4", tenant, rep_id, period, metric)
            await evaluate(conn, _snapshot(row), now, policy)

    return handle


async def periodic_evaluation(rt: Runtime) -> None:
    """Every interval, evaluate every rep in an active period, so one who sends nothing is seen too."""
    settings = rt.settings
    assert isinstance(settings, CoachingSettings)
    policy = settings.policy()
    while True:
        await asyncio.sleep(settings.coaching_evaluation_interval_s)
        try:
            created = await evaluate_all(rt.pool, rt.clock.now(), policy)
        except TRANSIENT as err:
            metrics.TRANSIENT_ERRORS.labels("coaching-timer").inc()
            log.warning("periodic evaluation failed, will retry", extra={"error": repr(err)})
            continue
        if created:
            rt.relay.wake()
            log.info("periodic evaluation created tasks", extra={"tasks": created})


async def evaluate_all(pool: asyncpg.Pool, now: datetime, policy: Policy) -> int:
    created = 0
    async with pool.acquire() as conn:
        # only figures with a target can be behind pace: without this filter every figure of every
        # rep (nine metrics, four period kinds) was read and evaluated in a transaction of its own
        rows = await conn.fetch(SNAPSHOT_SQL + " AND target > 0 AND period_start <= $1 AND period_end > $1", now)
    for row in rows:
        async with pool.acquire() as conn, conn.transaction():
            created += await evaluate(conn, _snapshot(row), now, policy)
    return created
