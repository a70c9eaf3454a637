"""The Quix Streams baseline: won revenue per rep and quarter, exactly-once, written to a topic.

    python -m benchmarks.kpi_quix SPAN.json GROUP STATE_DIR OUTPUT_TOPIC [--bootstrap HOST:PORT]

A Quix Streams `Application` with `processing_guarantee="exactly-once"` (consumer group GROUP, committed
by the caller at the span's start; `auto_offset_reset="earliest"` otherwise) reads `sales.deals.v1`,
deserialises the JSON value and, per message key (`<tenant>:<rep_id>`, so per rep), keeps in its
RocksDB state each deal's newest version (by `updated_at`; duplicates and older versions change
nothing) and the rep's won revenue per quarter in the tenant's zone (from the `ce_tenanttimezone`
header): an edit takes the old version's contribution back and adds the new one's. Money is `Decimal`,
stored as a string. Every quarter whose won revenue a record changed is written to OUTPUT_TOPIC as one
JSON record `{"scope": "rep", "scope_id", "period", "metric": "won_revenue", "actual"}` keyed by the
input's key: the same figure kpi publishes for the deals (kpi's events also carry target, attainment
and pace). Quix's defaults otherwise: changelog topics, a checkpoint every 5 s; under exactly-once a
checkpoint is one Kafka transaction holding the output records, the changelog records and the offsets.

The clock starts at the first message and stops when the group's committed offsets (read by a second,
non-member consumer every 20 ms, `isolation.level=read_committed`, so only a committed transaction's
offsets are seen) reach the span's end on every partition: the output and the offsets of the last
record are then committed together. Once the last record is processed the app is stopped, which
commits its checkpoint at once rather than at the next 5 s tick.

Prints one JSON object: records, seconds (first message to committed end; the first not timed), the
seconds to the last record processed (uncommitted), total seconds to the end of `app.run()`, CPU
seconds over the timed interval, peak RSS, and the partitions that never reached their end.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition  # type: ignore[import-not-found, import-untyped, unused-ignore]
from quixstreams import Application, State, message_context  # type: ignore[import-not-found, unused-ignore]

from benchmarks.kpi_kafka import Span
from benchmarks.kpi_workload import quarter_of
from benchmarks.workload import peak_rss_kib
from shared import topics

EPOCH, MICROSECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)
WATCH_S = 0.02
Figure = dict[str, str]


class WonRevenue:
    """The stateful step, and the bookkeeping that tells when the span is processed."""

    def __init__(self, app: Application, ends: dict[int, int]) -> None:
        self.app, self.ends = app, ends
        self.remaining = set(ends)
        self.records, self.outputs, self.first, self.processed, self.cpu0 = 0, 0, 0.0, 0.0, 0.0

    def __call__(self, value: dict[str, Any], key: bytes, timestamp: int, headers: Any,
                 state: State[str, Any]) -> list[Figure]:
        ctx = message_context()
        end = self.ends.get(ctx.partition)
        if end is not None and ctx.offset < end:
            self.records += 1
            if self.records == 1:
                self.first, self.cpu0 = time.perf_counter(), time.process_time()
            if ctx.offset + 1 >= end:
                self.remaining.discard(ctx.partition)
        figures = self._apply(value, key, dict(headers or ()), state)
        self.outputs += len(figures)
        if not self.remaining and not self.processed:
            self.processed = time.perf_counter()
            self.app.stop()  # commits the checkpoint now (the run loop's final, forced commit)
        return figures

    def _apply(self, value: dict[str, Any], key: bytes, headers: dict[str, bytes],
               state: State[str, Any]) -> list[Figure]:
        slot = f"deal:{value['deal_id']}"
        updated = (datetime.fromisoformat(value["updated_at"]) - EPOCH) // MICROSECOND
        old = state.get(slot)
        if old is not None and old[0] >= updated:
            return []  # a duplicate or an older version
        amount = quarter = None
        if headers.get("ce_type") == b"deal.upserted" and value["stage"] == "won":
            zone = headers.get("ce_tenanttimezone", b"UTC").decode()
            amount, quarter = value["amount"], quarter_of(datetime.fromisoformat(value["closed_at"]), zone)
        state.set(slot, [updated, amount, quarter])
        changed: dict[str, Decimal] = {}
        if old is not None and old[1] is not None:
            changed[old[2]] = self._add(state, old[2], -Decimal(old[1]))
        if amount is not None and quarter is not None:
            changed[quarter] = self._add(state, quarter, Decimal(amount))
        rep = key.decode().split(":", 1)[1]
        return [{"scope": "rep", "scope_id": rep, "period": q, "metric": "won_revenue", "actual": format(total, "f")}
                for q, total in changed.items()]

    @staticmethod
    def _add(state: State[str, Any], quarter: str, delta: Decimal) -> Decimal:
        slot = f"won:{quarter}"
        total = Decimal(state.get(slot, "0")) + delta
        state.set(slot, str(total))
        return total


class CommitWatch(threading.Thread):
    """Polls GROUP's committed offsets until every partition of `ends` reached its end; notes when."""

    def __init__(self, bootstrap: str, group: str, ends: dict[int, int], step: WonRevenue, limit_s: float) -> None:
        super().__init__(daemon=True)
        self.step, self.limit_s, self.ends = step, limit_s, ends
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                                  "isolation.level": "read_committed"})
        self.committed_at, self.cpu = 0.0, 0.0
        self.stop_asked = threading.Event()

    def run(self) -> None:
        wanted = [TopicPartition(topics.DEALS.name, p) for p in self.ends]
        began = time.perf_counter()
        try:
            while not self.stop_asked.is_set() and time.perf_counter() - began < self.limit_s:
                if self.step.processed:  # before that the span cannot be committed: spare the broker
                    found = self.consumer.committed(wanted, timeout=10)
                    if all(tp.offset >= self.ends[tp.partition] for tp in found):
                        self.committed_at, self.cpu = time.perf_counter(), time.process_time() - self.step.cpu0
                        return
                time.sleep(WATCH_S)
        finally:
            self.consumer.close()


def run(span: Span, group: str, state_dir: str, output: str, bootstrap: str, limit_s: float = 600.0) -> dict[str, Any]:
    app = Application(broker_address=bootstrap, consumer_group=group, auto_offset_reset="earliest",
                      state_dir=state_dir, loglevel="WARNING", processing_guarantee="exactly-once")
    ends = {p: span.end[(t, p)] for t, p in span.busy([topics.DEALS.name])}
    step = WonRevenue(app, ends)
    sdf = app.dataframe(app.topic(topics.DEALS.name, value_deserializer="json", key_deserializer="bytes"))
    sdf = sdf.apply(step, stateful=True, metadata=True, expand=True)
    sdf.to_topic(app.topic(output, value_serializer="json", key_serializer="bytes"))
    watch = CommitWatch(bootstrap, group, ends, step, limit_s)
    watch.start()
    began = time.perf_counter()
    app.run(timeout=limit_s)  # the timeout only guards against a span that never completes
    done = time.perf_counter()
    watch.join(timeout=30)
    watch.stop_asked.set()
    committed = watch.committed_at
    return {"records": step.records, "timed_records": max(0, step.records - 1),
            "seconds": (committed or done) - step.first, "processed_seconds": step.processed - step.first,
            "total_seconds": done - began, "cpu_s": watch.cpu if committed else time.process_time() - step.cpu0,
            "peak_rss_kib": peak_rss_kib(), "outputs": step.outputs, "committed": bool(committed),
            "stalled": sorted(step.remaining)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kpi_quix")
    p.add_argument("span")
    p.add_argument("group")
    p.add_argument("state_dir")
    p.add_argument("output", help="the topic the figures are written to")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = p.parse_args(argv)
    result = run(Span.load(Path(args.span)), args.group, args.state_dir, args.output, args.bootstrap)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
