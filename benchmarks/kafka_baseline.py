"""The baseline: what a bare aiokafka producer does with the same events, in its own process.

    python -m benchmarks.kafka_baseline EVENTS.ndjson TENANT [--bootstrap HOST:PORT]

Reads canonical events (one per line) and sends each as the CloudEvents binary-mode record ingest
would publish (same topic, key, headers and value, `shared.cloudevents.encode`) with an
idempotent producer (acks=all, linger_ms=5). The timed part runs from the first send to the
last acknowledgement and includes reading and encoding each line, as ingest must parse and
encode too, but no validation and no database. Prints one JSON object: events, seconds,
record ack latencies, and the peak RSS of this process (events are streamed from the file,
never all held in memory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from benchmarks.workload import busy_cores, machine_cpu, peak_rss_kib, percentile, proc_status_kib
from shared import topics
from shared.cloudevents import CloudEvent, encode, message_key

TOPIC_OF = {"deal.upserted": topics.DEALS.name, "activity.logged": topics.ACTIVITIES.name}
WARMUP = 200


def record(line: bytes, tenant: str) -> tuple[str, bytes, bytes, list[tuple[str, bytes]]]:
    """(topic, key, value, headers) of one canonical event, as ingest would publish it."""
    item = json.loads(line)
    event = CloudEvent(id=item["id"], type=item["type"], source=item["source"],
                       time=datetime.fromisoformat(item["time"]), tenant=tenant, data=item["data"],
                       extensions={"tenanttimezone": "UTC", "tenantfiscalstart": "1"})
    value, headers = encode(event)
    return TOPIC_OF[item["type"]], message_key(tenant, item["data"]["rep_id"]), value, headers


async def run(path: str, tenant: str, bootstrap: str) -> dict[str, Any]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    try:
        warm = [await producer.send(t, v, key=k, headers=h)
                for t, k, v, h in (record(json.dumps(_warm(n)).encode(), tenant) for n in range(WARMUP))]
        await asyncio.gather(*warm)
        idle_rss = proc_status_kib("self", "VmRSS")
        latencies: list[float] = []
        pending = []
        started, cpu, machine = time.perf_counter(), time.process_time(), machine_cpu()
        with open(path, "rb") as stream:  # noqa: ASYNC230 - a local file in the page cache; reading it is part of the work
            for line in stream:
                topic, key, value, headers = record(line, tenant)
                sent = time.perf_counter()
                future = await producer.send(topic, value, key=key, headers=headers)
                future.add_done_callback(lambda _, s=sent: latencies.append(time.perf_counter() - s))
                pending.append(future)
        await asyncio.gather(*pending)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        busy = busy_cores(machine, machine_cpu(), os.cpu_count() or 1)
    finally:
        await producer.stop()
    return {"events": len(pending), "seconds": seconds, "cpu_s": cpu, "idle_rss_kib": idle_rss,
            "peak_rss_kib": peak_rss_kib(), "busy_cores": busy,
            "ack_p50_ms": 1000 * percentile(latencies, 0.50), "ack_p99_ms": 1000 * percentile(latencies, 0.99)}


def _warm(n: int) -> dict[str, Any]:
    return {"type": "activity.logged", "id": f"warmup-{n}", "source": "bench", "time": "2026-10-01T00:00:00Z",
            "data": {"activity_id": f"warmup-{n}", "rep_id": "rep-warmup", "kind": "call",
                     "occurred_at": "2026-10-01T00:00:00Z"}}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kafka_baseline")
    p.add_argument("events_file")
    p.add_argument("tenant")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = p.parse_args(argv)
    sys.stdout.write(json.dumps(asyncio.run(run(args.events_file, args.tenant, args.bootstrap))) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
