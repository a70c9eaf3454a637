"""The four services as real processes (`python -m services.<name>`), each replica on a port of its own (a
free one, found when the replica is first named), all on one database and one consumer-group prefix of the
run's own, so that a fault can kill, stop, pause or restart any of them, and their memory can be read.
Given a clock, every replica runs on it: each start sets `ATTAIN_CLOCK=scaled:<the clock's now>@1`, so a
restarted service does not go back in time (it lags the clock by its own start-up, the moment between
spawning and building its clock)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.clock import Clock
from tests.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".local" / "chaos-logs"
SERVICES = ("ingest", "kpi", "coaching", "recognition")
CONSUMERS = ("kpi", "coaching", "recognition")
GRACE_S = 30.0  # what Kubernetes gives them (terminationGracePeriodSeconds in deploy/k8s)


def rss_kib(pid: int | None) -> int | None:
    """A process's resident memory in KiB, from /proc (None when there is no such process)."""
    if pid is None:
        return None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()]
    return []


def _stat(pid: int) -> list[str] | None:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return None


def cpu_s(pid: int | None, *, tree: bool = False) -> float | None:
    """CPU seconds (user + system) the process used so far; with `tree`, its children's too: the live ones'
    and those it already waited for (PostgreSQL's backends come and go)."""
    if pid is None or (fields := _stat(pid)) is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    if tree:
        total += int(fields[13]) + int(fields[14])  # cutime, cstime: children already reaped
        total += sum(int(f[11]) + int(f[12]) for c in _children(pid) if (f := _stat(c)) is not None)
    return total / ticks


def pss_kib(pid: int | None) -> int | None:
    """Proportional memory of the process and its children in KiB (shared pages divided among those who
    map them): the honest figure for PostgreSQL, whose backends share its buffers."""
    if pid is None:
        return None
    total = 0
    for p in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total or None


@dataclass
class Replica:
    service: str
    index: int
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exit_codes: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int | None:
        """Resident memory now (None when not running)."""
        return rss_kib(self.proc.pid) if self.alive and self.proc is not None else None


class Fleet:
    """Replicas of the services for one run; `env` is what every one of them gets on top of os.environ."""

    def __init__(self, run: str, env: dict[str, str], clock: Clock | None = None) -> None:
        self.run, self.env, self.clock = run, env, clock
        self.replicas: dict[tuple[str, int], Replica] = {}
        # What a fault sets before a replica starts: a command its own is run under (`ip netns exec <ns>`) and
        # variables on top of `env` (libfaketime's), per (service, index).
        self.prefix: dict[tuple[str, int], list[str]] = {}
        self.extra_env: dict[tuple[str, int], dict[str, str]] = {}
        LOGS.mkdir(parents=True, exist_ok=True)

    def replica(self, service: str, index: int = 0) -> Replica:
        key = (service, index)
        if key not in self.replicas:
            self.replicas[key] = Replica(service, index, free_ports(1)[0])
        return self.replicas[key]

    def start(self, service: str, index: int = 0) -> Replica:
        r = self.replica(service, index)
        if r.alive:
            return r
        r.starts += 1
        log = (LOGS / f"{self.run}-{service}-{index}.log").open("ab")
        env = {**os.environ, **self.env, "HTTP_PORT": str(r.port), **self.extra_env.get((service, index), {})}
        if self.clock is not None:
            env["ATTAIN_CLOCK"] = f"scaled:{self.clock.now().isoformat()}@1"
        command = [*self.prefix.get((service, index), []), sys.executable, "-m", f"services.{service}"]
        r.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        return r

    def wait_ready(self, replicas: list[Replica], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for r in replicas:
            while True:
                assert r.proc is not None
                if r.proc.poll() is not None:
                    raise RuntimeError(f"{r.service}#{r.index} exited with {r.proc.returncode}; see {LOGS}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{r.url}/readyz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{r.service}#{r.index} not ready after {timeout:.0f}s; see {LOGS}")
                time.sleep(0.3)

    def start_all(self) -> None:
        self.wait_ready([self.start(s) for s in SERVICES])

    def kill(self, r: Replica, sig: int = signal.SIGKILL) -> None:
        if r.alive and r.proc is not None:
            r.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                code = r.proc.wait(timeout=GRACE_S + 5)
                r.exit_codes.append(code)

    def pause(self, r: Replica) -> None:
        if r.alive and r.proc is not None:
            r.proc.send_signal(signal.SIGSTOP)

    def resume(self, r: Replica) -> None:
        if r.alive and r.proc is not None:
            r.proc.send_signal(signal.SIGCONT)

    def stop_all(self) -> None:
        for r in self.replicas.values():
            if r.alive and r.proc is not None:
                r.proc.send_signal(signal.SIGCONT)
                r.proc.send_signal(signal.SIGTERM)
        for r in self.replicas.values():
            if r.proc is not None and r.proc.returncode is None:
                try:
                    r.exit_codes.append(r.proc.wait(timeout=GRACE_S + 5))
                except subprocess.TimeoutExpired:
                    r.proc.kill()
                    r.exit_codes.append(r.proc.wait())

    def memory(self) -> dict[str, int]:
        """KiB resident per running replica ("kpi#0": 81234)."""
        return {f"{r.service}#{r.index}": kib for r in self.replicas.values() if (kib := r.rss_kib()) is not None}

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far per running replica."""
        return {f"{r.service}#{r.index}": s for r in self.replicas.values()
                if r.alive and r.proc is not None and (s := cpu_s(r.proc.pid)) is not None}
