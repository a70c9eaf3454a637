"""The audit log (issue 17, item 7; docs/contract.md, "The audit log").

Every change to a tenant's settings, targets, roster, tokens and check-in states is written down by the service
that makes it, in the same transaction as the change: one `attain.audit.recorded` event on the service's outbox,
so an entry exists exactly when the change does (a rolled-back change leaves none; a relay's repeat carries the
same id). The entries go to `attain.audit.v1`, which a SIEM may subscribe to; kpi keeps the whole log in its
`audit_log` table, read by admins through `GET /v1/audit` and the control room's audit page.

An entry says who (the token's holder: its id, role and the person it speaks for; or `cli` with the operator's
login; or `system`), when (the service's clock), what (`action` on `subject`) and the subject's values before and
after. Secrets never enter it: a field named like one (`secret`, `password`, `token`, `client_secret`, ...) is
written as "(set)" or null. A write that changes nothing records nothing.

What is pure here (the actor, redaction, the entry) has unit tests (tests/unit/shared/test_audit.py);
`record` is the one call a write path makes.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from prometheus_client import Counter
from pydantic_core import to_jsonable_python

from shared import topics
from shared.authz import Principal
from shared.cloudevents import CloudEvent, message_key
from shared.events import AUDIT_RECORDED, AuditActor, AuditRecorded
from shared.outbox import enqueue_many

SET = "(set)"
# Actions are a fixed set of words (docs/contract.md, "The audit log"): a bounded label. No tenant label (issue 16).
ENTRIES = Counter("attain_audit_entries_total", "Audit log entries written, by service and action.",
                  ["service", "action"])
SECRET_NAMES = frozenset({"secret", "client_secret", "password", "token", "refresh_token", "api_token",
                          "access_token", "signing_key", "private_key"})


def is_secret(name: str) -> bool:
    """A field whose value never enters the log: its name is a secret's (`token_id` is an id, not a secret)."""
    lowered = name.lower()
    return lowered in SECRET_NAMES or lowered.endswith(("_secret", "_password", "_token", "_webhook"))


def redacted(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`values` as JSON, every secret (at any depth) replaced by "(set)", or null when it was empty.

    >>> redacted({"crm": "hubspot", "secret": "s3cr3t", "nested": {"client_secret": ""}, "token_id": "t-1"})
    {'crm': 'hubspot', 'secret': '(set)', 'nested': {'client_secret': None}, 'token_id': 't-1'}
    """
    if values is None:
        return None
    return {str(k): _clean(str(k), v) for k, v in values.items()}


def _clean(name: str, value: Any) -> Any:
    if is_secret(name):
        return SET if value else None
    if isinstance(value, Mapping):
        return {str(k): _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean("", v) for v in value]
    return to_jsonable_python(value)


def actor_of(who: Principal | None, *, name: str = "", cli: bool = False) -> AuditActor:
    """The actor of a change: the token holder `who`; without one, the operator at the command line (`cli`,
    their login unless `name` says otherwise) or the service itself."""
    if who is not None:
        return AuditActor(kind="token", token_id=who.token_id, role=who.role, rep_id=who.rep_id,
                          manager_id=who.manager_id, name=name)
    if cli:
        return AuditActor(kind="cli", name=name or _login())
    return AuditActor(kind="system", name=name)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        return ""


@dataclass(frozen=True)
class Change:
    """One change to write down."""

    tenant: str
    action: str
    subject: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


def entry(change: Change, *, service: str, actor: AuditActor, at: datetime,
          audit_id: str | None = None) -> tuple[str, bytes, CloudEvent] | None:
    """The outbox item of `change` (topic, key, event), or None when it changed nothing. Keyed by tenant and
    subject: one subject's entries stay in order on the topic."""
    if to_jsonable_python(change.before) == to_jsonable_python(change.after):  # compared whole: a new secret counts
        return None
    before, after = redacted(change.before), redacted(change.after)
    data = AuditRecorded(audit_id=audit_id or f"audit-{uuid.uuid4()}", tenant=change.tenant, service=service,
                         action=change.action, subject=change.subject, actor=actor, before=before, after=after,
                         at=at)
    event = CloudEvent(id=data.audit_id, type=AUDIT_RECORDED, source=f"attain/{service}", time=at,
                       tenant=change.tenant, data=data)
    return topics.AUDIT.name, message_key(change.tenant, change.subject), event


async def record_many(conn: asyncpg.Connection, changes: Sequence[Change], *, service: str, actor: AuditActor,
                      at: datetime) -> int:
    """Write `changes` down inside the caller's transaction (one outbox statement); how many changed anything."""
    items = [item for item in (entry(c, service=service, actor=actor, at=at) for c in changes) if item]
    await enqueue_many(conn, items)
    for _, _, event in items:  # counted when written; a rolled-back change's entry is counted all the same
        ENTRIES.labels(service, event.data.action if isinstance(event.data, AuditRecorded) else "").inc()
    return len(items)


async def record(conn: asyncpg.Connection, *, tenant: str, who: Principal | None, action: str, subject: str,
                 before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, at: datetime,
                 service: str, actor: AuditActor | None = None) -> None:
    """Write one change down inside the caller's transaction (nothing when it changed nothing). `actor`
    overrides the one derived from `who` (a CLI passes `actor_of(None, cli=True)`)."""
    await record_many(conn, [Change(tenant, action, subject, before, after)], service=service,
                      actor=actor or actor_of(who), at=at)
