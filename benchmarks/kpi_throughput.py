"""How fast kpi applies the sales topics, beside a bare consumer and Quix Streams, like with like.

    .venv/bin/python -m benchmarks.kpi_throughput [--events 1000000] [--reps 500] [--runs 3] [--lag-seconds 30]

Needs Quix Streams (`pip install -e '.[bench]'`). Starts a broker of its own, then:

  pre-load  one new tenant `bench-kpi-<run>`: a roster of R reps, a won_revenue target per rep and
            quarter, and N deal (with edits, duplicates, older versions) and activity records, sent
            straight to the sales topics as ingest publishes them, as fast as the producer goes;
  rounds    `--runs` times, alternating the contenders:
    raw       a bare aiokafka consumer reads those records, counting them (round 1 also decodes the
              CloudEvent, and validates with pydantic, each pass in its own process: `benchmarks.kpi_raw`);
    kpi deals `python -m services.kpi` on a fresh database, its group committed at the span's start for
              deals, roster and targets and at its end for activities: the deals-only workload;
    quix      Quix Streams, exactly-once, keeps won revenue per rep and quarter in RocksDB from the deals
              and writes each changed figure to a topic (`benchmarks.kpi_quix`);
    kpi full  kpi again on a fresh database, on all four topics (in the last round, followed by a paced
              live stream timed from publish to the deal's row in kpi.deals).
  Every clock stops at the last committed record: kpi's stored offsets in PostgreSQL at the span's end,
  Quix's committed offsets (its output committed in the same transaction) at the span's end.

Prints every run and the medians: kpi deals ÷ Quix Streams exactly-once (goal >= 1.5), kpi catch-up ÷ raw
consume on the same records in the same round (goal >= 25 %), the lag, and a check of every won_revenue
figure against the workload's own. Not a test: nothing fails; see benchmarks/README.md for how to read it.
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
from typing import Any, TypeVar

from benchmarks import kpi_broker
from benchmarks import kpi_service as kpi
from benchmarks.kpi_kafka import SALES, Span, commit, create_topic, delete_topics, offsets, preload, read_figures
from benchmarks.kpi_lag import measure
from benchmarks.kpi_report import Results, Won, console, report
from benchmarks.kpi_workload import KPIS, Workload, preload_step
from benchmarks.stack import Checkout
from benchmarks.workload import host_description, stop_process
from deploy.local import registry_keys
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


def _versions(database_url: str, checkout: Checkout) -> str:
    """The host, the packages, and which kpi is measured (others may be changing it: the commit and how many
    files are uncommitted)."""
    return host_description(database_url, PACKAGES) + "\nkpi of " + checkout.describe()


def run_kpi(args: argparse.Namespace, env: dict[str, str], prefix: str, span: Span, tight: Span,
            read: tuple[str, ...], records: int, log: Path,
            then: Callable[[kpi.CatchUp], T] | None = None) -> tuple[kpi.CatchUp, T | None]:
    """One cold kpi run over the topics `read` (the others committed at their end); `then(catch_up)`
    runs once kpi has caught up, while it still runs."""
    asyncio.run(kpi.fresh_database(args.database_url))
    if args.kpis:
        asyncio.run(kpi.define_kpis(args.database_url, args.tenant, KPIS))
    group = f"{prefix}-kpi"
    positions = {tp: (span.start[tp] if tp[0] in read else span.end[tp]) for tp in span.end}
    asyncio.run(commit(args.bootstrap, group, positions))
    port = str(_free_port())
    started = time.perf_counter()
    try:
        proc = kpi.start({**env, "HTTP_PORT": port, "HTTP_HOST": "127.0.0.1", "DATABASE_URL": args.database_url,
                          "KAFKA_CONSUMER_GROUP_PREFIX": prefix}, log, args.checkout.root, args.checkout.python)
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
    p.add_argument("--runs", type=int, default=3,
                   help="rounds, each: raw consume, kpi on the deals, Quix Streams, kpi on everything (medians)")
    p.add_argument("--skip-deals-run", action="store_true", help="no kpi run on the deals alone")
    p.add_argument("--skip-full-run", action="store_true", help="no kpi run on all four topics (and no lag)")
    p.add_argument("--kpi-limit", type=float, default=float("inf"), metavar="SECONDS",
                   help="stop each kpi run this long after its first batch, caught up or not, and report that part")
    p.add_argument("--forecast", action="store_true",
                   help="open deals carry a forecast, and deals and activities CRM properties (issue 22)")
    p.add_argument("--kpis", action="store_true",
                   help="every kpi run starts with the workload's two KPIs defined (issue 22; needs a kpi that has"
                        " them: not with an older --checkout)")
    p.add_argument("--from-beginning", action="store_true",
                   help="every contender reads the topics from their first offset, other tenants' records too")
    p.add_argument("--checkout", type=Path, default=ROOT, help="the project checkout whose kpi is measured")
    p.add_argument("--python", help="the Python that runs it (default: the checkout's .venv, else this one)")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/attain_bench_kpi")
    p.add_argument("--broker-port", type=int, default=0,
                   help="port of the benchmark's own broker (default: a free one; a kept broker's is found)")
    p.add_argument("--keep-broker", action="store_true", help="leave the benchmark's own broker running, with its data")
    p.add_argument("--shared-kafka", action="store_true",
                   help="use the local stack's broker ($KAFKA_BOOTSTRAP_SERVERS) instead of one of the benchmark's own")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                   help="with --shared-kafka: the broker")
    return p.parse_args(argv)


def raw_pass(args: argparse.Namespace, env: dict[str, str], span_file: Path, mode: str) -> dict[str, Any]:
    """One bare aiokafka consumer pass over the span, in its own process (`benchmarks.kpi_raw`)."""
    console.print(f"[dim]raw aiokafka consumer ({mode})...[/]")
    result: dict[str, Any] = json.loads(_python("-m", "benchmarks.kpi_raw", str(span_file), mode, "--bootstrap",
                                                args.bootstrap, env=env))
    return result


def quix_run(args: argparse.Namespace, env: dict[str, str], span: Span, span_file: Path, name: str, tenant: str,
             work: Path) -> dict[str, Any]:
    """Quix Streams, exactly-once, from the span's start to its committed end, writing its figures to a topic
    of its own; then that topic read back (read_committed) to check them. Its topics and state are deleted."""
    console.print("[dim]Quix Streams (exactly-once)...[/]")
    group, output, state = f"{name}-quix", f"{name}-quix-won", work / f"{name}-quix-state"
    asyncio.run(commit(args.bootstrap, group, {tp: o for tp, o in span.start.items() if tp[0] == topics.DEALS.name}))
    asyncio.run(create_topic(args.bootstrap, output, sum(1 for t, _ in span.end if t == topics.DEALS.name)))
    try:
        result: dict[str, Any] = json.loads(_python("-m", "benchmarks.kpi_quix", str(span_file), group, str(state),
                                                    output, "--bootstrap", args.bootstrap, env=env))
        result["figures_read"], won = asyncio.run(read_figures(args.bootstrap, output, tenant))
        result["won"] = [[rep, quarter, format(total, "f")] for (rep, quarter), total in sorted(won.items())]
        return result
    finally:
        asyncio.run(delete_topics(args.bootstrap, f"changelog__{group}"))  # its state's changelogs
        asyncio.run(delete_topics(args.bootstrap, output))
        shutil.rmtree(state, ignore_errors=True)


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    args.checkout = Checkout.at(args.checkout, args.python)
    # SIGTERM (as SIGINT) unwinds through the finally blocks: kpi stopped, the broker down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # kpi refuses to start without the registry's verification key: the local pair's
    env = {**os.environ, **registry_keys.env(), "DATABASE_URL": args.database_url, "LOG_LEVEL": "WARNING"}
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
    console.print(_versions(args.database_url, args.checkout))
    run_id = uuid.uuid4().hex[:8]
    tenant, work = f"bench-kpi-{run_id}", WORK / f"kpi-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    workload = Workload(tenant, args.reps, forecast=args.forecast)
    args.tenant = tenant
    console.print(f"[dim]issue 22: forecast fields {'on' if args.forecast else 'off'}, KPIs defined:"
                  f" {', '.join(KPIS) if args.kpis else 'none'}[/]")

    start = asyncio.run(offsets(args.bootstrap, beginning=args.from_beginning))
    console.print(f"[dim]pre-load: {args.events:,} events for {args.reps} reps of {tenant}...[/]")
    records = chain(workload.setup(), workload.events(args.events, preload_step(args.events)))
    sent, preload_s = asyncio.run(preload(args.bootstrap, records))
    span = Span(start, asyncio.run(offsets(args.bootstrap)))
    res = Results(args.events, args.reps, dict(workload.counts), workload.expected_won(), sent, preload_s)
    span_file = work / "span.json"
    span.dump(span_file)
    tight = span

    def check(into: list[Won | str]) -> Callable[[kpi.CatchUp], None]:
        def read(_: kpi.CatchUp) -> None:
            into.append(asyncio.run(kpi.won_revenue(args.database_url, tenant)))
        return read

    def live(caught_up: kpi.CatchUp) -> None:
        check(res.full_figures)(caught_up)
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

    for r in range(1, args.runs + 1):
        console.print(f"[bold]round {r} of {args.runs}[/]")
        res.raw_count.append(raw_pass(args, env, span_file, "count"))
        if r == 1:  # the span ending at each partition's last record (compacted topics may end in a gap)
            tight = Span(span.start, {(t, p): o + 1 for t, p, o in res.raw_count[0]["last"]})
            tight.dump(span_file)
            for mode in ("decode", "validate"):
                res.raw[mode] = raw_pass(args, env, span_file, mode)
        by_topic: dict[str, int] = res.raw_count[0]["by_topic"]
        if not args.skip_deals_run:
            console.print("[dim]kpi, deals (+ roster, targets) only...[/]")
            run, _ = run_kpi(args, env, f"bench-kpi-{run_id}-deals{r}", span, tight, DEALS_RUN,
                             sum(by_topic.get(t, 0) for t in DEALS_RUN), work / f"kpi-deals{r}.log",
                             then=check(res.deals_figures))
            res.deals_runs.append(run)
        res.quix.append(quix_run(args, env, span, span_file, f"bench-kpi-{run_id}-{r}", tenant, work))
        if not args.skip_full_run:
            console.print("[dim]kpi, all sales topics...[/]")
            run, _ = run_kpi(args, env, f"bench-kpi-{run_id}-full{r}", span, tight, SALES, sum(by_topic.values()),
                             work / f"kpi-full{r}.log", then=live if r == args.runs else check(res.full_figures))
            res.full_runs.append(run)
    report(res)
    console.print(f"[dim]logs and span: {work}[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
