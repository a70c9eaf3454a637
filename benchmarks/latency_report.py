"""What the whole-stack latency benchmark prints: per rate, the probes' latencies and each process's CPU."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.proc import per_event_us, summary

console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
# Processes that are part of the stack (their sum is "stack total"); the backends are a part of the cluster.
SUBSET = "postgres: backends of this database"
DRIVER = "driver (this process)"


def report(results: dict[str, Any]) -> None:
    steps: list[dict[str, Any]] = results["steps"]
    console.print(f"checkout: {results['checkout']}")
    if results.get("env"):
        console.print(f"extra environment of the services: {results['env']}")
    load = Table(title="load and latency per rate (ingest accepted → first committed record on the topic; "
                       "nearest-rank percentiles over the probes seen)")
    for col in ("rate asked", "events accepted", "load s", "rate achieved", "probes", "→ attainment p50 / p95 / p99 / "
                "max (seen)", "→ celebration p50 / p95 / p99 / max (seen)", "settled after load"):
        load.add_column(col, justify="right")
    for s in steps:
        others = {k: v for k, v in s["answers"].items() if k != "accepted"}
        if others:
            console.print(f"[yellow]note:[/] at {s['rate']:,}/s ingest did not accept every event: {others}")
        settled = "not within the drain" if s["settled_after_s"] is None else f"{s['settled_after_s']:.1f} s"
        load.add_row(f"{s['rate']:,}/s", f"{s['accepted']:,}", f"{s['seconds']:.1f}",
                     f"{s['accepted'] / max(s['seconds'], 1e-9):,.0f}/s", str(s["probes"]),
                     _latency(s["to_attainment"], s["probes"]), _latency(s["to_celebration"], s["probes"]), settled)
    console.print(load)
    names = sorted({n for s in steps for n in s["cpu_s"]}, key=lambda n: (n == DRIVER, n == SUBSET, n))
    cpu = Table(title=f"CPU µs per ingested event (user + system, /proc), over each rate's window (first request "
                      f"until settled); % = share of one core; {os.cpu_count()} cores")
    cpu.add_column("process", justify="left")
    idle = results.get("idle")
    if idle:
        cpu.add_column(f"idle ({idle['seconds']:.0f} s)", justify="right")
    for s in steps:
        cpu.add_column(f"{s['rate']:,}/s ({s['window_s']:.0f} s)", justify="right")
    def stack(cpu_s: dict[str, float]) -> float:
        return sum(v for n, v in cpu_s.items() if n not in (SUBSET, DRIVER))

    for name in names:
        idle_cell = [_idle(idle, idle["cpu_s"].get(name))] if idle else []
        cpu.add_row(name, *idle_cell, *(_cpu(s, s["cpu_s"].get(name)) for s in steps))
    cpu.add_row("[bold]stack total[/] (services, Kafka, all of PostgreSQL)",
                *([_idle(idle, stack(idle["cpu_s"]))] if idle else []), *(_cpu(s, stack(s["cpu_s"])) for s in steps))
    console.print(cpu)
    for s in steps:
        if s.get("attainment_offsets"):
            console.print(f"at {s['rate']:,}/s: kpi.attainment.v1 grew by {s['attainment_offsets']:,} offsets (records"
                          f" and transaction markers) for {s['accepted']:,} events accepted: at most"
                          f" {s['attainment_offsets'] / max(s['accepted'], 1):.3f} attainment events per input event")
    for s in steps:
        behind = {k: v for k, v in s["behind_at_end"].items() if v}
        if s["settled_after_s"] is None:
            console.print(f"[yellow]note:[/] at {s['rate']:,}/s the stack had not settled when the drain ended: "
                          f"records not applied {behind or 'none'} (or outboxes not empty, or probes not seen); "
                          "its CPU window ends there")


def _idle(idle: dict[str, Any], seconds: float | None) -> str:
    return "—" if seconds is None else f"{100 * seconds / idle['seconds']:.0f} % of a core"


def _latency(values: list[float], probes: int) -> str:
    if not values:
        return f"— (0 of {probes})"
    s = summary(values)
    return f"{_ms(s.p50)} / {_ms(s.p95)} / {_ms(s.p99)} / {_ms(s.max)} ({s.n} of {probes})"


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:,.0f} ms"


def _cpu(step: dict[str, Any], seconds: float | None) -> str:
    if seconds is None:
        return "—"
    share = 100 * seconds / max(step["window_s"], 1e-9)
    return f"{per_event_us(seconds, step['accepted']):,.0f} µs ({share:.0f} %)"
