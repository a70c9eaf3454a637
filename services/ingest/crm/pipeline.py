"""From a verified webhook delivery to canonical events in Kafka, exactly as the CRM meant them.

One PostgreSQL transaction per delivery: each deal's field state is locked, merged and mapped;
what can be published is published (acks=all) before the transaction commits, so a failed publish
rolls the merge back and the CRM's retry does it again. What cannot be mapped is kept as an open
dead-letter record with the reason, and published as soon as a later delivery, a mapping change
or the CRM's API completes it.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter

from services.ingest.crm.fetch import Fetcher
from services.ingest.crm.mapping import TenantMaps, activity_data, deal_data
from services.ingest.crm.model import ActivityChange, Change, DealChange
from services.ingest.crm.state import FieldState, merge, view
from services.ingest.intake import Intake
from services.ingest.tenants import Tenant
from services.ingest.validation import Verdict
from shared.db import tenant_tx
from shared.events import ActivityLoggedEvent, CanonicalEvent, DealDeleted, DealDeletedEvent, DealUpsertedEvent

log = logging.getLogger(__name__)
DEAD_LETTERED = Counter("attain_ingest_crm_dead_letters_total", "CRM objects that could not be mapped yet.", ["crm"])
TICK = timedelta(microseconds=1)


@dataclass
class Summary:
    accepted: int = 0
    duplicate: int = 0
    dead_lettered: int = 0
    unchanged: int = 0


async def load_maps(conn: asyncpg.Connection, tenant: Tenant, crm: str) -> TenantMaps:
    stages = dict(await conn.fetch("SELECT stage, status FROM crm_stage_map WHERE tenant = $1 AND crm = $2",
                                   tenant.slug, crm))
    users = dict(await conn.fetch("SELECT crm_user_id, rep_id FROM crm_user_map WHERE tenant = $1 AND crm = $2",
                                  tenant.slug, crm))
    return TenantMaps(crm, tenant.timezone, tenant.currency, stages, users)


class CrmPipeline:
    def __init__(self, pool: asyncpg.Pool, intake: Intake, fetcher: Fetcher) -> None:
        """Deals are published under ids of their own versions; activities under the vendor's change id."""
        self._pool, self._intake, self._fetcher = pool, intake, fetcher

    async def deliver(self, tenant: Tenant, crm: str, changes: list[Change]) -> Summary:
        """Apply one delivery; raises `KafkaUnavailable` (nothing committed) when Kafka did not ack."""
        deals: dict[str, list[DealChange]] = defaultdict(list)
        activities = [c for c in changes if isinstance(c, ActivityChange)]
        for change in changes:
            if isinstance(change, DealChange):
                deals[change.deal_id].append(change)
        async with tenant_tx(self._pool, tenant.slug) as conn:
            maps = await load_maps(conn, tenant, crm)
            summary = Summary()
            events: list[CanonicalEvent] = []
            for deal_id in sorted(deals):
                ordered = sorted(deals[deal_id], key=lambda c: c.changed_at)
                event = await self._deal(conn, tenant, maps, deal_id, ordered, ordered[-1].event_id, summary)
                if event is not None:
                    events.append(event)
            for activity in activities:
                event = await self._activity(conn, tenant, maps, activity, summary)
                if event is not None:
                    events.append(event)
            await self._publish(tenant, events, summary)
        return summary

    async def reprocess(self, tenant: Tenant, crm: str) -> Summary:
        """Retry every open dead letter of `crm` (after a mapping changed)."""
        summary = Summary()
        async with tenant_tx(self._pool, tenant.slug) as conn:
            maps = await load_maps(conn, tenant, crm)
            rows = await conn.fetch(
                "SELECT object_type, object_id, event_id, payload FROM crm_dead_letters"
                " WHERE tenant = $1 AND crm = $2 AND resolved_at IS NULL ORDER BY id FOR UPDATE",
                tenant.slug, crm,
            )
            events: list[CanonicalEvent] = []
            for row in rows:
                if row["object_type"] == "deal":
                    event = await self._deal(conn, tenant, maps, row["object_id"], [], row["event_id"], summary)
                else:
                    event = await self._activity(conn, tenant, maps, _activity_from(row["payload"]), summary)
                if event is not None:
                    events.append(event)
            await self._publish(tenant, events, summary)
        return summary

    async def _publish(self, tenant: Tenant, events: list[CanonicalEvent], summary: Summary) -> None:
        if not events:
            return
        outcomes = await self._intake.accept(tenant, [Verdict(i, e.id, event=e) for i, e in enumerate(events)])
        summary.accepted += sum(1 for o in outcomes if o.status == "accepted")
        summary.duplicate += sum(1 for o in outcomes if o.status == "duplicate")

    async def _deal(self, conn: asyncpg.Connection, tenant: Tenant, maps: TenantMaps, deal_id: str,
                    changes: list[DealChange], cause: str, summary: Summary) -> CanonicalEvent | None:
        await conn.execute("INSERT INTO crm_deals (tenant, crm, deal_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                           tenant.slug, maps.crm, deal_id)
        row = await conn.fetchrow(
            "SELECT fields, emitted, emitted_version FROM crm_deals WHERE tenant = $1 AND crm = $2 AND deal_id = $3"
            " FOR UPDATE", tenant.slug, maps.crm, deal_id)
        state: FieldState = json.loads(row["fields"])
        for change in changes:
            state = merge(state, change)
        current = view(state)
        if not current.deleted and isinstance(deal_data(deal_id, current, maps, current.latest), list):
            fetched = await self._fetcher.deal(tenant.slug, maps.crm, deal_id)
            if fetched is not None:
                state = merge(state, fetched)
                current = view(state)
        emitted = json.loads(row["emitted"]) if row["emitted"] else None
        last: datetime | None = row["emitted_version"]
        version = max(current.latest, last + TICK) if last else current.latest
        # One id per emitted version: a retry that changes nothing emits nothing (the view equals what was
        # emitted), and a redelivery carrying newer data under the vendor's old id still gets published.
        event_id = f"deal:{deal_id}:{version.isoformat()}"
        event: CanonicalEvent | None = None
        if current.deleted:
            await self._resolve(conn, tenant, maps.crm, "deal", deal_id)
            if emitted is not None and emitted.get("deleted") is not True:
                event = DealDeletedEvent(type="deal.deleted", id=event_id, source=maps.crm, time=current.latest,
                                         data=DealDeleted(deal_id=deal_id, updated_at=version))
                emitted = {"deleted": True}
        else:
            data = deal_data(deal_id, current, maps, version)
            if isinstance(data, list):
                await self._dead_letter(conn, tenant, maps.crm, "deal", deal_id, cause, "; ".join(data), state)
                summary.dead_lettered += 1
            else:
                await self._resolve(conn, tenant, maps.crm, "deal", deal_id)
                comparable = data.model_dump(mode="json", exclude={"updated_at"})
                if comparable != emitted:
                    event = DealUpsertedEvent(type="deal.upserted", id=event_id, source=maps.crm,
                                              time=current.latest, data=data)
                    emitted = comparable
        if event is None:
            summary.unchanged += 1 if not summary.dead_lettered else 0
        await conn.execute(
            "UPDATE crm_deals SET fields = $4::jsonb, emitted = $5::jsonb, emitted_version = $6"
            " WHERE tenant = $1 AND crm = $2 AND deal_id = $3",
            tenant.slug, maps.crm, deal_id, json.dumps(state), json.dumps(emitted) if emitted is not None else None,
            version if event is not None else last,
        )
        return event

    async def _activity(self, conn: asyncpg.Connection, tenant: Tenant, maps: TenantMaps, change: ActivityChange,
                        summary: Summary) -> CanonicalEvent | None:
        if change.owner is None:
            change = await self._fetcher.activity(tenant.slug, maps.crm, change) or change
        data = activity_data(change.activity_id, change.kind, change.owner, change.occurred_at, change.deal_id,
                             change.duration_s, maps)
        if isinstance(data, list):
            payload = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(change).items()}
            await self._dead_letter(conn, tenant, maps.crm, "activity", change.activity_id, change.event_id,
                                    "; ".join(data), payload)
            summary.dead_lettered += 1
            return None
        await self._resolve(conn, tenant, maps.crm, "activity", change.activity_id)
        return ActivityLoggedEvent(type="activity.logged", id=change.event_id, source=maps.crm,
                                   time=change.changed_at, data=data)

    async def _dead_letter(self, conn: asyncpg.Connection, tenant: Tenant, crm: str, kind: str, object_id: str,
                           event_id: str, reason: str, payload: Any) -> None:
        DEAD_LETTERED.labels(crm).inc()
        log.info("crm object dead-lettered", extra={"tenant": tenant.slug, "crm": crm, "object": object_id,
                                                    "reason": reason})
        await conn.execute(
            "INSERT INTO crm_dead_letters (tenant, crm, object_type, object_id, event_id, reason, payload)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)"
            " ON CONFLICT (tenant, crm, object_type, object_id) WHERE resolved_at IS NULL DO UPDATE SET"
            " event_id = EXCLUDED.event_id, reason = EXCLUDED.reason, payload = EXCLUDED.payload, updated_at = now()",
            tenant.slug, crm, kind, object_id, event_id, reason, json.dumps(payload),
        )

    async def _resolve(self, conn: asyncpg.Connection, tenant: Tenant, crm: str, kind: str, object_id: str) -> None:
        await conn.execute(
            "UPDATE crm_dead_letters SET resolved_at = now() WHERE tenant = $1 AND crm = $2 AND object_type = $3"
            " AND object_id = $4 AND resolved_at IS NULL", tenant.slug, crm, kind, object_id)


def _activity_from(payload: str) -> ActivityChange:
    raw = json.loads(payload)
    for name in ("changed_at", "occurred_at"):
        raw[name] = datetime.fromisoformat(raw[name])
    return ActivityChange(**raw)
