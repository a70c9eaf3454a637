"""kpi as a black box: a fresh database, the process, and what can be seen of it from outside.

Of kpi the benchmark reads only: `kpi.consumer_offsets` (how far its group has applied the topics,
written in the transaction that applied them), `kpi.deals` (a deal's stored version, for the lag),
the Prometheus counter `attain_consumed_messages_total` (records applied per topic) and, once at the
end, its won revenue figures in `kpi.attainment`, to check them. It runs `python -m services.kpi`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.kpi_kafka import Offsets
from benchmarks.workload import busy_cores, machine_cpu, peak_rss_kib, process_cpu_s, stop_process
from services.kpi.app import SPEC  # this checkout's kpi (define_kpis: --kpis needs a kpi that has KPIs)
from shared import db

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.1
STALL_S = 180.0
TRACE_S = 5.0


@dataclass
class CatchUp:
    """kpi from a cold start on a pre-loaded backlog until its group has applied every record of the span.

    Records are counted from kpi's stored offsets against where its group was committed to start:
    every record it consumed, also those other producers wrote to the topics while it ran.
    """

    records: int = 0  # records of the span this run had to apply
    started: float = 0.0  # perf_counter when the process was started
    ready_s: float = 0.0  # until /readyz answered 200
    first: float = 0.0  # when progress was first seen in kpi.consumer_offsets
    first_records: int = 0  # records consumed by then (not timed)
    first_by_topic: dict[str, int] = field(default_factory=dict)  # the same, per topic
    done: float = 0.0  # when every partition had reached the span's last record
    done_records: int = 0  # records consumed by then, the span's and any others
    by_topic: dict[str, int] = field(default_factory=dict)  # records consumed by then, per topic
    cpu_s: float = 0.0  # kpi's process over [first, done]
    pg_cpu_s: float = 0.0  # its PostgreSQL backends over [first, done]
    busy_cores: float = 0.0  # the whole machine over [first, done]
    peak_rss_kib: int = 0
    applied: dict[str, int] = field(default_factory=dict)  # per topic, from /metrics, at done
    trace: list[tuple[float, int]] = field(default_factory=list)  # (seconds after first, records) every 5 s
    in_span: int = 0  # records of the span applied at done: all of them unless cut short
    settled: float = 0.0  # when every figure the span moved was also out (no parked key, outbox empty)
    figures: int = 0  # kpi.attainment.updated events enqueued by then (its /metrics)
    failure: str | None = None

    @property
    def complete(self) -> bool:
        return self.in_span >= self.records

    @property
    def seconds(self) -> float:
        return self.done - self.first

    @property
    def timed_records(self) -> int:
        return self.done_records - self.first_records

    def timed_of(self, topic: str) -> int:
        """Records of `topic` consumed in the timed interval (after the first committed batch)."""
        return self.by_topic.get(topic, 0) - self.first_by_topic.get(topic, 0)

    @property
    def outside(self) -> int:
        """Records consumed that were not in the span (other producers, during the run)."""
        return self.done_records - self.records


@dataclass(frozen=True)
class Progress:
    in_span: int  # records of the span applied
    consumed: int  # all records applied (stored offsets minus committed start)
    by_topic: dict[str, int]
    complete: bool  # every partition reached its target


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def fresh_database(url: str) -> None:
    """Drop and create the benchmark's own database, so that every kpi run starts cold."""
    parts = urlsplit(url)
    conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        name = database_name(url).replace('"', '""')
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def define_kpis(url: str, tenant: str, kpis: dict[str, dict[str, object]]) -> None:
    """kpi's schema (its migrations, as the service would apply them) and the tenant's KPIs in it, before kpi
    starts: what `PUT /v1/kpis/{id}` leaves on an empty tenant (issue 22's benchmark: `--kpis`)."""
    pool = await db.create_pool(url, SPEC.schema, min_size=1, max_size=1)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        async with pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO custom_kpis (tenant, kpi_id, definition, defined_at, updated_at)"
                " VALUES ($1, $2, $3::jsonb, now(), now())",
                [(tenant, kpi_id, json.dumps(definition)) for kpi_id, definition in kpis.items()])
    finally:
        await pool.close()


def start(env: dict[str, str], log: Path, cwd: Path = ROOT, python: str = sys.executable) -> subprocess.Popen[bytes]:
    """`python -m services.kpi` run in `cwd` (a checkout: its own `services` and `shared` are imported), ready
    (its consumers joined) or SystemExit with where to look."""
    with log.open("wb") as out:
        proc = subprocess.Popen([python, "-m", "services.kpi"], cwd=cwd, env=env,  # noqa: S603 - ours
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{env['HTTP_PORT']}/readyz"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kpi exited with {proc.returncode}; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        time.sleep(0.2)
    stop_process(proc)
    raise SystemExit(f"kpi not ready after 120 s; see {log}")


async def backend_cpu(conn: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds so far of the other PostgreSQL backends on this database (kpi's pool), by pid."""
    pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND pid <> pg_backend_pid()")
    return {r["pid"]: process_cpu_s(r["pid"]) for r in pids}


def applied(port: str, group: str) -> dict[str, int]:
    """Records kpi's group applied so far, per topic (its Prometheus counter); empty if unreadable."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    found: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "attain_consumed_messages":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_total") and labels.get("group") == group and labels.get("outcome") == "applied":
                found[labels["topic"]] = found.get(labels["topic"], 0) + int(sample.value)
    return found


def figures_emitted(port: str) -> int:
    """kpi.attainment.updated events kpi enqueued so far (its Prometheus counter); 0 if unreadable."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0
    for family in text_string_to_metric_families(text):
        if family.name == "attain_kpi_figures_emitted":
            return int(sum(s.value for s in family.samples if s.name.endswith("_total")))
    return 0


async def progress(conn: asyncpg.Connection, group: str, begin: Offsets, targets: Offsets) -> Progress:
    """How far `group` is: its stored offsets against where it was committed to `begin` and each target."""
    try:
        rows = await conn.fetch("SELECT topic, partition, next_offset FROM kpi.consumer_offsets WHERE group_id = $1",
                                group)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return Progress(0, 0, {}, complete=False)  # kpi has not migrated its schema yet
    stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    by_topic: dict[str, int] = {}
    for tp, at in stored.items():
        by_topic[tp[0]] = by_topic.get(tp[0], 0) + max(0, at - begin.get(tp, at))
    in_span = sum(max(0, min(stored.get(tp, 0), end) - begin[tp]) for tp, end in targets.items())
    return Progress(in_span, sum(by_topic.values()), by_topic,
                    complete=all(stored.get(tp, 0) >= end for tp, end in targets.items()))


async def catch_up(proc: subprocess.Popen[bytes], url: str, port: str, group: str, begin: Offsets,
                   targets: Offsets, records: int, started: float, limit_s: float) -> CatchUp:
    """Poll kpi's stored offsets every 0.1 s until every partition reached its target, or `limit_s`
    after the first batch: then the figures are those of the part it applied (`complete` is False)."""
    run = CatchUp(records=records, started=started, ready_s=time.perf_counter() - started)
    conn = await asyncpg.connect(url)
    try:
        last_change, last_seen, cpu0, pg0, machine0 = time.perf_counter(), -1, 0.0, {}, machine_cpu()
        while True:
            now = time.perf_counter()
            seen = await progress(conn, group, begin, targets)
            if seen.consumed and not run.first:
                run.first, run.first_records, cpu0, pg0, machine0 = now, seen.consumed, process_cpu_s(proc.pid), \
                    await backend_cpu(conn), machine_cpu()
                run.first_by_topic = seen.by_topic
            if run.first and (not run.trace or now - run.first - run.trace[-1][0] >= TRACE_S):
                run.trace.append((now - run.first, seen.consumed - run.first_records))
            if seen.complete or (run.first and now - run.first > limit_s):
                run.done, run.done_records, run.by_topic, run.in_span = now, seen.consumed, seen.by_topic, \
                    seen.in_span
                run.trace.append((run.seconds, run.timed_records))
                break
            if seen.in_span != last_seen:
                last_change, last_seen = now, seen.in_span
            if proc.poll() is not None:
                run.failure = f"kpi exited with {proc.returncode} after {seen.in_span:,} of {records:,} records"
                return run
            if now - last_change > STALL_S:
                run.failure = f"no progress for {STALL_S:.0f} s at {seen.in_span:,} of {records:,} records"
                return run
            await asyncio.sleep(POLL_S)
        pg1 = await backend_cpu(conn)
        run.cpu_s = process_cpu_s(proc.pid) - cpu0
        run.pg_cpu_s = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items())
        run.busy_cores = busy_cores(machine0, machine_cpu(), os.cpu_count() or 1)
        run.peak_rss_kib = peak_rss_kib(proc.pid)
        run.applied = applied(port, group)
        while time.perf_counter() - run.done < STALL_S:  # the figures: coalesced under backlog, then sent
            owed = await owed_figures(conn)
            if not owed:
                run.settled = time.perf_counter()
                break
            await asyncio.sleep(POLL_S)
        run.figures = figures_emitted(port)
        return run
    finally:
        await conn.close()


async def owed_figures(conn: asyncpg.Connection) -> int:
    """Figures kpi still owes the topic: its outbox, plus the parked figures of a kpi that parks them
    (the pacer's `kpi.pending_figures`, gone since kpi publishes each batch's figures with the batch)."""
    parked = await conn.fetchval("SELECT to_regclass('kpi.pending_figures') IS NOT NULL")
    query = "SELECT (SELECT count(*) FROM kpi.outbox)" + (" + (SELECT count(*) FROM kpi.pending_figures)"
                                                          if parked else "")
    return int(await conn.fetchval(query))


async def won_revenue(url: str, tenant: str) -> dict[tuple[str, str], Decimal] | str:
    """kpi's won revenue per (rep, quarter) for `tenant`, or why it could not be read."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT scope_id, period, actual FROM kpi.attainment WHERE tenant = $1"
                                " AND scope = 'rep' AND metric = 'won_revenue' AND period LIKE '____-Q_'", tenant)
    except asyncpg.PostgresError as err:
        return f"kpi.attainment not readable: {err}"
    finally:
        await conn.close()
    return {(r["scope_id"], r["period"]): Decimal(r["actual"]) for r in rows}


def compare(expected: dict[tuple[str, str], Decimal], found: dict[tuple[str, str], Decimal]) -> tuple[int, int]:
    """(matching, total) over every (rep, quarter) either side has; a missing figure counts as 0."""
    keys = {k for k, v in expected.items() if v} | {k for k, v in found.items() if v}
    same = sum(1 for k in keys if expected.get(k, Decimal(0)) == found.get(k, Decimal(0)))
    return same, len(keys)
