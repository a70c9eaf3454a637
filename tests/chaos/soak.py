"""`python -m tests.chaos.soak [--rate N] [--duration S]` (`make soak`): the whole stack under a steady
load for a long time, on loopback, bounded in time and count.

A seeded quarter's events stream through ingest at `--rate` events/s, looped with fresh ids for as long
as the run lasts. Every half second a probe rep wins a deal worth exactly its target; the time from
ingest's answer to the probe's `kpi.attainment.updated` on its topic (attainment committed and
published) and to its `quota_100` celebration is its end-to-end latency. Memory (RSS) of every service
process, the broker and PostgreSQL is read at the start, every minute, and at the end. Printed: the
throughput ingest took and each consumer group kept up with, latency percentiles, and memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.local import kafka, pg_cluster
from shared import topics
from tests.chaos import scenario
from tests.chaos.fleet import CONSUMERS, ROOT, Fleet, rss_kib
from tests.chaos.run import BATCH, SALES, _create_tenant
from tests.integration.conftest import BOOTSTRAP, end_offsets, fresh_database
from tests.integration.inprocess import start_group_at_end

PROBE_EVERY_S = 0.5


def _memory(fleet: Fleet) -> dict[str, int]:
    out = fleet.memory()
    for name, pid in (("kafka", kafka.broker_pid()), ("postgres", pg_cluster.local_pid())):
        if (kib := rss_kib(pid)) is not None:
            out[name] = kib
    return out


def _looped(events: list[dict[str, Any]], loop: int) -> list[dict[str, Any]]:
    """The scenario's deals and activities again, as new ones (fresh ids): the roster and targets once."""
    if loop == 0:
        return events
    out = []
    for e in events:
        if e["type"] not in ("deal.upserted", "deal.deleted", "activity.logged"):
            continue
        data = dict(e["data"])
        for key in ("deal_id", "activity_id"):
            if key in data:
                data[key] = f"{data[key]}-l{loop}"
        out.append({**e, "id": f"{e['id']}-l{loop}", "data": data})
    return out


def _percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms (n={len(values)})"


async def soak(rate: float, duration: float, probe_target: str = "1000") -> int:
    run_id = f"soak-{uuid.uuid4().hex[:6]}"
    db = await fresh_database(f"chaos_{run_id.replace('-', '_')}")
    prefix = f"attain-chaos-{run_id}"
    for group in CONSUMERS:
        await start_group_at_end(f"{prefix}-{group}", [t.name for t in topics.ALL])
    env = {"KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": db, "KAFKA_CONSUMER_GROUP_PREFIX": prefix,
           "OUTBOX_POLL_INTERVAL_S": "0.2", "LOG_LEVEL": "WARNING", "RATE_LIMIT_REQUESTS_PER_S": "1000",
           "RATE_LIMIT_REQUEST_BURST": "1000", "RATE_LIMIT_EVENTS_PER_S": "100000", "RATE_LIMIT_EVENT_BURST": "1000000"}
    fleet = Fleet(run_id, env, base_port=18500)
    plan = scenario.generate(scenario.Settings(tenants=1, reps_per_tenant=200, deals_per_rep=30))
    tenant = plan.tenants[0]
    slug = f"soak-{run_id}"
    quarter = _quarter(tenant.timezone)
    sent_at: dict[str, float] = {}
    seen: dict[str, dict[str, float]] = {"attainment": {}, "celebration": {}}
    accepted = 0
    samples: list[tuple[float, dict[str, int]]] = []
    lags: list[tuple[float, dict[str, int]]] = []  # each group's lag, every minute: does it grow?
    try:
        await asyncio.to_thread(fleet.start_all)
        token = await asyncio.to_thread(_create_tenant, tenant, slug, env)
        watcher = asyncio.create_task(_watch(slug, seen))
        started = time.monotonic()
        samples.append((0.0, _memory(fleet)))
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            ingest = fleet.replica("ingest").url

            async def post(events: list[dict[str, Any]]) -> int:
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.post(f"{ingest}/v1/events", json=events)
                        if response.status_code == 200:
                            return sum(r["status"] == "accepted" for r in response.json()["results"])
                    await asyncio.sleep(0.2)

            async def probes() -> None:
                i = 0
                while time.monotonic() - started < duration:
                    rep = f"probe-{i:05d}"
                    now = datetime.now(UTC)
                    await post([_event("rep.upserted", {"rep_id": rep, "name": f"Probe {i}", "team_id": "probes",
                                                        "timezone": tenant.timezone}, now),
                                _event("target.set", {"scope": "rep", "scope_id": rep, "metric": "won_revenue",
                                                      "period": quarter, "value": probe_target}, now)])
                    await asyncio.sleep(0.05)
                    deal = _event("deal.upserted", {
                        "deal_id": f"probe-deal-{i}", "rep_id": rep, "amount": probe_target, "currency": "EUR",
                        "stage": "won", "created_at": _t(now - timedelta(days=1)), "closed_at": _t(now),
                        "updated_at": _t(now)}, now)
                    await post([deal])
                    sent_at[rep] = time.monotonic()
                    i += 1
                    await asyncio.sleep(PROBE_EVERY_S)

            async def load() -> None:
                nonlocal accepted
                sent, loop, last_sample = 0, 0, 0.0
                while time.monotonic() - started < duration:
                    events = _looped(plan.events[tenant.slug], loop)
                    for j in range(0, len(events), BATCH):
                        if time.monotonic() - started >= duration:
                            return
                        delay = started + sent / rate - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        chunk = events[j:j + BATCH]
                        accepted += await post(chunk)
                        sent += len(chunk)
                        if time.monotonic() - last_sample >= 60:
                            last_sample = time.monotonic()
                            samples.append((last_sample - started, _memory(fleet)))
                            lags.append((last_sample - started, await _lag(db, prefix)))
                    loop += 1

            await asyncio.gather(probes(), load())
        streamed_s = time.monotonic() - started
        await asyncio.sleep(20)  # the last probes' updates and celebrations
        samples.append((time.monotonic() - started, _memory(fleet)))
        watcher.cancel()
        lags.append((time.monotonic() - started, await _lag(db, prefix)))
        _report(rate, duration, accepted, streamed_s, sent_at, seen, samples, lags)
        return 0
    finally:
        await asyncio.to_thread(fleet.stop_all)


def _t(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _event(type_: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {"type": type_, "id": str(uuid.uuid4()), "source": "soak", "time": _t(at), "data": data}


def _quarter(timezone: str) -> str:
    local = datetime.now(UTC).astimezone(ZoneInfo(timezone))
    return f"{local.year}-Q{(local.month - 1) // 3 + 1}"


async def _watch(slug: str, seen: dict[str, dict[str, float]]) -> None:
    names = [topics.ATTAINMENT.name, topics.CELEBRATIONS.name]
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        ends = await end_offsets(names)
        consumer.assign(list(ends))
        for tp, offset in ends.items():
            consumer.seek(tp, offset)
        while True:
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                arrived = time.monotonic()
                for r in records:
                    headers = dict(r.headers)
                    if headers.get("ce_tenant", b"").decode() != slug:
                        continue
                    data = json.loads(r.value)
                    rep = data.get("scope_id", "")
                    if not rep.startswith("probe-") or data.get("scope") != "rep":
                        continue
                    kind = headers["ce_type"].decode()
                    if kind == "kpi.attainment.updated" and data["metric"] == "won_revenue" and data["actual"] != "0":
                        seen["attainment"].setdefault(rep, arrived)
                    elif kind == "recognition.milestone.reached" and data["milestone"] == "quota_100":
                        seen["celebration"].setdefault(rep, arrived)
    finally:
        await consumer.stop()


async def _lag(db: str, prefix: str) -> dict[str, int]:
    ends = await end_offsets([*SALES, topics.ATTAINMENT.name])
    conn = await asyncpg.connect(db)
    try:
        out = {}
        for service in CONSUMERS:
            rows = await conn.fetch(f"SELECT topic, partition, next_offset FROM {service}.consumer_offsets"
                                    " WHERE group_id = $1", f"{prefix}-{service}")
            done = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
            out[service] = sum(max(0, end - done[tp]) for tp, end in ends.items() if tp in done)
        return out
    finally:
        await conn.close()


def _report(rate: float, duration: float, accepted: int, streamed_s: float, sent_at: dict[str, float],
            seen: dict[str, dict[str, float]], samples: list[tuple[float, dict[str, int]]],
            lags: list[tuple[float, dict[str, int]]]) -> None:
    to_fig = [seen["attainment"][r] - t for r, t in sent_at.items() if r in seen["attainment"]]
    to_cheer = [seen["celebration"][r] - t for r, t in sent_at.items() if r in seen["celebration"]]
    print(f"\nsoak: {duration:.0f} s asked at {rate:.0f} events/s; ingest accepted {accepted} events in "
          f"{streamed_s:.0f} s = {accepted / streamed_s:.0f} events/s")
    print(f"probes: {len(sent_at)} sent, {len(to_fig)} attainment updates seen, {len(to_cheer)} celebrations seen")
    print(f"ingest accepted -> attainment on its topic:   {_percentiles(to_fig)}")
    print(f"ingest accepted -> celebration on its topic:  {_percentiles(to_cheer)}")
    print("\nconsumer lag (records not yet applied) over time:")
    for at, lag in lags:
        print(f"  {at:5.0f} s  " + ", ".join(f"{k} {v}" for k, v in lag.items()))
    names = sorted({n for _, m in samples for n in m})
    print("\nmemory (RSS, MiB) over time:")
    print("  t (s)  " + "  ".join(f"{n:>13}" for n in names))
    for at, m in samples:
        print(f"  {at:5.0f}  " + "  ".join(f"{m.get(n, 0) / 1024:13.1f}" for n in names))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.soak", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second through ingest")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "deploy.local.stack", "up"], cwd=ROOT, check=True)
    sys.exit(asyncio.run(soak(args.rate, args.duration)))
