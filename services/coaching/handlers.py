"""coaching's consumer and evaluation: sales and attainment events in; check-ins, closures and plan
progress out.

One batch, one transaction (with its offsets): each tenant's part is folded into what it changes
(`intake.reduce_batch`, pure) and written with one statement per table (`store_batch`); every rep it
touched is remembered as owed an evaluation (`owed_evaluations`). The evaluator
(`timers.evaluate_owed`, about every `COACHING_EVALUATION_DELAY_S`) takes the owed reps and runs
`evaluate` for each once, however many batches touched it meanwhile: the tenant's configuration from
the process cache (`config.py`, one version read), the rules (`rules.evaluate`), the verdict on the live
check-ins (`rules.verdict`), then the cool-down gate, the new tasks (`coaching.task.created`), the
superseded and recovered ones (`coaching.task.closed`) and the announcements, one statement each for
all the reps. Under load a busy rep is evaluated once per pass instead of once per batch, so coaching's
work follows its reps, not its input rate. The periodic pass (`timers.tick`) evaluates every rep on the
clock too. The handlers depend on the `store.Store` protocol only (PostgreSQL: `repository.PgStore`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.coaching import repository as repo
from services.coaching.checkins import compose
from services.coaching.config import CONFIGS, ConfigCache
from services.coaching.intake import reduce_batch
from services.coaching.metrics import TASK_EVENTS
from services.coaching.model import Policy, RepView
from services.coaching.outbound import publish
from services.coaching.repository import PgStore
from services.coaching.rules import LiveTask, Verdict, verdict
from services.coaching.rules import evaluate as rules_evaluate
from services.coaching.settings import CoachingSettings
from services.coaching.store import Close, Gate, Outgoing, Store
from shared.consumer import Handler, Incoming
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    RepUpserted,
    TaskClosed,
    TaskCreated,
    TeamUpserted,
    TenantUpserted,
)
from shared.service import Runtime

log = logging.getLogger(__name__)
MODELS: dict[str, type[BaseModel]] = {
    "kpi.attainment.updated": AttainmentUpdated, "activity.logged": ActivityLogged, "deal.upserted": DealUpserted,
    "deal.deleted": DealDeleted, "rep.upserted": RepUpserted, "tenant.upserted": TenantUpserted,
    "team.upserted": TeamUpserted}  # the roster topic carries teams too: coaching has no use for them yet


def base_policy(rt: Runtime) -> Policy:
    settings = rt.settings
    assert isinstance(settings, CoachingSettings)
    return settings.policy()


def make_handler(rt: Runtime) -> Handler:
    async def handle(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        """One tenant's part of a batch (the consumer hands each tenant's records on their own, in the
        tenant's scope): stored set-based (`store_batch`); `timers.evaluate_owed` evaluates the reps it
        touched soon after, once however many batches touched them meanwhile."""
        if batch:
            await store_batch(PgStore(conn), batch[0].event.tenant, batch, rt.clock.now())

    return handle


async def store_batch(store: Store, tenant: str, batch: Sequence[Incoming], now: datetime) -> list[str]:
    """Store what `batch` (one tenant's records, in order) says, a statement per table whatever its size,
    leaving the state the records would have left one by one (`intake`); owe an evaluation to each rep
    it touched, and return them."""
    changes = reduce_batch(batch, now)
    if changes.calendar is not None:
        await store.remember_calendar(tenant, changes.calendar)
    await store.upsert_tenants(changes.tenants)
    for reps in changes.rep_rounds:
        await store.upsert_reps(tenant, reps)
    await store.seen_reps(tenant, changes.seen)
    new = await store.insert_activities(tenant, [a.activity for a in changes.activities])
    early = {a.activity.activity_id for a in changes.activities if a.before_deal}
    touches = [(n.activity_id in early, n.deal_id, n.occurred_at) for n in new if n.deal_id]
    await store.touch_deals(tenant, [(d, at) for first, d, at in touches if first])  # deals stored before the batch
    await store.store_deals(tenant, changes.deal_upserts)
    await store.tombstone_deals(tenant, changes.deal_deletions)
    await store.touch_deals(tenant, [(d, at) for first, d, at in touches if not first])
    figured = await store.save_attainments(tenant, changes.figures, now)
    touched = sorted({r.rep_id for reps in changes.rep_rounds for r, _ in reps} | changes.deal_reps
                     | {n.rep_id for n in new} | figured)
    await store.owe_evaluation(tenant, touched, now)
    return touched


async def evaluate_reps(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], now: datetime,
                        defaults: Policy, configs: ConfigCache = CONFIGS) -> int:
    """`evaluate` on PostgreSQL, in the caller's transaction."""
    return await evaluate(PgStore(conn), tenant, rep_ids, now, defaults, configs)


async def evaluate(store: Store, tenant: str, rep_ids: Sequence[str], now: datetime, defaults: Policy,
                   configs: ConfigCache = CONFIGS) -> int:
    """Run every rule for each rep (in rep id order) and return the number of tasks created.

    A finding becomes a check-in when `rules.verdict` raises it and the cool-down gate lets it through;
    a worse finding than the live one's supersedes it; a live check-in whose rule finds nothing any more
    is closed as recovered. The tenant's configuration comes from the cache (one version read), what the
    rules read is fetched for all the reps at once, and every write is one statement for all of them."""
    config = await configs.get(store, tenant)
    views = await store.rep_views(config, rep_ids, now, config.activity_days(defaults))
    if not views:
        return 0
    live = await store.live_tasks(tenant, sorted(views))
    judged = [_judge(views[rep], now, config.policy(defaults, views[rep].team_id), live.get(rep, []))
              for rep in sorted(views)]
    gates = [Gate(j.view.rep_id, f.rule, f.severity, j.policy.cooldown_days)
             for j in judged for f, _ in j.verdict.raise_]
    passed = await store.pass_gates(tenant, gates, now)
    drafts = {(j.view.rep_id, f.rule): compose(j.view, f, now, j.policy, config.catalogue)
              for j in judged for f, _ in j.verdict.raise_ if (j.view.rep_id, f.rule) in passed}
    created = await store.insert_tasks(tenant, list(drafts.values()), now)
    closed = await store.close_tasks(tenant, _closes(judged, drafts, created), now)
    await store.publish(tenant, _announcements(judged, drafts, created, closed), now)
    return len(created)


@dataclass(frozen=True, slots=True)
class _Judged:
    view: RepView
    policy: Policy
    verdict: Verdict


def _judge(view: RepView, now: datetime, policy: Policy, live: Sequence[LiveTask]) -> _Judged:
    held = {task.rule: task.severity for task in live}  # of two live check-ins of a rule, the newest
    return _Judged(view, policy, verdict(rules_evaluate(view, now, policy, held), live))


def _closes(judged: Sequence[_Judged], drafts: Mapping[tuple[str, str], TaskCreated],
            created: set[str]) -> list[Close]:
    """Live check-ins superseded by a check-in just created, then those recovered."""
    superseded = [Close(before.task_id, "superseded") for j in judged for f, before in j.verdict.raise_
                  if before is not None and (task := drafts.get((j.view.rep_id, f.rule))) and task.task_id in created]
    return superseded + [Close(t.task_id, "recovered") for j in judged for t in j.verdict.recovered]


def _announcements(judged: Sequence[_Judged], drafts: Mapping[tuple[str, str], TaskCreated], created: set[str],
                   closed: Sequence[TaskClosed]) -> list[Outgoing]:
    """What to announce, in the order one rep at a time gave: per rep, each check-in created and the one it
    superseded, then its recoveries."""
    closes = {c.task_id: c for c in closed}
    out: list[Outgoing] = []
    for j in judged:
        for finding, before in j.verdict.raise_:
            task = drafts.get((j.view.rep_id, finding.rule))
            if task is None or task.task_id not in created:
                continue
            out.append(Outgoing(j.view.rep_id, "coaching.task.created", task.task_id, task))
            TASK_EVENTS.labels("created", task.rule).inc()
            if before is not None and (gone := closes.get(before.task_id)):
                out.append(_closed(gone))
        out += [_closed(closes[t.task_id]) for t in j.verdict.recovered if t.task_id in closes]
    return out


def _closed(closed: TaskClosed) -> Outgoing:
    TASK_EVENTS.labels("closed", closed.rule).inc()
    return Outgoing(closed.rep_id, "coaching.task.closed", f"{closed.task_id}:closed", closed)


async def close(conn: asyncpg.Connection, tenant: str, task_id: Any, reason: str, now: datetime,
                outcome: str | None = None) -> asyncpg.Record | None:
    """Close a live task once and announce it (`coaching.task.closed`)."""
    row = await repo.close_task(conn, tenant, task_id, reason, now, outcome)
    if row is None:
        return None
    closed = TaskClosed(task_id=str(row["task_id"]), rep_id=row["rep_id"], manager_id=row["manager_id"],
                        rule=row["rule"], reason=reason, outcome=outcome, closed_at=now)
    await publish(conn, tenant, row["rep_id"], "coaching.task.closed", f"{row['task_id']}:closed", closed, now)
    TASK_EVENTS.labels("closed", row["rule"]).inc()
    return row


def task_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A task row as the API returns it."""
    out = dict(row)
    out["task_id"] = str(out["task_id"])
    for name in ("evidence", "suggested_actions", "training", "details"):
        if isinstance(out.get(name), str):
            out[name] = json.loads(out[name])
    return out
