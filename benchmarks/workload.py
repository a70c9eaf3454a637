"""What both sides of the benchmark send, and the small measurements the benchmarks share.

`events(n)` is a deterministic mix of `deal.upserted` (30 %) and `activity.logged` (70 %) for 200
reps, every id unique per run. `peak_rss_kib` reads VmHWM, the high-water mark of a process's
resident set, from /proc (Linux only).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import random
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg

from deploy.local.kafka_setup import pinned_kafka_version

REPS = 200
DEAL_SHARE = 0.3
KINDS = ("call", "email", "meeting", "demo", "task", "other")
EPOCH = datetime(2026, 10, 1, tzinfo=UTC)


def events(count: int, run: str, seed: int = 7) -> Iterator[dict[str, Any]]:
    """`count` valid canonical events with ids `bench-<run>-<n>`: deals and activities, mixed."""
    rnd = random.Random(seed)  # noqa: S311 - reproducible load, not secrecy
    for n in range(count):
        at = EPOCH + timedelta(seconds=n * 37 % 7_776_000)
        stamp = at.isoformat().replace("+00:00", "Z")
        rep = f"rep-{rnd.randrange(REPS):03d}"
        event_id = f"bench-{run}-{n}"
        if rnd.random() < DEAL_SHARE:
            stage = rnd.choice(("open", "open", "won", "lost"))
            data: dict[str, Any] = {"deal_id": f"deal-{run}-{n}", "rep_id": rep,
                                    "amount": f"{rnd.randrange(500, 250_000)}.{rnd.randrange(100):02d}",
                                    "currency": "EUR", "stage": stage, "stage_label": stage.title(),
                                    "created_at": stamp, "updated_at": stamp}
            if stage != "open":
                data["closed_at"] = stamp
            yield {"type": "deal.upserted", "id": event_id, "source": "bench", "time": stamp, "data": data}
        else:
            data = {"activity_id": f"act-{run}-{n}", "rep_id": rep, "kind": rnd.choice(KINDS),
                    "occurred_at": stamp, "duration_s": rnd.randrange(30, 3600)}
            yield {"type": "activity.logged", "id": event_id, "source": "bench", "time": stamp, "data": data}


def ndjson(items: Sequence[dict[str, Any]]) -> bytes:
    """One NDJSON body: one compact JSON object per line."""
    return b"".join(json.dumps(item, separators=(",", ":")).encode() + b"\n" for item in items)


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1) of `values`: the smallest value with at least that
    share of the values at or below it (rank ceil(share * n)); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(share * len(ordered) - 1e-9)  # 1e-9: 0.07 * 100 is 7.000000000000001 in floating point
    return ordered[max(0, min(len(ordered), rank) - 1)]


def proc_status_kib(pid: int | str, field: str) -> int:
    """A `kB` field of /proc/<pid>/status (VmHWM: peak resident set; VmRSS: current), in KiB; 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def peak_rss_kib(pid: int | str = "self") -> int:
    return proc_status_kib(pid, "VmHWM")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, summed over CPUs (/proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def busy_cores(before: tuple[float, float], after: tuple[float, float], cpus: int) -> float:
    """How many cores were busy on average between two `machine_cpu()` readings."""
    total = after[1] - before[1]
    return 0.0 if total <= 0 else cpus * (after[0] - before[0]) / total


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port nothing listens on now (picked by the kernel)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; nothing if it already ended."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def host_description(database_url: str, packages: Sequence[str]) -> str:
    """CPUs, Python, Kafka and PostgreSQL versions and the packages measured: the header of a report."""
    async def pg() -> str:
        conn = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in packages)
    return (f"CPUs: {os.cpu_count()} ({len(os.sched_getaffinity(0))} usable), {cpu}\n"
            f"Python {platform.python_version()} on {platform.platform()}; Kafka {pinned_kafka_version()}; "
            f"PostgreSQL {asyncio.run(pg())}\n{versions}")
