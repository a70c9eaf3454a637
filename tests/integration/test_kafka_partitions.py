"""A reader that names several topics gets every one of them, or a loud error: never a silent gap.

The coaching suite's watch used to assign whatever partitions the client's metadata happened to know and
asked the broker again only when it knew none, so a topic created (or first seen) after the client started
was left out and a test waited 30 s for records it could never see (CI, December 2026)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from shared import topics
from shared.kafka import partitions_of
from tests.integration.conftest import BOOTSTRAP

pytestmark = pytest.mark.integration


async def test_a_topic_the_client_did_not_know_at_start_is_assigned_too(stack: None) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    late = f"attain-test-late-{uuid.uuid4().hex[:8]}"
    try:
        await partitions_of(consumer, [topics.TASKS.name])
        assert consumer.partitions_for_topic(topics.TASKS.name)  # the client knows this one now
        await admin.create_topics([NewTopic(late, num_partitions=3, replication_factor=1)])
        assert not consumer.partitions_for_topic(late)  # the client has not heard of it yet
        parts = await partitions_of(consumer, [topics.TASKS.name, late])
        assert {tp.topic for tp in parts} == {topics.TASKS.name, late}
        assert sorted(tp.partition for tp in parts if tp.topic == late) == [0, 1, 2]
    finally:
        await admin.delete_topics([late])
        await admin.close()
        await consumer.stop()


async def test_a_topic_that_does_not_exist_is_named_in_the_error(stack: None) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        with pytest.raises(KafkaError, match="attain-test-never"):
            await partitions_of(consumer, [topics.TASKS.name, "attain-test-never"], timeout_s=1.0)
    finally:
        await consumer.stop()
