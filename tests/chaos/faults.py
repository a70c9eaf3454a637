"""The faults, each an async function that runs while the scenario streams through ingest.

Each acts on the run's own service processes (`Fleet`), or on the local broker and PostgreSQL cluster
this checkout started (`deploy/local`): a broker or database someone else runs is never touched. A fault
that cannot be applied (that broker or database, a replica that is not running when it should be signalled)
says so with `Context.skip`, and the run fails: it did not show what it was meant to show.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from deploy.local import kafka, pg_cluster
from deploy.local.kafka_setup import KafkaSettings
from deploy.local.postgres import Url
from tests.chaos.fleet import CONSUMERS, GRACE_S, SERVICES, Replica
from tests.chaos.run import Context, Fault
from tests.integration.conftest import DATABASE_URL

SESSION_TIMEOUT_S = 10.0  # the consumers' session.timeout.ms without static membership (shared/consumer.py)


async def nothing(ctx: Context) -> None:
    """Poison only: the malformed records every run injects, and no other fault."""


def _signal(ctx: Context, replica: Replica, sig: int) -> bool:
    """Send `sig` to a running replica (and wait for it to exit when the signal ends it); False, and the fault
    marked as skipped, when it is not running."""
    if not replica.alive:
        ctx.skip(f"{signal.Signals(sig).name} {replica.service}#{replica.index}: not running")
        return False
    if sig == signal.SIGSTOP:
        ctx.fleet.pause(replica)
    elif sig == signal.SIGCONT:
        ctx.fleet.resume(replica)
    else:
        ctx.fleet.kill(replica, sig)
    return True


async def _restart(ctx: Context, service: str, index: int = 0) -> None:
    replica = ctx.fleet.start(service, index)
    await asyncio.to_thread(ctx.fleet.wait_ready, [replica])


async def sigkill_each(ctx: Context, rounds: int = 2) -> None:
    """SIGKILL every service at random moments, `rounds` times each, and restart it."""
    plan = [s for _ in range(rounds) for s in SERVICES]
    ctx.rng.shuffle(plan)
    for i, service in enumerate(plan):
        await ctx.until_streamed((i + ctx.rng.random()) / (len(plan) + 1))
        _signal(ctx, ctx.fleet.replica(service), signal.SIGKILL)
        await asyncio.sleep(ctx.rng.uniform(0.2, 1.5))
        await _restart(ctx, service)


async def sigterm_drain(ctx: Context) -> None:
    """SIGTERM each consumer service in the middle of the stream: it drains, commits what it applied and
    exits 0 inside its grace period; then it is started again."""
    for i, service in enumerate(CONSUMERS):
        await ctx.until_streamed((i + 1) / (len(CONSUMERS) + 1))
        replica = ctx.fleet.replica(service)
        began = time.monotonic()
        if not await asyncio.to_thread(_signal, ctx, replica, signal.SIGTERM):
            continue
        took = time.monotonic() - began
        code = replica.exit_codes[-1] if replica.exit_codes else None
        if code != 0 or took > GRACE_S:
            ctx.notes.append(f"SIGTERM {service}: exit {code} after {took:.1f}s (want 0 within {GRACE_S:.0f}s)")
            ctx.failures += 1
        await _restart(ctx, service)


async def broker_restart(ctx: Context) -> None:
    """Stop the local Kafka broker mid-stream, start it again a few seconds later."""
    await ctx.until_streamed(0.4)
    if kafka.broker_pid() is None:
        ctx.skip("broker restart: the broker is not one this checkout started")
        return
    await asyncio.to_thread(kafka.stop)
    await asyncio.sleep(3)
    launched = await asyncio.to_thread(kafka.launch, KafkaSettings.from_env())
    await kafka.wait_until_up(launched, 90)


def _pg_port() -> int:
    return Url.parse(DATABASE_URL).port


async def _postgres_down(ctx: Context, seconds: float) -> None:
    if pg_cluster.local_pid() is None:
        ctx.skip("PostgreSQL down: the server is not the cluster this checkout started")
        return
    await asyncio.to_thread(pg_cluster.stop)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(pg_cluster.start, _pg_port())


async def postgres_restart(ctx: Context) -> None:
    """Restart PostgreSQL mid-stream (down for about a second)."""
    await ctx.until_streamed(0.4)
    await _postgres_down(ctx, 1.0)


async def postgres_away_30s(ctx: Context) -> None:
    """PostgreSQL unavailable for 30 s mid-stream."""
    await ctx.until_streamed(0.3)
    await _postgres_down(ctx, 30.0)


async def rebalance_storm(ctx: Context, rounds: int = 5) -> None:
    """Second replicas of kpi, coaching and recognition started and stopped again and again."""
    for i in range(rounds):
        await ctx.until_streamed(i / (rounds + 1))
        extra = [ctx.fleet.start(s, 1) for s in CONSUMERS]
        await asyncio.sleep(ctx.rng.uniform(2, 5))
        for replica in extra:
            await asyncio.to_thread(_signal, ctx, replica, ctx.rng.choice([signal.SIGTERM, signal.SIGKILL]))
        await asyncio.sleep(ctx.rng.uniform(1, 3))


FENCE_METRIC = "attain_consumer_fenced_total"
FENCE_WAIT_S = 30.0  # how long after its resumption a zombie has to try a write and be refused


def fenced_batches(replica: Replica) -> float | None:
    """How many batches `replica` had refused for fencing, from its /metrics (None: it does not answer)."""
    try:
        text = httpx.get(f"{replica.url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(FENCE_METRIC + "{"))


async def zombie(ctx: Context) -> None:
    """kpi, coaching and recognition each paused (SIGSTOP) past their session timeout while a second replica
    takes their partitions over and claims them, then resumed: each zombie must try to write what it held and
    be refused (`attain_consumer_fenced_total` on the zombie goes up), not merely have its writes undone by
    the offsets; and nothing may be counted twice (the oracle)."""
    seconds = [ctx.fleet.start(s, 1) for s in CONSUMERS]
    await asyncio.to_thread(ctx.fleet.wait_ready, seconds)
    await ctx.until_streamed(0.3)
    firsts = [ctx.fleet.replica(s) for s in CONSUMERS]
    before = {r.service: await asyncio.to_thread(fenced_batches, r) or 0.0 for r in firsts}
    paused = [r for r in firsts if _signal(ctx, r, signal.SIGSTOP)]
    await asyncio.sleep(SESSION_TIMEOUT_S * 2)  # the group gives the partitions away; the successor claims them
    for replica in paused:
        _signal(ctx, replica, signal.SIGCONT)
    deadline = time.monotonic() + FENCE_WAIT_S
    waiting = {r.service: r for r in paused}
    while waiting and time.monotonic() < deadline:
        for service, replica in list(waiting.items()):
            now = await asyncio.to_thread(fenced_batches, replica)
            if now is not None and now > before[service]:
                ctx.notes.append(f"zombie {service}: {now - before[service]:.0f} batch(es) refused by fencing")
                del waiting[service]
        await asyncio.sleep(0.5)
    for service in waiting:
        ctx.notes.append(f"zombie {service}: resumed, and no write of it was refused within {FENCE_WAIT_S:.0f}s")
        ctx.failures += 1
    await ctx.until_streamed(0.8)
    for replica in seconds:
        await asyncio.to_thread(_signal, ctx, replica, signal.SIGTERM)


async def short(ctx: Context) -> None:
    """The test suite's version: every service SIGKILLed once at a random moment, then kpi SIGTERMed in the
    middle of a batch (it must drain and exit 0); poison in every input topic, as in every run."""
    await sigkill_each(ctx, rounds=1)
    replica = ctx.fleet.replica("kpi")
    began = time.monotonic()
    if await asyncio.to_thread(_signal, ctx, replica, signal.SIGTERM) and (
            replica.exit_codes[-1:] != [0] or time.monotonic() - began > GRACE_S):
        ctx.notes.append(f"SIGTERM kpi: exit {replica.exit_codes[-1:]} after {time.monotonic() - began:.1f}s")
        ctx.failures += 1
    await _restart(ctx, "kpi")


SCENARIOS: dict[str, Fault] = {
    "poison": nothing,
    "sigkill": sigkill_each,
    "sigterm-drain": sigterm_drain,
    "broker-restart": broker_restart,
    "postgres-restart": postgres_restart,
    "postgres-away-30s": postgres_away_30s,
    "rebalance-storm": rebalance_storm,
    "zombie": zombie,
}
