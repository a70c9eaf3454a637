"""kpi keeps the audit log's entries (services/kpi/audit.py `keep_audit`), on a fake honouring the store's protocol:
each tenant's entries in its own scope, an entry whose data names another tenant than its record never."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.kpi.audit import Query_, keep_audit
from shared.cloudevents import CloudEvent
from shared.consumer import Incoming
from shared.events import AUDIT_RECORDED, AuditActor, AuditRecorded

AT = datetime(2026, 5, 4, 10, tzinfo=UTC)


class FakeStore:
    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], AuditRecorded] = {}

    async def add(self, tenant: str, entries: Sequence[AuditRecorded]) -> int:
        before = len(self.kept)  # as ON CONFLICT DO NOTHING: a repeat, in the batch or since, is skipped
        for e in entries:
            self.kept.setdefault((tenant, e.audit_id), e)
        return len(self.kept) - before

    async def find(self, tenant: str, q: Query_) -> list[dict[str, Any]]:
        return []


class FakeConn:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def execute(self, _sql: str, tenant: str) -> None:  # set_tenant
        self.scopes.append(tenant)


def _msg(record_tenant: str, data_tenant: str, audit_id: str) -> Incoming:
    data = AuditRecorded(audit_id=audit_id, tenant=data_tenant, service="ingest", action="target.set",
                         subject="target:rep/ana/won_revenue/2026-Q2", actor=AuditActor(kind="system"),
                         before=None, after={"value": "1"}, at=AT)
    event = CloudEvent(id=audit_id, type=AUDIT_RECORDED, source="attain/ingest", time=AT, tenant=record_tenant,
                       data=data)
    return Incoming("attain.audit.v1", 0, 0, event, data)


async def test_entries_are_kept_once_each_in_their_tenants_scope() -> None:
    store, conn = FakeStore(), FakeConn()
    batch = [_msg("acme", "acme", "a1"), _msg("acme", "acme", "a1"), _msg("globex", "globex", "g1"),
             _msg("acme", "globex", "forged")]
    added = await keep_audit(conn, batch, lambda _conn: store)  # type: ignore[arg-type]
    assert added == 2
    assert set(store.kept) == {("acme", "a1"), ("globex", "g1")}
    assert conn.scopes == ["acme", "globex"]
    assert await keep_audit(conn, batch[:1], lambda _conn: store) == 0  # type: ignore[arg-type]  # a repeat
