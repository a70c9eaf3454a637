"""How fast ingest takes events end to end, against a bare Kafka producer, in one run.

    .venv/bin/python -m benchmarks.ingest_throughput [--events 100000] [--batch 1000] [--concurrency 4]

Brings the local stack up, creates a tenant, starts ONE ingest process on a free port, generates
N events (deals and activities, unique ids) and measures, one after the other:

  baseline  an idempotent aiokafka producer (acks=all, linger_ms=5) in its own process sending the
            same events as the records ingest publishes (`benchmarks.kafka_baseline`);
  ingest    K clients POSTing the events as NDJSON batches over loopback, until the last response.

Prints a table (throughput, request latency, per-event figures, CPU, peak RSS) and the ratio
ingest / baseline. Not a test: nothing fails; see benchmarks/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.workload import (
    busy_cores,
    events,
    free_port,
    host_description,
    machine_cpu,
    ndjson,
    peak_rss_kib,
    percentile,
    proc_status_kib,
    process_cpu_s,
    stop_process,
)
from deploy.local import crm_keys, registry_keys

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".local" / "bench"
GOAL = 0.60
WARMUP_EVENTS = 200
PACKAGES = ("aiokafka", "httpx", "fastapi", "uvicorn", "pydantic", "asyncpg")
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


@dataclass
class IngestRun:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"accepted": 0, "duplicate": 0, "rejected": 0})
    retries: int = 0
    failures: list[str] = field(default_factory=list)
    busy_cores: float = 0.0


def _python(*args: str, env: dict[str, str], capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, text=True,  # noqa: S603 - our own modules
                          capture_output=capture)


def start_ingest(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    WORK.mkdir(parents=True, exist_ok=True)
    log = (WORK / "ingest.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "services.ingest"], cwd=ROOT,
                            env={**env, "HTTP_PORT": str(port)}, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ingest exited with {proc.returncode}; see {WORK / 'ingest.log'}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        time.sleep(0.3)
    stop_process(proc, grace_s=20)
    raise SystemExit(f"ingest not ready after 60 s; see {WORK / 'ingest.log'}")


async def drive(url: str, token: str, bodies: list[bytes], concurrency: int) -> IngestRun:
    """K clients, each its own connection, taking the next batch until none is left."""
    run, queue = IngestRun(), deque(bodies)
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/x-ndjson"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as http:
            while queue:
                body = queue.popleft()
                while True:
                    began = time.perf_counter()
                    try:
                        response = await http.post("/v1/events", content=body)
                    except httpx.TransportError as err:
                        run.failures.append(f"{type(err).__name__}: {err}")
                        if len(run.failures) > 10:
                            raise
                        await asyncio.sleep(1)
                        continue
                    if response.status_code not in (429, 503):
                        break
                    run.retries += 1
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                run.latencies.append(time.perf_counter() - began)
                if response.status_code not in (200, 422):
                    run.failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                    continue
                answer = response.json()
                for status in run.counts:
                    run.counts[status] += answer[status]

    started, cpu = time.perf_counter(), machine_cpu()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - started
    run.busy_cores = busy_cores(cpu, machine_cpu(), os.cpu_count() or 1)
    return run


def report(n: int, batch: int, concurrency: int, base: dict[str, Any], ing: IngestRun, ing_cpu: float,
           ing_rss: tuple[int, int]) -> None:
    base_rate, ing_rate = base["events"] / base["seconds"], n / ing.seconds
    lat = {q: 1000 * percentile(ing.latencies, q) for q in (0.50, 0.95, 0.99)}
    table = Table(title=f"{n:,} events; ingest: batches of {batch}, {concurrency} concurrent clients")
    table.add_column("")
    table.add_column("Kafka producer (baseline)", justify="right")
    table.add_column("ingest (HTTP → Kafka)", justify="right")
    table.add_row("events sent / acknowledged", f"{base['events']:,}",
                  f"{n:,} / {ing.counts['accepted']:,} accepted")
    table.add_row("wall time", f"{base['seconds']:.2f} s", f"{ing.seconds:.2f} s")
    table.add_row("throughput", f"{base_rate:,.0f} events/s", f"[bold]{ing_rate:,.0f} events/s[/]")
    table.add_row("request latency p50 / p95 / p99", "—", f"{lat[0.50]:.0f} / {lat[0.95]:.0f} / {lat[0.99]:.0f} ms")
    table.add_row("event ack latency p50 / p99",
                  f"{base['ack_p50_ms']:.0f} / {base['ack_p99_ms']:.0f} ms (all in flight)",
                  f"{lat[0.50]:.0f} / {lat[0.99]:.0f} ms (= its request's)")
    table.add_row("wall time per event", f"{1e6 * base['seconds'] / base['events']:.1f} µs",
                  f"{1e6 * ing.seconds / n:.1f} µs ({1e6 * lat[0.50] / 1000 / batch:.0f} µs of a p50 request)")
    table.add_row("CPU per event (that process)", f"{1e6 * base['cpu_s'] / base['events']:.1f} µs",
                  f"{1e6 * ing_cpu / n:.1f} µs ({100 * ing_cpu / ing.seconds:.0f} % of one core)")
    table.add_row("machine CPU busy (all processes)", f"{base['busy_cores']:.2f} of {os.cpu_count()} cores",
                  f"{ing.busy_cores:.2f} of {os.cpu_count()} cores")
    table.add_row("peak RSS (VmHWM) / idle RSS",
                  f"{base['peak_rss_kib'] / 1024:.0f} / {base['idle_rss_kib'] / 1024:.0f} MiB",
                  f"{ing_rss[0] / 1024:.0f} / {ing_rss[1] / 1024:.0f} MiB")
    console.print(table)
    ratio = ing_rate / base_rate
    verdict = "[green]goal met[/]" if ratio >= GOAL else "[red]below goal[/]"
    console.print(f"ingest / baseline = [bold]{100 * ratio:.0f} %[/] (goal ≥ {100 * GOAL:.0f} %): {verdict}")
    if ing.retries or ing.failures or ing.counts["accepted"] != n:
        console.print(f"[yellow]note:[/] {ing.retries} retried (429/503), {len(ing.failures)} failed attempts, "
                      f"counts {ing.counts}; first failure: {ing.failures[:1]}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ingest_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000, help="events per request")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent HTTP clients")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/attain_bench")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--keep-rate-limits", action="store_true", help="measure with ingest's default rate limits")
    args = p.parse_args(argv)
    env = {**os.environ, **crm_keys.env(), **registry_keys.env(),
           "DATABASE_URL": args.database_url, "KAFKA_BOOTSTRAP_SERVERS": args.bootstrap,
           "LOG_LEVEL": "WARNING"}
    if not args.keep_rate_limits:  # measure the pipeline, not the per-tenant limiter
        env |= {"RATE_LIMIT_REQUESTS_PER_S": "1000000", "RATE_LIMIT_REQUEST_BURST": "1000000",
                "RATE_LIMIT_EVENTS_PER_S": "1000000000", "RATE_LIMIT_EVENT_BURST": "1000000000"}
    console.print("[dim]local stack up...[/]")
    _python("-m", "deploy.local.stack", "up", env=env)
    console.print(host_description(args.database_url, PACKAGES))
    run_id = uuid.uuid4().hex[:8]
    slug = json.loads(_python("-m", "services.ingest", "tenants", "create", f"bench-{run_id}", "--timezone", "UTC",
                              env=env, capture=True).stdout)
    items = list(events(args.events, run_id))
    WORK.mkdir(parents=True, exist_ok=True)
    events_file = WORK / f"events-{run_id}.ndjson"
    events_file.write_bytes(ndjson(items))
    bodies = [ndjson(items[i:i + args.batch]) for i in range(0, len(items), args.batch)]
    warmup = ndjson(list(events(WARMUP_EVENTS, f"{run_id}-warmup", seed=8)))
    del items
    try:
        console.print(f"[dim]baseline: {args.events:,} records through aiokafka...[/]")
        base = json.loads(_python("-m", "benchmarks.kafka_baseline", str(events_file), slug["tenant"],
                                  "--bootstrap", args.bootstrap, env=env, capture=True).stdout)
    finally:
        events_file.unlink(missing_ok=True)
    port = free_port()
    proc = start_ingest(env, port)
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(drive(url, slug["token"], [warmup], 1))
        idle_rss, cpu_before = proc_status_kib(proc.pid, "VmRSS"), process_cpu_s(proc.pid)
        console.print(f"[dim]ingest: {len(bodies):,} requests, {args.concurrency} clients...[/]")
        ing = asyncio.run(drive(url, slug["token"], bodies, args.concurrency))
        ing_cpu, ing_peak = process_cpu_s(proc.pid) - cpu_before, peak_rss_kib(proc.pid)
    finally:
        stop_process(proc, grace_s=20)
    report(args.events, args.batch, args.concurrency, base, ing, ing_cpu, (ing_peak, idle_rss))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
