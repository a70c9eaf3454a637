"""The outbox relay, old code path against new, on the same rows in one run.

    python -m benchmarks.outbox_relay [--rows 20000] [--rounds 3] [--quiet 100] [--database-url URL]

Throughput: the same N events (kpi-sized attainment records over 300 keys) are written to two outboxes
in transactions of 500, then relayed to two fresh topics (6 partitions) until each outbox is empty:

- old: the code before this change, kept here verbatim in spirit: headers as jsonb (`json.dumps` per
  row in the writer), 500 rows per Kafka transaction, `json.loads` per row, one awaited `send` per row;
- new: `shared.outbox` (`enqueue_many`, `OutboxRelay`): header arrays, up to 5,000 rows per
  transaction, records packed into produce batches, deliveries awaited together.

Printed per side: µs per row of wall time and of this process's CPU, for the writer (`enqueue`) and for
the relay (fetch, Kafka transaction, delete). The broker and PostgreSQL work in their own processes and
are not in the CPU figure.

Latency: a quiet stream, one event per transaction every 50 ms, from the commit to a `read_committed`
consumer in this process receiving it. Old: the relay loop of before with its default poll (0.5 s),
woken by nothing (a commit in another process, a timer, the API); new: the relay as it runs, woken by
NOTIFY, its safety poll set to 5 s. p50 / p95 / max.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.cloudevents import CloudEvent, encode, message_key
from shared.db import SHARED_MIGRATIONS, create_pool, migrate
from shared.kafka import create_producer, last_position
from shared.outbox import OutboxRelay, enqueue_many
from shared.settings import ServiceSettings
from shared.topics import OUTBOX_POSITIONS

TX_ROWS = 500
OLD_BATCH, OLD_POLL_S, NEW_SAFETY_POLL_S = 500, 0.5, 5.0
QUIET_GAP_S = 0.05
PARTITIONS = 6

OLD_INSERT = ("INSERT INTO outbox (topic, key, value, headers)"
              " SELECT t, k, v, h::jsonb FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[])"
              " WITH ORDINALITY AS u(t, k, v, h, n) ORDER BY n")


async def old_enqueue_many(conn: asyncpg.Connection, items: list[tuple[str, bytes, CloudEvent]]) -> None:
    """`enqueue_many` before this change."""
    encoded = [(topic, key, *encode(event)) for topic, key, event in items]
    await conn.execute(OLD_INSERT, [e[0] for e in encoded], [e[1] for e in encoded], [e[2] for e in encoded],
                       [json.dumps([[name, raw.decode()] for name, raw in e[3]]) for e in encoded])


async def old_publish_pending(pool: asyncpg.Pool, producer: AIOKafkaProducer, position_key: str) -> int:
    """`OutboxRelay.publish_pending` before this change (metrics left out: they cost the same on both sides)."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch("SELECT seq, topic, key, value, headers FROM outbox ORDER BY seq LIMIT $1", OLD_BATCH)
        if not rows:
            return 0
        seqs = [row["seq"] for row in rows]
        headers = [json.loads(row["headers"]) for row in rows]
        async with producer.transaction():
            for row, pairs in zip(rows, headers, strict=True):
                await producer.send(row["topic"], row["value"], key=row["key"],
                                    headers=[(name, text.encode()) for name, text in pairs])
            await producer.send(OUTBOX_POSITIONS.name, ",".join(map(str, seqs)).encode(), key=position_key.encode())
        await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", seqs)
        return len(rows)


def events(n: int, tenant: str) -> list[tuple[bytes, CloudEvent]]:
    """kpi-sized attainment events over 300 keys."""
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        rep = f"rep-{i % 300:03d}"
        data = {"scope": "rep", "scope_id": rep, "metric": "won_revenue", "period": "2026-Q4",
                "value": f"{1000 + i}.25", "target": "90000.00", "attainment": "0.0112", "version": i}
        out.append((message_key(tenant, "rep", rep, "won_revenue", "2026-Q4"),
                    CloudEvent(str(uuid.uuid4()), "kpi.attainment.updated", "kpi", now, tenant, data,
                               extensions={"tenanttimezone": "Europe/Paris"})))
    return out


async def create_topic(bootstrap: str) -> str:
    name = f"bench.outbox.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def fill(pool: asyncpg.Pool, topic: str, rows: list[tuple[bytes, CloudEvent]],
               write: Callable[[asyncpg.Connection, list[tuple[str, bytes, CloudEvent]]], Awaitable[None]],
               ) -> tuple[float, float]:
    """Write `rows` in transactions of TX_ROWS; (wall s, cpu s)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(rows), TX_ROWS):
        async with pool.acquire() as conn, conn.transaction():
            await write(conn, [(topic, key, event) for key, event in rows[start:start + TX_ROWS]])
    return time.perf_counter() - wall, time.process_time() - cpu


async def drain(publish: Callable[[], Awaitable[int]]) -> tuple[float, float]:
    """Publish until nothing is left; (wall s, cpu s)."""
    wall, cpu = time.perf_counter(), time.process_time()
    while await publish():
        pass
    return time.perf_counter() - wall, time.process_time() - cpu


@contextlib.asynccontextmanager
async def transactional(settings: ServiceSettings, identity: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = create_producer(settings, "bench-outbox", f"attain-outbox:{identity}")
    await producer.start()
    await producer.begin_transaction()  # hold the transactional id before timing (as the relay does)
    await producer.abort_transaction()
    try:
        yield producer
    finally:
        await producer.stop()


async def quiet_latency(pool: asyncpg.Pool, topic: str, bootstrap: str, count: int, tenant: str,
                        write: Callable[[asyncpg.Connection, list[tuple[str, bytes, CloudEvent]]], Awaitable[None]],
                        relay: Callable[[], Coroutine[Any, Any, None]]) -> list[float]:
    """Commit `count` single events QUIET_GAP_S apart; ms from each commit to its arrival at a consumer."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, fetch_max_wait_ms=5)
    await consumer.start()
    consumer.assign([TopicPartition(topic, partition) for partition in range(PARTITIONS)])
    committed: dict[bytes, float] = {}
    latencies: list[float] = []

    async def consume() -> None:
        while len(latencies) < count:
            for records in (await consumer.getmany(timeout_ms=50)).values():
                now = time.perf_counter()
                for record in records:
                    ce_id = dict(record.headers)["ce_id"]
                    if ce_id in committed:
                        latencies.append(1000 * (now - committed[ce_id]))

    relaying = asyncio.create_task(relay())
    try:
        await consumer.seek_to_end()
        await asyncio.sleep(1.0)  # the relay is up and has published what was there
        reading = asyncio.create_task(consume())
        for key, event in events(count, tenant):
            async with pool.acquire() as conn, conn.transaction():
                await write(conn, [(topic, key, event)])
            committed[event.id.encode()] = time.perf_counter()
            await asyncio.sleep(QUIET_GAP_S)
        await asyncio.wait_for(reading, 30)
    finally:
        relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relaying
        await consumer.stop()
    return latencies


async def run(args: argparse.Namespace) -> dict[str, Any]:
    db_name = f"attain_bench_outbox_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{db_name}"')
    dsn = args.database_url.rsplit("/", 1)[0] + "/" + db_name
    settings = ServiceSettings(kafka_bootstrap_servers=args.bootstrap, database_url=dsn)
    tenant = f"bench-{uuid.uuid4().hex[:6]}"
    rows = events(args.rows, tenant)
    old_pool, new_pool = await create_pool(dsn, "bench_old"), await create_pool(dsn, "bench_new")
    result: dict[str, Any] = {"rows": args.rows}
    try:
        async with old_pool.acquire() as conn:
            await conn.execute((SHARED_MIGRATIONS / "001_outbox_offsets_inbox.sql").read_text())
        await migrate(new_pool, "bench_new")
        old_topic, new_topic = await create_topic(args.bootstrap), await create_topic(args.bootstrap)
        old_id, new_id = f"bench-{uuid.uuid4().hex[:8]}/old", f"bench-{uuid.uuid4().hex[:8]}/new"

        relay = OutboxRelay(new_pool, lambda: create_producer(settings, "bench-outbox", f"attain-outbox:{new_id}"),
                            "bench_new", NEW_SAFETY_POLL_S, new_id, lambda: last_position(settings, new_id))
        for key in ("old_enqueue", "old_relay", "new_enqueue", "new_relay"):
            result[key] = []
        for _ in range(args.rounds):  # the same rows each round, old then new; medians are reported
            result["old_enqueue"].append(await fill(old_pool, old_topic, rows, old_enqueue_many))
            async with transactional(settings, old_id) as producer:
                result["old_relay"].append(await drain(lambda: old_publish_pending(old_pool, producer, old_id)))
            result["new_enqueue"].append(await fill(new_pool, new_topic, rows, enqueue_many))
            await relay._renew_producer()  # the leader's producer, without the election around it
            try:
                result["new_relay"].append(await drain(relay.publish_pending))
            finally:
                assert relay._producer is not None
                await relay._producer.stop()
                relay._producer = None

        async def old_loop() -> None:
            async with transactional(settings, old_id) as producer:
                while True:
                    while await old_publish_pending(old_pool, producer, old_id):
                        pass
                    await asyncio.sleep(OLD_POLL_S)

        result["old_latency_ms"] = await quiet_latency(old_pool, old_topic, args.bootstrap, args.quiet, tenant,
                                                       old_enqueue_many, old_loop)
        result["new_latency_ms"] = await quiet_latency(new_pool, new_topic, args.bootstrap, args.quiet, tenant,
                                                       enqueue_many, relay.run)
    finally:
        await old_pool.close()
        await new_pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        await admin.close()
    return result


def report(result: dict[str, Any]) -> str:
    n = result["rows"]

    def per_row(key: str) -> str:
        wall = statistics.median(w for w, _ in result[key])
        cpu = statistics.median(c for _, c in result[key])
        return f"{1e6 * wall / n:9.1f} {1e6 * cpu / n:9.1f}"

    def latency(key: str) -> str:
        values = sorted(result[key])
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        return f"{statistics.median(values):9.1f} {p95:9.1f} {values[-1]:9.1f}"

    lines = [f"outbox relay, {n:,} rows, median of {len(result['new_relay'])} rounds"
             " (µs per row: wall, CPU of this process)",
             f"{'':24}{'old wall':>9} {'old cpu':>9} | {'new wall':>9} {'new cpu':>9}",
             f"{'enqueue (writer)':24}{per_row('old_enqueue')} | {per_row('new_enqueue')}",
             f"{'relay (to Kafka, delete)':24}{per_row('old_relay')} | {per_row('new_relay')}",
             "",
             f"commit -> consumer, quiet stream, {len(result['new_latency_ms'])} events 50 ms apart (ms)",
             f"{'':24}{'p50':>9} {'p95':>9} {'max':>9}",
             f"{'old (poll 0.5 s)':24}{latency('old_latency_ms')}",
             f"{'new (NOTIFY)':24}{latency('new_latency_ms')}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.outbox_relay")
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3, help="throughput rounds (old then new, same rows)")
    p.add_argument("--quiet", type=int, default=100, help="events of the latency run")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                   help="a database to connect to; the benchmark creates and drops its own beside it")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    sys.stdout.write(report(asyncio.run(run(p.parse_args()))))


if __name__ == "__main__":
    main()
