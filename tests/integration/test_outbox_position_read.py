"""A relay that starts reads its last published position past every other relay's open transaction.

All relays write their positions to the one partition of `attain.outbox-positions.v1`. A read_committed
reader sees nothing past the first open transaction there, and kpi, coaching, recognition and ingest each
hold one for moments all the time (a killed one's for up to the broker's transaction timeout). A relay that
restarted while another's transaction was open read its position only up to that transaction, found the one
before its own last commit, and would publish its whole last batch again had it died between Kafka's commit
and its outbox delete."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.errors import KafkaError

from shared.kafka import create_producer, last_position
from shared.settings import ServiceSettings
from shared.topics import OUTBOX_POSITIONS
from tests.integration.conftest import BOOTSTRAP


async def _commit(producer: object, key: str, value: str) -> None:
    await producer.begin_transaction()  # type: ignore[attr-defined]
    await producer.send_and_wait(OUTBOX_POSITIONS.name, value.encode(), key=key.encode())  # type: ignore[attr-defined]
    await producer.commit_transaction()  # type: ignore[attr-defined]


async def test_a_position_committed_behind_another_relays_open_transaction_is_read(stack: None) -> None:
    settings = ServiceSettings(kafka_bootstrap_servers=BOOTSTRAP, database_url="postgresql://unused")
    run = uuid.uuid4().hex[:8]
    mine_key, other_key = f"test-mine-{run}/box", f"test-other-{run}/box"
    mine = create_producer(settings, "test-mine", f"attain-outbox:{mine_key}")
    other = create_producer(settings, "test-other", f"attain-outbox:{other_key}")
    await mine.start()
    await other.start()
    try:
        await _commit(mine, mine_key, "1:11")
        await other.begin_transaction()  # another relay's batch, in flight
        await other.send_and_wait(OUTBOX_POSITIONS.name, b"9:99", key=other_key.encode())
        await _commit(mine, mine_key, "2:22")  # this relay's last batch, committed after the other began

        async def other_commits_soon() -> None:
            await asyncio.sleep(2)
            await other.commit_transaction()

        later = asyncio.create_task(other_commits_soon())
        assert await last_position(settings, mine_key) == "2:22"  # the old read stopped at "1:11"
        await later
        assert await last_position(settings, mine_key) == "2:22"  # nothing open: read to the end, markers too
        assert await last_position(settings, other_key) == "9:99"

        await other.begin_transaction()  # a relay killed in mid-transaction: open until the broker times it out
        await other.send_and_wait(OUTBOX_POSITIONS.name, b"10:100", key=other_key.encode())
        with pytest.raises(KafkaError, match="open transaction"):
            await last_position(settings, mine_key, timeout_s=2)  # never an answer that may be stale
        await other.abort_transaction()
        assert await last_position(settings, other_key) == "9:99"  # the aborted one is not a position
    finally:
        await mine.stop()
        await other.stop()
