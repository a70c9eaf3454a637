"""The Quix Streams baseline: the same rolling `won_revenue` per rep, in its own RocksDB state.

    python -m benchmarks.kpi_quix SPAN.json GROUP STATE_DIR TENANT [--bootstrap HOST:PORT]

A Quix Streams `Application` (consumer group GROUP, committed by the caller at the span's start;
`auto_offset_reset="earliest"` otherwise) reads `sales.deals.v1`, deserialises the JSON value and,
per message key (`<tenant>:<rep_id>`, so per rep), keeps in its state each deal's newest version
(by `updated_at`; duplicates and older versions change nothing) and the rep's won revenue per
quarter in the tenant's zone (from the `ce_tenanttimezone` header): an edit takes the old version's
contribution back and adds the new one's. Money is `Decimal`, stored as a string. Defaults
otherwise: state in RocksDB with changelog topics, at-least-once, a checkpoint every 5 s.

It stops itself once every partition of the span has been processed up to its last record. Prints
one JSON object: records, seconds from the first message to the last (the first not timed), total
seconds to the end of `app.run()` (its final checkpoint and shutdown included), CPU seconds over
the timed interval, peak RSS, and the won revenue per (rep, quarter) of TENANT, to check.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from quixstreams import Application, State, message_context  # type: ignore[import-not-found, unused-ignore]

from benchmarks.kpi_kafka import Span
from benchmarks.kpi_workload import quarter_of
from benchmarks.workload import peak_rss_kib
from shared import topics

EPOCH, MICROSECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)


class WonRevenue:
    """The stateful step, and the bookkeeping that tells when the span is done."""

    def __init__(self, app: Application, ends: dict[int, int], tenant: str) -> None:
        self.app, self.ends, self.prefix = app, ends, f"{tenant}:".encode()
        self.remaining = set(ends)
        self.records, self.first, self.last, self.cpu = 0, 0.0, 0.0, 0.0
        self.won: dict[tuple[str, str], Decimal] = {}

    def __call__(self, value: dict[str, Any], key: bytes, timestamp: int, headers: Any, state: State[str, Any]) -> None:
        ctx = message_context()
        end = self.ends.get(ctx.partition)
        if end is not None and ctx.offset < end:
            self.records += 1
            if self.records == 1:
                self.first, self.cpu = time.perf_counter(), time.process_time()
            if ctx.offset + 1 >= end:
                self.remaining.discard(ctx.partition)
        self._apply(value, key, dict(headers or ()), state)
        if not self.remaining and not self.last:
            self.last, self.cpu = time.perf_counter(), time.process_time() - self.cpu
            self.app.stop()

    def _apply(self, value: dict[str, Any], key: bytes, headers: dict[str, bytes], state: State[str, Any]) -> None:
        slot = f"deal:{value['deal_id']}"
        updated = (datetime.fromisoformat(value["updated_at"]) - EPOCH) // MICROSECOND
        old = state.get(slot)
        if old is not None and old[0] >= updated:
            return  # a duplicate or an older version
        amount = quarter = None
        if headers.get("ce_type") == b"deal.upserted" and value["stage"] == "won":
            zone = headers.get("ce_tenanttimezone", b"UTC").decode()
            amount, quarter = value["amount"], quarter_of(datetime.fromisoformat(value["closed_at"]), zone)
        state.set(slot, [updated, amount, quarter])
        if old is not None and old[1] is not None:
            self._add(key, state, old[2], -Decimal(old[1]))
        if amount is not None and quarter is not None:
            self._add(key, state, quarter, Decimal(amount))

    def _add(self, key: bytes, state: State[str, Any], quarter: str, delta: Decimal) -> None:
        slot = f"won:{quarter}"
        total = Decimal(state.get(slot, "0")) + delta
        state.set(slot, str(total))
        if key.startswith(self.prefix):
            self.won[(key[len(self.prefix):].decode(), quarter)] = total


def run(span: Span, group: str, state_dir: str, tenant: str, bootstrap: str) -> dict[str, Any]:
    app = Application(broker_address=bootstrap, consumer_group=group, auto_offset_reset="earliest",
                      state_dir=state_dir, loglevel="WARNING")
    ends = {p: span.end[(t, p)] for t, p in span.busy([topics.DEALS.name])}
    step = WonRevenue(app, ends, tenant)
    sdf = app.dataframe(app.topic(topics.DEALS.name, value_deserializer="json", key_deserializer="bytes"))
    sdf.apply(step, stateful=True, metadata=True)
    began = time.perf_counter()
    app.run(timeout=120)  # the timeout only guards against a span that never completes
    done = time.perf_counter()
    if not step.last:  # stopped by the timeout: time what was done
        step.last, step.cpu = done, time.process_time() - step.cpu
    return {"records": step.records, "timed_records": step.records - 1, "seconds": step.last - step.first,
            "total_seconds": done - began, "cpu_s": step.cpu, "peak_rss_kib": peak_rss_kib(),
            "stalled": sorted(step.remaining),
            "won": [[rep, quarter, format(total, "f")] for (rep, quarter), total in sorted(step.won.items())]}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kpi_quix")
    p.add_argument("span")
    p.add_argument("group")
    p.add_argument("state_dir")
    p.add_argument("tenant")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = p.parse_args(argv)
    result = run(Span.load(Path(args.span)), args.group, args.state_dir, args.tenant, args.bootstrap)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
