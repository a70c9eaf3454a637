"""Topic configs on a real broker: the topics job creates topics with shared/topics.py's configs and
reconciles those of topics that already exist (a broker set up by an older version), and the local
broker's source topics keep everything."""

from __future__ import annotations

import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.local.topics import ensure_topics
from shared import topics
from shared.topics import FOREVER, Topic
from tests.integration.conftest import BOOTSTRAP


async def _configs(names: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    return {res[3]: {e[0]: e[1] for e in res[4]} for r in responses for res in r.resources}


async def test_an_existing_topic_with_an_old_retention_is_reconciled_and_a_missing_one_created() -> None:
    old, new = f"h7-old-{uuid.uuid4().hex[:8]}", f"h7-new-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:  # as an older version created it: the broker's default retention, delete policy
        await admin.create_topics([NewTopic(old, 1, 1, topic_configs={"cleanup.policy": "delete"})])
    finally:
        await admin.close()
    wanted = [Topic(old, 1, "delete", FOREVER), Topic(new, 1, "compact", FOREVER)]
    try:
        assert await ensure_topics(BOOTSTRAP, topics=wanted) == 2
        configs = await _configs([old, new])
        assert configs[old]["retention.ms"] == "-1" and configs[old]["cleanup.policy"] == "delete"
        assert configs[new]["retention.ms"] == "-1" and configs[new]["cleanup.policy"] == "compact"
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        await admin.start()
        try:
            await admin.delete_topics([old, new])
        finally:
            await admin.close()


async def test_the_local_brokers_source_topics_keep_everything_after_topic_setup() -> None:
    await ensure_topics(BOOTSTRAP)  # what `deploy.local.stack up` runs: reconciles the running broker
    configs = await _configs([t.name for t in topics.all_with_dlq()])
    for topic in (topics.DEALS, topics.ACTIVITIES, topics.ROSTER, topics.TARGETS):
        assert configs[topic.name]["retention.ms"] == "-1", topic.name
        assert configs[topic.name]["cleanup.policy"] == topic.cleanup, topic.name
    assert configs[topics.DEALS.dlq]["retention.ms"] == str(topics.DLQ_RETENTION_MS)
