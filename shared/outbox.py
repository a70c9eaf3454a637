"""The transactional outbox: events are written in the same PostgreSQL transaction as the state
that caused them, and a relay publishes them afterwards, in order, exactly once.

Writing: `enqueue_many` inserts the rows in one statement, each row's headers packed in one MessagePack
value that the relay decodes in C straight into what aiokafka takes (no JSON on either side; rows
written before migration 002 carry jsonb headers and are still read), and issues `pg_notify` on the
schema's channel (`attain_outbox.<schema>`). PostgreSQL delivers a notification only once its transaction committed,
so the relay is never woken before the rows are visible.

Waking: the leader listens on that channel on its own connection (the one holding its advisory lock),
so a committed row goes out within milliseconds; `wake()` does the same from inside the process. A
slow safety poll (`poll_interval_s`) catches what a notification could miss. If that connection
drops, the lock and the subscription are gone together: the relay returns at once to the election,
which listens again.

Publishing: the leader takes everything pending (up to `BATCH` rows, `seq` order) into one Kafka
transaction, packing the records per partition into batches itself (aiokafka's batch API: about a
quarter of the CPU of one `send` per record) and awaiting every delivery before it commits. With each
batch goes the list of the rows it holds, each as `seq:tag` (on `attain.outbox-positions.v1`, key =
deployment and schema). Only then are exactly those rows deleted. Not "every seq up to the last": writers commit out
of `seq` order (two replicas' batches, a timer, the API), so a row with a smaller `seq` can become
visible after a larger one was published, and deleting by range would drop it unpublished (seen in a
two-replica test). A relay that starts (or restarts after a crash between the Kafka commit and the
delete) first reads the last published list and deletes those rows, so nothing is published twice; a
batch whose Kafka transaction did not commit is invisible to `read_committed` consumers and is sent
again. A row is forgotten only when its seq and its random tag both match: after a point-in-time restore
of the database, seqs repeat (the sequence goes back with the data) but tags do not, so a new row under an
old seq is published, not lost. The transactional id fences a previous relay of the same schema, and a
session-level advisory lock lets only one replica relay at a time, so events of one key keep their order.

Traces (shared/tracing.py): a row keeps the `traceparent` of the transaction that wrote it; with tracing on,
the relay sends it under a PRODUCER span that continues that trace (one per stored context and topic in a
Kafka transaction, ended when the transaction commits or fails), and the record carries that span's context.
With tracing off the stored headers go out as they are: the trace still joins up downstream.

A record Kafka refuses for good (larger than the topic takes, invalid, unknown or forbidden topic)
must not hold back everyone's events behind it. It is moved to `outbox_dead`, with its error, in the
transaction that deletes the published rows; counted (`attain_outbox_dead_total`) and logged; every
other row is published, in order. The broker refuses a whole produce batch at a time, and aiokafka
would commit the transaction without it (and, its sequence numbers now ahead of the broker's, fail
every later batch of that partition until it restarts). So a refusal aborts the attempt, replaces the
producer, and sends the rows of a refused batch one per batch in the next attempt, which names the
culprit. Transient errors (broker or database down) leave the rows in place and retry the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from shared import metrics, tracing
from shared.cloudevents import H_TYPE, CloudEvent, encode
from shared.errors import TransientError
from shared.kafka import KeyPartitioner, broker_reachable
from shared.topics import OUTBOX_POSITIONS

log = logging.getLogger(__name__)

BATCH = 5_000  # rows per Kafka transaction at most (their "seq:tag"s, 40 bytes at most each, fit one positions record)
STANDBY_RETRY_S = 3.0
RETRY_S, RETRY_MAX_S = 0.5, 10.0  # backoff after a transient failure
ABORT_ON_STOP_S = 5.0  # how long a stopping relay waits for the broker to abort its open transaction
CHANNEL_PREFIX = "attain_outbox."
MAX_RECORD_BYTES = 1_048_576  # aiokafka's max_request_size (create_producer keeps the default)
UNKNOWN_TOPIC_TTL_S = 60.0  # a topic found missing (after aiokafka's own wait) is not asked for again so soon
# Refusals that concern the records of one produce batch and will not change on a retry. Not in the list,
# so retried: fencing, sequence and transaction errors (the producer's, not a record's), anything unknown.
REFUSED_FOR_GOOD: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError, CorruptRecordException,
    InvalidTimestampError, InvalidTopicError, TopicAuthorizationFailedError,
)

# One row as the relay reads it (an asyncpg Record): seq, topic, key, value, header_pack, headers (legacy jsonb),
# tag (random, migration 005).
Row = Any

# Every array element costs asyncpg's encoder about a microsecond, so a row travels as five values, its
# headers packed in one (a name array and a value array would take sixteen).
_INSERT = (
    "WITH added AS (INSERT INTO outbox (topic, key, value, header_pack, tenant)"
    " SELECT t, k, v, h, w FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::bytea[], $5::text[])"
    " WITH ORDINALITY AS u(t, k, v, h, w, n) ORDER BY n)"
    f" SELECT pg_notify(left('{CHANNEL_PREFIX}' || current_schema(), 63), '')"
)
# `headers` (jsonb) is set only on rows written before migration 002, or by a replica not yet upgraded.
_SELECT = "SELECT seq, topic, key, value, header_pack, headers, tag FROM outbox ORDER BY seq LIMIT $1"
# The seqs of a published batch, as text ("12,13,15"): one value, not one array element per row.
_DELETE = "DELETE FROM outbox WHERE seq = ANY(string_to_array($1, ',')::bigint[])"
# What a starting relay forgets: the rows of the last positions record ("12:8812…,13:403…"), each by its seq
# and its tag, so that a row written after a point-in-time restore under a seq that was published before it
# is not taken for a published one (it is sent; had it been the same event, consumers drop it by its id).
_FORGET = ("DELETE FROM outbox o USING unnest($1::bigint[], $2::bigint[]) AS p(seq, tag)"
           " WHERE o.seq = p.seq AND o.tag = p.tag")
# The rows Kafka refused for good, whichever tenants they belong to, go to outbox_dead (a tenant table) through
# the owner's narrow function: the relay's role cannot widen its scope to every tenant (shared/db.py).
_DELETE_AND_BURY = "SELECT sweep_bury_outbox($1, $2::bigint[], $3::text[])"


def parse_positions(text: str) -> tuple[list[int], list[int]]:
    """The seqs and tags of a positions record's value ("12:88,13:40").

    >>> parse_positions("12:88,13:-40")
    ([12, 13], [88, -40])
    """
    seqs, tags = [], []
    for mark in text.split(","):
        seq, _, tag = mark.partition(":")
        seqs.append(int(seq))
        tags.append(int(tag))
    return seqs, tags


def channel(schema: str) -> str:
    """The NOTIFY channel of `schema`'s outbox (what `enqueue_many` computes from `current_schema()`), cut
    to the 63 characters a PostgreSQL channel name can have."""
    return f"{CHANNEL_PREFIX}{schema}"[:63]


async def enqueue(conn: asyncpg.Connection, topic: str, key: bytes, event: CloudEvent) -> None:
    """Add `event` to the outbox inside the caller's transaction."""
    await enqueue_many(conn, [(topic, key, event)])


async def enqueue_many(conn: asyncpg.Connection, items: list[tuple[str, bytes, CloudEvent]]) -> None:
    """Add events, in this order, to the outbox inside the caller's transaction, and wake the relay once it
    commits (one statement: the insert and the notification). With tracing on, each row's headers also keep
    the `traceparent` (and `tracestate`) of the span active now, which the relay continues."""
    if not items:
        return
    topics, keys, values, packs, tenants = [], [], [], [], []
    carried = tracing.current_headers() if tracing.enabled() else None  # the writing transaction's trace
    for topic, key, event in items:
        value, headers = encode(event)
        if carried:
            headers += carried
        topics.append(topic)
        keys.append(key)
        values.append(value)
        packs.append(_pack(headers))
        tenants.append(event.tenant)
    await conn.execute(_INSERT, topics, keys, values, packs, tenants)


def refused_for_good(err: BaseException) -> bool:
    """Whether Kafka refused a record for a reason a retry will not change."""
    return isinstance(err, REFUSED_FOR_GOOD)


@dataclass
class Verdict:
    """What one publishing attempt's batches say about their rows."""

    dead: dict[int, BaseException] = field(default_factory=dict)  # refused alone: the culprit
    suspects: set[int] = field(default_factory=set)  # refused with others: each goes alone next time
    cleared: set[int] = field(default_factory=set)  # went out alone and was taken
    other: BaseException | None = None  # the first failure that is not a refusal for good


@dataclass
class Attempt:
    """One Kafka transaction's worth of work: the batches handed to the producer (their rows' seqs), the
    rows packed, events by topic and type (for the metrics), and what the outcome says."""

    suspects: set[int]
    batches: list[tuple[list[int], asyncio.Future[Any]]] = field(default_factory=list)
    published: list[int] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    verdict: Verdict = field(default_factory=Verdict)
    spans: tracing.RelaySpans | None = None  # with tracing on: the PRODUCER spans the rows go out under


def judge(outcomes: Iterable[tuple[Sequence[int], BaseException | None]]) -> Verdict:
    """Sort each produce batch's rows (`seq`s) by its outcome (None: delivered).

    >>> v = judge([([1, 2], MessageSizeTooLargeError()), ([3], MessageSizeTooLargeError()), ([4], None)])
    >>> sorted(v.suspects), sorted(v.dead), sorted(v.cleared), v.other
    ([1, 2], [3], [4], None)
    """
    verdict = Verdict()
    for seqs, error in outcomes:
        if error is None:
            if len(seqs) == 1:
                verdict.cleared.add(seqs[0])
        elif not refused_for_good(error) or not seqs:  # no row to blame (the positions record)
            verdict.other = verdict.other or error
        elif len(seqs) == 1:
            verdict.dead[seqs[0]] = error
        else:
            verdict.suspects.update(seqs)
    return verdict


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[tuple[str, bytes]])


def _pack(headers: list[tuple[str, bytes]]) -> bytes:
    """Headers as the outbox keeps them: a MessagePack array of [name (str), value (bin)] pairs."""
    return _encoder.encode(headers)


def _unpack(pack: bytes) -> list[tuple[str, bytes]]:
    """What `_pack` packed, as aiokafka takes headers."""
    return _decoder.decode(pack)


def _legacy(headers: str | None) -> list[tuple[str, bytes]]:
    """Headers of a row written before migration 002: jsonb [[name, text], ...]."""
    return [(name, text.encode()) for name, text in json.loads(headers or "[]")]


def _headers(row: Row) -> list[tuple[str, bytes]]:
    """A relayed row's headers, as aiokafka takes them."""
    return _unpack(row[4]) if row[4] is not None else _legacy(row[5])


def row_headers(header_pack: bytes | None, headers: str | None) -> list[tuple[str, bytes]]:
    """An outbox row's headers as aiokafka takes them, from either stored form (for tools that read the
    outbox themselves, such as the quarter replay)."""
    return _unpack(header_pack) if header_pack is not None else _legacy(headers)


def _type(headers: list[tuple[str, bytes]]) -> str:
    return next((raw for name, raw in headers if name == H_TYPE), b"unknown").decode(errors="replace")


async def _close(producer: AIOKafkaProducer) -> None:
    """Stop a relay's producer, aborting the transaction it has open first: a stop (a deploy, a lost lead,
    a cancellation between a batch's sends and its commit) must not leave the partitions it wrote to behind
    an open transaction. read_committed readers (every consumer downstream) see nothing past one until the
    broker times it out (`transaction.timeout.ms`: `shared.kafka.TRANSACTION_TIMEOUT_MS`, 20 s), or until
    a producer with the same transactional id starts, which a replaced deployment or a test's harness never
    does."""
    try:
        if producer._txn_manager is not None and producer._txn_manager.is_in_transaction():
            async with asyncio.timeout(ABORT_ON_STOP_S):
                await producer.abort_transaction()
            metrics.OUTBOX_ABORTED_ON_STOP.inc()
    except (KafkaError, OSError, TimeoutError) as err:  # the broker's timeout ends it instead
        log.warning("could not abort the outbox producer's open transaction on stop", extra={"error": repr(err)})
    with contextlib.suppress(KafkaError, OSError):
        await producer.stop()


class OutboxRelay:
    """Publishes outbox rows in `seq` order as soon as they commit (NOTIFY, or `wake()` in process).

    Replicas elect one relay per deployment and schema with a session-level advisory lock held on a
    connection of its own, which also listens for the schema's notifications; only the leader creates
    the transactional producer (whose start fences any predecessor with the same transactional id).
    Standbys stay healthy and try again every few seconds. `poll_interval_s` is the safety poll.
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
        self._channel = channel(schema)
        self._poll = poll_interval_s
        self._wakeup = asyncio.Event()
        self._partitioner = KeyPartitioner()  # the producers' own mapping (murmur2), for the batches built here
        self._missing_topics: dict[str, tuple[float, KafkaError]] = {}
        self.healthy = True
        self.leader = False
        self.idle = False  # the leader waits for a notification, a wake() or the safety poll
        self._closed = False

    def wake(self) -> None:
        self._wakeup.set()

    def close(self) -> None:
        """The service stops: end the relay at its next turn even if a cancellation is lost on the way
        (the stop cancels it too; this makes the loop end should a library swallow that)."""
        self._closed = True
        self._wakeup.set()

    def _notified(self, *_: object) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Relay until cancelled; failures are logged, counted and retried with backoff."""
        backoff = RETRY_S
        while not self._closed:
            try:
                again = await self._lead()
            except (TransientError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    asyncpg.InternalClientError) as err:  # the last: a connection the server dropped (consumer.py)
                self.healthy = False
                metrics.TRANSIENT_ERRORS.labels("outbox").inc()
                log.warning("outbox relay failed, retrying", extra={"error": repr(err), "retry_in_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
                continue
            backoff = RETRY_S
            if not again and not self._closed:
                await asyncio.sleep(STANDBY_RETRY_S)

    async def _lead(self) -> bool:
        """Relay for as long as this replica holds the lead; return at once when another one does (False),
        or when the connection holding the lead dropped (True: stand again now)."""
        async with self._pool.acquire() as lock_conn:
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                self.healthy, self.leader = True, False
                return False
            dropped = asyncio.Event()

            def on_drop(_: object) -> None:
                dropped.set()
                self._wakeup.set()

            lock_conn.add_termination_listener(on_drop)
            try:
                await lock_conn.add_listener(self._channel, self._notified)
                await self._renew_producer()
                self.leader = True
                try:
                    await self._recover()
                except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError):
                    raise
                except Exception as err:  # aiokafka raises many types; all mean "Kafka not usable now"
                    raise TransientError(f"reading the outbox position failed: {err!r}") from err
                while not dropped.is_set() and not self._closed:
                    self._wakeup.clear()
                    fetched, _ = await self._publish_batch()
                    self.healthy = True
                    if fetched >= BATCH:
                        continue
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the task's own
                    # cancellation when the event is set at that moment, and the relay would not stop
                    self.idle = True
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll):
                            await self._wakeup.wait()
                    self.idle = False
                if self._closed:
                    return False
                log.warning("the outbox relay's database connection dropped; standing for the lead again")
                return True
            finally:
                self.leader = self.idle = False
                producer, self._producer = self._producer, None
                if producer is not None:
                    await _close(producer)
                with contextlib.suppress(asyncpg.InterfaceError):  # the connection is gone already
                    lock_conn.remove_termination_listener(on_drop)
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                                         OSError):
                    await lock_conn.remove_listener(self._channel, self._notified)
                    await lock_conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)

    async def _renew_producer(self) -> AIOKafkaProducer:
        """A fresh transactional producer in place of the current one (whose open transaction, if any, the
        new one's start aborts): at start, and after a refusal left its sequence numbers ahead of the broker."""
        old, self._producer = self._producer, None
        if old is not None:
            await _close(old)
        producer = self._factory()
        try:
            await producer.start()
            await self._hold_transactional_id(producer)
        except BaseException as err:  # a cancellation too: a half-started producer keeps tasks and sockets
            with contextlib.suppress(Exception):
                await producer.stop()
            if not isinstance(err, Exception):
                raise
            # aiokafka raises many types; all mean "Kafka not usable now"
            raise TransientError(f"starting the outbox producer failed: {err!r}") from err
        self._producer = producer
        return producer

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
        if not committed:
            return
        async with self._pool.acquire() as conn:
            if ":" in committed:
                seqs, tags = parse_positions(committed)
                gone = await conn.execute(_FORGET, seqs, tags)
            else:  # written by a relay before migration 005: seqs alone
                gone = await conn.execute(_DELETE, committed)
        if gone != "DELETE 0":
            log.info("forgot outbox rows Kafka already had", extra={"rows": int(gone.split()[-1])})

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows in one Kafka transaction; return how many went out."""
        return (await self._publish_batch())[1]

    async def _publish_batch(self) -> tuple[int, int]:
        """Publish up to `BATCH` pending rows; move those Kafka refuses for good to `outbox_dead`; delete the
        rest once Kafka committed them. Returns how many rows were read and how many published."""
        assert self._producer is not None, "only the leader publishes"
        async with self._pool.acquire() as conn, conn.transaction():
            rows: list[Row] = await conn.fetch(_SELECT, BATCH)
            if not rows:
                metrics.OUTBOX_PENDING.set(0)
                return 0, 0
            done, dead = await self._publish(rows)
            positions = ",".join(map(str, done.published))
            if dead:
                by_seq = {row[0]: row for row in rows}
                await conn.execute(_DELETE_AND_BURY, positions, list(dead), [repr(err) for err in dead.values()])
                for seq, err in dead.items():
                    metrics.OUTBOX_DEAD.labels(by_seq[seq][1], type(err).__name__).inc()
                    log.error("Kafka refused an outbox row for good; moved to outbox_dead",
                              extra={"seq": seq, "topic": by_seq[seq][1], "error": repr(err)})
            else:
                await conn.execute(_DELETE, positions)
            for (topic, type_), n in done.counts.items():
                metrics.OUTBOX_PUBLISHED.labels(topic, type_).inc(n)
            metrics.OUTBOX_PENDING.set(await conn.fetchval("SELECT count(*) FROM outbox")
                                       if len(rows) >= BATCH else 0)
            return len(rows), len(done.published)

    async def _publish(self, rows: list[Row]) -> tuple[Attempt, dict[int, BaseException]]:
        """Commit `rows` to Kafka in one transaction but those refused for good; return the attempt that
        committed and the rows refused for good."""
        assert self._producer is not None
        producer = self._producer
        dead: dict[int, BaseException] = {}
        suspects: set[int] = set()
        while True:
            attempt = Attempt(suspects)
            committed = await self._attempt(producer, [r for r in rows if r[0] not in dead], attempt)
            verdict = attempt.verdict
            dead.update(verdict.dead)
            if committed:
                return attempt, dead
            if verdict.other is not None and not verdict.dead and not verdict.suspects:
                raise TransientError(f"publishing outbox rows failed: {verdict.other!r}") from verdict.other
            suspects = (suspects - verdict.cleared) | verdict.suspects
            log.warning("Kafka refused outbox records; publishing again without them",
                        extra={"dead": len(dead), "suspects": len(suspects)})
            with contextlib.suppress(Exception):  # the renewal aborts the transaction anyway
                await producer.abort_transaction()
            producer = await self._renew_producer()

    async def _attempt(self, producer: AIOKafkaProducer, rows: list[Row], attempt: Attempt) -> bool:
        """One Kafka transaction over `rows`, `seq` order kept per partition; committed (True) only if every
        batch was delivered."""
        attempt.spans = tracing.RelaySpans() if tracing.enabled() else None
        committed, failure = False, None
        try:
            committed = await self._transaction(producer, rows, attempt)
        except BaseException as err:
            failure = err
            raise
        finally:
            if attempt.spans is not None:
                attempt.spans.end(committed, failure or attempt.verdict.other)
        return committed

    async def _transaction(self, producer: AIOKafkaProducer, rows: list[Row], attempt: Attempt) -> bool:
        verdict = attempt.verdict
        await producer.begin_transaction()
        try:
            await self._issue(producer, rows, attempt)
        except KafkaError as err:  # e.g. a queued batch of the same partition failed meanwhile
            verdict.other = err
        outcomes = await asyncio.gather(*(future for _, future in attempt.batches), return_exceptions=True)
        judged = judge((seqs, error if isinstance(error, BaseException) else None)
                       for (seqs, _), error in zip(attempt.batches, outcomes, strict=True))
        verdict.dead.update(judged.dead)
        verdict.suspects, verdict.cleared = judged.suspects, judged.cleared
        verdict.other = verdict.other or judged.other
        if verdict.other is not None or judged.dead or judged.suspects:
            return False
        try:
            await producer.commit_transaction()
        except Exception as err:  # aiokafka raises many types; all mean "not committed, retry"
            raise TransientError(f"committing outbox rows failed: {err!r}") from err
        return True

    async def _issue(self, producer: AIOKafkaProducer, rows: list[Row], attempt: Attempt) -> None:
        """Pack `rows` into produce batches, one open batch per partition, and hand each to the producer
        when full (a suspect alone), then the positions record: `seq:tag` of every row packed. Rows Kafka
        cannot take at all (missing or forbidden topic, larger than any request) go to the verdict's dead."""
        open_: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        known: dict[str, list[int] | KafkaError] = {}  # each topic's partitions, or why it takes nothing
        published, dead = attempt.published, attempt.verdict.dead
        marks: list[str] = []  # "seq:tag" of each row packed, for the positions record

        async def submit(tp: tuple[str, int]) -> None:
            builder, seqs = open_.pop(tp)
            attempt.batches.append((seqs, await producer.send_batch(builder, tp[0], partition=tp[1])))

        for row in rows:
            seq, topic, key, value = row[0], row[1], row[2], row[3]
            partitions = known.get(topic)
            if partitions is None:
                partitions = known[topic] = await self._partitions(producer, topic)
            if isinstance(partitions, KafkaError):
                dead[seq] = partitions
                continue
            if len(key) + len(value) > MAX_RECORD_BYTES:
                dead[seq] = MessageSizeTooLargeError(f"{len(key) + len(value)} bytes")
                continue
            # decoded here, one row at a time: a whole batch of header lists alive at once makes the
            # garbage collector walk them again and again (it tripled the relay's CPU)
            headers = _headers(row)
            if attempt.spans is not None:  # the row's stored context, continued by the span sending it
                headers = attempt.spans.headers(topic, headers)
            tp = (topic, self._partitioner(key, partitions, partitions))
            alone = seq in attempt.suspects
            if alone and tp in open_:
                await submit(tp)
            entry = open_.get(tp)
            if entry is None or entry[0].append(key=key, value=value, timestamp=None, headers=headers) is None:
                if entry is not None:
                    await submit(tp)
                entry = open_[tp] = (producer.create_batch(), [])
                entry[0].append(key=key, value=value, timestamp=None, headers=headers)
            entry[1].append(seq)
            published.append(seq)
            marks.append(f"{seq}:{row[6]}")
            attempt.counts[(topic, _type(headers))] += 1
            if alone:
                await submit(tp)
        for tp in list(open_):
            await submit(tp)
        if published:
            positions = producer.create_batch()
            positions.append(key=self._position_key.encode(), value=",".join(marks).encode(),
                             timestamp=None, headers=[])
            attempt.batches.append(([], await producer.send_batch(positions, OUTBOX_POSITIONS.name, partition=0)))

    async def _partitions(self, producer: AIOKafkaProducer, topic: str) -> list[int] | KafkaError:
        """`topic`'s partitions, or why Kafka will not take records for it: forbidden, or missing while the
        cluster answers (after aiokafka's own wait, `request_timeout_ms`)."""
        missing = self._missing_topics.get(topic)
        loop = asyncio.get_running_loop()
        if missing is not None and loop.time() - missing[0] < UNKNOWN_TOPIC_TTL_S:
            return missing[1]
        try:
            return sorted(await producer.partitions_for(topic))
        except TopicAuthorizationFailedError as err:
            return err
        except UnknownTopicOrPartitionError as err:
            if not await broker_reachable(producer):
                raise TransientError(f"no metadata for topic {topic}: the cluster does not answer") from err
            refusal = UnknownTopicOrPartitionError(f"topic {topic} does not exist")
            self._missing_topics[topic] = (loop.time(), refusal)
            return refusal
