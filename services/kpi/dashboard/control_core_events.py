"""What the control room's core sections share: posting their events to ingest with the admin's token (ingest's
answer per event decides), and going back to a page with one line saying what happened."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import RedirectResponse

from services.kpi.dashboard.control import call
from services.kpi.dashboard.control_core_rules import NewTarget
from shared.service import Runtime

SOURCE = "control"  # the `source` of the events the control room posts (ids `control-<uuid4>`: one per change)
CHUNK = 1000  # events per request to ingest (its limit is MAX_EVENTS_PER_REQUEST, 10,000 by default)
SHOWN_PROBLEMS = 12  # a redirect's message lists this many, then says how many more


def event(kind: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    """One canonical event of the control room: a fresh id per change, so a change is never a duplicate."""
    return {"type": kind, "id": f"control-{uuid.uuid4()}", "source": SOURCE, "time": at.isoformat(), "data": data}


def target_event(t: NewTarget, at: datetime) -> dict[str, Any]:
    return event("target.set", {"scope": t.scope, "scope_id": t.scope_id, "metric": t.metric, "period": t.period,
                                "value": format(t.value, "f")}, at)


async def post_events(rt: Runtime, token: str, events: Sequence[dict[str, Any]]) -> tuple[int, list[tuple[int, str]]]:
    """Post `events` to ingest with the admin's token; how many it took (accepted or already had), and each
    refused one by its index with ingest's reason (index -1: the request as a whole was refused)."""
    taken, refused = 0, list[tuple[int, str]]()
    for offset in range(0, len(events), CHUNK):
        answer = await call(rt, "ingest", "POST", "/v1/events", token, json=list(events[offset:offset + CHUNK]))
        results = answer.body.get("results") if isinstance(answer.body, dict) else None
        if answer.status not in (200, 422) or not isinstance(results, list):
            return taken, [*refused, (-1, f"ingest answered {answer.status}: {answer.detail or 'no reason given'}")]
        for r in results:
            if r.get("status") == "rejected":
                refused.append((offset + int(r["index"]), str(r.get("reason") or "rejected")))
            else:
                taken += 1
    return taken, refused


def listed(problems: Sequence[str]) -> str:
    """Problems as one line for a redirect's message."""
    shown = "; ".join(problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return shown + (f"; and {more} more" if more > 0 else "")


def back(path: str, params: dict[str, str], said: str = "", error: str = "") -> RedirectResponse:
    query = {**params, **{k: v for k, v in (("said", said), ("error", error)) if v}}
    return RedirectResponse(path + (f"?{urlencode(query)}" if query else ""), status_code=303)
