"""coaching's consumer: sales and attainment events in; check-ins, closures and plan progress out.

One batch, one transaction (with its offsets): the events are stored (figures, roster, deals,
activities) and every rep they touched is remembered as owed an evaluation (`owed_evaluations`).
The evaluator (`timers.evaluate_owed`, about every `COACHING_EVALUATION_DELAY_S`) takes the owed reps
and runs the pure rules (`rules.py`, `evaluate_reps` here) for each once, however many batches
touched it meanwhile: a finding that passes the cool-down gate becomes a task
(`coaching.task.created`), a live task whose rule no longer finds anything is closed as recovered
(`coaching.task.closed`), and the rep's action plan steps are brought up to date. Under load a
busy rep is evaluated once per pass instead of once per batch, so coaching's work follows its reps,
not its input rate. The periodic pass (`timers.tick`) evaluates every rep on the clock too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.coaching import repository as repo
from services.coaching.checkins import Playbook, compose
from services.coaching.metrics import TASK_EVENTS
from services.coaching.model import SEVERITY_RANK, Policy
from services.coaching.outbound import publish
from services.coaching.rules import evaluate
from services.coaching.settings import CoachingSettings
from shared import registry
from shared.consumer import Handler, Incoming
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    RepUpserted,
    TaskClosed,
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
        """Store what the batch says; owe an evaluation to each rep it touched (`timers.evaluate_owed` runs
        it soon after, once however many batches touched the rep meanwhile)."""
        now = rt.clock.now()
        touched: set[tuple[str, str]] = set()
        figures: list[tuple[str, AttainmentUpdated]] = []
        for msg in batch:
            if isinstance(msg.data, AttainmentUpdated):  # most of the traffic: stored together below
                if msg.data.period_start and msg.data.period_end:
                    figures.append((msg.event.tenant, msg.data))
                continue
            touched |= await _store(conn, msg, now)
        touched |= await repo.save_attainments(conn, figures, now)
        await repo.owe_evaluation(conn, sorted(touched), now)

    return handle


async def _store(conn: asyncpg.Connection, msg: Incoming, now: datetime) -> set[tuple[str, str]]:
    """Apply one event; the (tenant, rep) whose evaluation it may change."""
    tenant, data = msg.event.tenant, msg.data
    touched: set[str] = set()
    match data:
        case TenantUpserted():
            await registry.upsert_tenant(conn, data)
        case RepUpserted():
            await repo.upsert_rep(conn, tenant, data, msg.event.time)
            touched = {data.rep_id}
        case ActivityLogged():
            await registry.remember_calendar(conn, tenant, msg.event.extensions)
            await repo.seen_rep(conn, tenant, data.rep_id, data.occurred_at)
            touched = await repo.add_activities(conn, tenant, [data])
        case DealUpserted():
            await registry.remember_calendar(conn, tenant, msg.event.extensions)
            # known from now on: a deal created long ago (history imported at go-live) says nothing about
            # whether the rep's activities were being recorded then
            await repo.seen_rep(conn, tenant, data.rep_id, now)
            await registry.store_deal(conn, tenant, data, msg.event.id)
            touched = {data.rep_id}
        case DealDeleted():
            await registry.tombstone_deal(conn, tenant, data, msg.event.id)
    return {(tenant, rep) for rep in touched}


async def evaluate_reps(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], now: datetime,
                        defaults: Policy) -> int:
    """Run every rule for each rep (in rep id order) and return the number of tasks created.

    A finding becomes a check-in when no check-in of its rule is live (open or acknowledged) and the
    cool-down gate lets it through; a worse finding than the live one's supersedes it. A live check-in
    whose rule finds nothing any more is closed as recovered. What the rules read is fetched for all
    the reps at once (`repo.rep_views`); only findings and recoveries cost a statement each."""
    layers = await repo.tenant_policy_layers(conn, tenant)
    views = await repo.rep_views(conn, tenant, rep_ids, now, repo.activity_days(defaults, layers))
    if not views:
        return 0
    policies: dict[str | None, Policy] = {}
    live_of = await repo.live_tasks(conn, tenant, list(views))
    catalogue: dict[str, Playbook] | None = None
    created = 0
    for rep_id in sorted(views):
        view = views[rep_id]
        if view.team_id not in policies:
            mine = repo.layers_for(layers, view.team_id)
            policies[view.team_id] = defaults.with_overrides(*mine) if mine else defaults
        policy = policies[view.team_id]
        findings = evaluate(view, now, policy)
        live = {row["rule"]: row for row in live_of.get(rep_id, [])}
        for finding in findings:
            rank = SEVERITY_RANK[finding.severity]
            before = live.get(finding.rule)
            if before is not None and rank <= SEVERITY_RANK[before["severity"]]:
                continue  # still being handled (or escalated): one live check-in per rule, not one a week
            if not await repo.pass_gate(conn, tenant, rep_id, finding.rule, finding.severity, rank, now,
                                        timedelta(days=policy.cooldown_days)):
                continue
            if catalogue is None:
                catalogue = await repo.catalogue(conn, tenant)
            task = compose(view, finding, now, policy, catalogue)
            if not await repo.insert_task(conn, tenant, task, now):
                continue
            created += 1
            TASK_EVENTS.labels("created", task.rule).inc()
            await publish(conn, tenant, rep_id, "coaching.task.created", task.task_id, task, now)
            if before is not None:  # a worse finding: the new task supersedes the live one
                await close(conn, tenant, before["task_id"], "superseded", now)
        found = {f.rule for f in findings}
        for rule, row in live.items():
            if rule not in found:
                await close(conn, tenant, row["task_id"], "recovered", now)
    return created


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
