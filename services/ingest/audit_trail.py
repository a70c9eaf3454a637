"""What ingest writes in the audit log (shared/audit.py) for the events that set a tenant up: targets, the
roster (reps and teams) and time off, posted by a person's or an integration's token (the control room posts
them too). Deals and activities are the CRM's record, not changes to settings: they are not audited.

Each entry's `before` is the subject's value after the last change ingest accepted for it (`audit_values`),
`after` the event's data; both are written in the transaction that accepts the event (`Intake.accept`), so an
entry exists exactly when the event was accepted. Several changes to one subject in one request chain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from shared import audit
from shared.authz import Principal
from shared.events import (
    AuditActor,
    CanonicalEvent,
    RepUpsertedEvent,
    TargetSetEvent,
    TeamUpsertedEvent,
    TimeOffSetEvent,
)

SERVICE = "ingest"


def subject_of(event: CanonicalEvent) -> tuple[str, str] | None:
    """(action, subject) of an audited event; None for a deal or an activity.

    The subject names what the change is to: one target is its scope, metric and period."""
    match event:
        case TargetSetEvent(data=d):
            return "target.set", f"target:{d.scope}/{d.scope_id}/{d.metric}/{d.period}"
        case RepUpsertedEvent(data=d):
            return "rep.upserted", f"rep:{d.rep_id}"
        case TeamUpsertedEvent(data=d):
            return "team.upserted", f"team:{d.team_id}"
        case TimeOffSetEvent(data=d):
            return "time_off.set", f"time_off:{d.rep_id}/{d.time_off_id}"
    return None


def changes(events: Sequence[CanonicalEvent], known: dict[str, dict[str, Any]],
            tenant: str) -> tuple[list[audit.Change], dict[str, dict[str, Any]]]:
    """The audit changes of `events` in order, given each subject's `known` value, and the subjects' values
    after them (what `audit_values` keeps). Pure."""
    values = dict(known)
    out: list[audit.Change] = []
    for event in events:
        found = subject_of(event)
        if found is None:
            continue
        action, subject = found
        after = event.data.model_dump(mode="json")
        out.append(audit.Change(tenant, action, subject, values.get(subject), after))
        values[subject] = after
    return out, {k: v for k, v in values.items() if known.get(k) != v}


async def record(conn: asyncpg.Connection, tenant: str, events: Sequence[CanonicalEvent],
                 who: Principal | None, at: datetime) -> int:
    """Write down the audited events among `events` (accepted ones) in the caller's transaction; how many
    entries. Nothing is read or written when there are none (a CRM's deals and activities)."""
    subjects = [s[1] for s in map(subject_of, events) if s is not None]
    if not subjects:
        return 0
    rows = await conn.fetch("SELECT subject, value::text AS value FROM audit_values"
                            " WHERE tenant = $1 AND subject = ANY($2::text[])", tenant, subjects)
    found, values = changes(events, {r["subject"]: json.loads(r["value"]) for r in rows}, tenant)
    if values:
        await conn.execute(
            "INSERT INTO audit_values (tenant, subject, value)"
            " SELECT $1, s, v::jsonb FROM unnest($2::text[], $3::text[]) AS u(s, v)"
            " ON CONFLICT (tenant, subject) DO UPDATE SET value = EXCLUDED.value",
            tenant, list(values), [json.dumps(v) for v in values.values()])
    actor = audit.actor_of(who) if who is not None else AuditActor(kind="system", name="import")
    return await audit.record_many(conn, found, service=SERVICE, actor=actor, at=at)
