"""A consumer skips the records of an erased tenant or rep produced before the erasure, and applies those
produced after it and everyone else's: what keeps a replay of the sales topics (kept forever) from
bringing an erased person back. The erasures come from the database, once per batch (`sweep_erasures`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import REGISTRY

from services.kpi.handlers import MODELS
from shared import topics
from shared.cloudevents import CloudEvent, encode, message_key
from shared.consumer import Incoming, TransactionalConsumer

ERASED_AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


@dataclass
class Record:
    """What the consumer reads of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _rep(tenant: str, rep_id: str, offset: int, produced: datetime) -> Record:
    data = {"rep_id": rep_id, "name": rep_id.title(), "team_id": "t", "timezone": "Europe/Berlin"}
    value, headers = encode(CloudEvent(uuid.uuid4().hex, "rep.upserted", "api", produced, tenant, data))
    return Record(topics.ROSTER.name, 0, offset, int(produced.timestamp() * 1000), message_key(tenant, rep_id), value,
                  headers)


async def test_records_before_an_erasure_are_skipped_and_later_ones_and_others_applied(
        kpi_pool: asyncpg.Pool) -> None:
    async with kpi_pool.acquire() as conn:
        await conn.execute("INSERT INTO erasures (tenant, rep_id, erased_at) VALUES ('er-a', 'ana', $1),"
                           " ('er-gone', '', $1)", ERASED_AT)
    applied: list[tuple[str, str]] = []

    async def handler(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        applied.extend((m.event.tenant, m.data.rep_id) for m in batch)  # type: ignore[attr-defined]

    before, after = ERASED_AT - timedelta(days=1), ERASED_AT + timedelta(seconds=1)
    records = [_rep("er-a", "ana", 0, before), _rep("er-a", "bo", 1, before), _rep("er-b", "ana", 2, before),
               _rep("er-gone", "cy", 3, before), _rep("er-a", "ana", 4, after), _rep("er-gone", "cy", 5, after)]
    group = f"erased-{uuid.uuid4().hex[:6]}"
    consumer = TransactionalConsumer(pool=kpi_pool, producer=None, group_id=group,  # type: ignore[arg-type]
                                     service="kpi", models=MODELS, handler=handler)
    await consumer.process(records)  # type: ignore[arg-type]
    assert sorted(applied) == [("er-a", "ana"), ("er-a", "bo"), ("er-b", "ana"), ("er-gone", "cy")]
    assert REGISTRY.get_sample_value("attain_consumed_messages_total", {
        "group": group, "topic": topics.ROSTER.name, "type": "rep.upserted", "outcome": "skipped_erased"}) == 2
    async with kpi_pool.acquire() as conn:  # acknowledged all the same
        assert await conn.fetchval("SELECT next_offset FROM consumer_offsets WHERE group_id = $1", group) == 6
