"""A fault of the database is not a fault of the record: a full disk (SQLSTATE 53100), an administrator's
shutdown, a lock timeout... leave the batch uncommitted and retry it; nothing goes to the `.dlq`. Only a
record that fails on its own (a data error that reproduces when it is applied alone) is dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from shared.consumer import Incoming
from tests.integration.core_hardening.support import (
    RecordingProducer,
    applied,
    consumer,
    counting,
    delivered,
    new_database,
)


async def test_a_full_disk_dead_letters_nothing_and_the_record_is_applied_after_the_retry(stack: None) -> None:
    _, pool = await new_database("diskfull", "hard")
    try:
        outage = [asyncpg.DiskFullError("could not extend file: No space left on device")] * 2
        count = counting()

        async def disk_full_for_a_while(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
            if outage:  # the batch, then the record alone: the disk is still full
                raise outage.pop()
            await count(conn, batch)

        producer = RecordingProducer()
        processor = consumer(pool, "g-diskfull", disk_full_for_a_while, producer)
        await asyncio.wait_for(processor.process([delivered("test.diskfull", 0, 0, "valid")]), 30)
        assert producer.sent == []  # dead-lettered nothing
        assert await applied(pool) == {"valid": 1}
        assert processor.healthy
        assert await pool.fetchval("SELECT next_offset FROM consumer_offsets WHERE group_id = 'g-diskfull'") == 1
    finally:
        await pool.close()


async def test_a_record_that_fails_alone_on_its_data_is_still_dead_lettered(stack: None) -> None:
    _, pool = await new_database("dataerror", "hard")
    try:
        count = counting()

        async def out_of_range(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
            if any(getattr(m.data, "name", "") == "huge" for m in batch):
                await conn.execute("SELECT 99999::smallint")  # 22003: numeric value out of range
            await count(conn, batch)

        producer = RecordingProducer()
        processor = consumer(pool, "g-dataerror", out_of_range, producer)
        records = [delivered("test.dataerror", 0, i, name) for i, name in enumerate(["a", "huge", "b"])]
        await asyncio.wait_for(processor.process(records), 30)
        assert [topic for topic, _ in producer.sent] == ["test.dataerror.dlq"]
        assert producer.sent[0][1] == records[1].value
        assert await applied(pool) == {"a": 1, "b": 1}
    finally:
        await pool.close()
