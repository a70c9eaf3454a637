"""Kafka chores of the kpi benchmark: offsets, pre-committed group positions, the producer, cleanup.

A `Span` is the part of the sales topics every contender reads: per topic and partition the first
offset and the end offset (exclusive). It is captured before and after the pre-load, saved as JSON
for the contenders that run in their own process, and is how each knows it has caught up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.kpi_workload import Record
from shared import topics
from shared.cloudevents import encode
from shared.kafka import KeyPartitioner

SALES = (topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name)
Offsets = dict[tuple[str, int], int]


@dataclass(frozen=True)
class Span:
    """[start, end) per (topic, partition)."""

    start: Offsets
    end: Offsets

    def records(self, only: Iterable[str] = SALES) -> int:
        wanted = set(only)
        return sum(self.end[tp] - self.start[tp] for tp in self.end if tp[0] in wanted)

    def busy(self, only: Iterable[str] = SALES) -> list[tuple[str, int]]:
        """The partitions that have records to read."""
        wanted = set(only)
        return sorted(tp for tp in self.end if tp[0] in wanted and self.end[tp] > self.start[tp])

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps({"start": _pairs(self.start), "end": _pairs(self.end)}))

    @classmethod
    def load(cls, path: Path) -> Span:
        raw = json.loads(path.read_text())
        return cls(_unpairs(raw["start"]), _unpairs(raw["end"]))


def _pairs(offsets: Offsets) -> list[list[object]]:
    return [[t, p, o] for (t, p), o in sorted(offsets.items())]


def _unpairs(rows: list[list[object]]) -> Offsets:
    return {(str(t), int(str(p))): int(str(o)) for t, p, o in rows}


async def offsets(bootstrap: str, names: Iterable[str] = SALES, *, beginning: bool = False) -> Offsets:
    """The end offsets (or the first, `beginning=True`) of every partition of `names`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
    finally:
        await admin.close()
    tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        found = await (consumer.beginning_offsets(tps) if beginning else consumer.end_offsets(tps))
        return {(tp.topic, tp.partition): int(o) for tp, o in found.items()}
    finally:
        await consumer.stop()


async def commit(bootstrap: str, group: str, positions: Mapping[tuple[str, int], int]) -> None:
    """Commit `positions` for `group` before any member joins: that is where the group will start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = {TopicPartition(t, p): o for (t, p), o in positions.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()


def producer(bootstrap: str) -> AIOKafkaProducer:
    """Configured as the services' own producer (`shared.kafka.create_producer`)."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="bench-kpi", enable_idempotence=True,
                            acks="all", linger_ms=5, max_batch_size=256 * 1024, partitioner=KeyPartitioner())


async def preload(bootstrap: str, records: Iterable[Record]) -> tuple[int, float]:
    """Send `records` as fast as the producer takes them; (count, seconds to the last acknowledgement)."""
    sender = producer(bootstrap)
    await sender.start()
    try:
        started, count, pending = time.perf_counter(), 0, []
        for record in records:
            value, headers = encode(record.event)
            pending.append(await sender.send(record.topic, value, key=record.key, headers=headers))
            count += 1
            if len(pending) >= 50_000:  # bound the futures held, not the throughput
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return count, time.perf_counter() - started
    finally:
        await sender.stop()


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete the topics whose name starts with `prefix` (Quix Streams' changelogs of one run)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """A topic of `partitions` partitions (replication 1, the local broker's); nothing if it exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if name not in await admin.list_topics():
            await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def read_figures(bootstrap: str, topic: str, tenant: str) -> tuple[int, dict[tuple[str, str], Decimal]]:
    """Every committed record of `topic` (a `read_committed` consumer, from the first offset to the end):
    (records of `tenant`, the last `actual` per (scope_id, period) of those), as Quix Streams wrote them."""
    tps = [TopicPartition(t, p) for t, p in await offsets(bootstrap, [topic])]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)  # read_committed: the last stable offset
        prefix, count, last = f"{tenant}:".encode(), 0, {}
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                for record in records:
                    if record.key is None or not record.key.startswith(prefix) or record.value is None:
                        continue
                    figure = json.loads(record.value)
                    count += 1
                    last[(figure["scope_id"], figure["period"])] = Decimal(figure["actual"])
        return count, last
    finally:
        await consumer.stop()
