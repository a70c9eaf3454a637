"""The contract's topics (shared/topics.py) on a broker: create what is missing, reconcile the configs of
what is there (cleanup policy, retention: a broker whose topics were created by an older version gets the
current ones), count them.

`up` runs this against the local broker; `python -m deploy.local.stack topics` runs it alone
against KAFKA_BOOTSTRAP_SERVERS (docker-compose's one-shot init container), after waiting for
the broker to answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code

from deploy.local.kafka import kafka_probe
from deploy.local.procs import StackError, say
from shared.topics import Topic, all_with_dlq

BROKER_WAIT_S = 60.0


async def wait_for_broker(bootstrap: str, within_s: float = BROKER_WAIT_S,
                          security: Mapping[str, object] | None = None) -> None:
    """Return once a broker answers a Metadata request at `bootstrap`; StackError after `within_s`
    naming the last failure (a refused connection, a failed TLS handshake or SASL authentication)."""
    deadline = time.monotonic() + within_s
    waiting = False
    while True:
        names, why = await kafka_probe(bootstrap, min(5.0, max(0.5, deadline - time.monotonic())), security)
        if names is not None:
            return
        if time.monotonic() >= deadline:
            raise StackError(f"no Kafka broker answered on {bootstrap} within {within_s:.0f}s (last: {why})")
        if not waiting:
            say(f"topics: waiting for the Kafka broker on {bootstrap} (up to {within_s:.0f}s)...")
            waiting = True
        await asyncio.sleep(1.0)


async def reconcile_configs(admin: AIOKafkaAdminClient, wanted: Sequence[Topic]) -> list[str]:
    """Give every topic of `wanted` whose topic-level configs differ from `Topic.configs` exactly those configs
    (AlterConfigs sets a topic's whole dynamic config: an override nobody declared is dropped); the names changed.
    """
    if not wanted:
        return []
    by_name = {t.name: t for t in wanted}
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in by_name])
    stale: list[str] = []
    for response in responses:
        for error_code, _message, _type, name, entries in response.resources:
            if error_code:
                raise StackError(f"describing the configs of topic {name} failed: {for_code(error_code).__name__}")
            # (name, value, read_only, is_default or config_source, is_sensitive, ...): a default is not stated
            have = {e[0]: e[1] for e in entries if not _is_default(e)}
            want = by_name[name].configs
            if any(have.get(key) != value for key, value in want.items()):
                stale.append(name)
    if stale:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, n, by_name[n].configs) for n in stale])
        for name in stale:
            say(f"topics: {name} reconfigured to {by_name[name].configs}")
    return stale


def _is_default(entry: tuple[object, ...]) -> bool:
    """DescribeConfigs v0 says is_default (a bool); v1+ a config_source (5 = DEFAULT_CONFIG, 4 = STATIC_BROKER)."""
    marker = entry[3]
    if isinstance(marker, bool):
        return marker
    return marker != 1  # 1 = DYNAMIC_TOPIC_CONFIG: the only source a topic's own settings come from


async def ensure_topics(bootstrap: str, within_s: float = 30.0, security: Mapping[str, object] | None = None,
                        topics: Sequence[Topic] | None = None) -> int:
    """Create every topic of shared/topics.py (or of `topics`) that is missing; grow any with too few
    partitions; reconcile the configs of those that existed (`reconcile_configs`)."""
    wanted = {topic.name: topic for topic in (all_with_dlq() if topics is None else topics)}
    admin = AIOKafkaAdminClient(**{**(security or {}), "bootstrap_servers": bootstrap},
                                request_timeout_ms=int(within_s * 1000))
    try:
        await admin.start()
        existing = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics() if not t["error_code"]}
        missing = [t for name, t in wanted.items() if name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t.name, t.partitions, 1, topic_configs=t.configs) for t in missing],
                timeout_ms=int(within_s * 1000),
            )
            for row in response.topic_errors:
                name, code = row[0], row[1]
                if code and for_code(code).__name__ != "TopicAlreadyExistsError":
                    raise StackError(f"creating topic {name} failed: {for_code(code).__name__} {row[2:]}")
            everything = len(missing) == len(wanted)
            names = ", ".join(t.name for t in missing)
            say(f"topics: created {len(missing)} ({'all' if everything else names})")
        await reconcile_configs(admin, [t for name, t in wanted.items() if name in existing])
        short = {n: NewPartitions(t.partitions) for n, t in wanted.items() if 0 < existing.get(n, 0) < t.partitions}
        if short:
            await admin.create_partitions(short, timeout_ms=int(within_s * 1000))
            say(f"topics: grew partitions of {', '.join(short)}")
        # Wait until every partition has a leader, so the first producer does not see
        # LEADER_NOT_AVAILABLE right after a fresh start.
        deadline = time.monotonic() + within_s
        while True:
            described = await admin.describe_topics(list(wanted))
            leaderless = [
                t["topic"] for t in described if t["error_code"] or any(p["leader"] < 0 for p in t["partitions"])
            ]
            if not leaderless:
                break
            if time.monotonic() > deadline:
                raise StackError(f"topics without a leader after {within_s:.0f}s: {', '.join(leaderless)}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    return len(wanted)


def expected() -> list[str]:
    """The names of every topic of the contract, dead-letter topics included."""
    return [t.name for t in all_with_dlq()]
