"""The transactional outbox: events are written in the same PostgreSQL transaction as the state
that caused them, and a relay publishes them afterwards, in order, exactly once.

Each batch of rows is published in a Kafka transaction together with the list of the outbox `seq`s
it holds (on `attain.outbox-positions.v1`, key = deployment and schema). Only then are exactly those
rows deleted. Not "every seq up to the last": writers commit out of `seq` order (two replicas'
batches, a timer, the API), so a row with a smaller `seq` can become visible after a larger one was
published, and deleting by range would drop it unpublished (seen in a two-replica test). A relay
that starts (or restarts after a crash between the Kafka commit and the delete) first reads the
last published list and deletes those rows, so nothing is published twice; a batch whose
Kafka transaction did not commit is invisible to `read_committed` consumers and is sent again.
The transactional id fences a previous relay of the same schema, and a transaction-scoped advisory
lock lets only one replica relay at a time, so events of one key keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka import AIOKafkaProducer

from shared import metrics
from shared.cloudevents import H_TYPE, CloudEvent, encode
from shared.errors import TransientError
from shared.topics import OUTBOX_POSITIONS

log = logging.getLogger(__name__)

BATCH = 500
STANDBY_RETRY_S = 3.0


async def enqueue(conn: asyncpg.Connection, topic: str, key: bytes, event: CloudEvent) -> None:
    """Add `event` to the outbox inside the caller's transaction."""
    await enqueue_many(conn, [(topic, key, event)])


async def enqueue_many(conn: asyncpg.Connection, items: list[tuple[str, bytes, CloudEvent]]) -> None:
    """Add events, in this order, to the outbox inside the caller's transaction (one statement)."""
    if not items:
        return
    encoded = [(topic, key, *encode(event)) for topic, key, event in items]
    await conn.execute(
        "INSERT INTO outbox (topic, key, value, headers)"
        " SELECT t, k, v, h::jsonb FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[])"
        " WITH ORDINALITY AS u(t, k, v, h, n) ORDER BY n",
        [e[0] for e in encoded], [e[1] for e in encoded], [e[2] for e in encoded],
        [json.dumps([[name, raw.decode()] for name, raw in e[3]]) for e in encoded],
    )


class OutboxRelay:
    """Publishes outbox rows in `seq` order; `wake()` after a commit makes it publish at once.

    Replicas elect one relay per deployment and schema with a session-level advisory lock held on a
    connection of its own; only the leader creates the transactional producer (whose start fences any
    predecessor with the same transactional id). Standbys stay healthy and try again every few seconds.
    """

    def __init__(self, pool: asyncpg.Pool, producer_factory: Callable[[], AIOKafkaProducer], schema: str,
                 poll_interval_s: float, position_key: str,
                 position_reader: Callable[[], Awaitable[str | None]]) -> None:
        """`producer_factory()` makes a transactional producer; `position_reader()` returns the last batch's
        `seq`s committed to Kafka under `position_key` (one per deployment and schema), comma-separated."""
        self._pool = pool
        self._factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._position_key = position_key
        self._positions = position_reader
        self._lock_key = zlib.crc32(f"attain-outbox:{position_key}".encode())
        self._poll = poll_interval_s
        self._wakeup = asyncio.Event()
        self.healthy = True
        self.leader = False

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Relay until cancelled; failures are logged, counted and retried with backoff."""
        backoff = self._poll
        while True:
            try:
                await self._lead()
            except (TransientError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                self.healthy = False
                metrics.TRANSIENT_ERRORS.labels("outbox").inc()
                log.warning("outbox relay failed, retrying", extra={"error": repr(err), "retry_in_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = self._poll
            await asyncio.sleep(STANDBY_RETRY_S)

    async def _lead(self) -> None:
        """Relay for as long as this replica holds the lead; return at once when another one does."""
        async with self._pool.acquire() as lock_conn:
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                self.healthy, self.leader = True, False
                return
            producer = self._factory()
            try:
                try:
                    await producer.start()
                    await self._hold_transactional_id(producer)
                    self._producer, self.leader = producer, True
                    await self._recover()
                except Exception as err:  # aiokafka raises many types; all mean "Kafka not usable now"
                    raise TransientError(f"starting the outbox producer failed: {err!r}") from err
                while True:
                    sent = await self.publish_pending()
                    self.healthy = True
                    if sent == BATCH:
                        continue
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the task's own
                    # cancellation when the event is set at that moment, and the relay would not stop
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll):
                            await self._wakeup.wait()
                    self._wakeup.clear()
            finally:
                self._producer, self.leader = None, False
                await producer.stop()
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await lock_conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)

    @staticmethod
    async def _hold_transactional_id(producer: AIOKafkaProducer) -> None:
        """Wait until the producer holds its transactional id. `start()` returns before that; only then
        has the broker fenced the predecessor and finished its last transaction, commit markers written,
        so that `_recover` reads the position that transaction carried (read_committed readers see
        nothing past an unfinished transaction, and would re-send a batch Kafka already has)."""
        await producer.begin_transaction()  # waits for the producer id, as the only public call that does
        await producer.abort_transaction()  # nothing was sent in it: no request goes to the broker

    async def _recover(self) -> None:
        """Forget the rows Kafka already has (a crash between its commit and our delete)."""
        committed = await self._positions()
        if committed:
            published = [int(seq) for seq in committed.split(",") if seq.strip()]
            async with self._pool.acquire() as conn:
                await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", published)

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows in one Kafka transaction; return how many went out."""
        producer = self._producer
        assert producer is not None, "only the leader publishes"
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch("SELECT seq, topic, key, value, headers FROM outbox ORDER BY seq LIMIT $1", BATCH)
            if not rows:
                metrics.OUTBOX_PENDING.set(0)
                return 0
            seqs = [row["seq"] for row in rows]
            headers = [json.loads(row["headers"]) for row in rows]
            try:
                async with producer.transaction():
                    for row, pairs in zip(rows, headers, strict=True):
                        await producer.send(row["topic"], row["value"], key=row["key"],
                                            headers=[(name, text.encode()) for name, text in pairs])
                    await producer.send(OUTBOX_POSITIONS.name, ",".join(map(str, seqs)).encode(),
                                        key=self._position_key.encode())
            except Exception as err:  # aiokafka raises many types; all mean "not committed, retry"
                raise TransientError(f"publishing outbox rows failed: {err!r}") from err
            await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", seqs)
            published = Counter((row["topic"], dict(pairs).get(H_TYPE, "unknown"))
                                for row, pairs in zip(rows, headers, strict=True))
            for (topic, type_), n in published.items():
                metrics.OUTBOX_PUBLISHED.labels(topic, type_).inc(n)
            metrics.OUTBOX_PENDING.set(await conn.fetchval("SELECT count(*) FROM outbox"))
            return len(rows)
