"""The control room's core sections (see control.py): targets here; the roster and teams
(`control_core_roster`), tenant settings (`control_core_tenant`) and people and tokens (`control_core_people`)
in modules of their own, included below.

Targets: a table of every active rep and every team against the metrics with targets in a period; the cells an
admin changed, an uploaded CSV (every line checked first, nothing posted when one is bad) and a copy of the
previous period's targets all become `target.set` events posted to ingest's `POST /v1/events` with the admin's
own token: ingest's answer per event decides, and a refused one is shown with its reason. The decisions are
pure functions in `control_core_rules.py`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.kpi.dashboard import control_core_people, control_core_roster, control_core_tenant, queries
from services.kpi.dashboard.control import Admin, check_csrf, field, form_of, page, session_token
from services.kpi.dashboard.control_core_events import back, listed, post_events, target_event
from services.kpi.dashboard.control_core_rules import (
    CSV_HEADER,
    NewTarget,
    TargetKey,
    cell_name,
    changed_cells,
    check_csv,
    copy_plan,
    previous_period,
    was_name,
)
from services.kpi.dashboard.web import Metrics, Rt, basics, page_period, period_choices
from shared.authz import Principal
from shared.db import tenant_tx
from shared.events import Metric
from shared.periods import PeriodKind, period_bounds, period_of
from shared.service import Runtime

router = APIRouter(include_in_schema=False)
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
NEXT = timedelta(microseconds=1)  # PostgreSQL's timestamps are to the microsecond


def plain(value: Decimal | None) -> str:
    """A target as an input shows it: `900000`, `1500.5` (no exponent, no trailing zeros)."""
    if value is None:
        return ""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _said_of(saved: NewTarget) -> str:
    return f"{saved.scope} {saved.scope_id}, {saved.metric}, {saved.period}"


async def _save(rt: Runtime, request: Request, who: Principal,
                targets: Sequence[NewTarget]) -> tuple[int, list[str]]:
    """Post the targets, each dated now, or just after the version kpi holds when that is later (a CRM's clock
    ahead of ours): kpi keeps the newest version of a target, and a change dated before it would be lost."""
    now = rt.clock.now()
    async with tenant_tx(rt.pool, who.tenant) as conn:
        held = {(r["scope"], r["scope_id"], r["metric"], r["period"]): r["version"]
                for r in await queries.targets_in(conn, who.tenant, sorted({t.period for t in targets}))}
    events = [target_event(t, max(now, held.get((t.scope, t.scope_id, t.metric, t.period), now) + NEXT))
              for t in targets]
    taken, refused = await post_events(rt, session_token(request), events)
    return taken, [f"{_said_of(targets[i])}: {why}" if i >= 0 else why for i, why in refused]


# --- the table ----------------------------------------------------------------------------------------------


def _choices(t: queries.Tenant, now: datetime, label: str) -> list[str]:
    """The usual periods, the next quarter and month (targets are set ahead), and the one shown."""
    out = period_choices(t, now)
    for kind in (PeriodKind.QUARTER, PeriodKind.MONTH):
        _, end = period_bounds(period_of(kind, now, t.timezone, t.fiscal_start_month), t.timezone,
                               t.fiscal_start_month)
        out.append(period_of(kind, end + timedelta(hours=1), t.timezone, t.fiscal_start_month).label)
    if label not in out:
        out.append(label)
    return sorted(set(out), reverse=True)


async def _targets_page(request: Request, rt: Runtime, who: Principal, period: str | None, add: Sequence[str],
                        problems: Sequence[str] = (), pasted: str = "", status: int = 200) -> HTMLResponse:
    t, fmt, now = await basics(rt, who.tenant)
    p = page_period(t, period, now)
    async with tenant_tx(rt.pool, who.tenant) as conn:
        held = await queries.targets_in(conn, who.tenant, [p.label])
        reps = [r for r in await queries.roster(conn, who.tenant) if r["active"]]
        teams = await queries.all_teams(conn, who.tenant)
    names = fmt.metrics.names
    shown = sorted({r["metric"] for r in held} | {m for m in add if m in names}, key=_metric_order(names))
    columns = shown or [Metric.WON_REVENUE.value]
    values = {TargetKey(r["scope"], r["scope_id"], r["metric"]): plain(r["value"]) for r in held}
    rows = ([("rep", r["rep_id"], r["name"] or r["rep_id"], r["team_name"] or r["team_id"]) for r in reps]
            + [("team", r["team_id"], r["name"] or r["team_id"], "team") for r in teams])
    cells = [[{"name": cell_name(TargetKey(scope, sid, m)), "was": was_name(TargetKey(scope, sid, m)),
               "value": values.get(TargetKey(scope, sid, m), ""), "label": f"{name}: {fmt.name(m)}"}
              for m in columns] for scope, sid, name, _ in rows]
    return await page(request, rt, who, "control_targets.html", "Targets", status=status, period=p,
                      periods=_choices(t, now, p.label), columns=columns, rows=list(zip(rows, cells, strict=True)),
                      addable=[(m, n) for m, n in names.items() if m not in columns], add=list(add),
                      previous=previous_period(p.label), header=",".join(CSV_HEADER), problems=list(problems),
                      pasted=pasted, example=_example(rows, p.label))


def _metric_order(names: dict[str, str]) -> Any:
    order = list(names)
    return lambda m: (order.index(m) if m in order else len(order), m)


def _example(rows: Sequence[tuple[str, str, str, str]], period: str) -> str:
    first = next(((scope, sid) for scope, sid, _, _ in rows), ("rep", "ana"))
    return f"{','.join(CSV_HEADER)}\n{first[0]},{first[1]},won_revenue,{period},120000"


@router.get("/admin/targets")
async def targets_page(request: Request, rt: Rt, who: Admin, period: str | None = None) -> HTMLResponse:
    return await _targets_page(request, rt, who, period, request.query_params.getlist("add"))


@router.post("/admin/targets")
async def save_targets(request: Request, rt: Rt, who: Admin) -> Response:
    form = await form_of(request)
    period = field(form, "period")
    t, _, now = await basics(rt, who.tenant)
    label = page_period(t, period or None, now).label
    params = {"period": label} | ({"add": field(form, "add")} if field(form, "add") else {})
    targets, problems = changed_cells({k: v[0] for k, v in form.items() if v}, label)
    if problems:
        return back("/admin/targets", params, error="Nothing was saved: " + listed(problems))
    if not targets:
        return back("/admin/targets", params, said="No target was changed.")
    taken, refused = await _save(rt, request, who, targets)
    said = f"Saved {taken} target{'s' if taken != 1 else ''} for {label}." if taken else ""
    return back("/admin/targets", params, said=said, error=("Refused: " + listed(refused)) if refused else "")


@router.post("/admin/targets/upload")
async def upload_targets(request: Request, rt: Rt, who: Admin) -> Response:
    form = await request.form(max_files=1, max_fields=10)
    check_csrf(request, str(form.get("csrf") or ""))
    period = str(form.get("period") or "") or None
    pasted = str(form.get("text") or "")
    upload = form.get("file")
    text = pasted
    if upload is not None and not isinstance(upload, str):
        raw = await upload.read(MAX_UPLOAD_BYTES + 1)
        if raw:
            if len(raw) > MAX_UPLOAD_BYTES:
                return await _targets_page(request, rt, who, period, (), [f"the file is larger than"
                                           f" {MAX_UPLOAD_BYTES // 1024 // 1024} MB: upload it in parts"], pasted, 413)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return await _targets_page(request, rt, who, period, (), ["the file is not UTF-8 text"], pasted, 422)
    if not text.strip():
        return await _targets_page(request, rt, who, period, (), ["choose a CSV file or paste its lines"], pasted, 422)
    async with tenant_tx(rt.pool, who.tenant) as conn:
        reps = {r["rep_id"] for r in await queries.roster(conn, who.tenant) if r["active"]}
        teams = {r["team_id"] for r in await queries.all_teams(conn, who.tenant)}
        metrics = Metrics(await queries.kpi_definitions(conn, who.tenant)).names
    targets, problems = check_csv(text, reps=reps, teams=teams, metrics=set(metrics))
    if problems:
        return await _targets_page(request, rt, who, period, (), ["Nothing was saved.", *problems], text, 422)
    taken, refused = await _save(rt, request, who, targets)
    if refused:
        return await _targets_page(request, rt, who, period, (), [
            f"{taken} of {len(targets)} targets were saved; ingest refused the others:", *refused], text, 422)
    periods = sorted({t.period for t in targets})
    return back("/admin/targets", {"period": periods[0] if len(periods) == 1 else (period or "")},
                said=f"Saved {taken} target{'s' if taken != 1 else ''} from the file ({', '.join(periods)}).")


@router.post("/admin/targets/copy")
async def copy_targets(request: Request, rt: Rt, who: Admin) -> Response:
    form = await form_of(request)
    t, _, now = await basics(rt, who.tenant)
    label = page_period(t, field(form, "period") or None, now).label
    before = previous_period(label)
    async with tenant_tx(rt.pool, who.tenant) as conn:
        held = await queries.targets_in(conn, who.tenant, [before, label])
        reps = {r["rep_id"] for r in await queries.roster(conn, who.tenant) if r["active"]}
        teams = {r["team_id"] for r in await queries.all_teams(conn, who.tenant)}
    previous = [(TargetKey(r["scope"], r["scope_id"], r["metric"]), r["value"]) for r in held if r["period"] == before]
    existing = {TargetKey(r["scope"], r["scope_id"], r["metric"]) for r in held if r["period"] == label}
    plan = copy_plan(previous, existing, label, reps=reps, teams=teams)
    if not previous:
        return back("/admin/targets", {"period": label}, error=f"{before} has no targets to copy.")
    taken, refused = await _save(rt, request, who, plan.copy) if plan.copy else (0, [])
    said = (f"Copied {taken} target{'s' if taken != 1 else ''} from {before} into {label}; kept {plan.kept} already"
            f" set in {label}" + (f"; skipped {plan.skipped} of reps or teams no longer on the roster" if plan.skipped
                                  else "") + ".")
    return back("/admin/targets", {"period": label}, said=said,
                error=("Refused: " + listed(refused)) if refused else "")


for _section in (control_core_roster.router, control_core_tenant.router, control_core_people.router):
    router.include_router(_section)
