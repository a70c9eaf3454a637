"""An in-memory `services.notify.repository.Repository`: what the handler tier runs on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notify.model import Delivery, Person, Preferences, TeamChannels
from services.notify.repository import Claimed, OpenCheckIn, Repository, TenantConnection, TenantFacts
from shared.events import RepUpserted, TenantUpserted


@dataclass
class Row:
    tenant: str
    delivery: Delivery
    event_type: str
    data: dict[str, Any]
    status: str = "pending"
    digest_key: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None


@dataclass
class FakeRepository:
    tenants: dict[str, TenantFacts] = field(default_factory=dict)
    reps: dict[tuple[str, str], tuple[RepUpserted, datetime]] = field(default_factory=dict)
    team_channels: dict[str, dict[str, TeamChannels]] = field(default_factory=dict)
    prefs: dict[str, dict[str, Preferences]] = field(default_factory=dict)
    rows: dict[str, Row] = field(default_factory=dict)  # by idempotency key (UNIQUE)
    open: dict[tuple[str, str], OpenCheckIn] = field(default_factory=dict)
    connections: dict[str, TenantConnection] = field(default_factory=dict)

    async def upsert_tenants(self, entries: Sequence[TenantUpserted]) -> None:
        for e in entries:
            self.tenants[e.tenant] = TenantFacts(e.timezone, e.currency, e.locale)

    async def tenant_facts(self, tenant: str) -> TenantFacts:
        return self.tenants.get(tenant, TenantFacts())

    async def upsert_people(self, tenant: str, reps: Sequence[tuple[RepUpserted, datetime]]) -> None:
        for rep, version in reps:
            held = self.reps.get((tenant, rep.rep_id))
            if held is None or held[1] <= version:
                self.reps[(tenant, rep.rep_id)] = (rep, version)

    async def people(self, tenant: str) -> dict[str, Person]:
        return {r.rep_id: Person(r.rep_id, r.name, r.email, r.timezone, r.manager_id, r.team_id)
                for (t, _), (r, _) in self.reps.items() if t == tenant and r.active}

    async def teams(self, tenant: str) -> dict[str, TeamChannels]:
        return dict(self.team_channels.get(tenant, {}))

    async def preferences(self, tenant: str) -> dict[str, Preferences]:
        return dict(self.prefs.get(tenant, {}))

    async def add(self, tenant: str, deliveries: Sequence[tuple[Delivery, str, dict[str, Any]]]) -> int:
        created = 0
        for d, event_type, data in deliveries:
            if d.idempotency_key not in self.rows:
                self.rows[d.idempotency_key] = Row(tenant, d, event_type, data, next_attempt_at=d.deliver_at)
                created += 1
        return created

    async def claim(self, tenant: str, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
        due = sorted((r for r in self.rows.values() if r.tenant == tenant and r.status in ("pending", "failed")
                      and r.next_attempt_at is not None and r.next_attempt_at <= now),
                     key=lambda r: r.next_attempt_at or now)[:limit]
        out = []
        for r in due:
            r.attempts += 1
            r.next_attempt_at = lease_until
            d = r.delivery
            out.append(Claimed(d.idempotency_key, d.event_id, r.event_type, r.data, d.recipient, d.channel, d.kind,
                               r.attempts))
        return out

    async def release(self, tenant: str, keys: Sequence[str], at: datetime) -> None:
        for key in keys:
            row = self.rows[key]
            if row.status != "sent":
                row.attempts, row.next_attempt_at = row.attempts - 1, at

    async def mark_sent(self, tenant: str, key: str, at: datetime) -> None:
        self.rows[key].status, self.rows[key].last_error = "sent", None

    async def mark_retry(self, tenant: str, key: str, at: datetime, error: str) -> None:
        row = self.rows[key]
        if row.status != "sent":
            row.status, row.next_attempt_at, row.last_error = "failed", at, error

    async def mark_dead(self, tenant: str, key: str, error: str) -> None:
        row = self.rows[key]
        if row.status != "sent":
            row.status, row.last_error = "dead", error

    async def deliveries(self, tenant: str, status: str | None, limit: int) -> list[dict[str, Any]]:
        return [{"idempotency_key": k, "status": r.status, "last_error": r.last_error}
                for k, r in self.rows.items() if r.tenant == tenant and status in (None, r.status)][:limit]


    async def connection(self, tenant: str) -> TenantConnection:
        return self.connections.get(tenant, TenantConnection())

    async def open_check_ins(self, tenant: str, opened: Sequence[OpenCheckIn], closed: Sequence[str]) -> None:
        for o in opened:
            self.open.setdefault((tenant, o.task_id), o)
        for task_id in closed:
            self.open.pop((tenant, task_id), None)

    async def events_on_day(self, tenant: str, recipients: Sequence[str],
                            windows: Sequence[tuple[datetime, datetime]]) -> dict[tuple[str, datetime], set[str]]:
        out: dict[tuple[str, datetime], set[str]] = {}
        for recipient, (start, end) in zip(recipients, windows, strict=True):
            for r in self.rows.values():
                d = r.delivery
                if (r.tenant == tenant and d.recipient == recipient and start <= d.deliver_at < end
                        and d.kind != "digest" and r.status != "folded"):
                    out.setdefault((recipient, start), set()).add(d.event_id)
        return out

    async def fold(self, tenant: str, keys: Sequence[str], digest_key: str) -> None:
        for key in keys:
            row = self.rows[key]
            if row.status == "pending":
                row.status, row.digest_key = "folded", digest_key


def _honours(repo: FakeRepository) -> Repository:
    return repo  # mypy checks the fake against the protocol
