"""The pure parts of the whole-stack benchmark: CPU times parsed from /proc, CPU of processes that come
and go (PostgreSQL's backends), and latency percentiles.

`parse_stat` reads the text of `/proc/<pid>/stat`: the command name (field 2) is in parentheses and may
itself hold spaces and parentheses, so the fields are counted from the LAST ")". Times there are in clock
ticks (`os.sysconf("SC_CLK_TCK")`, 100 on Linux): `cpu_seconds` converts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from benchmarks.workload import percentile


@dataclass(frozen=True, slots=True)
class StatTimes:
    """The CPU fields of one `/proc/<pid>/stat`, in clock ticks, and the parent's pid."""

    ppid: int
    utime: int  # field 14: user time of the process
    stime: int  # field 15: system time
    cutime: int  # field 16: user time of the children it waited for (reaped)
    cstime: int  # field 17: system time of those


def parse_stat(text: str) -> StatTimes:
    """The CPU fields of a `/proc/<pid>/stat` line. ValueError if it is not one.

    >>> parse_stat("42 (post gres: a) b) S 7 42 42 0 -1 4194560 1 0 0 0 150 25 3 4 20 0 1 0").utime
    150
    """
    _, sep, rest = text.rpartition(")")
    fields = rest.split()
    if not sep or len(fields) < 15:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    # fields[0] is field 3 (state): field n of stat(5) is fields[n - 3]
    return StatTimes(ppid=int(fields[1]), utime=int(fields[11]), stime=int(fields[12]), cutime=int(fields[13]),
                     cstime=int(fields[14]))


def cpu_seconds(times: StatTimes, hz: int, *, reaped: bool = False) -> float:
    """User + system seconds of the process; with `reaped`, plus its children already waited for."""
    ticks = times.utime + times.stime + ((times.cutime + times.cstime) if reaped else 0)
    return ticks / hz


class CpuLedger:
    """CPU seconds used by a changing set of processes between `start` and the last `observe`.

    Feed it readings {pid: CPU seconds so far}. A process present at `start` counts from its reading
    then; one that appears later counts from zero (all its life falls inside the window); one that
    disappears keeps what it had used when last seen (what it used after that reading is lost: read
    often). A pid whose reading goes down is a new process under a reused pid: the old one's share
    is kept and the new one counts from zero.
    """

    def __init__(self) -> None:
        self._base: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._gone = 0.0  # what processes replaced under a reused pid had used
        self._started = False

    def start(self, reading: Mapping[int, float]) -> None:
        self._base, self._last, self._gone, self._started = dict(reading), dict(reading), 0.0, True

    def observe(self, reading: Mapping[int, float]) -> None:
        if not self._started:
            raise RuntimeError("observe() before start()")
        for pid, seconds in reading.items():
            if pid in self._last and seconds < self._last[pid]:
                self._gone += self._last[pid] - self._base[pid]
                self._base[pid] = 0.0
            self._base.setdefault(pid, 0.0)
            self._last[pid] = seconds

    def total(self) -> float:
        return self._gone + sum(self._last[pid] - self._base[pid] for pid in self._last)

    @property
    def processes(self) -> int:
        """How many processes were seen since `start`."""
        return len(self._last)


@dataclass(frozen=True, slots=True)
class Summary:
    """Nearest-rank percentiles of a set of latencies (seconds), and how many there were."""

    n: int
    p50: float
    p95: float
    p99: float
    max: float

    def as_ms(self) -> dict[str, float | int]:
        return {"n": self.n, "p50_ms": 1000 * self.p50, "p95_ms": 1000 * self.p95, "p99_ms": 1000 * self.p99,
                "max_ms": 1000 * self.max}


def summary(values: Sequence[float]) -> Summary:
    """p50, p95, p99 (nearest rank: always one of the values) and the maximum; zeros for none."""
    return Summary(len(values), percentile(values, 0.50), percentile(values, 0.95), percentile(values, 0.99),
                   max(values, default=0.0))


def per_event_us(cpu_s: float, events: int) -> float:
    """CPU microseconds per event; 0 when there were none."""
    return 1e6 * cpu_s / events if events > 0 else 0.0
