"""The audit log's reader (issue 17, item 7; shared/audit.py writes it): kpi keeps every entry of
`attain.audit.v1` in `audit_log` (its own consumer group, `kpi-audit`, apart from the figures' batches) and
serves it to admins: `GET /v1/audit` and the control room's audit page (dashboard/control_audit.py).

kpi's batch handler hands the entries here (`keep_audit`: one set-based insert per tenant of a batch,
deduplicated by the entry's id, in the batch's transaction); the SQL is in `PgAuditStore`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol

import asyncpg
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from shared.auth import Admin
from shared.consumer import Incoming
from shared.db import set_tenant, tenant_tx
from shared.events import AuditActor, AuditRecorded
from shared.service import Runtime, runtime_of

MAX_PAGE = 500


@dataclass(frozen=True)
class Query_:
    """What an admin asks of the log: filters (each optional) and a page, newest first."""

    subject: str | None = None  # exact, or a prefix ending in ":" or "/" (e.g. "token:", "target:rep/ana/")
    action: str | None = None  # exact, or a prefix ending in "." (e.g. "token.")
    actor: str | None = None  # a token id, or "cli" / "system"
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    before_seq: int | None = None  # the next page: entries after this one (by `at`, then `seq`), newest first


class AuditStore(Protocol):
    async def add(self, tenant: str, entries: Sequence[AuditRecorded]) -> int: ...

    async def find(self, tenant: str, q: Query_) -> list[dict[str, Any]]: ...


def _prefix(value: str, ends: str) -> tuple[str, bool]:
    """(pattern, is a prefix): a value ending in one of `ends` asks for everything under it."""
    return (value, value.endswith(tuple(ends)))


class PgAuditStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def add(self, tenant: str, entries: Sequence[AuditRecorded]) -> int:
        rows = await self.conn.fetch(
            "INSERT INTO audit_log (tenant, audit_id, at, service, action, subject, actor, before, after)"
            " SELECT $1, u.id, u.at, u.service, u.action, u.subject, u.actor::jsonb, u.before::jsonb,"
            "  u.after::jsonb"
            " FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],"
            "  $8::text[], $9::text[]) AS u(id, at, service, action, subject, actor, before, after)"
            " ON CONFLICT (tenant, audit_id) DO NOTHING RETURNING audit_id",
            tenant, [e.audit_id for e in entries], [e.at for e in entries], [e.service for e in entries],
            [e.action for e in entries], [e.subject for e in entries],
            [e.actor.model_dump_json() for e in entries],
            [None if e.before is None else json.dumps(e.before) for e in entries],
            [None if e.after is None else json.dumps(e.after) for e in entries])
        return len(rows)

    async def find(self, tenant: str, q: Query_) -> list[dict[str, Any]]:
        where, args = ["tenant = $1"], [tenant]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if q.subject:
            pattern, prefix = _prefix(q.subject, ":/")
            where.append(f"starts_with(subject, {arg(pattern)})" if prefix else f"subject = {arg(pattern)}")
        if q.action:
            pattern, prefix = _prefix(q.action, ".")
            where.append(f"starts_with(action, {arg(pattern)})" if prefix else f"action = {arg(pattern)}")
        if q.actor:
            where.append(f"(actor->>'token_id' = {arg(q.actor)} OR actor->>'kind' = ${len(args)})")
        if q.since:
            where.append(f"at >= {arg(q.since)}")
        if q.until:
            where.append(f"at < {arg(q.until)}")
        if q.before_seq is not None:  # older than that entry, in the log's order
            where.append(f"(at, seq) < (SELECT o.at, o.seq FROM audit_log o WHERE o.tenant = $1"
                         f" AND o.seq = {arg(q.before_seq)})")
        # newest first by when the change was made (`at`, the writing service's clock); entries of one moment in
        # the order kpi kept them. Not by `seq` alone: the topic's partitions arrive in any order between them.
        rows = await self.conn.fetch(
            "SELECT seq, audit_id, at, service, action, subject, actor::text AS actor, before::text AS before,"
            " after::text AS after FROM audit_log WHERE " + " AND ".join(where)
            + f" ORDER BY at DESC, seq DESC LIMIT {arg(max(1, min(q.limit, MAX_PAGE)))}", *args)
        return [{"seq": r["seq"], "audit_id": r["audit_id"], "at": r["at"], "service": r["service"],
                 "action": r["action"], "subject": r["subject"], "actor": json.loads(r["actor"]),
                 "before": None if r["before"] is None else json.loads(r["before"]),
                 "after": None if r["after"] is None else json.loads(r["after"])} for r in rows]


async def keep_audit(conn: asyncpg.Connection, msgs: Sequence[Incoming],
                     store: Callable[[asyncpg.Connection], AuditStore] = PgAuditStore) -> int:
    """Keep each entry of `msgs` once, in its tenant's scope, in the batch's transaction (kpi's handler hands
    them here); an entry whose data names another tenant than its record is not kept. How many were new."""
    by_tenant: dict[str, list[AuditRecorded]] = defaultdict(list)
    for msg in msgs:
        if isinstance(msg.data, AuditRecorded) and msg.data.tenant == msg.event.tenant:
            by_tenant[msg.event.tenant].append(msg.data)
    repo, added = store(conn), 0
    for tenant, entries in by_tenant.items():
        await set_tenant(conn, tenant)
        added += await repo.add(tenant, entries)
    return added


# --- the read API -----------------------------------------------------------------------------------------

router = APIRouter(prefix="/v1", tags=["audit"])
Rt = Annotated[Runtime, Depends(runtime_of)]


class AuditEntryOut(BaseModel):
    seq: int
    audit_id: str
    at: datetime
    service: str
    action: str
    subject: str
    actor: AuditActor
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next_before_seq: int | None


@router.get("/audit", response_model=AuditPage, responses={401: {}, 403: {}})
async def audit_log(who: Admin, rt: Rt,
                    subject: Annotated[str | None, Query(max_length=300, description=(
                        "exact, or a prefix ending in ':' or '/', e.g. 'token:' or 'target:rep/ana/'"))] = None,
                    action: Annotated[str | None, Query(max_length=100, description=(
                        "exact, or a prefix ending in '.', e.g. 'token.'"))] = None,
                    actor: Annotated[str | None, Query(max_length=100, description=(
                        "a token id, or 'cli' / 'system'"))] = None,
                    since: datetime | None = None, until: datetime | None = None,
                    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
                    before_seq: Annotated[int | None, Query(ge=0)] = None) -> AuditPage:
    """The tenant's audit log, newest first (admins): every change to settings, targets, roster, tokens and
    check-in states, with who, when, before and after. `next_before_seq` asks for the next page."""
    q = Query_(subject=subject, action=action, actor=actor, since=since, until=until, limit=limit,
               before_seq=before_seq)
    async with tenant_tx(rt.pool, who.tenant) as conn:
        found = await PgAuditStore(conn).find(who.tenant, q)
    return AuditPage(entries=[AuditEntryOut(**e) for e in found],
                     next_before_seq=found[-1]["seq"] if len(found) == q.limit else None)
