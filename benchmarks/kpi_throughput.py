"""How fast kpi applies the sales topics, beside a bare consumer and Quix Streams, in one run.

    .venv/bin/python -m benchmarks.kpi_throughput [--events 1000000] [--reps 500] [--lag-seconds 30]

Needs Quix Streams (`pip install -e '.[bench]'`). Brings the local stack up, then:

  pre-load  one new tenant `bench-kpi-<run>`: a roster of R reps, a won_revenue target per rep and
            quarter, and N deal (with edits, duplicates, older versions) and activity records, sent
            straight to the sales topics as ingest publishes them, as fast as the producer goes;
  raw       a bare aiokafka consumer reads those records (count only; + CloudEvent decode;
            + pydantic validation), each pass in its own process (`benchmarks.kpi_raw`);
  quix      Quix Streams keeps won_revenue per rep and quarter in RocksDB from the deals
            (`benchmarks.kpi_quix`);
  kpi       `python -m services.kpi` on a fresh database, cold, its group committed at the start of
            the pre-load: once on the deals only (activities skipped by committing their end), once
            on everything, timed until its committed offsets reach the last record; then a paced
            live stream (2,000 events/s) timed from publish to the deal's row in kpi.deals.

Prints a table (records, seconds, records/s, CPU, peak RSS), the ratios kpi / raw (goal >= 25 %) and
kpi / Quix Streams (goal > 1), the lag and a check of every won_revenue figure against the
workload's own. Not a test: nothing fails; see benchmarks/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import TypeVar

from benchmarks import kpi_broker
from benchmarks import kpi_service as kpi
from benchmarks.kpi_kafka import SALES, Span, commit, delete_topics, offsets, preload
from benchmarks.kpi_lag import measure
from benchmarks.kpi_report import Results, console, report
from benchmarks.kpi_workload import Workload, preload_step
from benchmarks.workload import host_description, stop_process
from shared import topics

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".local" / "bench"
DRAIN_CAP_S = 600.0  # longest wait for the live stream's samples after its last record
PACKAGES = ("aiokafka", "asyncpg", "pydantic", "quixstreams", "confluent-kafka", "rocksdict")
DEALS_RUN = (topics.DEALS.name, topics.ROSTER.name, topics.TARGETS.name)
T = TypeVar("T")


def _python(*args: str, env: dict[str, str]) -> str:
    """Run one of our modules; its stdout. Its stderr (library chatter) is shown only if it fails."""
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=False, text=True,  # noqa: S603 - ours
                          capture_output=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        done.check_returncode()
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _versions(database_url: str) -> str:
    return host_description(database_url, PACKAGES) + "\n" + _kpi_version()


def _kpi_version() -> str:
    """Which kpi is measured: others may be changing it, so the commit and any uncommitted files."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,  # noqa: S603, S607
                              check=False).stdout.strip()

    dirty = git("status", "--short", "--", "services/kpi", "shared").split()[1::2]
    return f"kpi at commit {git('rev-parse', '--short', 'HEAD') or '?'}" + (
        f", with uncommitted changes to {' '.join(dirty)}" if dirty else "")


def run_kpi(args: argparse.Namespace, env: dict[str, str], prefix: str, span: Span, tight: Span,
            read: tuple[str, ...], records: int, log: Path,
            then: Callable[[kpi.CatchUp], T] | None = None) -> tuple[kpi.CatchUp, T | None]:
    """One cold kpi run over the topics `read` (the others committed at their end); `then(catch_up)`
    runs once kpi has caught up, while it still runs."""
    asyncio.run(kpi.fresh_database(args.database_url))
    group = f"{prefix}-kpi"
    positions = {tp: (span.start[tp] if tp[0] in read else span.end[tp]) for tp in span.end}
    asyncio.run(commit(args.bootstrap, group, positions))
    port = str(_free_port())
    started = time.perf_counter()
    try:
        proc = kpi.start({**env, "HTTP_PORT": port, "HTTP_HOST": "127.0.0.1", "DATABASE_URL": args.database_url,
                          "KAFKA_CONSUMER_GROUP_PREFIX": prefix}, log)
    except SystemExit as err:
        return kpi.CatchUp(records=records, failure=str(err)), None
    try:
        targets = {tp: tight.end[tp] for tp in tight.busy(read)}
        result = asyncio.run(kpi.catch_up(proc, args.database_url, port, group, positions, targets, records, started,
                                          args.kpi_limit))
        extra = then(result) if then is not None and result.failure is None and result.complete else None
        return result, extra
    finally:
        stop_process(proc)


def _arguments(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kpi_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000, help="deal and activity records to pre-load")
    p.add_argument("--reps", type=int, default=500)
    p.add_argument("--lag-seconds", type=float, default=30.0, help="length of the paced live stream (0: none)")
    p.add_argument("--lag-rate", type=int, default=2000,
                   help="events/s of the live stream, at most half of kpi's catch-up rate unless --lag-uncapped")
    p.add_argument("--lag-uncapped", action="store_true", help="stream at --lag-rate even beyond kpi's pace")
    p.add_argument("--lag-samples", type=int, default=2000, help="deal versions timed in the live stream")
    p.add_argument("--skip-deals-run", action="store_true", help="no kpi run on the deals alone")
    p.add_argument("--kpi-limit", type=float, default=float("inf"), metavar="SECONDS",
                   help="stop each kpi run this long after its first batch, caught up or not, and report that part")
    p.add_argument("--from-beginning", action="store_true",
                   help="every contender reads the topics from their first offset, other tenants' records too")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/attain_bench_kpi")
    p.add_argument("--broker-port", type=int, default=0,
                   help="port of the benchmark's own broker (default: a free one; a kept broker's is found)")
    p.add_argument("--keep-broker", action="store_true", help="leave the benchmark's own broker running, with its data")
    p.add_argument("--shared-kafka", action="store_true",
                   help="use the local stack's broker ($KAFKA_BOOTSTRAP_SERVERS) instead of one of the benchmark's own")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                   help="with --shared-kafka: the broker")
    return p.parse_args(argv)


def baselines(args: argparse.Namespace, env: dict[str, str], res: Results, span: Span, span_file: Path,
              group: str, tenant: str, work: Path) -> Span:
    """The raw consumer passes and Quix Streams; returns the span ending at each partition's last record."""
    for mode in ("count", "decode", "validate"):
        console.print(f"[dim]raw aiokafka consumer ({mode})...[/]")
        res.raw[mode] = json.loads(_python("-m", "benchmarks.kpi_raw", str(span_file), mode, "--bootstrap",
                                           args.bootstrap, env=env))
    tight = Span(span.start, {(t, p): o + 1 for t, p, o in res.raw["count"]["last"]})
    tight.dump(span_file)
    console.print("[dim]Quix Streams...[/]")
    asyncio.run(commit(args.bootstrap, group, {tp: o for tp, o in span.start.items() if tp[0] == topics.DEALS.name}))
    res.quix = json.loads(_python("-m", "benchmarks.kpi_quix", str(span_file), group, str(work / "quix-state"),
                                  tenant, "--bootstrap", args.bootstrap, env=env))
    asyncio.run(delete_topics(args.bootstrap, f"changelog__{group}"))  # its state's changelogs: this run's only
    shutil.rmtree(work / "quix-state", ignore_errors=True)
    return tight


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    # SIGTERM (as SIGINT) unwinds through the finally blocks: kpi stopped, the broker down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = {**os.environ, "DATABASE_URL": args.database_url, "LOG_LEVEL": "WARNING"}
    if args.shared_kafka:
        console.print("[dim]local stack up...[/]")
        subprocess.run([sys.executable, "-m", "deploy.local.stack", "up"], cwd=ROOT, check=True,
                       env={**env, "KAFKA_BOOTSTRAP_SERVERS": args.bootstrap})
    else:
        console.print("[dim]the benchmark's own broker, PostgreSQL...[/]")
        args.bootstrap = kpi_broker.up(env, args.broker_port)
    env["KAFKA_BOOTSTRAP_SERVERS"] = args.bootstrap
    try:
        return measure_all(args, env)
    finally:
        if not args.shared_kafka and not args.keep_broker:
            kpi_broker.down(env)


def measure_all(args: argparse.Namespace, env: dict[str, str]) -> int:
    console.print(_versions(args.database_url))
    run_id = uuid.uuid4().hex[:8]
    tenant, work = f"bench-kpi-{run_id}", WORK / f"kpi-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    workload = Workload(tenant, args.reps)

    start = asyncio.run(offsets(args.bootstrap, beginning=args.from_beginning))
    console.print(f"[dim]pre-load: {args.events:,} events for {args.reps} reps of {tenant}...[/]")
    records = chain(workload.setup(), workload.events(args.events, preload_step(args.events)))
    sent, preload_s = asyncio.run(preload(args.bootstrap, records))
    span = Span(start, asyncio.run(offsets(args.bootstrap)))
    res = Results(args.events, args.reps, dict(workload.counts), workload.expected_won(), sent, preload_s)
    span_file = work / "span.json"
    span.dump(span_file)
    tight = baselines(args, env, res, span, span_file, f"bench-kpi-{run_id}-quix", tenant, work)
    by_topic: dict[str, int] = res.raw["count"]["by_topic"]

    if not args.skip_deals_run:
        console.print("[dim]kpi, deals (+ roster, targets) only...[/]")
        res.deals_run, _ = run_kpi(args, env, f"bench-kpi-{run_id}-deals", span, tight, DEALS_RUN,
                                   sum(by_topic.get(t, 0) for t in DEALS_RUN), work / "kpi-deals.log")

    def live(caught_up: kpi.CatchUp) -> None:
        res.figures = asyncio.run(kpi.won_revenue(args.database_url, tenant))
        if args.lag_seconds <= 0:
            return
        kpi_rate = caught_up.timed_records / max(caught_up.seconds, 1e-9)
        rate = args.lag_rate if args.lag_uncapped else min(args.lag_rate, max(10, int(kpi_rate / 2)))
        console.print(f"[dim]kpi lag: {rate:,} events/s for {args.lag_seconds:.0f} s...[/]")
        # kpi applies a trickle slower than a backlog (smaller batches): wait well past what catch-up suggests
        drain = min(DRAIN_CAP_S, 60 + 5 * rate * args.lag_seconds / max(kpi_rate, 1.0))
        res.lag = asyncio.run(measure(args.bootstrap, args.database_url, workload, rate, args.lag_seconds,
                                      args.lag_samples, drain))
        res.lag_asked = args.lag_rate

    console.print("[dim]kpi, all sales topics...[/]")
    res.full, _ = run_kpi(args, env, f"bench-kpi-{run_id}", span, tight, SALES, sum(by_topic.values()),
                          work / "kpi.log", then=live)
    report(res)
    console.print(f"[dim]logs and span: {work}[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
