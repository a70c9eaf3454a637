"""coaching's HTTP API (CONTRACT.md, section 5, and ours beyond it), tenant-scoped by the bearer token.

Contract: `GET /v1/tasks?rep_id=&status=`, `POST /v1/tasks/{task_id}/ack`, `POST /v1/tasks/{task_id}/complete`,
`GET|POST /v1/action-plans`. Ours: one task, one plan, holidays and time off (fair pace), thresholds per
tenant and team, the catalogue of actions and training, manager scorecards, and the published reviews.
Writes that announce something (completing a task, a plan step settled) commit with their outbox rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from services.coaching import action_plans, digests
from services.coaching import repository as repo
from services.coaching.checkins import DEFAULT_CATALOGUE, Playbook
from services.coaching.effect import GROUPINGS, summarise
from services.coaching.handlers import base_policy, close, task_json
from services.coaching.model import RULES
from services.coaching.plan_rules import PLAN_METRICS, StepDraft, steps_for_task, title_of
from shared import audit
from shared.auth import Admin, People, Reader, allow, reps_visible, see_rep
from shared.authz import Principal, hidden, may_act_on_check_in
from shared.db import tenant_tx
from shared.events import ManagerCard, Metric
from shared.events import Text as StoredText
from shared.periods import PeriodError, period_of
from shared.service import Runtime, runtime_of

router = APIRouter(prefix="/v1", tags=["coaching"])
SERVICE = "coaching"  # in the audit log (shared/audit.py)
Rt = Annotated[Runtime, Depends(runtime_of)]
Actor = Annotated[Principal, Depends(allow("admin", "manager", "rep"))]  # acts on check-ins: then `_may_act`
Planner = Annotated[Principal, Depends(allow("admin", "manager"))]
Coach = Annotated[Principal, Depends(allow("admin", "integration", "manager"))]
TaskStatus = Literal["open", "acknowledged", "completed", "closed"]
Text = Annotated[StoredText, Field(min_length=1, max_length=200)]


class Outcome(BaseModel):
    outcome: Annotated[StoredText, Field(min_length=1, max_length=500, description="what was agreed, in a sentence")]


class StepIn(BaseModel):
    metric: Metric = Field(description=f"one of {', '.join(m.value for m in PLAN_METRICS)}")
    target: Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=4)]
    due_at: AwareDatetime
    title: Text | None = None


class PlanIn(BaseModel):
    rep_id: Text | None = Field(None, description="required unless task_id is given")
    task_id: uuid.UUID | None = Field(None, description="make the plan from this check-in")
    title: Text | None = None
    steps: list[StepIn] = Field(default_factory=list, max_length=20,
                                description="omitted with a task_id: the steps the task suggests")


class HolidayIn(BaseModel):
    day: date
    name: Text


class TimeOffIn(BaseModel):
    first_day: date
    last_day: date
    reason: Text | None = None


class PlaybookIn(BaseModel):
    suggested_actions: list[Annotated[StoredText, Field(min_length=1, max_length=300)]] = Field(min_length=1,
                                                                                               max_length=10)
    training: list[Annotated[StoredText, Field(min_length=1, max_length=300)]] = Field(max_length=10)


def _task_uuid(task_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(task_id)
    except ValueError as err:
        raise HTTPException(404, f"no task {task_id!r}") from err


@router.get("/tasks")
async def list_tasks(rt: Rt, who: People, rep_id: str | None = None, status: TaskStatus | None = None,
                     manager_id: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                     cursor: uuid.UUID | None = None) -> dict[str, Any]:
    """The check-ins the caller may see, oldest id first; `next_cursor` pages on. A rep sees their own, a
    manager those of the reps under them; asking for another rep's is 404."""
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        among = await reps_visible(conn, who, rep_id)
        rows = await repo.tasks(conn, tenant, rep_id=rep_id, status=status, manager_id=manager_id, after=cursor,
                                limit=limit, among=among)
    items = [task_json(r) for r in rows]
    return {"tasks": items, "next_cursor": items[-1]["task_id"] if len(items) == limit else None}


@router.get("/tasks/{task_id}")
async def get_task(rt: Rt, who: People, task_id: str) -> dict[str, Any]:
    async with tenant_tx(rt.pool, who.tenant) as conn:
        row = await repo.task(conn, who.tenant, _task_uuid(task_id))
        if row is not None:
            _see_task(who, row, task_id, await reps_visible(conn, who))
    if row is None:
        raise HTTPException(404, f"no task {task_id!r}")
    return task_json(row)


def _see_task(who: Principal, row: Any, task_id: Any, among: Collection[str] | None) -> None:
    """404, as for a task that does not exist, unless the task's rep is among those `who` may see."""
    if among is not None and row["rep_id"] not in among:
        raise hidden(f"task {str(task_id)!r}")


async def _may_act(conn: Any, who: Principal, task_id: uuid.UUID) -> None:
    """404 unless `who` may see the task; 403 when they may see but not act on it."""
    row = await repo.task(conn, who.tenant, task_id)
    if row is None:
        return  # the action itself answers 404
    among = await reps_visible(conn, who)
    _see_task(who, row, task_id, among)
    if not may_act_on_check_in(who, row["rep_id"], among or ()):
        raise HTTPException(403, f"a {who.role} token may not act on this check-in")


async def _conflict(conn: Any, tenant: str, task_id: uuid.UUID, action: str) -> HTTPException:
    row = await repo.task(conn, tenant, task_id)
    if row is None:
        return HTTPException(404, f"no task {task_id}")
    return HTTPException(409, f"task {task_id} is {row['status']}: it cannot be {action}")


@router.post("/tasks/{task_id}/ack")
async def acknowledge(rt: Rt, who: Actor, task_id: str) -> dict[str, Any]:
    """The manager (or the rep it is about) has seen the check-in (stops its escalation). 409 unless it is open."""
    key, tenant = _task_uuid(task_id), who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        await _may_act(conn, who, key)
        row = await repo.acknowledge(conn, tenant, key, rt.clock.now())
        if row is None:
            raise await _conflict(conn, tenant, key, "acknowledged")
        await audit.record(conn, tenant=tenant, who=who, action="check_in.acknowledged", subject=f"check_in:{key}",
                           before={"status": "open", "rep_id": row["rep_id"]},
                           after={"status": row["status"], "rep_id": row["rep_id"]}, at=rt.clock.now(),
                           service=SERVICE)
    return task_json(row)


@router.post("/tasks/{task_id}/complete")
async def complete(rt: Rt, who: Actor, task_id: str, body: Outcome) -> dict[str, Any]:
    """The check-in was held: its outcome is recorded and `coaching.task.closed` (reason completed) sent."""
    key, tenant = _task_uuid(task_id), who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        await _may_act(conn, who, key)
        was = await repo.task(conn, tenant, key)
        row = await close(conn, tenant, key, "completed", rt.clock.now(), body.outcome)
        if row is None:
            raise await _conflict(conn, tenant, key, "completed")
        await audit.record(conn, tenant=tenant, who=who, action="check_in.completed", subject=f"check_in:{key}",
                           before={"status": was["status"] if was else None, "rep_id": row["rep_id"]},
                           after={"status": row["status"], "rep_id": row["rep_id"], "outcome": body.outcome},
                           at=rt.clock.now(), service=SERVICE)
    rt.relay.wake()
    return task_json(row)


@router.get("/action-plans")
async def list_plans(rt: Rt, who: People, rep_id: str | None = None,
                     status: Literal["open", "completed", "missed"] | None = None) -> dict[str, Any]:
    """The action plans the caller may see (a rep their own, a manager their reps')."""
    async with tenant_tx(rt.pool, who.tenant) as conn:
        among = await reps_visible(conn, who, rep_id)
        found = await action_plans.plans(conn, who.tenant, rep_id, status)
    return {"action_plans": [p for p in found if among is None or p["rep_id"] in among]}


@router.get("/action-plans/{plan_id}")
async def get_plan(rt: Rt, who: People, plan_id: uuid.UUID) -> dict[str, Any]:
    async with tenant_tx(rt.pool, who.tenant) as conn:
        found = await action_plans.plans(conn, who.tenant, None, None, plan_id)
        among = await reps_visible(conn, who)
    if not found or (among is not None and found[0]["rep_id"] not in among):
        raise HTTPException(404, f"no action plan {plan_id}")
    return found[0]


@router.post("/action-plans", status_code=201)
async def create_plan(rt: Rt, who: Planner, body: PlanIn) -> dict[str, Any]:
    """A plan of steps for a rep, given, or suggested by a check-in (`task_id`); progress then follows the
    rep's logged activities and won deals, and each step's completion or miss is announced. A manager makes
    plans for the reps under them."""
    now, tenant = rt.clock.now(), who.tenant
    if bad := [s.metric.value for s in body.steps if s.metric not in PLAN_METRICS]:
        raise HTTPException(422, f"steps: metric {bad[0]!r} cannot be tracked; use one of "
                                 f"{', '.join(m.value for m in PLAN_METRICS)}")
    if past := [s for s in body.steps if s.due_at <= now]:
        raise HTTPException(422, f"steps: due_at {past[0].due_at.isoformat()} is not in the future")
    async with tenant_tx(rt.pool, tenant) as conn:
        task = await repo.task(conn, tenant, body.task_id) if body.task_id else None
        if body.task_id and task is None:
            raise HTTPException(404, f"no task {body.task_id}")
        rep_id = task["rep_id"] if task else body.rep_id
        if rep_id is None:
            raise HTTPException(422, "rep_id: required unless task_id is given")
        if body.rep_id and task and body.rep_id != task["rep_id"]:
            raise HTTPException(422, f"rep_id: task {body.task_id} is {task['rep_id']}'s, not {body.rep_id}'s")
        await see_rep(conn, who, rep_id)
        zone = await repo.rep_zone(conn, tenant, rep_id) or ZoneInfo("UTC")
        steps = [StepDraft(s.title or title_of(s.metric, s.target, s.due_at, zone), s.metric, s.target, s.due_at)
                 for s in body.steps]
        if not steps and task:
            steps = list(steps_for_task(task["rule"], json.loads(task["evidence"]), task["due_at"], zone))
        if not steps:
            raise HTTPException(422, "steps: give at least one step (or a task_id to take its suggestions)")
        title = body.title or (f"Plan for: {task['summary']}" if task else f"Action plan for {rep_id}")
        plan_id = await action_plans.create(conn, tenant, rep_id, title[:200], steps, now,
                                        str(body.task_id) if body.task_id else None)
        plan = (await action_plans.plans(conn, tenant, None, None, plan_id))[0]
        await audit.record(conn, tenant=tenant, who=who, action="action_plan.created",
                           subject=f"action_plan:{plan_id}", before=None,
                           after={"rep_id": rep_id, "title": plan.get("title"), "task_id": plan.get("task_id"),
                                  "steps": len(steps)}, at=now, service=SERVICE)
    rt.relay.wake()
    return plan


@router.get("/effectiveness")
async def effectiveness(rt: Rt, who: Coach, by: Annotated[str, Query(pattern=f"^({'|'.join(GROUPINGS)})$")] = "rule",
                        since: date | None = None, until: date | None = None,
                        min_sample: Annotated[int, Query(ge=1, le=1000)] = 10) -> dict[str, Any]:
    """Did it help? Per rule, manager, team, response (an action plan, completed, acknowledged, none) or quarter
    (`by`): what followed the check-ins opened from `since` to `until` (default: the last 90 days), against
    the findings that got none (`effect.py`): counts, recovery rate with its 95 % interval, median working days
    to recover and median pace change 7, 14 and 30 working days on; "not enough data" below `min_sample`.
    A manager sees the reps under them."""
    tenant, now = who.tenant, rt.clock.now()
    # `until` is a whole day; without it, up to now (a follow-up opened at this very instant included)
    end = datetime.combine(until + timedelta(days=1), time(), UTC) if until else now + timedelta(microseconds=1)
    start = datetime.combine(since, time(), UTC) if since else end - timedelta(days=90)
    if start >= end:
        raise HTTPException(422, f"since: {since} is not before until: {until}")
    async with tenant_tx(rt.pool, tenant) as conn:
        among = await reps_visible(conn, who)
        rows = await repo.follow_ups(conn, tenant, start, end, None if among is None else sorted(among))
    return {"by": by, "since": start.isoformat(), "until": end.isoformat(), "min_sample": min_sample,
            "check_ins": sum(r.kind == "check_in" for r in rows),
            "comparison": {reason: sum(r.reason == reason for r in rows)
                           for reason in ("cooldown", "below_threshold", "holdout")},
            "groups": summarise(rows, by, min_sample),
            "note": "what followed the check-ins, against findings that got none; a holdout "
                    "(policy holdout_share) makes the comparison a fair one"}


@router.get("/holidays")
async def list_holidays(rt: Rt, who: Coach, year: Annotated[int | None, Query(ge=1900, le=2999)] = None
                        ) -> dict[str, Any]:
    """The tenant's days off in `year` (default: this year in the tenant's zone), as every service counts
    them: the tenant calendar's (its country's public holidays, added days, less removed ones) and any day
    entered through this API before the calendar existed (`source` says which)."""
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        rows = await repo.holidays(conn, tenant)
        config = await repo.load_config(conn, tenant, None)
    year = year or rt.clock.now().astimezone(config.timezone).year
    days = {r["day"]: {"day": r["day"], "name": r["name"], "source": "coaching"} for r in rows
            if r["day"].year == year}
    days |= {d: {"day": d, "name": n, "source": "calendar"}
             for d, n in config.calendar.between(date(year, 1, 1), date(year, 12, 31)).items()}
    return {"year": year, "country": config.calendar.country, "subdivision": config.calendar.subdivision,
            "holidays": [days[d] for d in sorted(days)]}


@router.post("/holidays", status_code=201, responses={410: {}})
async def add_holiday(who: Admin, body: HolidayIn) -> None:
    """Gone: a holiday is the tenant calendar's now, which kpi and recognition count as well (one calendar).
    `python -m services.ingest tenants holidays SLUG --add YYYY-MM-DD=NAME` (or `--country`)."""
    raise HTTPException(410, "holidays belong to the tenant calendar now, which kpi and recognition count too: "
                             f"python -m services.ingest tenants holidays {who.tenant} "
                             f"--add {body.day.isoformat()}=NAME (or --country XX for public holidays)")


@router.delete("/holidays/{day}", status_code=204)
async def remove_holiday(rt: Rt, who: Admin, day: date) -> None:
    """Remove a day entered through this API before the tenant calendar (the calendar's own days change with
    `tenants holidays --remove`)."""
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        if await repo.remove_holiday(conn, tenant, day):  # nothing removed, nothing to write down
            await audit.record(conn, tenant=tenant, who=who, action="holiday.removed", subject=f"holiday:{day}",
                               before={"day": day}, after=None, at=rt.clock.now(), service=SERVICE)


@router.get("/reps/{rep_id}/time-off")
async def list_time_off(rt: Rt, who: People, rep_id: str) -> dict[str, Any]:
    """The rep's time off: each `time_off.set` in force (not cancelled), and what this API took before."""
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        await see_rep(conn, who, rep_id)
        rows = await repo.time_off(conn, tenant, rep_id)
    return {"rep_id": rep_id, "time_off": [dict(r) for r in rows]}


@router.post("/reps/{rep_id}/time-off", status_code=201, responses={410: {}})
async def add_time_off(who: Admin, rep_id: str, body: TimeOffIn) -> None:
    """Gone: time off is a `time_off.set` event now (`POST /v1/events` on ingest), which kpi and recognition
    count as well."""
    raise HTTPException(410, f"time off is an event now, which kpi and recognition count too: send a"
                             f" 'time_off.set' for rep {rep_id!r} ({body.first_day} to {body.last_day}) to ingest's"
                             " POST /v1/events (docs/contract.md)")


async def _policy(rt: Runtime, tenant: str, team_id: str | None) -> dict[str, Any]:
    async with tenant_tx(rt.pool, tenant) as conn:
        layers = await repo.policy_layers(conn, tenant, team_id)
    own = await _own_overrides(rt, tenant, team_id or "")
    effective = base_policy(rt).with_overrides(*layers)
    return {"team_id": team_id, "overrides": own, "effective": effective.model_dump(mode="json")}


async def _own_overrides(rt: Runtime, tenant: str, team_id: str) -> dict[str, Any]:
    async with tenant_tx(rt.pool, tenant) as conn:
        return await repo.own_overrides(conn, tenant, team_id)


async def _set_policy(rt: Runtime, who: Principal, team_id: str, overrides: dict[str, Any]) -> dict[str, Any]:
    tenant = who.tenant
    try:  # the layers below must still make a valid policy with these on top
        async with tenant_tx(rt.pool, tenant) as conn:
            below = await repo.policy_layers(conn, tenant, None) if team_id else []
        base_policy(rt).with_overrides(*below, overrides)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}, got {_shown(e['input'])}"
                             for e in err.errors())
        raise HTTPException(422, problems) from err
    async with tenant_tx(rt.pool, tenant) as conn:
        before = await repo.own_overrides(conn, tenant, team_id)
        await repo.set_policy(conn, tenant, team_id, overrides)
        await audit.record(conn, tenant=tenant, who=who, action="policy.changed",
                           subject=f"policy:team/{team_id}" if team_id else "policy:tenant", before=before,
                           after=overrides, at=rt.clock.now(), service=SERVICE)
    return await _policy(rt, tenant, team_id or None)


def _shown(value: Any) -> str:
    """A refused value as an error names it: 'Demos Held' in "pace_metrics.1: ..., got 'Demos Held'"."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


@router.get("/policies")
async def get_policy(rt: Rt, who: Reader) -> dict[str, Any]:
    """The tenant's thresholds: its own overrides and the effective values (defaults underneath)."""
    return await _policy(rt, who.tenant, None)


@router.put("/policies")
async def put_policy(rt: Rt, who: Admin, overrides: dict[str, Any]) -> dict[str, Any]:
    """Replace the tenant's overrides (any subset of the thresholds in `effective`)."""
    return await _set_policy(rt, who, "", overrides)


@router.get("/policies/teams/{team_id}")
async def get_team_policy(rt: Rt, who: Reader, team_id: str) -> dict[str, Any]:
    return await _policy(rt, who.tenant, team_id)


@router.put("/policies/teams/{team_id}")
async def put_team_policy(rt: Rt, who: Admin, team_id: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Replace one team's overrides, on top of the tenant's."""
    return await _set_policy(rt, who, team_id, overrides)


@router.get("/catalogue")
async def get_catalogue(rt: Rt, who: Coach) -> dict[str, Any]:
    """Per rule, the suggested actions and training a check-in carries (the tenant's, else the defaults)."""
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        own = await repo.catalogue(conn, tenant)
    book = {**DEFAULT_CATALOGUE, **own}
    return {rule: {"suggested_actions": list(p.suggested_actions), "training": list(p.training),
                   "custom": rule in own} for rule, p in sorted(book.items())}


@router.put("/catalogue/{rule}")
async def put_playbook(rt: Rt, who: Admin, rule: str, body: PlaybookIn) -> dict[str, Any]:
    tenant = who.tenant
    if rule not in RULES:
        raise HTTPException(404, f"no rule {rule!r}; rules: {', '.join(RULES)}")
    async with tenant_tx(rt.pool, tenant) as conn:
        was = (await repo.catalogue(conn, tenant)).get(rule)
        await repo.set_playbook(conn, tenant, rule, Playbook(tuple(body.suggested_actions), tuple(body.training)))
        await audit.record(conn, tenant=tenant, who=who, action="playbook.changed", subject=f"playbook:{rule}",
                           before=None if was is None else {"suggested_actions": list(was.suggested_actions),
                                                            "training": list(was.training)},
                           after=body.model_dump(), at=rt.clock.now(), service=SERVICE)
    return {"rule": rule} | body.model_dump()


@router.get("/managers/{manager_id}/scorecard")
async def manager_scorecard(rt: Rt, who: Coach, manager_id: str,
                            period: str | None = None) -> ManagerCard:
    """How the manager handles their team's check-ins in `period` (default: the current quarter), and their
    team's won revenue against target: managers are held to account too. A manager token reads its own and
    those of the managers under it (404 for any other)."""
    now, tenant = rt.clock.now(), who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        if who.role == "manager" and manager_id != who.manager_id:
            await see_rep(conn, who, manager_id)
        zone, fiscal = await repo.calendar_of(conn, tenant)
        label = period or period_of("quarter", now, zone, fiscal).label
        try:
            return await digests.scorecard(conn, tenant, manager_id, label, zone, fiscal, now)
        except PeriodError as err:
            raise HTTPException(422, f"period: {err}") from err


@router.get("/reviews")
async def list_reviews(rt: Rt, who: Coach, scope_id: str | None = None, week: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """The weekly digests published so far, newest week first (team-level summaries: managers read them)."""
    tenant = who.tenant
    async with tenant_tx(rt.pool, tenant) as conn:
        return {"reviews": await repo.reviews(conn, tenant, scope_id, week, limit)}

