"""Kafka clients, built one way: an idempotent producer (acks from all ISRs) and matching options."""

from __future__ import annotations

import asyncio
import ssl

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from shared.settings import ServiceSettings
from shared.topics import OUTBOX_POSITIONS


class KeyPartitioner:
    """Kafka's default key partitioning (murmur2, as the Java client and aiokafka do), memoised per key.

    Attain's keys repeat (`<tenant>:<rep_id>`), and aiokafka's murmur2 is pure Python: about 6 us a
    record in ingest's profile, most of which the cache saves. The mapping is identical to the default.
    """

    def __init__(self, max_keys: int = 200_000) -> None:
        self._cache: dict[tuple[bytes, int], int] = {}
        self._max = max_keys

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return DefaultPartitioner()(key, all_partitions, available)  # type: ignore[no-any-return]
        count = len(all_partitions)
        index = self._cache.get((key, count))
        if index is None:
            if len(self._cache) >= self._max:
                self._cache.clear()
            index = self._cache[(key, count)] = (murmur2(key) & 0x7FFFFFFF) % count
        return all_partitions[index]


# How long the broker lets a relay's transaction stay open before it aborts it (aiokafka's default is a
# minute). A relay's batch commits within seconds; a relay killed in mid-transaction holds every
# read_committed reader of the partitions it wrote (and every relay reading its position) until then.
TRANSACTION_TIMEOUT_MS = 20_000


def create_producer(settings: ServiceSettings, client_id: str,
                    transactional_id: str | None = None) -> AIOKafkaProducer:
    """The producer every service sends with: it never loses or duplicates a send it acknowledged.

    `enable_idempotence=True` gives acks from all in-sync replicas and sequence numbers, so a retried
    send is written once; a send's future resolves only once the record is durable. Hot paths use
    aiokafka directly: FastStream's `publish` cost 36.7 us a record against 21.2 us for `send`
    (measured on 50,000 records), and FastStream stays the AsyncAPI generator (`shared/docs.py`).
    """
    return AIOKafkaProducer(
        **client_kwargs(settings),
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        partitioner=KeyPartitioner(),
        transactional_id=transactional_id,
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        request_timeout_ms=30_000,
    )


async def broker_reachable(producer: AIOKafkaProducer, timeout_s: float = 3.0) -> bool:
    """True when the cluster answered a metadata request within `timeout_s`."""
    try:  # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the caller's cancellation
        async with asyncio.timeout(timeout_s):
            await producer.client.fetch_all_metadata()
    except (KafkaError, TimeoutError, OSError):
        return False
    return True


def client_kwargs(settings: ServiceSettings) -> dict[str, object]:
    """Connection options for every aiokafka client (producer, consumers, admin): SASL/TLS from settings."""
    kwargs: dict[str, object] = {"bootstrap_servers": settings.kafka_bootstrap_servers}
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return kwargs
    kwargs["security_protocol"] = protocol
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
        kwargs["ssl_context"] = context
    if protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password:
            kwargs["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return kwargs


POSITION_READ_TIMEOUT_S = 90.0  # past any relay's transaction timeout (ours 20 s, aiokafka's default a minute)


async def last_position(settings: ServiceSettings, key: str, timeout_s: float = POSITION_READ_TIMEOUT_S) -> str | None:
    """The last committed value for `key` on the outbox-positions topic: the rows of the last batch
    published, comma-separated `seq:tag`s (`seq`s alone before migration 005; None: never written).

    The read starts at an explicit offset: in aiokafka 0.14, `seek_to_beginning` after an `end_offsets`
    call left the position at the end (shown in `tests/integration/test_outbox_takeover.py`), so this
    read used to find nothing and a relay taking over re-sent the batch its predecessor had committed.

    It ends only past every record written to the partition before it began (the high watermark, read
    uncommitted), not at the last stable offset: every relay writes its positions to this one partition,
    so another relay's transaction, open for a moment (or a killed one's, until the broker times it out),
    holds the last stable offset below this relay's own last commit, and a read that stopped there found an
    older position and re-sent a whole batch. Raises
    `KafkaError` when the partition is still not stable after `timeout_s`: the relay retries, never guesses."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed")
    probe = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False,
                             isolation_level="read_uncommitted")
    await consumer.start()
    try:
        await probe.start()
        partition = TopicPartition(OUTBOX_POSITIONS.name, 0)
        try:
            written = (await probe.end_offsets([partition]))[partition]  # committed or not, by anyone
        finally:
            await probe.stop()
        consumer.assign([partition])
        begin = (await consumer.beginning_offsets([partition]))[partition]
        consumer.seek(partition, begin)
        deadline = asyncio.get_running_loop().time() + timeout_s
        found: str | None = None
        while await consumer.position(partition) < written:
            if asyncio.get_running_loop().time() > deadline:
                raise KafkaError(f"{OUTBOX_POSITIONS.name} still holds an open transaction below offset {written}"
                                 f" after {timeout_s:.0f} s")
            for record in (await consumer.getmany(partition, timeout_ms=1000)).get(partition, []):
                if record.key == key.encode() and record.value is not None:
                    found = record.value.decode()
        return found
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, names: list[str] | tuple[str, ...],
                        timeout_s: float = 30.0) -> list[TopicPartition]:
    """Every partition of every topic named, asking the broker until its metadata knows them all.

    A started client may know some topics and not yet others; assigning what it happens to know leaves a
    topic out without a word (a live stream or a watch that never sees one kind of record). Raises
    `KafkaError` naming the topics still unknown after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while missing := [t for t in names if not consumer.partitions_for_topic(t)]:
        if asyncio.get_running_loop().time() > deadline:
            raise KafkaError(f"no partitions known for topics {missing} after {timeout_s:.0f} s")
        # `set_topics` refreshes only when the set grows: a refresh that raced a topic's creation (the broker
        # not knowing it yet) would never be repeated, so every round forces one (CI, December 2026).
        await consumer._client.set_topics(list(names))
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    return [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or ())]
