"""One chaos run: the scenario streams through ingest at a steady rate while a fault does its worst;
when the stack has settled, every figure, celebration, check-in and dead letter is compared with the
oracle's answer.

Pass (`verdict.py` says what each count of the table means): every figure equals the oracle's; every
threshold the oracle says was crossed was celebrated, once (no celebration id or `ce_id` twice on the topic),
and no quota celebration is one no figure could have earned; every rep behind pace at the end got a
`behind_pace` check-in, and every such check-in was earned; no check-in created twice for the same rep, rule
and severity; every malformed record in its `.dlq` topic; no event lost (each acknowledged by ingest, each
deal's final version in kpi); the fault was applied (one that was skipped fails the run).

The run's clock: the system clock, or one pinned to a given instant (`run(now=...)`, `python -m tests.chaos
--now`) that then runs at real speed in every service (`ATTAIN_CLOCK=scaled:<instant>@1`, set at each
start of a replica). The scenario is generated for the run's clock at the start of the run, so its quarter is
the one the services live in whatever the date.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from deploy.local import crm_keys, registry_keys
from shared import topics
from shared.clock import Clock, ScaledClock, SystemClock
from tests.chaos import oracle, scenario
from tests.chaos.fleet import CONSUMERS, ROOT, Fleet
from tests.chaos.verdict import (
    CLOCK_SLACK,
    CheckIn,
    Cheer,
    Outcome,
    cheers,
    compare_celebrations,
    compare_check_ins,
    earned_check_ins,
    table,
)
from tests.integration.conftest import BOOTSTRAP, _reached, end_offsets, fresh_database
from tests.integration.inprocess import start_group_at_end

SALES = [t.name for t in (topics.DEALS, topics.ACTIVITIES, topics.ROSTER, topics.TARGETS)]
OUTPUT = [topics.ATTAINMENT.name, topics.TASKS.name, topics.CELEBRATIONS.name]
DLQ = [f"{name}.dlq" for name in SALES]
BATCH = 200
OUTBOXES = ("kpi.outbox", "coaching.outbox", "recognition.outbox")
# Work a service parks for later, where it has such a table (kpi's pacer may go: then it is not waited for).
PARKED = ("kpi.pending_figures", "coaching.owed_evaluations")
SETTLE_TIMEOUT_S = 420.0
INGEST_GIVE_UP_S = 120.0  # a batch ingest keeps refusing this long ends the stream: the run fails, not hangs
EVALUATION_INTERVAL_S = 2.0  # coaching's periodic pass (COACHING_EVALUATION_INTERVAL_S) during a run
# After the stack settled, long enough for coaching to start and finish a periodic pass on the final figures.
CHECK_IN_WAIT_S = 3 * EVALUATION_INTERVAL_S + 4
__all__ = ["Context", "Fault", "Outcome", "run", "table"]


@dataclass
class Context:
    """What a fault may touch while the stream flows."""

    fleet: Fleet
    rng: random.Random
    streamed: int = 0  # events acknowledged so far
    total: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)  # the stream has ended
    notes: list[str] = field(default_factory=list)
    failures: int = 0  # what a fault itself found wrong (e.g. a SIGTERM that did not exit 0 in time)
    server_errors: int = 0  # ingest's answers that were 5xx but not 503: a fault must never surface as a 500
    skipped: list[str] = field(default_factory=list)  # faults (or parts of one) that could not be applied
    tenants: list[str] = field(default_factory=list)  # the run's tenant slugs, once created
    db: str = ""  # the run's database URL
    run_id: str = ""
    rate: float = 400.0  # events/s the stream goes at; a fault may lower it (`stretch`)
    # undone when the run ends, last first, after the fleet stopped (a namespace, a mount)
    cleanups: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # what a fault's `prepare` made for it: replicas' network namespaces, the database's small disk, clock files
    namespaces: dict[str, Any] = field(default_factory=dict)
    disk: Path | None = None
    clock_files: dict[str, Path] = field(default_factory=dict)

    def stretch(self, seconds: float) -> None:
        """Make the stream last at least `seconds`: a fault that needs events flowing for longer."""
        self.rate = min(self.rate, self.total / seconds)

    def skip(self, why: str) -> None:
        """The fault could not be applied: the run fails (it proved nothing about that fault)."""
        self.skipped.append(why)
        self.notes.append(f"fault skipped: {why}")

    async def until_streamed(self, share: float) -> None:
        """Wait until `share` of the stream went through (or it ended)."""
        while self.streamed < share * self.total and not self.done.is_set():  # noqa: ASYNC110 - a threshold
            await asyncio.sleep(0.1)


Fault = Callable[[Context], Coroutine[Any, Any, None]]
# A fault may carry `prepare`, an async function of the Context run before the fleet starts (a replica put in
# a network namespace, a tablespace on a small disk): `faults.prepared_by`.


async def _news_all_quarter(url: str, token: str) -> None:
    """The scenario replays the quarter so far at real speed: its wins are weeks old by the clock, and
    recognition records milestones older than the tenant's history horizon quietly. The run is about numbers
    under faults, not the horizon: its tenants count the whole quarter as news (`history_horizon_hours`)."""
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        while (await client.put("/v1/recognition/settings", json={"history_horizon_hours": 24 * 200})
               ).status_code != 200:  # 401 until recognition has read the tenant's registry entry
            assert time.monotonic() < deadline, "recognition never accepted the tenant's token"
            await asyncio.sleep(0.3)


def _create_tenant(plan: scenario.TenantPlan, slug: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-m", "services.ingest", "tenants", "create", slug, "--timezone",
                          plan.timezone, "--currency", plan.currency], cwd=ROOT, check=True, capture_output=True,
                         text=True, env={**os.environ, **env})
    token: str = json.loads(out.stdout)["token"]
    return token


async def _stream(ingest: str, tokens: dict[str, str], stream: list[tuple[str, dict[str, Any]]],
                  ctx: Context, acknowledged: dict[tuple[str, str], str]) -> None:
    """POST the stream in per-tenant batches at `ctx.rate` events/s; retry a batch until ingest answers it
    (a killed ingest, a broker away: 5xx, connection refused) — the same ids again are 'duplicate'."""
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    for slug, event in stream:
        if batches and batches[-1][0] == slug and len(batches[-1][1]) < BATCH:
            batches[-1][1].append(event)
        else:
            batches.append((slug, [event]))
    due = time.monotonic()
    sent = 0
    async with httpx.AsyncClient(timeout=30) as client:
        for slug, events in batches:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            backoff, refused_since = 0.2, time.monotonic()
            while True:
                try:
                    response = await client.post(f"{ingest}/v1/events", json=events,
                                                 headers={"Authorization": f"Bearer {tokens[slug]}"})
                    if response.status_code == 200:
                        break
                    if response.status_code >= 500 and response.status_code != 503:
                        ctx.server_errors += 1
                except httpx.HTTPError:
                    pass
                if time.monotonic() - refused_since > INGEST_GIVE_UP_S:  # e.g. ingest exited: never hang
                    ctx.notes.append(f"ingest accepted nothing for {INGEST_GIVE_UP_S:.0f}s; streaming stopped"
                                     f" after {sent:,} events (the rest count as lost)")
                    ctx.done.set()
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 3.0)
            for event, result in zip(events, response.json()["results"], strict=True):
                previous = acknowledged.get((slug, event["id"]))
                if previous != "accepted":
                    acknowledged[(slug, event["id"])] = result["status"]
            sent += len(events)
            due += len(events) / ctx.rate
            ctx.streamed = sent
    ctx.done.set()


async def _inject(malformed: dict[str, list[scenario.Record]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        count = 0
        for topic, records in malformed.items():
            for key, value, headers in records:
                await producer.send_and_wait(topic, value, key=key, headers=headers)
                count += 1
        return count
    finally:
        await producer.stop()


async def _read(names: list[str], since: dict[TopicPartition, int]) -> list[Any]:
    """Every committed record of `names` after `since`, up to their ends now."""
    ends = await end_offsets(names)
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    out: list[Any] = []
    try:
        todo = {tp: end for tp, end in ends.items() if end > since.get(tp, 0)}
        if not todo:
            return out
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, since.get(tp, 0))
        deadline = time.monotonic() + 120
        while todo and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
                out += [r for r in records if r.offset < ends[tp]]
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    del todo[tp]
        return out
    finally:
        await consumer.stop()


async def _settled(db: str, prefix: str, tenants: list[str]) -> str:
    """Every group applied everything on its topics, nothing of the run's `tenants` waits in an outbox, is
    parked or owed. The services also see whatever else the shared topics carry (every tenant of the
    registry, tests running before or beside the run): work of other tenants is not waited for; on the
    system clock it may never drain (a test suite's tenant whose check-ins stay owed), and waiting for it
    held the short run past its test's timeout (CI, December 2026). Says what is still awaited ("" when
    nothing is), so that a run that never settles names the reason."""
    conn = await asyncpg.connect(db)
    try:
        sales = await end_offsets(SALES)
        if not await _reached(conn, "kpi", f"{prefix}-kpi", sales):
            return "kpi has not applied the sales topics to their ends"
        parked = [r["t"] for r in await conn.fetch("SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t)"
                                                   " IS NOT NULL", list(PARKED))]
        for table_name in (*OUTBOXES, *parked):  # names from the constants above, never from input
            schema, _, name = table_name.partition(".")
            scoped = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE"
                                         " table_schema = $1 AND table_name = $2 AND column_name = 'tenant')",
                                         schema, name)
            where, args = (" WHERE tenant IS NULL OR tenant = ANY($1::text[])", [tenants]) if scoped else ("", [])
            if waiting := await conn.fetchval(f"SELECT count(*) FROM {table_name}{where}", *args):
                return f"{waiting} row(s) in {table_name}"
        figures = await end_offsets([topics.ATTAINMENT.name])
        read = {tp: o for tp, o in sales.items() if tp.topic != topics.TARGETS.name}
        for service in ("coaching", "recognition"):
            if not await _reached(conn, service, f"{prefix}-{service}", figures | read):
                return f"{service} has not applied the figures and sales topics to their ends"
        return ""
    finally:
        await conn.close()


def _final_deals(events: list[dict[str, Any]]) -> dict[str, tuple[datetime, bool]]:
    """Each deal's newest version (by updated_at, then event id): when, and whether it is a deletion."""
    best: dict[str, tuple[datetime, str, bool]] = {}
    for e in events:
        if e["type"] not in ("deal.upserted", "deal.deleted"):
            continue
        at = datetime.fromisoformat(e["data"]["updated_at"])
        mine = (at, e["id"], e["type"] == "deal.deleted")
        if e["data"]["deal_id"] not in best or mine[:2] > best[e["data"]["deal_id"]][:2]:
            best[e["data"]["deal_id"]] = mine
    return {deal: (at, deleted) for deal, (at, _, deleted) in best.items()}


def run_clock(now: datetime | None) -> Clock:
    """The run's clock: the system clock, or one that starts at `now` and runs at real speed."""
    return SystemClock() if now is None else ScaledClock(now, 1)


async def _settle(db: str, prefix: str, ctx: Context) -> None:
    """Wait until `_settled` holds twice in a row (or SETTLE_TIMEOUT_S passed: noted)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    calm, said, since = 0, "", time.monotonic()
    while calm < 2:
        awaited = await _settled(db, prefix, ctx.tenants)
        calm = 0 if awaited else calm + 1
        if awaited != said:  # what the run waits for, as it changes: a run cancelled while waiting says why
            if said:
                print(f"chaos {ctx.run_id}: awaited {time.monotonic() - since:.1f}s: {said}", file=sys.stderr,
                      flush=True)
            said, since = awaited, time.monotonic()
        if time.monotonic() > deadline:
            ctx.notes.append(f"did not settle within {SETTLE_TIMEOUT_S:.0f}s: {awaited}")
            return
        try:
            await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            print(f"chaos {ctx.run_id}: cancelled after {time.monotonic() - since:.1f}s awaiting: {said}",
                  file=sys.stderr, flush=True)
            raise


async def run(name: str, fault: Fault, settings: scenario.Settings, rate: float = 400.0,
              seed: int = 1, now: datetime | None = None) -> Outcome:
    """One scenario under one fault; `now` pins the run's clock (None: the system clock)."""
    started = time.monotonic()
    clock = run_clock(now)
    plan = scenario.generate(settings, clock.now())
    run_id = f"{name}-{uuid.uuid4().hex[:6]}"
    db = await fresh_database(f"chaos_{run_id.replace('-', '_')}")
    prefix = f"attain-chaos-{run_id}"
    for group in CONSUMERS:
        await start_group_at_end(f"{prefix}-{group}", [t.name for t in topics.ALL])
    since = await end_offsets(OUTPUT + DLQ)
    env = {**crm_keys.env(), **registry_keys.env(), "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "DATABASE_URL": db,
           "KAFKA_CONSUMER_GROUP_PREFIX": prefix,
           "COACHING_EVALUATION_INTERVAL_S": str(EVALUATION_INTERVAL_S), "COACHING_GRACE_S": "0",
           "RECOGNITION_INTERVAL_S": "2", "OUTBOX_POLL_INTERVAL_S": "0.2", "LOG_LEVEL": "INFO",
           "RATE_LIMIT_REQUESTS_PER_S": "1000", "RATE_LIMIT_REQUEST_BURST": "1000",
           "RATE_LIMIT_EVENTS_PER_S": "100000", "RATE_LIMIT_EVENT_BURST": "1000000"}
    fleet = Fleet(run_id, env, clock=None if now is None else clock)
    ctx = Context(fleet, random.Random(seed), total=len(plan.stream), db=db, run_id=run_id, rate=rate)
    acknowledged: dict[tuple[str, str], str] = {}
    slugs = {p.slug: f"{p.slug}-{run_id}"[:63] for p in plan.tenants}
    try:
        if (prepare := getattr(fault, "prepare", None)) is not None:
            await prepare(ctx)
        await asyncio.to_thread(fleet.start_all)
        tokens = {p.slug: await asyncio.to_thread(_create_tenant, p, slugs[p.slug], env) for p in plan.tenants}
        ctx.tenants = list(slugs.values())
        for token in tokens.values():
            await _news_all_quarter(fleet.replica("recognition").url, token)
        memory_start = fleet.memory()
        poisoned = await _inject(plan.malformed)
        fault_task = asyncio.create_task(fault(ctx))
        await _stream(fleet.replica("ingest").url, tokens, plan.stream, ctx, acknowledged)
        try:
            await fault_task
        except Exception as err:  # a fault that broke is a failed run, said in the table, not a crashed suite
            ctx.notes.append(f"the fault itself failed: {err!r}")
            ctx.failures += 1
        if ctx.server_errors:
            ctx.notes.append(f"ingest answered {ctx.server_errors} batch(es) with a 5xx other than 503")
            ctx.failures += 1
        fault_over = time.monotonic()
        for r in list(fleet.replicas.values()):  # whatever a fault left down comes back
            if r.index == 0 and not r.alive:
                fleet.start(r.service)
        await _settle(db, prefix, ctx)
        recover_s = time.monotonic() - fault_over
        quiet = clock.now()  # from here on coaching holds the final figures
        await asyncio.sleep(CHECK_IN_WAIT_S)  # a periodic pass of coaching on them, whatever it finds
        await _settle(db, prefix, ctx)
        memory_end = fleet.memory()
        outcome = await _compare(name, plan, slugs, db, since, acknowledged, poisoned, ctx, quiet)
        outcome.recover_s, outcome.elapsed_s = recover_s, time.monotonic() - started
        outcome.memory_kib = {k: (memory_start.get(k, 0), v) for k, v in memory_end.items()}
        return outcome
    finally:
        await asyncio.to_thread(fleet.stop_all)
        for undo in reversed(ctx.cleanups):
            try:
                await undo()
            except Exception as err:  # every undo gets its turn; what failed is said
                print(f"chaos {run_id}: cleanup failed: {err!r}", file=sys.stderr, flush=True)


async def _compare(name: str, plan: scenario.Scenario, slugs: dict[str, str], db: str,
                   since: dict[TopicPartition, int], acknowledged: dict[tuple[str, str], str], poisoned: int,
                   ctx: Context, quiet: datetime) -> Outcome:
    notes = ctx.notes
    by_run_slug = {v: k for k, v in slugs.items()}
    configs = {slugs[p.slug]: oracle.TenantConfig(slugs[p.slug], p.timezone, p.currency, p.fiscal_start_month)
               for p in plan.tenants}
    lost = sum(1 for p in plan.tenants for e in plan.events[p.slug]
               if acknowledged.get((p.slug, e["id"])) not in ("accepted", "duplicate"))
    mismatched = compared_figures = 0
    expected_cheers: set[Cheer] = set()
    reachable_cheers: set[Cheer] = set()
    behind_at_end: set[tuple[str, str]] = set()
    conn = await asyncpg.connect(db)
    try:
        for p in plan.tenants:
            slug, events = slugs[p.slug], plan.events[p.slug]
            config = configs[slug]
            want = oracle.final_figures(config, events)
            targets = oracle.final_targets(config, events)
            rows = await conn.fetch("SELECT scope, scope_id, period, metric, actual, target FROM kpi.attainment"
                                    " WHERE tenant = $1", slug)
            have = {(r["scope"], r["scope_id"], r["period"], r["metric"]): (r["actual"], r["target"]) for r in rows}
            compared_figures += len(set(want) | set(have))
            for key in set(want) | set(have):
                actual, target = have.get(key, (Decimal(0), None))
                if actual != want.get(key, Decimal(0)) or target != targets.get(key):
                    mismatched += 1
                    if mismatched <= 5:
                        notes.append(f"{slug} {key}: kpi {actual}/{target}, oracle {want.get(key)}/{targets.get(key)}")
            stored = {r["deal_id"]: (r["updated_at"], r["deleted"]) for r in await conn.fetch(
                "SELECT deal_id, updated_at, deleted FROM kpi.deals WHERE tenant = $1", slug)}
            final = _final_deals(events)
            missing = [d for d, v in final.items() if stored.get(d) != v]
            if missing:
                notes.append(f"{slug}: {len(missing)} deals not at their final version, e.g. {missing[:3]}")
            lost += len(missing)
            expected_cheers |= cheers(slug, oracle.thresholds_crossed(config, events))
            reachable_cheers |= cheers(slug, oracle.thresholds_reachable(config, events))
            behind_at_end |= {(slug, rep) for rep, _, _ in oracle.behind_pace(config, events, quiet - CLOCK_SLACK)}
    finally:
        await conn.close()

    records = await _read(OUTPUT, since)
    ours = [r for r in records if dict(r.headers).get("ce_tenant", b"").decode() in by_run_slug]
    ids = Counter(dict(r.headers)["ce_id"] for r in ours)
    duplicated = sum(n - 1 for n in ids.values() if n > 1)
    celebrated: Counter[Cheer] = Counter()
    created: Counter[tuple[str, str, str, str]] = Counter()
    check_ins: list[CheckIn] = []
    seen_cheers: set[str] = set()
    for r in ours:
        headers = dict(r.headers)
        kind, tenant = headers["ce_type"].decode(), headers["ce_tenant"].decode()
        data = json.loads(r.value)
        if kind == "recognition.milestone.reached" and data["celebration_id"] not in seen_cheers:
            seen_cheers.add(data["celebration_id"])
            # one celebration carries every milestone one figure update reached at once (quota_100 with
            # quota_50 in it): each counts as celebrated
            for reached in data.get("milestones") or [data["milestone"]]:
                celebrated[(tenant, data["scope"], data["scope_id"], reached, data["period"])] += 1
        elif kind == "recognition.milestone.reached":
            duplicated += 1
            notes.append(f"celebration {data['celebration_id']} published twice")
        if kind == "coaching.task.created":
            created[(tenant, data["rep_id"], data["rule"], data["severity"])] += 1
            if data["rule"] == "behind_pace":
                evidence = data["evidence"]
                check_ins.append(CheckIn(tenant, data["rep_id"], evidence["period"], evidence["metric"],
                                         datetime.fromisoformat(headers["ce_time"].decode())))
    twice = {k: n for k, n in created.items() if n > 1}
    duplicated += sum(n - 1 for n in twice.values())
    if twice:
        notes.append(f"check-ins created twice: {list(twice)[:3]}")
    uncelebrated, unearned_cheers = compare_celebrations(expected_cheers, reachable_cheers, celebrated)
    if uncelebrated:
        notes.append(f"not celebrated: {uncelebrated[:3]}")
    if unearned_cheers:
        notes.append(f"celebrated, never earned: {unearned_cheers[:3]}")
    earned: set[CheckIn] = set()
    for p in plan.tenants:
        earned |= earned_check_ins(configs[slugs[p.slug]], plan.events[p.slug], check_ins, quiet)
    missed, unearned = compare_check_ins(behind_at_end, check_ins, earned)
    if missed:
        notes.append(f"behind pace at the end, never checked in: {missed[:3]}")
    if unearned:
        notes.append(f"check-ins never earned: {[tuple(map(str, c)) for c in unearned[:3]]}")
    if not behind_at_end:
        notes.append("no rep behind pace at the end: missed check-ins had nothing to look for")
    dead = {(dict(r.headers).get("attain_original_topic"), r.key) for r in await _read(DLQ, since)
            if scenario.MALFORMED_HEADER in dict(r.headers or ())}
    undead = max(0, poisoned - len(dead))
    outcome = Outcome(name, len(plan.stream), lost, duplicated, mismatched, len(uncelebrated), undead, ctx.failures,
                      0.0, 0.0, notes, unearned_cheers=len(unearned_cheers), missed_check_ins=len(missed),
                      unearned_check_ins=len(unearned), skipped=len(ctx.skipped))
    outcome.compared = {"figures": compared_figures, "milestones": len(expected_cheers),
                        "celebrations": sum(celebrated.values()), "check-ins": sum(created.values()),
                        "behind pace at the end": len(behind_at_end), "behind-pace check-ins": len(check_ins),
                        "poison": poisoned, "dead-lettered": len(dead), "output records": len(ours)}
    return outcome
