"""The contract's topics (shared/topics.py) on a broker: create what is missing, count what is there.

`up` runs this against the local broker; `python -m deploy.local.stack topics` runs it alone
against KAFKA_BOOTSTRAP_SERVERS (docker-compose's one-shot init container), after waiting for
the broker to answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import for_code

from deploy.local.kafka import kafka_probe
from deploy.local.procs import StackError, say
from shared.topics import all_with_dlq

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


async def ensure_topics(bootstrap: str, within_s: float = 30.0, security: Mapping[str, object] | None = None) -> int:
    """Create every topic of shared/topics.py that is missing; grow any with too few partitions."""
    wanted = {topic.name: topic for topic in all_with_dlq()}
    admin = AIOKafkaAdminClient(**{**(security or {}), "bootstrap_servers": bootstrap},
                                request_timeout_ms=int(within_s * 1000))
    try:
        await admin.start()
        existing = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics() if not t["error_code"]}
        missing = [t for name, t in wanted.items() if name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t.name, t.partitions, 1, topic_configs={"cleanup.policy": t.cleanup}) for t in missing],
                timeout_ms=int(within_s * 1000),
            )
            for row in response.topic_errors:
                name, code = row[0], row[1]
                if code and for_code(code).__name__ != "TopicAlreadyExistsError":
                    raise StackError(f"creating topic {name} failed: {for_code(code).__name__} {row[2:]}")
            everything = len(missing) == len(wanted)
            names = ", ".join(t.name for t in missing)
            say(f"topics: created {len(missing)} ({'all' if everything else names})")
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
