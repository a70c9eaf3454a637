"""The one way an event enters Attain: deduplicate, publish with acks from all in-sync replicas,
then remember its id. Used by `POST /v1/events`, the CRM webhooks and the importer's API path.

Published first, recorded after the acks: a crash in between re-publishes the same event on the
client's retry (consumers are idempotent), it never loses one. Nothing is answered "accepted"
that is not in Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg
from faststream.kafka import KafkaBroker
from prometheus_client import Counter, Histogram

from services.ingest.publishing import to_record
from services.ingest.tenants import Tenant
from services.ingest.validation import Verdict
from shared.cloudevents import CloudEvent, encode
from shared.events import CanonicalEvent, DealDeletedEvent, DealUpsertedEvent

log = logging.getLogger(__name__)

EVENTS = Counter("attain_ingest_events_total", "Events received, by outcome.", ["outcome"])
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
    def __init__(self, pool: asyncpg.Pool, broker: KafkaBroker, publish_timeout_s: float) -> None:
        self._pool, self._broker, self._timeout = pool, broker, publish_timeout_s

    async def accept(self, tenant: Tenant, verdicts: Sequence[Verdict]) -> list[Outcome]:
        """Publish the valid, new events of `verdicts`; the outcome of each, in order."""
        valid = [v for v in verdicts if v.event is not None]
        seen, owners = await self._known(tenant, valid)
        statuses: dict[int, Status] = {}
        to_send = []
        for v in valid:
            event = v.event
            assert event is not None
            if (event.source, event.id) in seen:
                statuses[v.index] = "duplicate"
                continue
            seen.add((event.source, event.id))
            owner = None
            if isinstance(event, DealUpsertedEvent):
                owners[event.data.deal_id] = event.data.rep_id
            elif isinstance(event, DealDeletedEvent):
                owner = owners.get(event.data.deal_id)
            to_send.append((event, to_record(tenant, event, owner)))
            statuses[v.index] = "accepted"
        if to_send:
            await self._publish([record for _, record in to_send])
            await self._remember(tenant, [event for event, _ in to_send])
        outcomes = [Outcome(v.index, v.id, statuses.get(v.index, "rejected"), v.reason) for v in verdicts]
        for status in ("accepted", "duplicate", "rejected"):
            EVENTS.labels(status).inc(sum(1 for o in outcomes if o.status == status))
        return outcomes

    async def _known(self, tenant: Tenant, valid: list[Verdict]) -> tuple[set[tuple[str, str]], dict[str, str]]:
        events = [v.event for v in valid if v.event is not None]
        deleted = [e.data.deal_id for e in events if isinstance(e, DealDeletedEvent)]
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT a.source, a.event_id FROM accepted_events a"
                " JOIN unnest($2::text[], $3::text[]) AS i(source, event_id)"
                " ON a.source = i.source AND a.event_id = i.event_id WHERE a.tenant = $1",
                tenant.slug, [e.source for e in events], [e.id for e in events],
            )
            owners = dict(await conn.fetch(
                "SELECT deal_id, rep_id FROM deal_owners WHERE tenant = $1 AND deal_id = ANY($2::text[])",
                tenant.slug, deleted,
            )) if deleted else {}
        return {(r["source"], r["event_id"]) for r in rows}, owners

    async def _publish(self, records: list[tuple[str, bytes, CloudEvent]]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            futures = []
            for topic, key, cloud_event in records:
                value, headers = encode(cloud_event)
                futures.append(await self._broker.publish(
                    value, topic, key=key, headers={k: v.decode() for k, v in headers}, no_confirm=True))
            await asyncio.wait_for(asyncio.gather(*futures), timeout=self._timeout)
        except Exception as err:  # any producer failure or timeout: not durably stored
            log.error("publish failed", extra={"error": repr(err), "events": len(records)})
            raise KafkaUnavailable(str(err) or type(err).__name__) from err
        PUBLISH_SECONDS.observe(loop.time() - started)

    async def _remember(self, tenant: Tenant, events: list[CanonicalEvent]) -> None:
        sources = [e.source for e in events]
        ids = [e.id for e in events]
        upserts = [e for e in events if isinstance(e, DealUpsertedEvent)]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO accepted_events (tenant, source, event_id)"
                " SELECT $1, * FROM unnest($2::text[], $3::text[]) ON CONFLICT DO NOTHING",
                tenant.slug, sources, ids,
            )
            if upserts:
                await conn.execute(
                    "INSERT INTO deal_owners (tenant, deal_id, rep_id)"
                    " SELECT DISTINCT ON (d) $1, d, r FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(d, r, n)"
                    " ORDER BY d, n DESC"
                    " ON CONFLICT (tenant, deal_id) DO UPDATE SET rep_id = EXCLUDED.rep_id",
                    tenant.slug, [e.data.deal_id for e in upserts], [e.data.rep_id for e in upserts],
                )
