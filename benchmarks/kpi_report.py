"""What the kpi benchmark prints: one table of records/s, the ratios against the goals, checks, lag."""

from __future__ import annotations

import os
import statistics
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

RAW_GOAL, QUIX_GOAL = 0.25, 1.5
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
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # decode / validate, once
    raw_count: list[dict[str, Any]] = field(default_factory=list)  # one per round
    quix: list[dict[str, Any]] = field(default_factory=list)  # one per round
    deals_runs: list[kpi.CatchUp] = field(default_factory=list)
    full_runs: list[kpi.CatchUp] = field(default_factory=list)
    deals_figures: list[Won | str] = field(default_factory=list)  # kpi's won revenue once caught up, per run
    full_figures: list[Won | str] = field(default_factory=list)
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


def median(values: list[float]) -> float:
    """The median of `values` (the mean of the middle two for an even count); 0 for none."""
    return statistics.median(values) if values else 0.0


def report(res: Results) -> None:
    by_topic: dict[str, int] = res.raw_count[0]["by_topic"]
    console.print(f"pre-load: {res.sent:,} records ({res.events:,} events + {res.sent - res.events:,} roster and "
                  f"targets) in {res.preload_s:.1f} s ({res.sent / res.preload_s:,.0f} records/s); the span every "
                  "contender reads: " + ", ".join(f"{t} {n:,}" for t, n in by_topic.items()))
    console.print("workload: " + ", ".join(f"{k} {v:,}" for k, v in sorted(res.counts.items())))
    rounds: list[dict[str, Row | None]] = []
    for r in range(len(res.raw_count)):
        rounds.append({
            "raw": _raw_row(res.raw_count[r], "aiokafka, count only"),
            "deals": _kpi_row(res.deals_runs[r] if r < len(res.deals_runs) else None, "kpi, deals-only",
                              "deals (+ roster, targets)", deals_only=True),
            "quix": _quix_row(res.quix[r]) if r < len(res.quix) else None,
            "full": _kpi_row(res.full_runs[r] if r < len(res.full_runs) else None, "kpi (services.kpi)",
                             "4 sales topics")})
    table = Table(title=f"{res.events:,} events, {res.reps} reps: records/s once data flows, each clock stopped at "
                        "the last committed record")
    for col in ("round", "contender", "reads", "records timed", "seconds", "records/s", "CPU / record", "% of a core",
                "peak RSS"):
        table.add_column(col, justify="left" if col in ("contender", "reads") else "right")
    for r, row_set in enumerate(rounds, start=1):
        for row in (row_set[k] for k in ("raw", "deals", "quix", "full")):
            if row is not None:
                _add(table, str(r), row)
    for mode, name in (("decode", "aiokafka + CloudEvent decode"), ("validate", "aiokafka + decode + pydantic")):
        if mode in res.raw:
            _add(table, "1", _raw_row(res.raw[mode], name))
    console.print(table)
    for runs, label in ((res.full_runs, "kpi"), (res.deals_runs, "kpi deals-only")):
        for r, run in enumerate(runs, start=1):
            if run.failure:
                console.print(f"[red]{label}, round {r}, failed:[/] {run.failure}")
    _medians(rounds)
    if res.full_runs:
        _kpi_notes(res.full_runs[-1])
    _checks(res)
    if res.lag is not None:
        last = rounds[-1]["full"]
        _lag(res.lag, res.lag_asked, last.rate if last is not None else 0.0)


def _add(table: Table, round_: str, row: Row) -> None:
    table.add_row(round_, row.name, row.reads, f"{row.records:,}", f"{row.seconds:.1f}", f"[bold]{row.rate:,.0f}[/]",
                  f"{1e6 * row.cpu_s / max(row.records, 1):.1f} µs {row.note}".strip(),
                  f"{100 * row.cpu_s / row.seconds:.0f} %" if row.seconds else "—",
                  f"{row.peak_rss_kib / 1024:.0f} MiB")


def _raw_row(r: dict[str, Any], name: str) -> Row:
    return Row(name, "4 sales topics", r["timed_records"], r["seconds"], r["cpu_s"], r["peak_rss_kib"])


def _quix_row(q: dict[str, Any]) -> Row:
    note = "" if q.get("committed") else "[yellow](its commit was not seen: clock stopped at the end of run())[/]"
    return Row(f"Quix Streams exactly-once {note}".strip(), "sales.deals.v1", q["timed_records"], q["seconds"],
               q["cpu_s"], q["peak_rss_kib"])


def _medians(rounds: list[dict[str, Row | None]]) -> None:
    """The medians over the rounds, and the goals' ratios: medians of rates, and each round's own ratio."""
    def rates(key: str) -> list[float]:
        return [row.rate for rs in rounds if (row := rs[key]) is not None]

    raw, deals, quix, full = (median(rates(k)) for k in ("raw", "deals", "quix", "full"))
    console.print(f"medians over {len(rounds)} round(s), records/s: raw consume {raw:,.0f}; kpi deals-only "
                  f"{deals:,.0f}; Quix Streams exactly-once {quix:,.0f}; kpi on all four topics {full:,.0f}")
    if deals and quix:
        per_round = [d.rate / q.rate for rs in rounds if (d := rs["deals"]) and (q := rs["quix"]) and q.rate]
        ratio = deals / quix
        console.print(f"kpi deals-only / Quix Streams exactly-once (deal records/s on both sides, same output: won "
                      f"revenue per rep and quarter) = [bold]{ratio:.2f}×[/] (median ÷ median; goal ≥ {QUIX_GOAL}×): "
                      f"{_verdict(ratio, QUIX_GOAL, strict=False)}; round by round: "
                      + ", ".join(f"{x:.2f}×" for x in per_round))
    if full and raw:
        per_round = [f.rate / w.rate for rs in rounds if (f := rs["full"]) and (w := rs["raw"]) and w.rate]
        ratio = median(per_round)
        console.print(f"kpi catch-up / raw consume (same records, same round) = [bold]{100 * ratio:.1f} %[/] (median "
                      f"of the rounds' ratios; goal ≥ {100 * RAW_GOAL:.0f} %): "
                      f"{_verdict(ratio, RAW_GOAL, strict=False)}; round by round: "
                      + ", ".join(f"{100 * x:.1f} %" for x in per_round))


def _verdict(ratio: float, goal: float, strict: bool) -> str:
    met = ratio > goal if strict else ratio >= goal
    return "[green]goal met[/]" if met else "[red]below goal[/]"


def _kpi_row(run: kpi.CatchUp | None, name: str, reads: str, *, deals_only: bool = False) -> Row | None:
    """kpi's line; a deals-only run counts its deal records (its few roster and target records are not)."""
    if run is None or run.failure is not None:
        return None
    if not run.complete:
        name += f" [yellow](stopped at {run.in_span:,} of {run.records:,})[/]"
    records = run.timed_of(topics.DEALS.name) if deals_only else run.timed_records
    return Row(name, reads, records, run.seconds, run.cpu_s, run.peak_rss_kib,
               f"+ PostgreSQL {1e6 * run.pg_cpu_s / max(records, 1):.0f} µs")


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
        console.print(f"kpi until every figure was out too (outbox published, nothing parked): {out:.1f} s = "
                      f"{run.timed_records / max(out, 1e-9):,.0f} records/s; {run.figures:,} kpi.attainment.updated "
                      f"events ({run.figures / max(run.done_records, 1):.2f} per record applied)")
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


def _checks(res: Results) -> None:
    """Every run's won revenue per (rep, quarter) against the workload's own: kpi's from its database once
    caught up, Quix's as read back from its output topic."""
    def verdict(found: Won | str) -> str:
        if isinstance(found, str):
            return found
        same, total = kpi.compare(res.expected, found)
        return f"{same:,} of {total:,}"

    quix = [verdict({(rep, q): Decimal(v) for rep, q, v in run["won"]}) for run in res.quix]
    console.print("won_revenue per (rep, quarter) equal to the workload's own, run by run: Quix Streams (its output "
                  f"topic) {'; '.join(quix) or '—'}; kpi deals-only "
                  f"{'; '.join(map(verdict, res.deals_figures)) or '—'}; kpi on all topics "
                  f"{'; '.join(map(verdict, res.full_figures)) or '—'}")
    outputs = ", ".join(f"{run.get('figures_read', 0):,}" for run in res.quix)
    console.print(f"Quix Streams output records (committed, read back): {outputs}")


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
