"""From a verified webhook delivery to canonical events in Kafka, exactly as the CRM meant them.

One PostgreSQL transaction per delivery: each deal's field state is locked, merged and mapped;
what can be published is published (acks=all) before the transaction commits, so a failed publish
rolls the merge back and the CRM's retry does it again. What cannot be mapped is kept as an open
dead-letter record with the reason, and published as soon as a later delivery, a mapping change
or the CRM's API completes it.

One connection per unit of work, and no lock held across a network call: what a delivery needs
from the CRM's API is fetched first (`_prefetch`: the token and the stored states are read in a
short transaction of their own, then the connection goes back to the pool while the CRM answers);
the transaction that locks, merges and publishes then runs on one connection, which it hands to
`Intake.accept`, so the event ids are claimed in that same transaction. A delivery therefore never
waits for a second connection while it holds one: any number of concurrent deliveries get through
a pool of any size (the wait for the one connection is bounded by DB_ACQUIRE_TIMEOUT_S).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter

from services.ingest.crm.fetch import CrmAccess, Fetcher, load_access
from services.ingest.crm.mapping import TenantMaps, activity_data, deal_data
from services.ingest.crm.model import ActivityChange, Change, DealChange
from services.ingest.crm.state import FieldState, merge, view
from services.ingest.intake import Intake
from services.ingest.tenants import Tenant
from services.ingest.validation import Verdict
from shared.db import tenant_tx
from shared.events import (
    ActivityLoggedEvent,
    CanonicalEvent,
    DealDeleted,
    DealDeletedEvent,
    DealUpserted,
    DealUpsertedEvent,
)
from shared.secret_box import SecretBox

log = logging.getLogger(__name__)
DEAD_LETTERED = Counter("attain_ingest_crm_dead_letters_total", "CRM objects that could not be mapped yet.", ["crm"])
IGNORED = Counter("attain_ingest_crm_values_ignored_total",
                  "Optional CRM deal or activity values left out (unreadable or outside the contract); the record"
                  " still counts.", ["crm"])
TICK = timedelta(microseconds=1)
_ALWAYS_EMITTED = frozenset({"deal_id", "rep_id", "amount", "currency", "stage", "stage_label", "created_at",
                             "closed_at"})  # `comparable`: the fields of a deal as emitted before issue 22


@dataclass
class Summary:
    accepted: int = 0
    duplicate: int = 0
    dead_lettered: int = 0
    unchanged: int = 0


@dataclass
class Fetched:
    """What the CRM's API answered before the transaction began: deals by id, activities by change id."""

    deals: dict[str, DealChange] = field(default_factory=dict)
    activities: dict[str, ActivityChange] = field(default_factory=dict)


@dataclass(frozen=True)
class Prepared:
    """A delivery ready to apply (`CrmPipeline.prepare`): each deal's changes in time order, the activities, and
    what the CRM's API completed."""

    deals: dict[str, list[DealChange]]
    activities: list[ActivityChange]
    fetched: Fetched


def needs_fetch(deal_id: str, state: FieldState, maps: TenantMaps) -> bool:
    """A deal that is not deleted and cannot be mapped yet: its record may be completed from the CRM's API."""
    current = view(state)
    return not current.deleted and isinstance(deal_data(deal_id, current, maps, current.latest), list)


async def load_maps(conn: asyncpg.Connection, tenant: Tenant, crm: str) -> TenantMaps:
    stages = dict(await conn.fetch("SELECT stage, status FROM crm_stage_map WHERE tenant = $1 AND crm = $2",
                                   tenant.slug, crm))
    users = dict(await conn.fetch("SELECT crm_user_id, rep_id FROM crm_user_map WHERE tenant = $1 AND crm = $2",
                                  tenant.slug, crm))
    chosen = await load_properties(conn, tenant.slug, crm)
    return TenantMaps(crm, tenant.timezone, tenant.currency, stages, users, chosen)


async def load_properties(conn: asyncpg.Connection, tenant: str, crm: str) -> tuple[str, ...]:
    """The CRM properties the tenant chose to carry from `crm`, in the order it gave them (`properties.py`)."""
    rows = await conn.fetch("SELECT property FROM crm_property_map WHERE tenant = $1 AND crm = $2 ORDER BY position",
                            tenant, crm)
    return tuple(row["property"] for row in rows)


async def save_properties(conn: asyncpg.Connection, tenant: str, crm: str, names: list[str]) -> None:
    """Replace the CRM properties the tenant chooses to carry from `crm` (in the caller's transaction)."""
    await conn.execute("DELETE FROM crm_property_map WHERE tenant = $1 AND crm = $2", tenant, crm)
    await conn.executemany("INSERT INTO crm_property_map (tenant, crm, property, position) VALUES ($1, $2, $3, $4)",
                           [(tenant, crm, name, position) for position, name in enumerate(names)])


class CrmPipeline:
    def __init__(self, pool: asyncpg.Pool, intake: Intake, fetcher: Fetcher, box: SecretBox) -> None:
        """Deals are published under ids of their own versions; activities under the vendor's change id. `box`
        opens the tenants' stored API tokens."""
        self._pool, self._intake, self._fetcher, self._box = pool, intake, fetcher, box

    async def deliver(self, tenant: Tenant, crm: str, changes: list[Change],
                      also: Callable[[asyncpg.Connection], Awaitable[None]] | None = None) -> Summary:
        """Apply one delivery; raises `KafkaUnavailable` (nothing committed) when Kafka did not ack. `also(conn)`
        runs last in the delivery's transaction: a stream's position is stored with what it changed."""
        prepared = await self.prepare(tenant, crm, changes)
        async with tenant_tx(self._pool, tenant.slug) as conn:
            summary = await self.apply(conn, tenant, crm, prepared)
            if also is not None:
                await also(conn)
        return summary

    async def prepare(self, tenant: Tenant, crm: str, changes: list[Change]) -> Prepared:
        """`changes` ordered, and what the CRM's API must complete fetched (`_prefetch`), holding no connection while
        it answers: for `apply`, in a transaction the caller opens afterwards."""
        deals: dict[str, list[DealChange]] = defaultdict(list)
        activities = [c for c in changes if isinstance(c, ActivityChange)]
        for change in changes:
            if isinstance(change, DealChange):
                deals[change.deal_id].append(change)
        ordered = {deal_id: sorted(deals[deal_id], key=lambda c: c.changed_at) for deal_id in sorted(deals)}
        return Prepared(ordered, activities, await self._prefetch(tenant, crm, ordered, activities))

    async def apply(self, conn: asyncpg.Connection, tenant: Tenant, crm: str, prepared: Prepared, *,
                    source: str | None = None) -> Summary:
        """Merge, map and publish `prepared` in the caller's transaction (`conn`, scoped to `tenant`): a caller that
        stores its own position with the effect (a backfill's cursor) commits both at once. `source`: the changes
        were read from the CRM's API (backfill, reconciliation): the events say so, and an activity published before
        (by any way: a webhook's carries the vendor's change id, a reading's its own) is not published again."""
        maps = await load_maps(conn, tenant, crm)
        summary = Summary()
        events: list[CanonicalEvent] = []
        for deal_id, deal_changes in prepared.deals.items():
            event = await self._deal(conn, tenant, maps, deal_id, deal_changes, deal_changes[-1].event_id,
                                     summary, prepared.fetched.deals.get(deal_id))
            if event is not None:
                events.append(event)
        for activity in prepared.activities:
            event = await self._activity(conn, tenant, maps,
                                         prepared.fetched.activities.get(activity.event_id, activity), summary,
                                         read=source is not None)
            if event is not None:
                events.append(event)
        if source is not None:
            events = [e.model_copy(update={"source": source}) for e in events]
        await self._publish(conn, tenant, events, summary)
        return summary

    async def _prefetch(self, tenant: Tenant, crm: str, deals: dict[str, list[DealChange]],
                        activities: list[ActivityChange]) -> Fetched:
        """Ask the CRM's API for the deals these changes leave incomplete and the activities without an owner,
        holding no connection and no lock meanwhile. The locking transaction merges what came back (a field
        only wins when it is newer, so a change that landed meanwhile is never undone)."""
        bare = [a for a in activities if a.owner is None]
        if not deals and not bare:
            return Fetched()
        async with tenant_tx(self._pool, tenant.slug) as conn:
            access = await load_access(conn, tenant.slug, crm, self._box)
            if access is None:
                return Fetched()
            maps = await load_maps(conn, tenant, crm)
            stored = dict(await conn.fetch(
                "SELECT deal_id, fields FROM crm_deals WHERE tenant = $1 AND crm = $2 AND deal_id = ANY($3::text[])",
                tenant.slug, crm, list(deals)))
        fetched = Fetched()
        for deal_id, changes in deals.items():
            state: FieldState = json.loads(stored[deal_id]) if deal_id in stored else {}
            for change in changes:
                state = merge(state, change)
            if needs_fetch(deal_id, state, maps):
                await self._fetch_deal(access, maps, deal_id, fetched)
        for activity in bare:
            completed = await self._fetcher.activity(access, crm, activity, maps.properties)
            if completed is not None:
                fetched.activities[activity.event_id] = completed
        return fetched

    async def _fetch_deal(self, access: CrmAccess, maps: TenantMaps, deal_id: str, into: Fetched) -> None:
        record = await self._fetcher.deal(access, maps.crm, deal_id, maps.properties)
        if record is not None:
            into.deals[deal_id] = record

    async def reprocess(self, tenant: Tenant, crm: str) -> Summary:
        """Retry every open dead letter of `crm` (after a mapping changed)."""
        summary = Summary()
        fetched = await self._prefetch_dead_letters(tenant, crm)
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
                    event = await self._deal(conn, tenant, maps, row["object_id"], [], row["event_id"], summary,
                                             fetched.deals.get(row["object_id"]))
                else:
                    activity = _activity_from(row["payload"])
                    event = await self._activity(conn, tenant, maps,
                                                 fetched.activities.get(activity.event_id, activity), summary)
                if event is not None:
                    events.append(event)
            await self._publish(conn, tenant, events, summary)
        return summary

    async def _prefetch_dead_letters(self, tenant: Tenant, crm: str) -> Fetched:
        """`_prefetch` for the open dead letters: what the API may complete, fetched before they are locked."""
        async with tenant_tx(self._pool, tenant.slug) as conn:
            access = await load_access(conn, tenant.slug, crm, self._box)
            if access is None:
                return Fetched()
            maps = await load_maps(conn, tenant, crm)
            rows = await conn.fetch(
                "SELECT l.object_type, l.object_id, l.payload, d.fields FROM crm_dead_letters l"
                " LEFT JOIN crm_deals d ON d.tenant = l.tenant AND d.crm = l.crm AND d.deal_id = l.object_id"
                " AND l.object_type = 'deal'"
                " WHERE l.tenant = $1 AND l.crm = $2 AND l.resolved_at IS NULL ORDER BY l.id", tenant.slug, crm)
        fetched = Fetched()
        for row in rows:
            if row["object_type"] == "deal":
                state: FieldState = json.loads(row["fields"]) if row["fields"] else {}
                if needs_fetch(row["object_id"], state, maps):
                    await self._fetch_deal(access, maps, row["object_id"], fetched)
                continue
            activity = _activity_from(row["payload"])
            if activity.owner is None and (
                    completed := await self._fetcher.activity(access, crm, activity, maps.properties)):
                fetched.activities[activity.event_id] = completed
        return fetched

    async def _publish(self, conn: asyncpg.Connection, tenant: Tenant, events: list[CanonicalEvent],
                       summary: Summary) -> None:
        """Claim and publish on the delivery's own connection, in its transaction (never a second connection)."""
        if not events:
            return
        outcomes = await self._intake.accept(tenant, [Verdict(i, e.id, event=e) for i, e in enumerate(events)],
                                             conn=conn)
        summary.accepted += sum(1 for o in outcomes if o.status == "accepted")
        summary.duplicate += sum(1 for o in outcomes if o.status == "duplicate")

    async def _deal(self, conn: asyncpg.Connection, tenant: Tenant, maps: TenantMaps, deal_id: str,
                    changes: list[DealChange], cause: str, summary: Summary,
                    fetched: DealChange | None) -> CanonicalEvent | None:
        await conn.execute("INSERT INTO crm_deals (tenant, crm, deal_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                           tenant.slug, maps.crm, deal_id)
        row = await conn.fetchrow(
            "SELECT fields, emitted, emitted_version FROM crm_deals WHERE tenant = $1 AND crm = $2 AND deal_id = $3"
            " FOR UPDATE", tenant.slug, maps.crm, deal_id)
        state: FieldState = json.loads(row["fields"])
        ignored: list[str] = []
        for change in changes:
            state = merge(state, change)
            ignored += change.ignored
        current = view(state)
        if fetched is not None and needs_fetch(deal_id, state, maps):  # fetched before the lock (`_prefetch`)
            state = merge(state, fetched)
            ignored += fetched.ignored
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
            data = deal_data(deal_id, current, maps, version, ignored)
            if isinstance(data, list):
                await self._dead_letter(conn, tenant, maps.crm, "deal", deal_id, cause, "; ".join(data), state)
                summary.dead_lettered += 1
            else:
                await self._resolve(conn, tenant, maps.crm, "deal", deal_id)
                as_emitted = comparable(data)
                if as_emitted != emitted:
                    event = DealUpsertedEvent(type="deal.upserted", id=event_id, source=maps.crm,
                                              time=current.latest, data=data)
                    emitted = as_emitted
        if event is None:
            summary.unchanged += 1 if not summary.dead_lettered else 0
        _report_ignored(tenant, maps.crm, deal_id, ignored)
        await conn.execute(
            "UPDATE crm_deals SET fields = $4::jsonb, emitted = $5::jsonb, emitted_version = $6"
            " WHERE tenant = $1 AND crm = $2 AND deal_id = $3",
            tenant.slug, maps.crm, deal_id, json.dumps(state), json.dumps(emitted) if emitted is not None else None,
            version if event is not None else last,
        )
        return event

    async def _activity(self, conn: asyncpg.Connection, tenant: Tenant, maps: TenantMaps, change: ActivityChange,
                        summary: Summary, read: bool = False) -> CanonicalEvent | None:
        data = activity_data(change.activity_id, change.kind, change.owner, change.occurred_at, change.deal_id,
                             change.duration_s, maps, change.properties)
        _report_ignored(tenant, maps.crm, change.activity_id, list(change.ignored), "activity")
        if isinstance(data, list):
            payload = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(change).items()}
            await self._dead_letter(conn, tenant, maps.crm, "activity", change.activity_id, change.event_id,
                                    "; ".join(data), payload)
            summary.dead_lettered += 1
            return None
        await self._resolve(conn, tenant, maps.crm, "activity", change.activity_id)
        first = await conn.fetchval("INSERT INTO crm_activities (tenant, crm, activity_id) VALUES ($1, $2, $3)"
                                    " ON CONFLICT DO NOTHING RETURNING true", tenant.slug, maps.crm, change.activity_id)
        if read and not first:  # read from the API and published before (`apply`; 014_crm_backfill.sql)
            summary.unchanged += 1
            return None
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


def comparable(data: DealUpserted) -> dict[str, Any]:
    """What must differ from the last emitted deal for a new version to be published (it is stored as `emitted`).

    A field beyond those every deal was emitted with before optional fields were added to the contract (issue 22:
    the forecast) is left out while it is None: a deal emitted before is not published again for nothing when a
    field it does not use is added, and one that gains a value differs as it should.
    """
    dumped = data.model_dump(mode="json", exclude={"updated_at"})
    return {k: v for k, v in dumped.items() if v is not None or k in _ALWAYS_EMITTED}


def _report_ignored(tenant: Tenant, crm: str, object_id: str, ignored: list[str], kind: str = "deal") -> None:
    """Each optional value left out (`values.lenient`, `mapping.deal_data`): logged and counted, never silent."""
    for problem in ignored:
        IGNORED.labels(crm).inc()
        log.warning("crm value ignored", extra={"tenant": tenant.slug, "crm": crm, kind: object_id,
                                                "reason": problem})


def _activity_from(payload: str) -> ActivityChange:
    raw = json.loads(payload)
    raw.pop("ignored", None)  # reported when the activity was delivered; a retry does not count them again
    for name in ("changed_at", "occurred_at"):
        raw[name] = datetime.fromisoformat(raw[name])
    return ActivityChange(**raw)
