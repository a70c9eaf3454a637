"""What the kpi benchmark prints: one table of records/s, the ratios against the goals, checks, lag."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import kpi_service as kpi
from benchmarks.kpi_lag import Lag
from benchmarks.workload import percentile
from shared import topics

RAW_GOAL, QUIX_GOAL = 0.25, 1.0
Won = dict[tuple[str, str], Decimal]
console = Console(highlight=False, width=None if sys.stdout.isatty() else 130)


@dataclass
class Results:
    """Everything one run measured, in the order it was measured."""

    events: int
    reps: int
    counts: dict[str, int]  # the workload's composition
    expected: Won  # won revenue per (rep, quarter) of the pre-load, from the workload itself
    sent: int = 0
    preload_s: float = 0.0
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # count / decode / validate
    quix: dict[str, Any] = field(default_factory=dict)
    deals_run: kpi.CatchUp | None = None
    full: kpi.CatchUp | None = None
    figures: Won | str = "not checked, it did not catch up"  # kpi's won revenue once caught up, or why not
    lag: Lag | None = None
    lag_asked: int = 0  # the rate asked for; the stream ran at lag.rate


@dataclass
class Row:
    """One contender's line of the table."""

    name: str
    reads: str
    records: int
    seconds: float
    cpu_s: float
    peak_rss_kib: int
    note: str = ""

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def report(res: Results) -> None:
    by_topic: dict[str, int] = res.raw["count"]["by_topic"]
    console.print(f"pre-load: {res.sent:,} records ({res.events:,} events + {res.sent - res.events:,} roster and "
                  f"targets) in {res.preload_s:.1f} s ({res.sent / res.preload_s:,.0f} records/s); the span every "
                  "contender reads: " + ", ".join(f"{t} {n:,}" for t, n in by_topic.items()))
    console.print("workload: " + ", ".join(f"{k} {v:,}" for k, v in sorted(res.counts.items())))
    names = {"count": "aiokafka, count only", "decode": "aiokafka + CloudEvent decode",
             "validate": "aiokafka + decode + pydantic"}
    raw = [Row(names[mode], "4 sales topics", r["timed_records"], r["seconds"], r["cpu_s"], r["peak_rss_kib"])
           for mode, r in res.raw.items()]
    quix = Row("Quix Streams won_revenue", "sales.deals.v1", res.quix["timed_records"], res.quix["seconds"],
               res.quix["cpu_s"], res.quix["peak_rss_kib"])
    full, deals = _kpi_row(res.full, "kpi (services.kpi)", "4 sales topics"), \
        _kpi_row(res.deals_run, "kpi, deals run", "deals, roster, targets")
    table = Table(title=f"{res.events:,} events, {res.reps} reps: records/s once data flows (kpi: from its first "
                        "committed batch to its last record)")
    for col in ("contender", "reads", "records timed", "seconds", "records/s", "CPU / record", "% of a core",
                "peak RSS"):
        table.add_column(col, justify="left" if col in ("contender", "reads") else "right")
    for row in [r for r in (full, deals) if r is not None] + raw + [quix]:
        table.add_row(row.name, row.reads, f"{row.records:,}", f"{row.seconds:.1f}", f"[bold]{row.rate:,.0f}[/]",
                      f"{1e6 * row.cpu_s / max(row.records, 1):.1f} µs {row.note}".strip(),
                      f"{100 * row.cpu_s / row.seconds:.0f} %" if row.seconds else "—",
                      f"{row.peak_rss_kib / 1024:.0f} MiB")
    console.print(table)
    for run, label in ((res.full, "kpi"), (res.deals_run, "kpi deals run")):
        if run is not None and run.failure:
            console.print(f"[red]{label} failed:[/] {run.failure}")
    if full is not None and res.full is not None:
        side = sum(by_topic.get(t, 0) for t in (topics.ROSTER.name, topics.TARGETS.name))
        _ratios(full, raw, quix, deals, side)
        _kpi_notes(res.full)
    _checks(res.expected, res.figures, res.quix)
    if res.lag is not None:
        _lag(res.lag, res.lag_asked, full.rate if full is not None else 0.0)


def _verdict(ratio: float, goal: float, strict: bool) -> str:
    met = ratio > goal if strict else ratio >= goal
    return "[green]goal met[/]" if met else "[red]below goal[/]"


def _kpi_row(run: kpi.CatchUp | None, name: str, reads: str) -> Row | None:
    if run is None or run.failure is not None:
        return None
    if not run.complete:
        name += f" [yellow](stopped at {run.in_span:,} of {run.records:,})[/]"
    return Row(name, reads, run.timed_records, run.seconds, run.cpu_s, run.peak_rss_kib,
               f"+ PostgreSQL {1e6 * run.pg_cpu_s / max(run.timed_records, 1):.0f} µs")


def _ratios(full: Row, raw: list[Row], quix: Row, deals: Row | None, side: int) -> None:
    count, decode, validate = (r.rate for r in raw)
    ratio = full.rate / count
    console.print(f"kpi / raw consume = [bold]{100 * ratio:.1f} %[/] (goal ≥ {100 * RAW_GOAL:.0f} %): "
                  f"{_verdict(ratio, RAW_GOAL, strict=False)}; kpi / (raw + decode) = {100 * full.rate / decode:.1f} %;"
                  f" kpi / (raw + decode + pydantic) = {100 * full.rate / validate:.1f} %")
    ratio = full.rate / quix.rate
    console.print(f"kpi / Quix Streams = [bold]{ratio:.3f}[/] (goal > {QUIX_GOAL:.0f}; kpi's records/s over all four "
                  f"topics, Quix's over the deals): {_verdict(ratio, QUIX_GOAL, strict=True)}")
    if deals is not None:
        ratio = deals.rate / quix.rate
        console.print(f"kpi deals run / Quix Streams = [bold]{ratio:.3f}[/] (deal records on both sides; kpi's "
                      f"also include {side:,} roster and target records): {_verdict(ratio, QUIX_GOAL, strict=True)}")


def _kpi_notes(run: kpi.CatchUp) -> None:
    total = run.done - run.started
    others = run.busy_cores - (run.cpu_s + run.pg_cpu_s) / max(run.seconds, 1e-9)
    until = "caught up" if run.complete else "stopped"
    console.print(f"kpi cold start: ready in {run.ready_s:.1f} s; process start to {until} {total:.1f} s = "
                  f"{run.done_records / total:,.0f} records/s overall. Meanwhile the machine was busy "
                  f"{run.busy_cores:.2f} of {os.cpu_count()} cores: kpi {run.cpu_s / max(run.seconds, 1e-9):.2f}, "
                  f"its PostgreSQL backends {run.pg_cpu_s / max(run.seconds, 1e-9):.2f}, everything else (Kafka, "
                  f"WAL writer, the poller, other users) {others:.2f}")
    if run.outside > 0:
        console.print(f"[yellow]note:[/] of the {run.done_records:,} records kpi consumed until it caught up, "
                      f"{run.outside:,} were not the benchmark's: other producers wrote to the sales topics while it "
                      f"ran (per topic: {run.by_topic}). They are real work and are counted in its records/s.")
    if run.settled:
        out = run.settled - run.first
        console.print(f"kpi until every figure was out too (no parked key, outbox published): {out:.1f} s = "
                      f"{run.timed_records / max(out, 1e-9):,.0f} records/s; {run.figures:,} kpi.attainment.updated "
                      f"events ({run.figures / max(run.done_records, 1):.2f} per record applied: one per changed "
                      f"(scope, period, metric) per flush; flushes coalesce batches under backlog)")
    elif run.complete:
        console.print("[yellow]note:[/] kpi's parked figures and outbox were not drained within "
                      f"{kpi.STALL_S:.0f} s of catching up")
    if run.applied:
        console.print(f"[dim]kpi's /metrics, records applied: {run.applied}[/]")
    console.print(f"kpi records/s through the run, by fifths of its records: {_fifths(run.trace)}")
    if not run.complete:
        console.print(f"[yellow]note:[/] kpi was stopped (--kpi-limit) after {run.seconds:,.0f} s, at {run.in_span:,} "
                      f"of the span's {run.records:,} records: its figures are those of that part")


def _fifths(trace: list[tuple[float, int]]) -> str:
    """records/s in each fifth of the records applied, from the (seconds, records) trace."""
    if len(trace) < 2:
        return "too short to tell"
    total, rates, last = trace[-1][1], [], trace[0]
    for k in range(1, 6):
        point = next((p for p in trace if p[1] >= k * total / 5), trace[-1])
        if point[0] > last[0]:
            rates.append(f"{(point[1] - last[1]) / (point[0] - last[0]):,.0f}")
            last = point
    return " → ".join(rates)


def _checks(expected: Won, figures: Won | str, quix: dict[str, Any]) -> None:
    quix_won = {(rep, q): Decimal(v) for rep, q, v in quix["won"]}
    same, total = kpi.compare(expected, quix_won)
    line = f"won_revenue per (rep, quarter) equal to the workload's own: Quix Streams {same:,} of {total:,}"
    if isinstance(figures, str):
        console.print(f"{line}; kpi: {figures}")
    else:
        same, total = kpi.compare(expected, figures)
        console.print(f"{line}; kpi {same:,} of {total:,} (read once caught up, before the live stream)")


def _lag(lag: Lag, asked: int, kpi_rate: float) -> None:
    p50, p99 = (1000 * percentile(lag.lags, q) for q in (0.50, 0.99))
    worst = 1000 * max(lag.lags, default=0.0)
    console.print(f"kpi lag, publish → row in kpi.deals: p50 [bold]{p50:,.0f} ms[/], p99 [bold]{p99:,.0f} ms[/], "
                  f"max {worst:,.0f} ms over {len(lag.lags):,} of {lag.samples:,} sampled deal versions; live stream "
                  f"{lag.records:,} records in {lag.seconds:.1f} s = {lag.records / max(lag.seconds, 1e-9):,.0f}/s")
    if lag.missing:
        console.print(f"[yellow]note:[/] {lag.missing:,} samples were not seen within {lag.drain_s:.0f} s of the last "
                      "acknowledgement: their lag is longer than that, and not in the percentiles above")
    else:
        console.print(f"last sample seen {lag.drain_s:.2f} s after the last acknowledgement: kpi's pace on the live "
                      f"stream was about {lag.records / max(lag.seconds + lag.drain_s, 1e-9):,.0f} records/s")
    if lag.rate < asked:
        console.print(f"[yellow]note:[/] the live stream ran at {lag.rate:,}/s, not the {asked:,}/s asked: half of "
                      f"kpi's catch-up rate ({kpi_rate:,.0f}/s), so that the lag is kpi's latency and not a queue "
                      "(--lag-uncapped streams at the rate asked)")
    elif kpi_rate and lag.rate > kpi_rate:
        console.print(f"[yellow]note:[/] the live stream ({lag.rate:,}/s) is faster than kpi's catch-up rate "
                      f"({kpi_rate:,.0f}/s): the lag is mostly queueing and grows with the stream's length")
