"""The one way an event enters Attain: claim its id, publish it with acks from all in-sync
replicas, then commit the claim. Used by `POST /v1/events`, the CRM webhooks and the importer.

The ids are claimed (`INSERT ... ON CONFLICT DO NOTHING RETURNING`) in a transaction that stays
open while Kafka acknowledges: an id that comes back is new and is published; one that does not
is a duplicate. A failed publish rolls the claims back, so the client's retry publishes again; a
concurrent request with the same id waits on the row lock and then sees a duplicate. Nothing is
answered "accepted" that is not in Kafka, and nothing is published twice by two requests.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Histogram

from services.ingest import audit_trail, sso_repository
from services.ingest.publishing import to_record
from services.ingest.tenants import Tenant
from services.ingest.validation import Verdict, refuse_future
from shared import tracing
from shared.authz import Principal
from shared.clock import Clock, SystemClock
from shared.cloudevents import CloudEvent, encode
from shared.db import tenant_tx
from shared.events import CanonicalEvent, DealDeletedEvent, DealUpsertedEvent, RepUpsertedEvent

log = logging.getLogger(__name__)

EVENTS = Counter("attain_ingest_events_total",
                 "Events received, by outcome and event type (\"unknown\" for a rejected event whose type "
                 "is not one of the contract's).", ["outcome", "type"])
PUBLISH_SECONDS = Histogram("attain_ingest_publish_seconds", "Time until Kafka acknowledged a chunk of events.",
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

Status = Literal["accepted", "duplicate", "rejected"]


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge in time: nothing of the chunk may be reported accepted."""


@dataclass(frozen=True, slots=True)
class Outcome:
    index: int
    id: str | None
    status: Status
    reason: str | None = None


class Intake:
    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer, publish_timeout_s: float, *,
                 clock: Clock | None = None, max_ahead: timedelta = timedelta(days=1)) -> None:
        self._pool, self._producer, self._timeout = pool, producer, publish_timeout_s
        self._clock, self._max_ahead = clock or SystemClock(), max_ahead

    async def accept(self, tenant: Tenant, verdicts: Sequence[Verdict],
                     conn: asyncpg.Connection | None = None, who: Principal | None = None) -> list[Outcome]:
        """Publish the valid, new events of `verdicts`; the outcome of each, in order. An event dated more
        than `max_ahead` past ingest's clock is rejected here, whichever way it came in (`refuse_future`):
        services order versions by those moments, so one from far ahead would beat every correction.

        With `conn` (a connection in a transaction scoped to `tenant`, e.g. a CRM delivery's), the ids are
        claimed in that transaction and the caller's commit makes them final; without it, on a connection
        of its own. Never both: a caller that holds a connection passes it, so no request waits for a
        second connection while it holds one (a pool of N would deadlock under N such requests).

        The accepted events that set the tenant up (targets, roster, time off) are written in the audit log
        in the same transaction, as `who`'s (audit_trail.py)."""
        verdicts = refuse_future(verdicts, self._clock.now() + self._max_ahead)
        valid = [(v.index, v.event) for v in verdicts if v.event is not None]
        statuses: dict[int, Status] = {}
        if valid and conn is not None:
            await self._accept_on(conn, tenant, valid, statuses, who)
        elif valid:
            async with tenant_tx(self._pool, tenant.slug) as own:
                await self._accept_on(own, tenant, valid, statuses, who)
        outcomes = [Outcome(v.index, v.id, statuses.get(v.index, "rejected"), v.reason) for v in verdicts]
        counted = collections.Counter((o.status, v.event.type if v.event is not None else "unknown")
                                      for o, v in zip(outcomes, verdicts, strict=True))
        for (status, type_), n in counted.items():
            EVENTS.labels(status, type_).inc(n)
        return outcomes

    async def _accept_on(self, conn: asyncpg.Connection, tenant: Tenant, valid: list[tuple[int, CanonicalEvent]],
                         statuses: dict[int, Status], who: Principal | None = None) -> None:
        new = await self._claim(conn, tenant, [event for _, event in valid])
        owners = await self._owners(conn, tenant, [event for _, event in valid])
        to_send: list[tuple[str, bytes, CloudEvent]] = []
        accepted: list[CanonicalEvent] = []
        for index, event in valid:
            if (event.source, event.id) not in new:
                statuses[index] = "duplicate"
                continue
            new.discard((event.source, event.id))  # the same id twice in one request: once
            owner = None
            if isinstance(event, DealUpsertedEvent):
                owners[event.data.deal_id] = event.data.rep_id
            elif isinstance(event, DealDeletedEvent):
                owner = owners.get(event.data.deal_id)
            to_send.append(to_record(tenant, event, owner))
            accepted.append(event)
            statuses[index] = "accepted"
        await audit_trail.record(conn, tenant.slug, accepted, who, self._clock.now())
        await sso_repository.upsert_people(  # who signs in as whom (services/ingest/sso.py)
            conn, tenant.slug, [e.data for e in accepted if isinstance(e, RepUpsertedEvent)])
        await self._publish(to_send)

    async def _claim(self, conn: asyncpg.Connection, tenant: Tenant,
                     events: list[CanonicalEvent]) -> set[tuple[str, str]]:
        rows = await conn.fetch(
            "INSERT INTO accepted_events (tenant, source, event_id)"
            " SELECT DISTINCT $1, s, i FROM unnest($2::text[], $3::text[]) AS u(s, i)"
            " ON CONFLICT DO NOTHING RETURNING source, event_id",
            tenant.slug, [e.source for e in events], [e.id for e in events],
        )
        return {(r["source"], r["event_id"]) for r in rows}

    async def _owners(self, conn: asyncpg.Connection, tenant: Tenant, events: list[CanonicalEvent]) -> dict[str, str]:
        """Remember deal owners (for deletions, which carry none) and look up the ones deletions need."""
        upserts = [e.data for e in events if isinstance(e, DealUpsertedEvent)]
        deleted = [e.data.deal_id for e in events if isinstance(e, DealDeletedEvent)]
        owners: dict[str, str] = {}
        if deleted:
            owners = dict(await conn.fetch(
                "SELECT deal_id, rep_id FROM deal_owners WHERE tenant = $1 AND deal_id = ANY($2::text[])",
                tenant.slug, deleted))
        if upserts:
            await conn.execute(
                "INSERT INTO deal_owners (tenant, deal_id, rep_id)"
                " SELECT DISTINCT ON (d) $1, d, r FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(d, r, n)"
                " ORDER BY d, n DESC"
                " ON CONFLICT (tenant, deal_id) DO UPDATE SET rep_id = EXCLUDED.rep_id"
                " WHERE deal_owners.rep_id IS DISTINCT FROM EXCLUDED.rep_id",
                tenant.slug, [d.deal_id for d in upserts], [d.rep_id for d in upserts])
        return owners

    async def _publish(self, records: list[tuple[str, bytes, CloudEvent]]) -> None:
        if not records:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def send_all(carried: list[tuple[str, bytes]]) -> None:
            futures = []
            for topic, key, cloud_event in records:
                value, headers = encode(cloud_event)
                if carried:
                    headers += carried
                futures.append(await self._producer.send(topic, value, key=key, headers=headers))
            await asyncio.gather(*futures)

        try:  # the timeout covers waiting for metadata and buffer space too, not only the acks; asyncio.timeout,
            # not wait_for, which on Python 3.11 can swallow the request's own cancellation
            async with asyncio.timeout(self._timeout):
                if tracing.enabled():  # one PRODUCER span per request; every record carries its context
                    with tracing.producing((topic for topic, _, _ in records), len(records)) as carried:
                        await send_all(carried)
                else:
                    await send_all([])
        except Exception as err:  # any producer failure or timeout: not durably stored, roll the claims back
            log.error("publish failed", extra={"error": repr(err), "events": len(records)})
            raise KafkaUnavailable(str(err) or type(err).__name__) from err
        PUBLISH_SECONDS.observe(loop.time() - started)
