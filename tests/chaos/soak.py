"""`python -m tests.chaos.soak [--rate N] [--duration S]` (`make soak`): the whole stack under a steady
load for a long time, on loopback, bounded in time and count.

A seeded quarter's events (200 reps) stream through ingest at `--rate` events/s, looped for as long as
the run lasts, each loop as a fresh part of the org (`_looped`). Every half second a probe rep wins a
deal worth exactly its target; the time from ingest's answer to the probe's `kpi.attainment.updated`
on its topic (attainment committed and published) and to its `quota_100` celebration is its end-to-end
latency. Memory of every service process, the broker (RSS) and PostgreSQL (PSS of all its processes) is
read at the start, every minute, and at the end; each consumer group's lag every 15 s; CPU time per
process over the load.

The stack HOLDS the rate when, for every consumer group, both:
- its lag has no upward trend: over the second half of the load, the least-squares line through its lag
  rises by less than TREND_LIMIT (5 %) of the records that reached its topics in that time. A group short
  of the rate by a twentieth fails this however quickly it drains afterwards;
- it caught up within 60 s of the end of the load (the run waits up to 5 minutes for every group to apply
  everything on its topics): a spike near the end is not a trend, but must drain.
Printed: throughput, the verdict with each group's trend, latency percentiles, the lag series, CPU, and
memory with its change over the second half.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.local import crm_keys, kafka, pg_cluster, registry_keys
from shared import topics
from tests.chaos import scenario
from tests.chaos.fleet import CONSUMERS, ROOT, Fleet, cpu_s, pss_kib, rss_kib
from tests.chaos.run import BATCH, SALES, _create_tenant
from tests.integration.conftest import BOOTSTRAP, end_offsets, fresh_database
from tests.integration.inprocess import start_group_at_end

PROBE_EVERY_S = 0.5
LAG_EVERY_S, MEMORY_EVERY_S = 15.0, 60.0
DRAIN_LIMIT_S, DRAIN_WAIT_S = 60.0, 300.0  # caught up within DRAIN_LIMIT_S = holds; give up after DRAIN_WAIT_S
TREND_LIMIT = 0.05  # a lag rising by this share of a group's input over the second half of the load = a trend


def _memory(fleet: Fleet) -> dict[str, int]:
    out = fleet.memory()
    if (kib := rss_kib(kafka.broker_pid())) is not None:
        out["kafka"] = kib
    if (kib := pss_kib(pg_cluster.local_pid())) is not None:
        out["postgres"] = kib
    return out


def _cpu(fleet: Fleet) -> dict[str, float]:
    out = fleet.cpu()
    for name, seconds in (("kafka", cpu_s(kafka.broker_pid())), ("postgres", cpu_s(pg_cluster.local_pid(), tree=True)),
                          ("soak driver", cpu_s(os.getpid()))):
        if seconds is not None:
            out[name] = seconds
    return out


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [float(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


_RENAMED = ("rep_id", "team_id", "parent_team_id", "manager_id", "deal_id", "activity_id")


def _looped(events: list[dict[str, Any]], loop: int) -> list[dict[str, Any]]:
    """The scenario again as another part of the same org: every rep, team, manager, deal and activity
    under a fresh id (`-l<loop>`), so each loop's 200 reps live one quarter, as real reps do.

    Looping the same reps instead gave each of them another quarter's deals and activities every loop
    (a quarter every 100 s at 400 events/s): a rep's history, and with it whatever reads it, grew
    without bound, which no sales org does. Here the data grows the way a deployment's does: more reps,
    more deals, more history in the database; never more per rep than a quarter holds."""
    if loop == 0:
        return events
    suffix = f"-l{loop}"
    out = []
    for e in events:
        data = dict(e["data"])
        for key in _RENAMED:
            if data.get(key):
                data[key] = f"{data[key]}{suffix}"
        if e["type"] == "target.set" and data.get("scope") in ("rep", "team"):
            data["scope_id"] = f"{data['scope_id']}{suffix}"
        out.append({**e, "id": f"{e['id']}{suffix}", "data": data})
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
    env = {**crm_keys.env(), **registry_keys.env(), "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": db,
           "KAFKA_CONSUMER_GROUP_PREFIX": prefix,
           "OUTBOX_POLL_INTERVAL_S": "0.2", "LOG_LEVEL": "WARNING", "RATE_LIMIT_REQUESTS_PER_S": "1000",
           "RATE_LIMIT_REQUEST_BURST": "1000", "RATE_LIMIT_EVENTS_PER_S": "100000", "RATE_LIMIT_EVENT_BURST": "1000000"}
    fleet = Fleet(run_id, env)
    plan = scenario.generate(scenario.Settings(tenants=1, reps_per_tenant=200, deals_per_rep=30), datetime.now(UTC))
    tenant = plan.tenants[0]
    slug = f"soak-{run_id}"
    quarter = _quarter(tenant.timezone)
    sent_at: dict[str, float] = {}
    seen: dict[str, dict[str, float]] = {"attainment": {}, "celebration": {}}
    accepted = 0
    samples: list[tuple[float, dict[str, int]]] = []  # memory, every minute: does it grow?
    lags: list[tuple[float, dict[str, int]]] = []  # each group's lag, every 15 s: does it grow?
    inputs: list[tuple[float, dict[str, int]]] = []  # records arrived on each group's topics, every 15 s
    try:
        await asyncio.to_thread(fleet.start_all)
        token = await asyncio.to_thread(_create_tenant, tenant, slug, env)
        watcher = asyncio.create_task(_watch(slug, seen))
        started = time.monotonic()
        samples.append((0.0, _memory(fleet)))
        cpu_start, busy_start = _cpu(fleet), _machine_busy()
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
                sent, loop = 0, 0
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
                    loop += 1

            async def monitor() -> None:
                last_memory = time.monotonic()
                while True:
                    await asyncio.sleep(LAG_EVERY_S)
                    lag, _, arrived = await _lag(db, prefix)
                    at = time.monotonic() - started
                    lags.append((at, lag))
                    inputs.append((at, arrived))
                    if time.monotonic() - last_memory >= MEMORY_EVERY_S - 1:
                        last_memory = time.monotonic()
                        samples.append((last_memory - started, _memory(fleet)))

            monitoring = asyncio.create_task(monitor())
            await asyncio.gather(probes(), load())
            monitoring.cancel()
        streamed_s = time.monotonic() - started
        cpu_end, busy_end = _cpu(fleet), _machine_busy()
        samples.append((streamed_s, _memory(fleet)))
        caught_up = await _drain(db, prefix, started, lags)
        await asyncio.sleep(5)  # the last probes' updates and celebrations, if the groups just caught up
        watcher.cancel()
        cpu = {name: (cpu_end[name] - seconds) / streamed_s for name, seconds in cpu_start.items() if name in cpu_end}
        machine = (busy_end[0] - busy_start[0]) / (busy_end[1] - busy_start[1]) * (os.cpu_count() or 1)
        trends = _trends(lags, inputs, streamed_s)
        holds = _report(rate, duration, accepted, streamed_s, sent_at, seen, samples, lags, caught_up, trends,
                        cpu, machine)
        return 0 if holds else 3
    finally:
        await asyncio.to_thread(fleet.stop_all)


async def _drain(db: str, prefix: str, started: float, lags: list[tuple[float, dict[str, int]]]) -> dict[str, float]:
    """Seconds after the end of the load at which each group had applied everything on its topics (a group
    not there after DRAIN_WAIT_S is left out). Caught up = at most one record per partition left: a
    transaction's commit marker, which takes an offset but is never delivered."""
    stopped = time.monotonic()
    caught: dict[str, float] = {}
    while len(caught) < len(CONSUMERS) and time.monotonic() - stopped < DRAIN_WAIT_S:
        lag, partitions, _ = await _lag(db, prefix)
        now = time.monotonic()
        for group, behind in lag.items():
            if group not in caught and behind <= partitions[group]:
                caught[group] = now - stopped
        if now - (lags[-1][0] + started if lags else 0) >= LAG_EVERY_S:
            lags.append((now - started, lag))
        await asyncio.sleep(1)
    lags.append((time.monotonic() - started, (await _lag(db, prefix))[0]))
    return caught


def _trends(lags: list[tuple[float, dict[str, int]]], inputs: list[tuple[float, dict[str, int]]],
            streamed_s: float) -> dict[str, tuple[float, int]]:
    """Per group, over the second half of the load: (how far the least-squares line through its lag rose,
    how many records reached its topics). A backlog that grows steadily rises; one that comes and goes
    in spikes (a coalescing evaluator, a long transaction) does not."""
    half = [(at, lag) for at, lag in lags if streamed_s / 2 <= at <= streamed_s]
    window = [(at, n) for at, n in inputs if streamed_s / 2 <= at <= streamed_s]
    out: dict[str, tuple[float, int]] = {}
    for group in CONSUMERS:
        points = [(at, lag[group]) for at, lag in half if group in lag]
        came = [n[group] for _, n in window if group in n]
        if len(points) < 3 or len(came) < 2:
            continue
        slope = statistics.linear_regression([at for at, _ in points], [v for _, v in points]).slope
        out[group] = (slope * (points[-1][0] - points[0][0]), came[-1] - came[0])
    return out


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
                    elif kind == "recognition.milestone.reached" and "quota_100" in (
                            data.get("milestones") or [data["milestone"]]):
                        seen["celebration"].setdefault(rep, arrived)
    finally:
        await consumer.stop()


async def _lag(db: str, prefix: str) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Per group: records on its topics it has not applied, the partitions it applied some of, and the
    records its topics hold in those partitions (their end offsets: what has arrived so far)."""
    ends = await end_offsets([*SALES, topics.ATTAINMENT.name])
    conn = await asyncpg.connect(db)
    try:
        lag, partitions, arrived = {}, {}, {}
        for service in CONSUMERS:
            rows = await conn.fetch(f"SELECT topic, partition, next_offset FROM {service}.consumer_offsets"
                                    " WHERE group_id = $1", f"{prefix}-{service}")
            done = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
            lag[service] = sum(max(0, end - done[tp]) for tp, end in ends.items() if tp in done)
            partitions[service] = sum(tp in done for tp in ends)
            arrived[service] = sum(end for tp, end in ends.items() if tp in done)
        return lag, partitions, arrived
    finally:
        await conn.close()


def _report(rate: float, duration: float, accepted: int, streamed_s: float, sent_at: dict[str, float],
            seen: dict[str, dict[str, float]], samples: list[tuple[float, dict[str, int]]],
            lags: list[tuple[float, dict[str, int]]], caught_up: dict[str, float],
            trends: dict[str, tuple[float, int]], cpu: dict[str, float], machine: float) -> bool:
    """Print the figures; whether the stack held the rate."""
    to_fig = [seen["attainment"][r] - t for r, t in sent_at.items() if r in seen["attainment"]]
    to_cheer = [seen["celebration"][r] - t for r, t in sent_at.items() if r in seen["celebration"]]
    drained = all(caught_up.get(g, DRAIN_WAIT_S + 1) <= DRAIN_LIMIT_S for g in CONSUMERS)
    flat = all(g in trends and trends[g][0] < TREND_LIMIT * max(trends[g][1], 1) for g in CONSUMERS)
    holds = drained and flat
    print(f"\nsoak: {duration:.0f} s asked at {rate:.0f} events/s; ingest accepted {accepted} events in "
          f"{streamed_s:.0f} s = {accepted / streamed_s:.0f} events/s")
    print("caught up after the load: " + ", ".join(
        f"{g} {caught_up[g]:.0f} s" if g in caught_up else f"{g} NOT within {DRAIN_WAIT_S:.0f} s" for g in CONSUMERS))
    print("lag trend over the second half of the load (fitted rise / records arrived): " + ", ".join(
        f"{g} {trends[g][0]:+.0f} / {trends[g][1]} = {trends[g][0] / max(trends[g][1], 1) * 100:+.1f} %"
        if g in trends else f"{g} not measured" for g in CONSUMERS))
    print(f"verdict: the stack {'HOLDS' if holds else 'does NOT hold'} {rate:.0f} events/s (every group's lag "
          f"{'flat' if flat else 'NOT flat'}: rising by under {TREND_LIMIT * 100:.0f} % of its input over the "
          f"second half; every group {'caught up' if drained else 'NOT caught up'} within {DRAIN_LIMIT_S:.0f} s "
          "of the end of the load)")
    print(f"probes: {len(sent_at)} sent, {len(to_fig)} attainment updates seen, {len(to_cheer)} celebrations seen")
    print(f"ingest accepted -> attainment on its topic:   {_percentiles(to_fig)}")
    print(f"ingest accepted -> celebration on its topic:  {_percentiles(to_cheer)}")
    print(f"\nconsumer lag (records not yet applied), every {LAG_EVERY_S:.0f} s:")
    for at, lag in lags:
        print(f"  {at:5.0f} s  " + ", ".join(f"{k} {v}" for k, v in lag.items()))
    print(f"\nCPU over the load (% of one core; the machine has {os.cpu_count()}, busy {machine * 100:.0f} %): "
          + ", ".join(f"{name} {share * 100:.0f}" for name, share in sorted(cpu.items(), key=lambda c: -c[1])))
    names = sorted({n for _, m in samples for n in m})
    print("\nmemory (MiB; RSS, PostgreSQL: PSS of all its processes) over time:")
    print("  t (s)  " + "  ".join(f"{n:>13}" for n in names))
    for at, m in samples:
        print(f"  {at:5.0f}  " + "  ".join(f"{m.get(n, 0) / 1024:13.1f}" for n in names))
    if len(samples) >= 3:
        mid, last = samples[len(samples) // 2][1], samples[-1][1]
        print("  change over the second half (MiB): " + ", ".join(
            f"{n} {(last.get(n, 0) - mid.get(n, 0)) / 1024:+.1f}" for n in names))
    return holds


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.soak", description=__doc__)
    parser.add_argument("--rate", type=float, default=400.0,
                        help="events per second through ingest (default 400: the highest rate measured to hold here)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "deploy.local.stack", "up"], cwd=ROOT, check=True)
    sys.exit(asyncio.run(soak(args.rate, args.duration)))
