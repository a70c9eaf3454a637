"""Exactly-once effects from an at-least-once topic: the consumer side of ARCHITECTURE.md.

A batch is applied in ONE PostgreSQL transaction together with the partition offsets it reaches;
records at or below the stored offsets are replays and are skipped, so a redelivery after a crash,
a rebalance or a failed Kafka commit changes nothing. Kafka's own committed offset is only a hint.

Fencing: a `ConsumerLoop` given partitions claims them with one token per assignment (`consumer_fences`);
each batch reads its partitions' tokens in its transaction (FOR SHARE, so a claim waits for a batch in
flight) and is refused (`Fenced`, `attain_consumer_fenced_total`) when one is no longer its own. A zombie, a
replica paused or cut off past its session while its partitions went elsewhere, tries to write and is
refused, rather than relying on the stored offsets to make its late batch a no-op. Records of a partition
this assignment has not claimed yet are put back (sought) and the loop claims it itself, so a record is
applied only once the stored offset is known; a refused partition the assignment had claimed is paused
until the member's next assignment.

Row-level security (shared/db.py): inside the batch's one transaction, each tenant's records go to the
handler in turn, with the transaction scoped to that tenant, so a handler can only read and write the
rows of the tenant whose events it is applying.

Error policy (`transient`):
- a record without a value on a compacted topic (a Kafka tombstone: `python -m services.privacy erase`
  writes them, docs/security.md "Export and erasure") is no event: acknowledged with its batch, counted
  (`attain_tombstones_skipped_total{topic}`), never dead-lettered; on any other topic (deals, activities,
  the outputs) a record without a value means nothing and is a broken producer's: dead-lettered;
- a record of an erased tenant or rep produced before its erasure is skipped (`skipped_erased`;
  shared/erasure.py: the erasures of a batch's tenants are loaded once per batch), so a replay does not
  bring an erased person back;
- a record that cannot be decoded or validated goes to `<topic>.dlq` with headers saying why, is
  counted, and the batch goes on; so does a record of the tenant registry (`attain.tenants.v1`) that is not
  signed by a key of the consumer's `verifier` (shared/registry_signing.py, `attain_registry_rejected_total`);
- a transient failure leaves the batch uncommitted and retries it with backoff; `healthy` is false
  meanwhile, which turns readiness false. Transient: the broker or the database down, and every
  PostgreSQL error that is not about the data (a full disk, out of memory, too many connections, an
  administrator's shutdown, a serialization failure or deadlock, a statement or lock timeout, an
  internal error, even a missing column): anything but SQLSTATE classes 22 (data exception) and 23
  (integrity constraint violation);
- any other exception from the handler makes the batch be re-applied one record at a time, and the
  record that still fails on its own is dead-lettered: one bad event never blocks a partition, and a
  valid event is never dead-lettered for a fault of the database.

Traces (shared/tracing.py): with tracing on, each tenant's part of a batch is applied under a CONSUMER span
that continues the trace of its first record carrying a `traceparent` and links to the others, so the outbox
rows its handler writes carry that trace on; with tracing off, nothing is looked at per record.

Cost per record (issue 15): the loop fetches and decodes the next batch while the current one's
transaction runs (decoding never holds a connection); a batch may linger (`linger_s`) for more records
at live load, so a key moved several times is written once; the offset commit to Kafka, only a hint,
runs in the background and never delays the next batch. Nothing of a batch lives outside its
transaction: a batch that a deadlock or a lost connection rolls back is retried from its records alone.

This uses aiokafka's consumer directly rather than a FastStream subscriber: FastStream's batch
parser decodes headers and JSON before a handler runs, so a malformed record would fail the whole
batch before it could be dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import BaseModel, ValidationError

from shared import erasure, metrics, topics, tracing, wire
from shared.cloudevents import H_TYPE, CloudEvent, decode, decode_json_object
from shared.db import set_tenant
from shared.errors import InvalidMessage, TransientError
from shared.kafka import client_kwargs
from shared.registry_signing import RegistryRejected, RegistryVerifier
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

# InternalClientError ("cannot switch to state N; another operation (2) is in progress") is how asyncpg
# fails on a connection the server terminated while it sat in the pool (a PostgreSQL restart): a lost
# connection, not a bad record (MagicStack/asyncpg#784, #1069; sqlalchemy/sqlalchemy#13241). The pool
# terminates it when it comes back; the retry gets a fresh one. Found by `make chaos` postgres-restart.
TRANSIENT = (TransientError, OSError, asyncpg.InterfaceError, asyncpg.InternalClientError,
             asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
             asyncpg.SerializationError, asyncpg.DeadlockDetectedError, asyncpg.QueryCanceledError,
             asyncpg.LockNotAvailableError, KafkaError, TimeoutError)
# The SQLSTATE classes of errors about the data a statement was given: the only database errors a record can
# cause on its own (22: data exception, 23: integrity constraint violation). Every other class says
# something about the database (08 connection, 40 rollback, 53 insufficient resources such as 53100 disk
# full, 55P03 lock not available, 57 operator intervention, 58 system error, XX internal, 42 a statement the
# schema does not match): retried, never dead-lettered.
RECORD_SQLSTATE_CLASSES = ("22", "23")


def transient(err: BaseException) -> bool:
    """Whether `err` is a failure of a dependency (retry the batch) rather than possibly of a record.

    >>> transient(asyncpg.DiskFullError("could not extend file")), transient(asyncpg.UniqueViolationError())
    (True, False)
    """
    if isinstance(err, TRANSIENT):
        return True
    if isinstance(err, asyncpg.PostgresError):
        return not (err.sqlstate or "").startswith(RECORD_SQLSTATE_CLASSES)
    return False


class Fenced(Exception):
    """A batch refused: another assignment of the group owns these partitions now (or they were revoked from
    this member and it holds no claim of theirs)."""

    def __init__(self, partitions: set[tuple[str, int]]) -> None:
        super().__init__(f"fenced off: {sorted(partitions)}")
        self.partitions = partitions


@dataclass(frozen=True, slots=True)
class Incoming:
    """A decoded, validated record handed to a service's handler."""

    topic: str
    partition: int
    offset: int
    event: CloudEvent
    data: BaseModel
    key: bytes | None = None
    timestamp: int = 0  # Kafka's, in ms: when it was produced (erasures are compared with it)


# What decoding made of a record: the event, the reason it cannot be read (dead-lettered), or None for a
# tombstone (skipped).
Decoded = Incoming | str | None
Handler = Callable[[asyncpg.Connection, Sequence[Incoming]], Awaitable[None]]


def format_validation_error(err: ValidationError) -> str:
    """`field.path: message` for each problem, the form every Attain error message uses."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in err.errors()
    )


async def claim(conn: asyncpg.Connection, event: CloudEvent) -> bool:
    """Record `event` in the inbox; False when it was applied before (a duplicate delivery)."""
    row = await conn.fetchval(
        "INSERT INTO inbox (tenant, source, event_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        event.tenant, event.source, event.id,
    )
    return row is not None


def _by_tenant(msgs: Sequence[Incoming]) -> list[tuple[str, list[Incoming]]]:
    """The batch's records per tenant, tenants in order of first appearance, each tenant's in batch order
    (so each key's order, which is a tenant's, is kept)."""
    parts: dict[str, list[Incoming]] = {}
    for msg in msgs:
        parts.setdefault(msg.event.tenant, []).append(msg)
    return list(parts.items())


class TransactionalConsumer:
    """Applies batches of records with `handler`, exactly once in effect (see module docstring)."""

    def __init__(self, *, pool: asyncpg.Pool, producer: AIOKafkaProducer, group_id: str, service: str,
                 models: Mapping[str, type[BaseModel]], handler: Handler,
                 after_commit: Callable[[], None] = lambda: None, verifier: RegistryVerifier | None = None,
                 compacted: Collection[str] = topics.COMPACTED) -> None:
        """`verifier`: the keys registry records must be signed by; a consumer of `attain.tenants.v1` without one
        refuses every record of it (the service's wiring gives one, `shared.service`). `compacted`: the topics
        whose records without a value are tombstones (skipped); elsewhere such a record is dead-lettered."""
        self.pool, self.producer, self.group_id, self.service = pool, producer, group_id, service
        self.models, self.handler, self.after_commit = models, handler, after_commit
        self.verifier, self.compacted = verifier, frozenset(compacted)
        self.healthy = True
        # The token of this consumer's claim on each partition it owns (`claim_for`); None: no fencing (a consumer
        # used on its own, as `kpi rebuild` and the demo's replay do: no group, no other member).
        self.fences: dict[tuple[str, int], str] | None = None

    def _decode(self, record: ConsumerRecord) -> Incoming:
        """Headers, then the value straight into its model's msgspec Struct (`shared.wire`: the same checks),
        then the pydantic instance the handler expects, built without validating twice. A value the fast path
        cannot vouch for (invalid, or a lax spelling such as a number for a Decimal) takes the exact path:
        pydantic accepts or refuses it as it always did, and its message names the field."""

        def data(event_type: str, value: bytes | None) -> BaseModel:
            model = self.models.get(event_type)
            try:
                if model is None:
                    raise wire.Unsure(f"ce_type {event_type!r} is not expected")
                return wire.decode(model, value)
            except wire.Unsure as unsure:
                parsed = decode_json_object(event_type, value)  # a value that is no JSON object is named first
                if model is None:
                    raise InvalidMessage(f"ce_type {event_type!r} is not expected on {record.topic}") from None
                try:
                    return model.model_validate(parsed)
                except ValidationError as err:
                    raise InvalidMessage(f"invalid {event_type} data: {format_validation_error(err)}") from err
                except (ValueError, ArithmeticError) as err:  # e.g. an OverflowError pydantic let through unwrapped
                    raise InvalidMessage(f"invalid {event_type} data: {unsure.reason}") from err

        if record.topic == topics.TENANTS.name:  # a token digest is a credential: only ingest's signature installs one
            self._verify(record)
        event = decode(record.headers, record.value, data)
        assert isinstance(event.data, BaseModel)
        return Incoming(record.topic, record.partition, record.offset, event, event.data, record.key, record.timestamp)

    def _verify(self, record: ConsumerRecord) -> None:
        """RegistryRejected (dead-lettered with its reason, and counted) unless the registry record is signed by a
        key of `verifier`."""
        try:
            if self.verifier is None:
                raise RegistryRejected("unknown_key", "this consumer was given no REGISTRY_VERIFY_KEYS")
            self.verifier.check(record.headers or (), record.key, record.value)
        except RegistryRejected as refused:
            metrics.REGISTRY_REJECTED.labels(refused.reason).inc()
            raise

    async def process(self, records: Sequence[ConsumerRecord],
                      decoded: dict[int, Decoded] | None = None) -> None:
        """Apply `records` (any partitions, each in offset order), retrying transient failures. `decoded`:
        the records already decoded (`decode_all`), e.g. while the previous batch's transaction ran."""
        backoff = 0.2
        while True:
            try:
                started = time.perf_counter()
                await self._apply(records, decoded)
                metrics.BATCH_SECONDS.labels(self.group_id).observe(time.perf_counter() - started)
                self.healthy = True
                self.after_commit()
                return
            except Exception as err:
                if not transient(err):
                    raise
                self.healthy = False
                metrics.TRANSIENT_ERRORS.labels(self.group_id).inc()
                log.warning("batch not applied, will retry", extra={"group": self.group_id,
                            "error": repr(err), "retry_in_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _apply(self, records: Sequence[ConsumerRecord], decoded: dict[int, Decoded] | None) -> None:
        try:
            await self._apply_in_one_transaction(records, decoded=decoded)
        except Exception as err:  # a handler bug or unforeseen data: isolate the culprit record
            if transient(err) or isinstance(err, Fenced):
                raise
            log.exception("batch failed, applying record by record", extra={"group": self.group_id})
            for record in records:
                try:
                    await self._apply_in_one_transaction([record])
                except Exception as alone:
                    if transient(alone) or isinstance(alone, Fenced):
                        raise
                    await self._apply_in_one_transaction([record], failure=f"handler failed: {alone!r}")

    async def _apply_in_one_transaction(self, records: Sequence[ConsumerRecord], failure: str | None = None,
                                        decoded: dict[int, Decoded] | None = None) -> None:
        if decoded is None or failure:  # before the transaction: no connection held meanwhile
            decoded = self.decode_all(records, failure)
        dead: list[ConsumerRecord] = []
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await self._lock_batch(conn, {(r.topic, r.partition) for r in records})
            fresh = [r for r in records if r.offset >= stored.get((r.topic, r.partition), 0)]
            good: list[Incoming] = []
            traced = tracing.enabled()  # once per batch: with tracing off, nothing more per record
            carriers: dict[int, Sequence[tuple[str, bytes]]] = {}
            for record in fresh:
                item = decoded[id(record)]
                if item is None:
                    continue
                if isinstance(item, str):
                    await self._dead_letter(record, item)
                    dead.append(record)
                else:
                    good.append(item)
                    if traced:
                        carriers[id(item)] = record.headers
            good, gone = await self._drop_erased(conn, good)
            for tenant, part in _by_tenant(good):  # row-level security: each tenant's part in its own scope
                await set_tenant(conn, tenant)
                if traced:  # the part's span is current while the handler writes its outbox rows
                    with tracing.processing(self.group_id, [m.topic for m in part],
                                            [carriers.get(id(m)) for m in part], tenant):
                        await self.handler(conn, part)
                else:
                    await self.handler(conn, part)
            await self._store_offsets(conn, fresh)
        self._count(records, fresh, dead, [r for r in fresh if decoded[id(r)] is None], gone)

    async def _drop_erased(self, conn: asyncpg.Connection,
                           good: list[Incoming]) -> tuple[list[Incoming], set[tuple[str, int, int]]]:
        """`good` without the records of erased tenants and reps produced before their erasure (shared/erasure.py;
        one query per batch), and the (topic, partition, offset) of those dropped."""
        if not good:
            return good, set()
        erasures = await erasure.load(conn, {m.event.tenant for m in good})
        if not erasures:
            return good, set()
        kept, gone = [], set()
        for m in good:
            if erasure.erased(m.event.tenant, erasure.subjects(m.key, m.data), erasure.produced_at(m.timestamp),
                              erasures):
                gone.add((m.topic, m.partition, m.offset))
            else:
                kept.append(m)
        return kept, gone

    def decode_all(self, records: Sequence[ConsumerRecord], failure: str | None = None) -> dict[int, Decoded]:
        """Each record decoded, or the reason it cannot be (`failure` for all: the handler failed on it)."""
        out: dict[int, Decoded] = {}
        for record in records:
            if not record.value and record.topic in self.compacted:
                out[id(record)] = None  # a tombstone: nothing to apply, nothing wrong (not even re-applied alone)
                continue
            try:
                if not record.value:
                    raise InvalidMessage(f"a record without a value on {record.topic}, which is not compacted:"
                                         " only a compacted topic's tombstones are skipped")
                if failure:
                    raise InvalidMessage(failure)
                out[id(record)] = self._decode(record)
            except InvalidMessage as err:
                out[id(record)] = str(err)
        return out

    def _count(self, records: Sequence[ConsumerRecord], fresh: Sequence[ConsumerRecord],
               dead: Sequence[ConsumerRecord], tombstones: Sequence[ConsumerRecord] = (),
               erased: Collection[tuple[str, int, int]] = ()) -> None:
        """Metrics of a committed batch: each record once, by type and outcome; the age of the newest."""
        outcome = dict.fromkeys(map(id, records), "skipped_replay")
        outcome.update(dict.fromkeys(map(id, fresh), "applied"))
        outcome.update(dict.fromkeys(map(id, dead), "dead_lettered"))
        outcome.update(dict.fromkeys(map(id, tombstones), "skipped_tombstone"))
        outcome.update({id(r): "skipped_erased" for r in fresh if (r.topic, r.partition, r.offset) in erased})
        for topic, n in Counter(r.topic for r in tombstones).items():
            metrics.TOMBSTONES_SKIPPED.labels(topic).inc(n)
        counts = Counter((r.topic, self._type_of(r), outcome[id(r)]) for r in records)
        for (topic, type_, result), n in counts.items():
            metrics.CONSUMED.labels(self.group_id, topic, type_, result).inc(n)
        newest: dict[tuple[str, int], ConsumerRecord] = {}
        for r in fresh:
            newest[(r.topic, r.partition)] = r
        now_ms = time.time() * 1000
        for r in newest.values():
            metrics.EVENT_AGE_SECONDS.labels(self.group_id, r.topic).observe(max(0.0, now_ms - r.timestamp) / 1000)

    def _type_of(self, record: ConsumerRecord) -> str:
        """The record's ce_type when it is one this consumer expects, else "unknown": a label value never
        comes from whatever a producer wrote."""
        for name, raw in record.headers or ():
            if name == H_TYPE:
                text = raw.decode(errors="replace") if raw else ""
                return text if text in self.models else "unknown"
        return "unknown"

    async def _lock_batch(self, conn: asyncpg.Connection,
                          tps: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The offsets stored for `tps`, their rows locked for the batch; with fencing, also the partitions'
        claims (shared locks: a new claim waits for this batch), and `Fenced` if one is not this consumer's."""
        if self.fences is None:
            return await self._stored_offsets(conn, tps)
        rows = await conn.fetch(_LOCK_BATCH, self.group_id, [t for t, _ in tps], [p for _, p in tps])
        fences = self.fences
        refused = {(r["topic"], r["partition"]) for r in rows
                   if r["token"] is None or r["token"] != fences.get((r["topic"], r["partition"]))}
        if refused:
            raise Fenced(refused)
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows if r["next_offset"] is not None}

    async def _stored_offsets(self, conn: asyncpg.Connection,
                              tps: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        rows = await conn.fetch(
            "SELECT topic, partition, next_offset FROM consumer_offsets"
            " WHERE group_id = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))"
            " ORDER BY topic, partition FOR UPDATE",  # one lock order for every replica: no deadlock on them
            self.group_id, [t for t, _ in tps], [p for _, p in tps],
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def _store_offsets(self, conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
        reached: dict[tuple[str, int], int] = {}
        for r in records:
            reached[(r.topic, r.partition)] = max(reached.get((r.topic, r.partition), 0), r.offset + 1)
        if reached:
            await conn.executemany(
                "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (group_id, topic, partition) DO UPDATE"
                " SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
                [(self.group_id, t, p, o) for (t, p), o in reached.items()],
            )

    async def _dead_letter(self, record: ConsumerRecord, error: str) -> None:
        why = {
            "attain_error": error[:2000], "attain_service": self.service,
            "attain_original_topic": record.topic, "attain_original_partition": str(record.partition),
            "attain_original_offset": str(record.offset),
        }
        headers = [(name, raw) for name, raw in record.headers or () if name not in why]
        headers += [(name, text.encode()) for name, text in why.items()]
        await self.producer.send_and_wait(f"{record.topic}.dlq", record.value or b"", key=record.key,
                                          headers=headers)
        log.warning("message dead-lettered", extra={"topic": record.topic, "partition": record.partition,
                    "offset": record.offset, "error": error})

    async def claim_for(self, tps: set[TopicPartition], token: str) -> dict[TopicPartition, int]:
        """Claim `tps` for this consumer with `token`, its assignment's (fencing off whoever held them), once no
        batch of theirs is in flight, when it fences; return where the group stands on each (stored offsets)."""
        wanted = sorted((tp.topic, tp.partition) for tp in tps)
        async with self.pool.acquire() as conn, conn.transaction():
            if self.fences is not None:
                await conn.execute(_CLAIM, self.group_id, [t for t, _ in wanted], [p for _, p in wanted], token)
            found = await self._stored_offsets(conn, set(wanted))
        if self.fences is not None:
            self.fences.update(dict.fromkeys(wanted, token))
        return {TopicPartition(t, p): o for (t, p), o in found.items()}


# A batch's partitions: each one's claim (shared lock) and stored offset (row lock, one order for every replica).
_LOCK_BATCH = (
    "WITH wanted AS (SELECT * FROM unnest($2::text[], $3::int[]) AS w(topic, partition)),"
    " claims AS (SELECT f.topic, f.partition, f.token FROM consumer_fences f"
    "  WHERE f.group_id = $1 AND (f.topic, f.partition) IN (SELECT topic, partition FROM wanted)"
    "  ORDER BY f.topic, f.partition FOR SHARE),"
    " stored AS (SELECT o.topic, o.partition, o.next_offset FROM consumer_offsets o"
    "  WHERE o.group_id = $1 AND (o.topic, o.partition) IN (SELECT topic, partition FROM wanted)"
    "  ORDER BY o.topic, o.partition FOR UPDATE)"
    " SELECT w.topic, w.partition, s.next_offset, c.token FROM wanted w"
    " LEFT JOIN stored s USING (topic, partition) LEFT JOIN claims c USING (topic, partition)"
)
# Rows in key order: two claims over the same partitions (a late one from a zombie) cannot deadlock.
_CLAIM = (
    "INSERT INTO consumer_fences (group_id, topic, partition, token)"
    " SELECT $1, t, p, $4 FROM unnest($2::text[], $3::int[]) WITH ORDINALITY AS u(t, p, n) ORDER BY n"
    " ON CONFLICT (group_id, topic, partition) DO UPDATE SET token = EXCLUDED.token, claimed_at = now()"
)


def offset_regressions(ends: Mapping[TopicPartition, int | None],
                       stored: Mapping[TopicPartition, int]) -> set[TopicPartition]:
    """The partitions whose end (high watermark) lies below the offset this group stored: records there
    are new records of a recreated topic (or a migrated cluster), not replays, and must not be skipped.
    A healthy partition's end is never below an offset applied from it. (A recreated topic that has
    grown past the stored offset again before the service sees it cannot be told apart this way.)"""
    return {tp for tp, end in ends.items() if end is not None and tp in stored and end < stored[tp]}


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, resume where PostgreSQL says this group stands, not where Kafka thinks."""

    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # The claim token of a revoked partition is kept: a batch of it already fetched still goes to the
        # database, which alone says whether this member's claim stands (nobody claimed it since: applied,
        # as safe as before the rebalance) or was taken over (refused: fencing, counted).
        self._loop.assigned -= set(revoked)
        self._loop.fenced -= set(revoked)
        self._loop.placed -= set(revoked)
        for tp in revoked:
            self._loop.next_offsets.pop(tp, None)
            if tp in self._loop.regressed:  # whoever gets it next finds the regression for itself
                self._loop.regressed.discard(tp)
                with contextlib.suppress(KeyError):
                    metrics.OFFSET_REGRESSION.remove(self._loop.processor.group_id, tp.topic, str(tp.partition))
        for tp in revoked:
            with contextlib.suppress(KeyError):  # never measured
                metrics.CONSUMER_LAG.remove(self._loop.processor.group_id, tp.topic, str(tp.partition))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._loop.assigned |= set(assigned)
        self._loop.joined = True
        # One token per assignment: the loop may claim the same partitions meanwhile (records fetched before
        # this claim is done are put back, and the loop claims them itself), and both claims must write the
        # same token, whichever commits last.
        token = self._loop.token = uuid.uuid4().hex
        if not assigned:
            return
        try:
            stored = await self._loop.processor.claim_for(set(assigned), token)
        except TRANSIENT as err:  # the loop claims them before it applies any of their records
            log.warning("could not claim the partitions assigned", extra={"error": repr(err)})
            return
        consumer = self._loop.consumer
        assert consumer is not None
        for tp, offset in stored.items():
            if tp in self._loop.assigned:
                consumer.seek(tp, offset)
        self._loop._placed(set(assigned) & self._loop.assigned, stored)



_Fetched = tuple[dict[TopicPartition, list[ConsumerRecord]], list[ConsumerRecord], dict[int, "Decoded"]]


class ConsumerLoop:
    """Polls `topics` as `group_id` and feeds batches to a `TransactionalConsumer`."""

    def __init__(self, settings: ServiceSettings, topics: Sequence[str], processor: TransactionalConsumer,
                 *, max_records: int = 500, linger_s: float = 0.0) -> None:
        """`linger_s`: once a fetch brought records, wait up to this long for more (up to `max_records`)
        before applying them, so that a batch coalesces what a stream brings in that time."""
        self.settings, self.topics, self.processor, self.max_records = settings, topics, processor, max_records
        self.linger_s = linger_s
        self._hint: dict[TopicPartition, int] = {}  # offsets applied, not yet committed to Kafka (a hint)
        self._hinting: asyncio.Task[None] | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.assigned: set[TopicPartition] = set()
        self.next_offsets: dict[TopicPartition, int] = {}  # where this loop stands, per partition (for lag)
        self.regressed: set[TopicPartition] = set()  # paused: their end lies below the stored offset
        self.fenced: set[TopicPartition] = set()  # paused: another assignment owns them, until the next one
        self.token = ""  # the current assignment's claim token (`_SeekToStored`)
        self.placed: set[TopicPartition] = set()  # claimed by this assignment, stored offsets known
        self.joined = False
        processor.fences = {}

    async def run(self) -> None:
        """Consume until cancelled."""
        instance = self.settings.kafka_group_instance_id
        self.consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings),
            group_id=self.processor.group_id,
            group_instance_id=f"{instance}-{self.processor.group_id}" if instance else None,
            client_id=self.processor.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_interval_ms=300_000,
            session_timeout_ms=30_000 if instance else 10_000,
        )
        self.consumer.subscribe(list(self.topics), listener=_SeekToStored(self))
        await self.consumer.start()
        consumer = self.consumer
        upcoming: asyncio.Task[_Fetched] | None = None
        try:
            upcoming = asyncio.create_task(self._fetch_and_decode(consumer))
            while True:
                batches, records, decoded = await upcoming
                # the next batch is fetched and decoded while this one's transaction runs: Python works while
                # PostgreSQL does. Safe across rebalances: a batch applies only past the offsets PostgreSQL holds.
                upcoming = asyncio.create_task(self._fetch_and_decode(consumer))
                if unplaced := {tp for tp in batches if tp in self.assigned and tp not in self.placed}:
                    # fetched before this assignment's claim (and the seek to the stored offsets) was done:
                    # put back, claim here if the rebalance callback could not, and fetch again
                    upcoming = await self._put_back(consumer, batches, upcoming, place=unplaced)
                    continue
                if batches and (gone := self._hold_regressions(consumer, batches)):
                    records = [r for r in records if TopicPartition(r.topic, r.partition) not in gone]
                    batches = {tp: rs for tp, rs in batches.items() if tp not in gone}
                if records:
                    try:
                        await self.processor.process(records, decoded)
                    except Fenced as fenced:
                        upcoming = await self._refused(consumer, batches, upcoming, fenced.partitions)
                        continue
                    reached = {tp: rs[-1].offset + 1 for tp, rs in batches.items()}
                    self.next_offsets.update(reached)
                    self._commit_hint(consumer, reached)
                self._measure_lag(consumer)
        finally:
            for task in (upcoming, self._hinting):
                if task is not None:
                    task.cancel()
            await consumer.stop()

    async def _fetch_and_decode(self, consumer: AIOKafkaConsumer) -> _Fetched:
        batches = await self._fetch(consumer)
        records = [r for rs in batches.values() for r in rs]
        return batches, records, self.processor.decode_all(records)

    async def _fetch(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[ConsumerRecord]]:
        """The next batch: what the first fetch brings, plus what arrives within `linger_s` of it."""
        batches: dict[TopicPartition, list[ConsumerRecord]] = await consumer.getmany(
            timeout_ms=500, max_records=self.max_records)
        count = sum(map(len, batches.values()))
        if not count or self.linger_s <= 0:
            return batches
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger_s
        while count < self.max_records and (left := deadline - loop.time()) > 0:
            more = await consumer.getmany(timeout_ms=max(1, int(left * 1000)), max_records=self.max_records - count)
            for tp, rs in more.items():
                batches.setdefault(tp, []).extend(rs)
                count += len(rs)
        return batches

    def _hold_regressions(self, consumer: AIOKafkaConsumer,
                          batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> set[TopicPartition]:
        """Pause the partitions of `batches` whose end lies below where this group stands (`offset_regressions`),
        and return them: their records are not applied, nothing is skipped, readiness fails and
        `attain_consumer_offset_regression` says which, until an operator resets the stored offsets."""
        assigned = consumer.assignment()  # a batch fetched before a rebalance may hold partitions given away
        found = offset_regressions({tp: consumer.highwater(tp) for tp in batches if tp in assigned}, self.next_offsets)
        for tp in found - self.regressed:
            consumer.pause(tp)
            metrics.OFFSET_REGRESSION.labels(self.processor.group_id, tp.topic, str(tp.partition)).set(1)
            log.error("offset regression: the partition ends below the offset stored for this group (topic"
                      " recreated or cluster migrated?); paused, nothing skipped. Check, then run `python -m"
                      " shared.offsets reset` and restart",
                      extra={"group": self.processor.group_id, "topic": tp.topic, "partition": tp.partition,
                             "stored_offset": self.next_offsets[tp], "end_offset": consumer.highwater(tp)})
        self.regressed |= found
        return found

    async def _put_back(self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, list[ConsumerRecord]],
                        upcoming: asyncio.Task[_Fetched], *, place: Collection[TopicPartition] = (),
                        pause: Collection[TopicPartition] = ()) -> asyncio.Task[_Fetched]:
        """Undo the fetch of this batch and of the next one (fetched meanwhile): each partition still assigned
        is sought back to its first record fetched; those of `place` are claimed and sought where PostgreSQL
        says this group stands; those of `pause` are paused until this member's next assignment. Returns the
        next fetch. The next batch is awaited, not cancelled: a fetch cancelled between two of its reads
        (`linger_s`) would drop the records of the first read, their positions already past them."""
        fetched = [batches, (await upcoming)[0]]
        first: dict[TopicPartition, int] = {}
        for each in reversed(fetched):  # this batch's first records win over the next one's
            first.update({tp: rs[0].offset for tp, rs in each.items() if rs})
        if place := {tp for tp in place if tp in self.assigned}:
            try:
                stored = await self.processor.claim_for(place, self.token)
            except TRANSIENT as err:
                log.warning("could not claim the partitions assigned; will retry", extra={"error": repr(err)})
                await asyncio.sleep(1.0)
            else:
                first.update(stored)
                self._placed(place, stored)
        for tp, offset in first.items():
            if tp in self.assigned:  # (a partition given away meanwhile cannot be sought)
                consumer.seek(tp, offset)
        for tp in set(pause) & self.assigned:
            consumer.pause(tp)
            self.fenced.add(tp)
        return asyncio.create_task(self._fetch_and_decode(consumer))

    def _placed(self, tps: set[TopicPartition], stored: Mapping[TopicPartition, int]) -> None:
        """`tps` are claimed by this assignment, and where PostgreSQL says the group stands on them is known
        (`stored`; none for a partition never applied): their records may be applied."""
        self.placed |= tps
        self.next_offsets.update({tp: o for tp, o in stored.items() if tp in tps})

    async def _refused(self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, list[ConsumerRecord]],
                       upcoming: asyncio.Task[_Fetched], refused: set[tuple[str, int]]) -> asyncio.Task[_Fetched]:
        """A batch was fenced off: put back everything fetched; a refused partition this assignment had claimed
        belongs to another assignment now (a zombie's late claim, or this member is the zombie): paused
        until this member's next assignment. One it had not claimed (given away meanwhile) is only put
        back. Returns the next fetch."""
        metrics.CONSUMER_FENCED.labels(self.processor.group_id).inc()
        log.warning("batch fenced off: another assignment owns its partitions now; nothing written",
                    extra={"group": self.processor.group_id, "partitions": sorted(refused)})
        owned = {tp for tp in self.placed if (tp.topic, tp.partition) in refused}
        self.placed -= owned
        return await self._put_back(consumer, batches, upcoming, pause=owned)

    def _commit_hint(self, consumer: AIOKafkaConsumer, reached: dict[TopicPartition, int]) -> None:
        """Commit applied offsets to Kafka in the background, one commit at a time: only a hint (PostgreSQL
        holds the truth), so the next batch never waits for the broker's answer."""
        self._hint.update(reached)
        if self._hinting is not None and not self._hinting.done():
            return
        offsets, self._hint = self._hint, {}

        async def commit() -> None:
            mine = {tp: o for tp, o in offsets.items() if tp in self.assigned}
            if not mine:  # every partition given away meanwhile: aiokafka refuses an empty commit (ValueError)
                return
            try:
                await consumer.commit(mine)
            except KafkaError as err:
                log.warning("kafka offset commit failed", extra={"error": repr(err)})

        self._hinting = asyncio.create_task(commit())

    def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag per assigned partition: the partition's end as the last fetch reported it (the last stable
        offset, as this consumer reads committed records only) minus the next offset this loop applies
        (known once it applied a batch there, or sought to the stored offset). No request to the broker,
        and nothing awaited: an `asyncio.wait_for` here could swallow the loop's cancellation (Python 3.11)
        and keep a stopping service alive, as a fresh-clone run showed."""
        for tp in list(self.assigned):
            end, at = consumer.last_stable_offset(tp), self.next_offsets.get(tp)
            if end is None or end < 0 or at is None:
                continue
            lag = metrics.CONSUMER_LAG.labels(self.processor.group_id, tp.topic, str(tp.partition))
            lag.set(max(0, end - at))

    @property
    def ready(self) -> bool:
        return self.joined and self.processor.healthy and not self.regressed and not self.fenced
