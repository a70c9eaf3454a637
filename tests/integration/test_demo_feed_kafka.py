"""The demo's Kafka feed against the real broker: positioned at the end, its tenant only, once.

Uses the local stack (the `stack` fixture brings it up).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from deploy.demo.feed import FeedState, KafkaFeed
from shared import topics
from shared.cloudevents import CloudEvent, encode, message_key
from tests.integration.conftest import BOOTSTRAP

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


def _celebration(tenant: str, event_id: str) -> CloudEvent:
    data = {"celebration_id": event_id, "scope": "rep", "scope_id": "rep-001", "milestone": "quota_100",
            "period": "2026-Q4", "value": "1.00", "headline": f"{tenant} celebrates",
            "occurred_at": "2026-12-01T10:00:00Z"}  # fmt: skip
    return CloudEvent(event_id, "recognition.milestone.reached", "recognition", datetime.now(UTC), tenant, data)


async def test_the_feed_reads_only_new_messages_of_its_tenant_each_once() -> None:
    tenant, other = f"demo-test-{secrets.token_hex(4)}", f"other-{secrets.token_hex(4)}"
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        async def send(event: CloudEvent) -> None:
            value, headers = encode(event)
            await producer.send_and_wait(topics.CELEBRATIONS.name, value, key=message_key(event.tenant, "rep-001"),
                                         headers=headers)  # fmt: skip

        await send(_celebration(tenant, f"{tenant}-before"))  # before the feed starts: not seen
        state = FeedState(tenant, "2026-Q4")
        feed = KafkaFeed(BOOTSTRAP, state)
        await feed.start(within_s=15)
        reader = asyncio.create_task(feed.run())
        try:
            for event in (_celebration(tenant, f"{tenant}-1"), _celebration(other, f"{other}-1"),
                          _celebration(tenant, f"{tenant}-1"), _celebration(tenant, f"{tenant}-2")):  # fmt: skip
                await send(event)
            deadline = time.monotonic() + 15
            while len(state.celebrations) < 2 or state.foreign < 1 or state.repeats < 1:
                assert time.monotonic() < deadline, state
                await asyncio.sleep(0.1)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await feed.stop()
    finally:
        await producer.stop()
    assert [item.subject for item in state.celebrations] == ["rep-001", "rep-001"]
    assert (state.messages, state.repeats) == (2, 1)
    assert all(item.text == f"{tenant} celebrates" for item in state.celebrations)
