"""The control room's audit log page, `/admin/audit` (issue 17, item 7): the tenant's changes, newest first, with
who made them, when, and what each changed (only the fields that changed, before → after), filtered by what,
whom and who. It reads kpi's own `audit_log` (services/kpi/audit.py), as `GET /v1/audit` does."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.kpi.audit import PgAuditStore, Query_
from services.kpi.dashboard import queries
from services.kpi.dashboard.control import Admin, page
from services.kpi.dashboard.web import Rt
from shared.db import tenant_tx

router = APIRouter(include_in_schema=False)
PAGE = 50
MAX_SHOWN = 120  # characters of one value on the page
NONE = "\u2013"  # an en dash: no value (none before a creation, none after a removal)


def shown(value: Any) -> str:
    """A value as the page shows it: text as it is, anything else as JSON, cut to `MAX_SHOWN`.

    >>> shown(None) == NONE, shown("EUR"), shown({"a": 1})
    (True, 'EUR', '{"a": 1}')
    """
    if value is None:
        return NONE
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(field, before, after) for each field whose value differs, in a stable order: what an entry changed.

    >>> changes({"value": "100", "metric": "won_revenue"}, {"value": "150", "metric": "won_revenue"})
    [('value', '100', '150')]
    >>> changes(None, {"role": "viewer"}) == [("role", NONE, "viewer")]
    True
    """
    old, new = before or {}, after or {}
    keys = list(dict.fromkeys([*old, *new]))
    return [(k, shown(old.get(k)), shown(new.get(k))) for k in keys if old.get(k) != new.get(k)]


def who_words(actor: dict[str, Any], names: dict[str, str | None]) -> str:
    """Who made a change, in words: a person's name where the token speaks for one.

    >>> who_words({"kind": "token", "role": "manager", "token_id": "t1", "manager_id": "mia"}, {"mia": "Mia"})
    'Mia (manager token t1)'
    >>> who_words({"kind": "cli", "name": "ops"}, {})
    'command line (ops)'
    """
    if actor.get("kind") == "cli":
        return f"command line ({actor['name']})" if actor.get("name") else "command line"
    if actor.get("kind") != "token":
        return f"the service ({actor['name']})" if actor.get("name") else "the service"
    person = actor.get("rep_id") or actor.get("manager_id")
    token = f"{actor.get('role')} token {actor.get('token_id')}"
    return f"{names.get(person) or person} ({token})" if person else token


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@router.get("/admin/audit")
async def audit_page(request: Request, rt: Rt, who: Admin) -> HTMLResponse:
    params = request.query_params
    q = Query_(subject=params.get("subject") or None, action=params.get("action") or None,
               actor=params.get("actor") or None, limit=PAGE, before_seq=_int(params.get("before")))
    async with tenant_tx(rt.pool, who.tenant) as conn:
        found = await PgAuditStore(conn).find(who.tenant, q)
        people = sorted({p for e in found for p in (e["actor"].get("rep_id"), e["actor"].get("manager_id")) if p})
        names = await queries.rep_names(conn, who.tenant, people)
    rows = [{"at": e["at"], "who": who_words(e["actor"], names), "action": e["action"], "subject": e["subject"],
             "service": e["service"], "changes": changes(e["before"], e["after"])} for e in found]
    more = found[-1]["seq"] if len(found) == PAGE else None
    return await page(request, rt, who, "control_audit.html", "Audit log", rows=rows, more=more,
                      filters={"subject": q.subject or "", "action": q.action or "", "actor": q.actor or ""})
