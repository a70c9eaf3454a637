"""Fencing (issue 16, item 8): a consumer whose partition went to another member while it held a fetched
batch (a zombie: paused past its session, then resumed) tries to write that batch and is refused, instead of
relying on the stored offsets to make it a no-op. Before, the zombie's late batch was applied: its writes
went through although the partition was no longer its own.

Two members of one group, each a real `ConsumerLoop` with its own Kafka consumer; "given the partition" is
the loop's own assignment callback, called in the order a rebalance would: the zombie first, then the
member that takes over."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared import consumer as consumer_module
from shared.consumer import ConsumerLoop, Incoming
from tests.integration.conftest import BOOTSTRAP
from tests.integration.test_offset_regression import _send, sandbox


async def _records(topic: str, count: int) -> list[ConsumerRecord]:
    reader = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, isolation_level="read_committed")
    await reader.start()
    try:
        tp = TopicPartition(topic, 0)
        reader.assign([tp])
        reader.seek(tp, 0)
        records: list[ConsumerRecord] = []
        while len(records) < count:
            records += (await reader.getmany(tp, timeout_ms=2000)).get(tp, [])
        return records
    finally:
        await reader.stop()


async def test_a_zombie_tries_to_write_its_late_batch_and_is_refused(stack: None) -> None:
    applied: list[tuple[str, int]] = []
    members: list[ConsumerLoop] = []

    def member(name: str) -> ConsumerLoop:
        async def handler(_conn: asyncpg.Connection, part: Sequence[Incoming]) -> None:
            applied.extend((name, item.data.n) for item in part)  # type: ignore[attr-defined]

        loop = box.loop(handler)
        members.append(loop)
        return loop

    async def given_the_partition(loop: ConsumerLoop) -> None:
        loop.consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
        await loop.consumer.start()
        loop.consumer.assign([TopicPartition(box.topic, 0)])
        await consumer_module._SeekToStored(loop).on_partitions_assigned({TopicPartition(box.topic, 0)})

    async with sandbox("fence", pool_size=4) as box:
        await _send(box.producer, box.topic, [1, 2, 3, 4], "fence")
        records = await _records(box.topic, 4)
        try:
            zombie = member("zombie")
            await given_the_partition(zombie)
            await zombie.processor.process(records[:1])  # the zombie applies a batch while it owns the partition
            # ... fetches the next one, and is paused (SIGSTOP) past its session: the group gives the partition
            # to another member, which claims it
            successor = member("successor")
            await given_the_partition(successor)

            # resumed, the zombie goes on with the batch it held
            refused: Exception | None = None
            try:
                await zombie.processor.process(records[1:3])
            except Exception as err:
                refused = err
            assert applied == [("zombie", 1)], "the zombie's late batch was written"
            assert type(refused).__name__ == "Fenced", refused
            async with box.pool.acquire() as conn:  # nothing of it stored either
                stored = await conn.fetchval("SELECT next_offset FROM consumer_offsets WHERE group_id = $1", box.group)
            assert stored == 1

            await successor.processor.process(records[1:])
            assert applied == [("zombie", 1), ("successor", 2), ("successor", 3), ("successor", 4)]
        finally:
            for loop in members:
                if loop.consumer is not None:
                    await loop.consumer.stop()
