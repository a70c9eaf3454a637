"""The four services of a checkout as processes, and what the whole-stack benchmark reads of them from outside.

A `Checkout` is a directory holding the project's code (this one, or another commit's, e.g. a
`git archive` or `git worktree` of it) and the Python that runs it: its own `.venv` if it has one,
else this one's. `python -m services.<name>` run with the checkout as working directory imports the
checkout's `services` and `shared` (the working directory comes first on `sys.path`), so one harness
measures any version. `Services` starts them as `tests/chaos/fleet.py` does, on free ports.

From outside, the benchmark reads: each consumer group's stored offsets (`<service>.consumer_offsets`,
written in the transaction that applied the records) against the topics' end offsets, each outbox's
size, and CPU times from /proc: each service's process, the Kafka JVM, every process of the PostgreSQL
cluster (the postmaster and all its children, those already reaped included), and separately the
backends connected to the benchmark's own database.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.proc import cpu_seconds, parse_stat
from benchmarks.workload import free_port
from tests.chaos.fleet import CONSUMERS, SERVICES, Fleet, Replica

HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Checkout:
    """Where the services' code is, and the Python that runs it."""

    root: Path
    python: str

    @classmethod
    def at(cls, root: Path, python: str | None = None) -> Checkout:
        root = root.resolve()
        if not (root / "services" / "kpi" / "__main__.py").is_file():
            raise SystemExit(f"{root} is not a checkout of the project (no services/kpi/__main__.py)")
        own = root / ".venv" / "bin" / "python"
        return cls(root, python or (str(own) if own.exists() else sys.executable))

    def describe(self) -> str:
        """Its commit and uncommitted files (git), or just its path when it is not a git work tree."""
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(self.root), *args], capture_output=True, text=True,  # noqa: S603, S607
                                  check=False).stdout.strip()

        commit = git("rev-parse", "--short", "HEAD")
        if not commit:
            return f"{self.root} (not a git work tree), Python {self.python}"
        dirty = len(git("status", "--short", "--", "services", "shared").splitlines())
        changes = f" with {dirty} uncommitted files in services/, shared/" if dirty else ""
        return f"{self.root} at {commit}{changes}, Python {self.python}"


class Services(Fleet):
    """One replica of each service, from `checkout`, each on a free port, logs under `logs`."""

    def __init__(self, run: str, env: dict[str, str], checkout: Checkout, logs: Path) -> None:
        super().__init__(run, env)
        self.checkout, self.logs = checkout, logs
        logs.mkdir(parents=True, exist_ok=True)

    def replica(self, service: str, index: int = 0) -> Replica:
        key = (service, index)
        if key not in self.replicas:
            self.replicas[key] = Replica(service, index, free_port())
        return self.replicas[key]

    def start(self, service: str, index: int = 0) -> Replica:
        r = self.replica(service, index)
        if r.alive:
            return r
        r.starts += 1
        with (self.logs / f"{service}.log").open("ab") as log:
            r.proc = subprocess.Popen([self.checkout.python, "-m", f"services.{service}"],  # noqa: S603 - ours
                                      cwd=self.checkout.root, env={**os.environ, **self.env, "HTTP_PORT": str(r.port)},
                                      stdout=log, stderr=subprocess.STDOUT)
        return r

    def pids(self) -> dict[str, int]:
        """The pid of each running service, by name."""
        return {r.service: r.proc.pid for r in self.replicas.values() if r.alive and r.proc is not None}


def create_tenant(checkout: Checkout, slug: str, timezone: str, currency: str, env: dict[str, str]) -> str:
    """`python -m services.ingest tenants create` of the checkout; the admin token it prints."""
    out = subprocess.run([checkout.python, "-m", "services.ingest", "tenants", "create", slug, "--timezone",  # noqa: S603
                          timezone, "--currency", currency], cwd=checkout.root, check=True, capture_output=True,
                         text=True, env={**os.environ, **env})
    token: str = json.loads(out.stdout)["token"]
    return token


def process_cpu(pid: int | None, *, tree: bool = False) -> float | None:
    """CPU seconds of a process so far; with `tree`, its children's too (live and reaped). None when gone."""
    if pid is None:
        return None
    try:
        times = parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError):
        return None
    total = cpu_seconds(times, HZ, reaped=tree)
    if tree:
        total += sum(cpu for child in _children(pid) if (cpu := process_cpu(child)) is not None)
    return total


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    return []


async def postmaster_pid(conn: asyncpg.Connection) -> int | None:
    """The PostgreSQL server's main process: the parent of this connection's backend (same host only)."""
    return _parent(await conn.fetchval("SELECT pg_backend_pid()"))


def _parent(pid: int) -> int | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text()).ppid
    except (OSError, ValueError):
        return None


DRIVER_APP = "attain-bench-driver"  # the application_name of the benchmark's own connections


async def driver_connection(url: str) -> asyncpg.Connection:
    """A connection of the benchmark's: named, so that `backend_cpu` leaves its backend out."""
    conn: asyncpg.Connection = await asyncpg.connect(url, server_settings={"application_name": DRIVER_APP})
    return conn


async def backend_cpu(conn: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds so far of every backend connected to this database (the services' pools), by pid, except
    the benchmark's own (`driver_connection`)."""
    pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND application_name IS DISTINCT FROM $1", DRIVER_APP)
    return {r["pid"]: cpu for r in pids if (cpu := process_cpu(r["pid"])) is not None}


@dataclass(frozen=True)
class Backlog:
    """What the consumers have not done yet."""

    behind: dict[str, int]  # per consumer: records on its topics not applied (beyond a marker per partition)
    outboxes: int  # rows not yet published, all outboxes together

    @property
    def settled(self) -> bool:
        return not self.outboxes and not any(self.behind.values())


async def backlog(conn: asyncpg.Connection, consumer: AIOKafkaConsumer, prefix: str) -> Backlog:
    """Each consumer group's stored offsets against the end offsets of the partitions it has stored (asked
    through `consumer`, a started consumer of no group, kept for the run: a new client per question would
    load the broker being measured).

    A transactional producer's commit marker takes an offset that is never delivered: up to one record per
    partition is not counted as behind."""
    stored: dict[str, dict[tuple[str, int], int]] = {}
    for service in CONSUMERS:
        with contextlib.suppress(asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            rows = await conn.fetch(f"SELECT topic, partition, next_offset FROM {service}.consumer_offsets"
                                    " WHERE group_id = $1", f"{prefix}-{service}")
            stored[service] = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    tps = sorted({TopicPartition(t, p) for done in stored.values() for t, p in done})
    ends = {(tp.topic, tp.partition): int(o) for tp, o in (await consumer.end_offsets(tps)).items()} if tps else {}
    behind = {service: sum(max(0, ends.get(tp, at) - at - 1) for tp, at in done.items())
              for service, done in stored.items()}
    outboxes = 0
    for service in CONSUMERS:
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{service}.outbox"):
            outboxes += int(await conn.fetchval(f"SELECT count(*) FROM {service}.outbox"))
    return Backlog(behind, outboxes)


__all__ = ["SERVICES", "Backlog", "Checkout", "Services", "backend_cpu", "backlog", "create_tenant",
           "driver_connection", "postmaster_pid", "process_cpu"]
