"""Whole-stack latency and CPU: ingest accepted → attainment on its topic → celebration on its topic.

    .venv/bin/python -m benchmarks.latency [--rates 200,1000,2000] [--seconds 60] [--checkout PATH] [--json FILE]

Starts the four services (`python -m services.<name>` of `--checkout`, this one by default, with that
checkout's `.venv` or this Python) on a fresh database and a Kafka broker of the benchmark's own (or the
local stack's, `--shared-kafka`), creates a tenant through ingest's CLI, and sets it up through
`POST /v1/events`: the roster and targets of a seeded quarter (`tests/chaos/scenario.py`, 200 reps) and one
probe rep per probe to come, each with a `won_revenue` target for the current quarter. Then, for each rate
in turn, for `--seconds`:

  load    the scenario's deals and activities (and, as each loop of the scenario begins, a fresh part of
          the org's roster and targets: `tests.chaos.soak._looped`) through ingest at the rate, in 50 ms
          ticks, one request per tick on one keep-alive connection;
  probes  every `--probe-every` seconds a probe rep wins a deal worth exactly its target: the figure crosses
          100 % (the `quota_100` milestone). From ingest's answer (accepted: durably in Kafka) to the first
          `kpi.attainment.updated` for that rep's quarterly won revenue at or above the target, and to its
          `quota_100` celebration, both read by a `read_committed` consumer (committed, published).

After each rate's load the benchmark waits (at most `--drain` seconds) until every consumer group has applied
everything on its topics, every outbox is empty and every probe was seen; the CPU window is from the first
request of the rate to then. CPU (user + system, /proc) of each process over that window ÷ the events ingest
accepted in it: the four services, the Kafka JVM, PostgreSQL (every process of the cluster; and of those, the
backends on the benchmark's database) and this driver. Also per rate: how many offsets the window added to
`kpi.attainment.v1` per event accepted (records plus transaction markers: an upper bound on the attainment
events per input event at that live load). Prints a table per rate; `--json FILE` writes it all.
Loopback only; bounded: each rate ends after `--seconds` + `--drain`. Not a test: nothing fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks import kpi_broker
from benchmarks.kpi_kafka import commit, offsets
from benchmarks.kpi_service import fresh_database
from benchmarks.latency_load import Step, load, post, probe, probe_setup, quarter_of, split
from benchmarks.latency_report import SUBSET, console, report
from benchmarks.probes import Probes
from benchmarks.proc import CpuLedger
from benchmarks.stack import (
    Backlog,
    Checkout,
    Services,
    backend_cpu,
    backlog,
    create_tenant,
    driver_connection,
    postmaster_pid,
    process_cpu,
)
from deploy.local import crm_keys, kafka, registry_keys
from shared import topics
from tests.chaos import scenario
from tests.chaos.fleet import CONSUMERS

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".local" / "bench"
BROKER_HOME = WORK / "broker-latency"  # not the kpi benchmark's: the two may run one after the other
SETUP_BATCH = 500
MONITOR_S = 1.0  # how often the database's backends are read (one that exits loses at most this much)
SETTLE_LIMIT_S = 300.0  # the setup's wait for the services to apply the roster, targets and probes
# Each service's defaults, except what would measure the harness rather than the pipeline.
SERVICE_ENV = {"LOG_LEVEL": "WARNING", "RATE_LIMIT_REQUESTS_PER_S": "1000", "RATE_LIMIT_REQUEST_BURST": "1000",
               "RATE_LIMIT_EVENTS_PER_S": "100000", "RATE_LIMIT_EVENT_BURST": "1000000"}


@dataclass
class Observer:
    """What the benchmark watches the stack through: its database connection and a Kafka client, both kept
    for the run (a new client per question would load the broker being measured)."""

    conn: asyncpg.Connection
    kafka: AIOKafkaConsumer
    prefix: str  # of the consumer groups

    async def backlog(self) -> Backlog:
        return await backlog(self.conn, self.kafka, self.prefix)


def _arguments(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="200,1000,2000", help="events/s, one step each, in this order")
    p.add_argument("--seconds", type=float, default=60.0, help="load per rate")
    p.add_argument("--drain", type=float, default=120.0,
                   help="longest wait after a rate's load for the stack to settle")
    p.add_argument("--warmup-seconds", type=float, default=20.0,
                   help="before the rates: load at the first rate for this long, not reported (0: none)")
    p.add_argument("--idle-seconds", type=float, default=10.0,
                   help="before the first rate: CPU of each process with no load, for this long (0: skip)")
    p.add_argument("--connections", type=int, default=4,
                   help="requests of the load in flight at most (each on its own keep-alive connection)")
    p.add_argument("--probe-every", type=float, default=0.5, help="seconds between two probe wins")
    p.add_argument("--probe-target", default="1000", help="each probe rep's won_revenue target (and winning deal)")
    p.add_argument("--reps", type=int, default=200, help="reps in each loop of the scenario")
    p.add_argument("--checkout", type=Path, default=ROOT, help="the project checkout whose services are measured")
    p.add_argument("--python", help="the Python that runs them (default: the checkout's .venv, else this one)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable for every service (repeatable)")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/attain_bench_latency",
                   help="the benchmark's database (dropped and created again)")
    p.add_argument("--shared-kafka", action="store_true",
                   help="use the local stack's broker ($KAFKA_BOOTSTRAP_SERVERS) instead of one of the benchmark's own")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                   help="with --shared-kafka: the broker")
    args = p.parse_args(argv)
    args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    if not args.rates or min(args.rates) <= 0 or args.seconds <= 0 or args.probe_every <= 0:
        p.error("--rates, --seconds and --probe-every must be positive")
    return args


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a fresh broker's coordinator chatter, not ours
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through the finally blocks
    checkout = Checkout.at(args.checkout, args.python)
    env = {**os.environ, "DATABASE_URL": args.database_url, "LOG_LEVEL": "WARNING"}
    if args.shared_kafka:
        subprocess.run([sys.executable, "-m", "deploy.local.stack", "up"], cwd=ROOT, check=True,
                       env={**env, "KAFKA_BOOTSTRAP_SERVERS": args.bootstrap})
        broker = kafka.broker_pid()
    else:
        args.bootstrap = kpi_broker.up(env, 0, BROKER_HOME)
        broker = kpi_broker.running_pid(BROKER_HOME)
    try:
        results = asyncio.run(measure(args, checkout, broker))
    finally:
        if not args.shared_kafka:
            kpi_broker.down(env, BROKER_HOME)
    report(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


async def measure(args: argparse.Namespace, checkout: Checkout, broker: int | None) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    prefix, slug = f"bench-latency-{run_id}", f"bench-latency-{run_id}"
    await fresh_database(args.database_url)
    names = [t.name for t in topics.ALL]
    ends = await offsets(args.bootstrap, names)
    for group in CONSUMERS:  # every group starts at the topics' end: never the broker's history
        await commit(args.bootstrap, f"{prefix}-{group}", ends)
    extra = dict(item.split("=", 1) for item in args.env)
    env = {**SERVICE_ENV, **crm_keys.env(), **registry_keys.env(), **extra, "KAFKA_BOOTSTRAP_SERVERS": args.bootstrap,
           "DATABASE_URL": args.database_url,
           "KAFKA_CONSUMER_GROUP_PREFIX": prefix}
    services = Services(run_id, env, checkout, WORK / f"latency-{run_id}")
    plan = scenario.generate(scenario.Settings(tenants=1, reps_per_tenant=args.reps, deals_per_rep=30),
                             datetime.now(UTC))
    tenant = plan.tenants[0]
    quarter = quarter_of(tenant.timezone)
    probes = Probes(slug, quarter, Decimal(args.probe_target))
    results: dict[str, Any] = {"checkout": checkout.describe(), "run": run_id, "rates": args.rates,
                               "seconds": args.seconds, "probe_every_s": args.probe_every, "env": extra, "steps": []}
    console.print(f"measuring {results['checkout']}; logs in {services.logs}")
    conn = await driver_connection(args.database_url)
    kafka_client = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False)
    await kafka_client.start()
    observer = Observer(conn, kafka_client, prefix)
    try:
        await asyncio.to_thread(services.start_all)
        token = await asyncio.to_thread(create_tenant, checkout, slug, tenant.timezone, tenant.currency, env)
        watcher = asyncio.create_task(_watch(args.bootstrap, probes))
        setup, stream = split(plan.events[tenant.slug])
        spans = [args.warmup_seconds, *[args.seconds] * len(args.rates)]
        count = sum(int(seconds / args.probe_every) + 1 for seconds in spans)
        async with httpx.AsyncClient(base_url=services.replica("ingest").url, timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            setup += probe_setup(count, quarter, args.probe_target, tenant.timezone)
            for i in range(0, len(setup), SETUP_BATCH):
                await post(client, setup[i:i + SETUP_BATCH])
            console.print(f"set up: {len(setup):,} roster and target events, {count} probe reps; waiting for the "
                          "services...")
            await _settle(observer, SETTLE_LIMIT_S)
            pids = await _pids(conn, services, broker)
            await _rates(args, client, observer, stream, probes, iter(range(count)), pids, results)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    finally:
        await conn.close()
        await kafka_client.stop()
        await asyncio.to_thread(services.stop_all)
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            await _drop(args.database_url)
    return results


async def _rates(args: argparse.Namespace, client: httpx.AsyncClient, observer: Observer,
                 stream: Iterator[dict[str, Any]], probes: Probes, numbered: Iterator[int],
                 pids: dict[str, tuple[int | None, bool]], results: dict[str, Any]) -> None:
    """The idle baseline, the warm-up, then each rate in turn, into `results`."""
    if args.idle_seconds > 0:
        console.print(f"idle for {args.idle_seconds:.0f} s (what each process costs with nothing to do)...")
        results["idle"] = {"seconds": args.idle_seconds, "cpu_s": await _idle(observer.conn, pids, args.idle_seconds)}
    if args.warmup_seconds > 0:  # a fresh JVM compiles its hot paths, the services fill their caches
        console.print(f"warm-up: {args.rates[0]:,} events/s for {args.warmup_seconds:.0f} s, not reported...")
        step = await _step(args, args.rates[0], args.warmup_seconds, client, observer, stream, probes, numbered, pids)
        results["warmup"] = asdict(step)
    for rate in args.rates:
        console.print(f"{rate:,} events/s for {args.seconds:.0f} s...")
        step = await _step(args, rate, args.seconds, client, observer, stream, probes, numbered, pids)
        results["steps"].append(asdict(step))


async def _step(args: argparse.Namespace, rate: int, seconds: float, client: httpx.AsyncClient, observer: Observer,
                stream: Iterator[dict[str, Any]], probes: Probes, numbered: Iterator[int],
                pids: dict[str, tuple[int | None, bool]]) -> Step:
    """One rate: the load and the probes for `--seconds`, the wait until the stack settled, the CPU it took."""
    step = Step(rate)
    mine: list[str] = []
    conn, cpu0, ledger = observer.conn, _cpu(pids), CpuLedger()
    ledger.start(await backend_cpu(conn))
    attainment0 = await _end_offsets(observer.kafka, topics.ATTAINMENT)
    started = time.monotonic()
    monitor = asyncio.create_task(_monitor(args.database_url, ledger))
    await asyncio.gather(load(args, rate, seconds, client, stream, step, started),
                         probe(args, seconds, client, probes, numbered, step, started, mine))
    loaded = time.monotonic()
    step.seconds, step.probes, step.accepted = loaded - started, len(mine), step.answers.get("accepted", 0)
    while time.monotonic() - loaded < args.drain:
        state = await observer.backlog()
        step.behind_at_end = state.behind
        if state.settled and all(r in probes.celebration and r in probes.attainment for r in mine):
            step.settled_after_s = time.monotonic() - loaded
            break
        await asyncio.sleep(0.25)
    monitor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await monitor
    ledger.observe(await backend_cpu(conn))
    cpu1 = _cpu(pids)
    step.window_s = time.monotonic() - started
    step.cpu_s = {name: cpu1[name] - seconds for name, seconds in cpu0.items() if name in cpu1}
    step.cpu_s[SUBSET] = ledger.total()
    step.to_attainment, step.to_celebration = probes.latencies(mine)
    step.attainment_offsets = await _end_offsets(observer.kafka, topics.ATTAINMENT) - attainment0
    return step


async def _end_offsets(client: AIOKafkaConsumer, topic: topics.Topic) -> int:
    """The sum of `topic`'s end offsets (records and transaction markers written to it so far)."""
    ends = await client.end_offsets([TopicPartition(topic.name, p) for p in range(topic.partitions)])
    return sum(int(o) for o in ends.values())


async def _idle(conn: asyncpg.Connection, pids: dict[str, tuple[int | None, bool]], seconds: float) -> dict[str, float]:
    """CPU seconds of each process over `seconds` with no load."""
    before, ledger = _cpu(pids), CpuLedger()
    ledger.start(await backend_cpu(conn))
    await asyncio.sleep(seconds)
    ledger.observe(await backend_cpu(conn))
    after = _cpu(pids)
    return {name: after[name] - cpu for name, cpu in before.items() if name in after} | {SUBSET: ledger.total()}


async def _monitor(url: str, ledger: CpuLedger) -> None:
    """The database's backends, every second, on a connection of its own: one that leaves keeps what it had
    used when last read."""
    conn = await driver_connection(url)
    try:
        while True:
            await asyncio.sleep(MONITOR_S)
            ledger.observe(await backend_cpu(conn))
    finally:
        await conn.close()


async def _pids(conn: asyncpg.Connection, services: Services, broker: int | None) -> dict[str, tuple[int | None, bool]]:
    """The processes whose CPU is read: (pid, with its children)."""
    found: dict[str, tuple[int | None, bool]] = {name: (pid, False) for name, pid in services.pids().items()}
    found["kafka (JVM)"] = (broker, False)
    found["postgres: all processes of the cluster"] = (await postmaster_pid(conn), True)
    found["driver (this process)"] = (os.getpid(), False)
    return found


def _cpu(pids: dict[str, tuple[int | None, bool]]) -> dict[str, float]:
    return {name: cpu for name, (pid, tree) in pids.items() if (cpu := process_cpu(pid, tree=tree)) is not None}


async def _settle(observer: Observer, limit_s: float) -> None:
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        if (await observer.backlog()).settled:
            return
        await asyncio.sleep(0.5)
    console.print(f"note: the services had not applied the setup after {limit_s:.0f} s; measuring anyway")


async def _watch(bootstrap: str, probes: Probes) -> None:
    """Every committed record of the attainment and celebration topics from now on, to `probes`."""
    names = [topics.ATTAINMENT.name, topics.CELEBRATIONS.name]
    ends = await offsets(bootstrap, names)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(t, p) for t, p in ends])
        for (t, p), offset in ends.items():
            consumer.seek(TopicPartition(t, p), offset)
        while True:
            for records in (await consumer.getmany(timeout_ms=100, max_records=10_000)).values():
                arrived = time.monotonic()
                for r in records:
                    probes.seen(r.key, list(r.headers), r.value, arrived)
    finally:
        await consumer.stop()


async def _drop(url: str) -> None:
    base, name = url.rsplit("/", 1)
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
