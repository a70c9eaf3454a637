"""The raw baseline: how fast a bare aiokafka consumer reads the span, in its own process.

    python -m benchmarks.kpi_raw SPAN.json {count,decode,validate} [--bootstrap HOST:PORT]

Assigns every partition of the span (no group), seeks to its start and reads until each partition
reaches its end offset. `count` does nothing with a record but count it; `decode` also parses the
CloudEvent (`shared.cloudevents.decode`: headers and JSON value), as kpi must; `validate` also
validates the data with the contract's pydantic model, as kpi's consumer does before its handler.
Prints one JSON object: records (also per topic), seconds (from the first fetch, once the consumer
has started and sought, to the last record: every record is timed), total seconds from the start
of the consumer, CPU seconds of this process over the timed interval, peak RSS, and
the offset of the last record of each partition (compacted topics may end in a gap: that, not the
end offset, is where the other contenders are caught up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.kpi_kafka import Span
from benchmarks.workload import peak_rss_kib
from shared.cloudevents import decode
from shared.events import CANONICAL_DATA


async def run(span: Span, mode: str, bootstrap: str, stall_s: float = 30.0) -> dict[str, Any]:
    busy = span.busy()
    ends = {TopicPartition(t, p): span.end[(t, p)] for t, p in busy}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    began = time.perf_counter()
    await consumer.start()
    try:
        consumer.assign(list(ends))
        for t, p in busy:
            consumer.seek(TopicPartition(t, p), span.start[(t, p)])
        remaining = set(ends)
        by_topic: dict[str, int] = dict.fromkeys(sorted({t for t, _ in busy}), 0)
        last: dict[TopicPartition, int] = {}
        first = heard = time.perf_counter()
        cpu = time.process_time()
        while remaining and time.perf_counter() - heard < stall_s:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, batch in batches.items():
                end, counted = ends[tp], 0
                for record in batch:
                    if record.offset >= end:
                        break
                    counted += 1
                    last[tp] = record.offset
                    if mode != "count":
                        event = decode(record.headers, record.value)
                        if mode == "validate":
                            CANONICAL_DATA[event.type].model_validate(event.data)
                by_topic[tp.topic] += counted
                if await consumer.position(tp) >= end:
                    remaining.discard(tp)
            if batches:
                heard = time.perf_counter()
        done = time.perf_counter()
        cpu = time.process_time() - cpu
    finally:
        await consumer.stop()
    records = sum(by_topic.values())
    return {"records": records, "timed_records": records, "seconds": done - first,
            "total_seconds": done - began, "cpu_s": cpu, "peak_rss_kib": peak_rss_kib(),
            "by_topic": by_topic, "last": [[tp.topic, tp.partition, o] for tp, o in sorted(last.items())],
            "stalled": sorted(f"{tp.topic}/{tp.partition}" for tp in remaining)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kpi_raw")
    p.add_argument("span")
    p.add_argument("mode", choices=("count", "decode", "validate"))
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = p.parse_args(argv)
    result = asyncio.run(run(Span.load(Path(args.span)), args.mode, args.bootstrap))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
