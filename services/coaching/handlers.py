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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.coaching import repository as repo
from services.coaching.checkins import compose
from services.coaching.config import CONFIGS, ConfigCache
from services.coaching.effect import (
    FollowUp,
    comparison_id,
    due_milestones,
    follow_up,
    in_holdout,
    pace_of,
    working_days_between,
)
from services.coaching.intake import reduce_batch
from services.coaching.metrics import TASK_EVENTS
from services.coaching.model import RULES, Finding, Policy, RepView
from services.coaching.outbound import publish
from services.coaching.repository import PgStore
from services.coaching.rules import RULE_FUNCTIONS, LiveTask, Verdict, resting, verdict
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
    TimeOffSet,
)
from shared.service import Runtime

log = logging.getLogger(__name__)
MODELS: dict[str, type[BaseModel]] = {
    "kpi.attainment.updated": AttainmentUpdated, "activity.logged": ActivityLogged, "deal.upserted": DealUpserted,
    "deal.deleted": DealDeleted, "rep.upserted": RepUpserted, "tenant.upserted": TenantUpserted,
    "time_off.set": TimeOffSet,
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
    await store.store_time_off(tenant, changes.time_off)
    touched = sorted({r.rep_id for reps in changes.rep_rounds for r, _ in reps} | changes.deal_reps
                     | {n.rep_id for n in new} | figured | {leave.rep_id for leave, _, _ in changes.time_off})
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
    await _follow(store, tenant, judged, drafts, created, passed, now)
    return len(created)


@dataclass(frozen=True, slots=True)
class _Judged:
    view: RepView
    policy: Policy
    verdict: Verdict
    findings: tuple[Finding, ...] = ()
    live: frozenset[str] = frozenset()  # the rules with a live check-in
    holdout: bool = False  # the rep is in the tenant's holdout: findings, no check-ins


def _judge(view: RepView, now: datetime, policy: Policy, live: Sequence[LiveTask]) -> _Judged:
    held = {task.rule: task.severity for task in live}  # of two live check-ins of a rule, the newest
    findings = rules_evaluate(view, now, policy, held)
    holdout = in_holdout(view.tenant, view.rep_id, policy.holdout_share)
    decided = verdict(findings, live)
    if holdout or resting(view, now):
        # held out (its live check-ins from before still recover), or the rep's day off (a weekend, a holiday,
        # their time off: nobody is chased on it, the next working day finds it again): nothing new is raised
        decided = Verdict((), decided.recovered)
    return _Judged(view, policy, decided, tuple(findings), frozenset(held), holdout)


async def _follow(store: Store, tenant: str, judged: Sequence[_Judged], drafts: Mapping[tuple[str, str], TaskCreated],
                  created: set[str], passed: set[tuple[str, str]], now: datetime) -> None:
    """Did it help (`effect.py`)? Open a follow-up for each check-in created now and each finding that got
    none (a comparison: inside its cool-down, below the material-gap thresholds, or held out); then record
    the milestones due and the recoveries of the evaluated reps' open follow-ups. One read and two writes for
    all the reps; one open follow-up per rule and rep (a lasting finding is one observation). A comparison
    finding that gets a check-in after all (a silence of 3 working days is one below the threshold; at 5 it
    is a check-in) is dropped: it is no longer a finding without a check-in."""
    pending = await store.open_follow_ups(tenant, [j.view.rep_id for j in judged], now)
    busy = {(r.rep_id, r.rule) for rows in pending.values() for r in rows if r.recovered_at is None}
    coached = {(r.rep_id, r.rule) for rows in pending.values() for r in rows
               if r.recovered_at is None and r.kind == "check_in"}
    opened: list[FollowUp] = []
    turned: list[str] = []  # open comparisons whose finding got a check-in after all: no longer without one
    for j in judged:
        view, found = j.view, {f.rule for f in j.findings}
        window = timedelta(days=j.policy.cooldown_days)

        def comparison(f: Finding, reason: str, view: RepView = view, window: timedelta = window) -> FollowUp:
            subject = comparison_id(view.tenant, view.rep_id, f.rule, now, window)
            return follow_up(view, f.rule, f.evidence.metric, f.evidence.period, subject, "comparison", reason,
                             now)

        compared: list[tuple[Finding, str]] = []
        for f, before in j.verdict.raise_:
            task = drafts.get((view.rep_id, f.rule))
            if task is not None and task.task_id in created:
                if (view.rep_id, f.rule) not in coached:  # (a worse check-in superseding one: the same finding)
                    opened.append(follow_up(view, f.rule, f.evidence.metric, f.evidence.period,
                                            task.task_id, "check_in", None, now))
                    turned += [r.subject_id for r in pending.get(view.rep_id, [])
                               if r.rule == f.rule and r.kind == "comparison" and r.recovered_at is None]
            elif before is None and (view.rep_id, f.rule) not in passed:
                compared.append((f, "cooldown"))
        if j.holdout:
            compared += [(f, "holdout") for f in j.findings if f.rule not in j.live]
        elif len(found | j.live) < len(RULES):  # what the thresholds before material gaps would have raised
            compared += [(f, "below_threshold") for f in rules_evaluate(view, now, j.policy.before_material_gaps())
                         if f.rule not in found and f.rule not in j.live]
        # one open comparison per rule and rep, as one live check-in: a lasting finding is one observation
        opened += [comparison(f, reason) for f, reason in compared if (view.rep_id, f.rule) not in busy]
    await store.record_follow_ups(tenant, opened, turned)
    gone = set(turned)
    pending = {rep: [r for r in rows if r.subject_id not in gone] for rep, rows in pending.items()}
    moved: list[FollowUp] = []
    for j in judged:
        mine = pending.get(j.view.rep_id, [])
        if not mine:
            continue
        view, holding = j.view, j.policy.holding()
        holds = {rule: RULE_FUNCTIONS[rule](view, now, holding) is not None for rule in {r.rule for r in mine}}
        for r in mine:
            due = due_milestones(r, now, view.timezone, view.days_off)
            recovered = r.recovered_at is None and now > r.opened_at and not holds[r.rule]
            if not due and not recovered:
                continue
            pace = {**r.pace, **{n: pace_of(view, r.metric, r.period, now) for n in due}}
            moved.append(replace(r, pace=pace, measured=max([r.measured, *due]),
                                 recovered_at=now if recovered else r.recovered_at,
                                 recovered_days=(working_days_between(r.opened_at, now, view.timezone, view.days_off)
                                                 if recovered else r.recovered_days)))
    await store.advance_follow_ups(tenant, moved)


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
