"""What reached Kafka for the run's tenants: "nothing published" is checked by reading the topics up to
where they end now, never by waiting a while."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared import topics
from tests.integration.conftest import BOOTSTRAP

# Every topic a service of this run writes a tenant's records to (the dead-letter topics hold only what
# consumers could not read: a record of the run's tenants there is caught by its key).
WATCHED = [name for t in (topics.DEALS, topics.ACTIVITIES, topics.ROSTER, topics.TARGETS, topics.ATTAINMENT,
                          topics.TASKS, topics.PLANS, topics.REVIEWS, topics.CELEBRATIONS) for name in (t.name, t.dlq)]


@dataclass(frozen=True)
class Record:
    topic: str
    tenant: str
    type: str | None
    key: bytes
    value: bytes


class Records:
    """What reached the watched topics for the run's tenants, read up to where every partition ends."""

    def __init__(self, consumer: AIOKafkaConsumer, parts: list[TopicPartition], slugs: Callable[[], set[str]]) -> None:
        self._consumer, self._parts, self._slugs = consumer, parts, slugs

    @classmethod
    async def open(cls, slugs: Callable[[], set[str]]) -> Records:
        consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                                    isolation_level="read_committed", fetch_max_wait_ms=20)
        await consumer.start()
        metadata = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(t, p) for t in WATCHED for p in metadata.partitions_for_topic(t) or ()]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        return cls(consumer, parts, slugs)

    async def new(self) -> list[Record]:
        """The run's tenants' records written since the last call (everything up to the topics' ends now)."""
        ends = await self._consumer.end_offsets(self._parts)
        found: list[Record] = []
        slugs = self._slugs()
        deadline = time.monotonic() + 30
        while any([await self._consumer.position(tp) < ends[tp] for tp in self._parts]):
            assert time.monotonic() < deadline, "the topics could not be read to their ends"
            for records in (await self._consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    headers = dict(r.headers)
                    tenant = headers.get("ce_tenant", b"").decode(errors="replace")
                    key = r.key or b""
                    owner = tenant or key.split(b":", 1)[0].decode(errors="replace")
                    if owner in slugs:
                        found.append(Record(r.topic, owner, headers.get("ce_type", b"").decode() or None, key,
                                            r.value or b""))
        return found

    async def close(self) -> None:
        await self._consumer.stop()
