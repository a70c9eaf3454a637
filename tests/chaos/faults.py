"""The faults, each an async function that runs while the scenario streams through ingest.

Each acts on the run's own service processes (`Fleet`), or on the local broker and PostgreSQL cluster
this checkout started (`deploy/local`): a broker or database someone else runs is never touched. A fault
that cannot be applied (that broker or database, a replica that is not running when it should be signalled)
says so with `Context.skip`, and the run fails: it did not show what it was meant to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from deploy.local import kafka, pg_cluster
from deploy.local.kafka_setup import KafkaSettings
from deploy.local.postgres import Url
from deploy.local.procs import LOCAL, StackError, apt_install
from shared import topics
from shared.cloudevents import CloudEvent, message_key
from shared.db import set_tenant
from shared.outbox import enqueue
from tests.chaos import netns
from tests.chaos.fleet import CONSUMERS, GRACE_S, SERVICES, Replica
from tests.chaos.run import Context, Fault
from tests.integration.conftest import BOOTSTRAP, DATABASE_URL, as_admin

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
FENCE_WAIT_S = 12.0  # how long after its resumption a zombie has to try a write and be refused
ZOMBIE_ROUNDS = 4  # pauses at most per service until one of its writes is refused


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
    the offsets; and nothing may be counted twice (the oracle).

    A zombie is refused only if it resumes with a batch in hand (fetched before, or in the fetch that was in
    flight when it stopped) and writes it before its heartbeat learns that the group moved on: likely, not
    certain, on any one pause. So each service is paused again, up to ZOMBIE_ROUNDS times, until one of its
    writes was refused, while the stream keeps flowing (stretched to outlast the rounds); only a service
    never refused in all its rounds fails the run."""
    ctx.stretch(ZOMBIE_ROUNDS * (SESSION_TIMEOUT_S * 2 + FENCE_WAIT_S) + 30)
    seconds = [ctx.fleet.start(s, 1) for s in CONSUMERS]
    await asyncio.to_thread(ctx.fleet.wait_ready, seconds)
    await ctx.until_streamed(0.1)
    waiting = {s: ctx.fleet.replica(s) for s in CONSUMERS}
    for round_ in range(1, ZOMBIE_ROUNDS + 1):
        if not waiting or (round_ > 1 and ctx.done.is_set()):  # with the stream over, no batch to hold
            break
        before: dict[str, float] = {}
        for service, replica in waiting.items():
            got = await asyncio.to_thread(fenced_batches, replica)
            before[service] = got or 0.0
        paused = {s: r for s, r in waiting.items() if _signal(ctx, r, signal.SIGSTOP)}
        await asyncio.sleep(SESSION_TIMEOUT_S * 2)  # the group gives the partitions away; the successor claims
        for replica in paused.values():
            _signal(ctx, replica, signal.SIGCONT)
        deadline = time.monotonic() + FENCE_WAIT_S
        while time.monotonic() < deadline and any(s in waiting for s in paused):
            for service, replica in paused.items():
                now = await asyncio.to_thread(fenced_batches, replica)
                if service in waiting and now is not None and now > before[service]:
                    ctx.notes.append(f"zombie {service}: {now - before[service]:.0f} batch(es) refused by fencing"
                                     f" (pause {round_})")
                    del waiting[service]
            await asyncio.sleep(0.5)
        waiting = {s: r for s, r in waiting.items() if s in paused}  # one that could not be paused is skipped
    for service in waiting:
        ctx.notes.append(f"zombie {service}: no write of it was refused after {ZOMBIE_ROUNDS} pauses")
        ctx.failures += 1
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


def prepared_by(prepare: Callable[[Context], Coroutine[Any, Any, None]]) -> Callable[[Fault], Fault]:
    """Give a fault what runs before the fleet starts (`run` calls it): a namespace, a tablespace, a preload."""
    def mark(fault: Fault) -> Fault:
        fault.prepare = prepare  # type: ignore[attr-defined]
        return fault
    return mark


PARTITION_S = 25.0  # longer than the consumers' session timeout: a partition from Kafka costs the group


async def _in_namespaces(ctx: Context) -> None:
    """kpi, coaching and recognition (replica 0 each) in network namespaces of their own, reached only through
    this run's relays (tests/chaos/netns.py)."""
    if (why := netns.available()) is not None:
        ctx.skip(f"partition: {why}")
        return
    kafka_port = int(BOOTSTRAP.rsplit(":", 1)[1])
    for service in CONSUMERS:
        replica = ctx.fleet.replica(service)
        space = netns.Namespace(f"attain-{ctx.run_id[-6:]}-{service}", kafka_port, _pg_port(), replica.port)
        await space.create()
        ctx.cleanups.append(space.delete)
        ctx.fleet.prefix[(service, 0)] = space.command
        ctx.namespaces[service] = space


async def _partition(ctx: Context, link: str) -> None:
    """Cut kpi, then coaching, then recognition off from `link` ("postgres" or "kafka") for PARTITION_S each,
    while the stream flows (stretched to outlast them), and heal each partition after."""
    ctx.stretch(len(CONSUMERS) * (PARTITION_S + 10) + 30)
    for i, service in enumerate(CONSUMERS):
        await ctx.until_streamed((i + 1) / (len(CONSUMERS) + 2))
        space = ctx.namespaces.get(service)
        if space is None or not ctx.fleet.replica(service).alive:
            ctx.skip(f"partition {service} from {link}: not in a namespace of its own, or not running")
            continue
        relay: netns.Relay = getattr(space, link)
        relay.cut()
        await asyncio.sleep(PARTITION_S)
        relay.heal()
        ctx.notes.append(f"{service} cut off from {link} for {PARTITION_S:.0f}s, then healed")


@prepared_by(_in_namespaces)
async def partition_postgres(ctx: Context) -> None:
    """A network partition between one service and PostgreSQL, healed after PARTITION_S: kpi, then coaching,
    then recognition. Its statements time out, it retries; nothing of the batch in flight half-applies."""
    await _partition(ctx, "postgres")


@prepared_by(_in_namespaces)
async def partition_kafka(ctx: Context) -> None:
    """A network partition between one service and Kafka, healed after PARTITION_S: kpi, then coaching, then
    recognition. Past the session timeout the group moves on without it; what it held must not be written
    twice (fencing), and its relay's open transaction must not hold the readers back for ever."""
    await _partition(ctx, "kafka")


DISK_SIZE = "512m"  # the run's tablespace: far more than a medium run writes, filled on purpose mid-stream
DISK_FULL_S = 20.0


async def _small_disk(ctx: Context) -> None:
    """The run's database moved to a tablespace on a tmpfs of its own (DISK_SIZE), owned by PostgreSQL's
    user, before any service created a table in it."""
    if pg_cluster.local_pid() is None:
        ctx.skip("disk full: the PostgreSQL server is not the cluster this checkout started")
        return
    mount = LOCAL / "chaos-disk" / ctx.run_id
    space = await asyncio.to_thread(_mount_small_disk, mount)
    name = f"chaos_{ctx.run_id.replace('-', '_')}"
    await as_admin(f"CREATE TABLESPACE {name} LOCATION '{space}'", f'ALTER DATABASE "{name}" SET TABLESPACE {name}')
    ctx.disk = mount

    async def undo() -> None:
        await as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f"DROP TABLESPACE IF EXISTS {name}")
        await asyncio.to_thread(_unmount, mount)
    ctx.cleanups.append(undo)


def _mount_small_disk(mount: Path) -> Path:
    """A tmpfs of DISK_SIZE at `mount`, and in it a folder PostgreSQL's user owns (the tablespace's)."""
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0755", "tmpfs", str(mount)], check=True)
    space = mount / "pg"
    space.mkdir()
    shutil.chown(space, user=pg_cluster.PG_DATA.owner())
    return space


def _unmount(mount: Path) -> None:
    subprocess.run(["umount", str(mount)], check=True)
    mount.rmdir()


def _fill(directory: Path) -> int:
    """Write into `directory` until the file system has no room left; the bytes written."""
    written = 0
    block = b"\0" * (1 << 20)
    with (directory / "filler").open("wb", buffering=0) as out:
        while True:
            try:
                written += out.write(block)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    return written
                block = block[: len(block) // 2]


@prepared_by(_small_disk)
async def disk_full(ctx: Context) -> None:
    """PostgreSQL's disk (the run's tablespace) full for DISK_FULL_S mid-stream: every statement that needs a
    new page fails (SQLSTATE 53100). A valid record is never dead-lettered for it; everything is retried
    and applied, once, when there is room again. The fault proves itself: a probe table of its own must
    fail to grow while the disk is full."""
    if ctx.disk is None:
        return
    await ctx.until_streamed(0.3)
    # Connected before the disk fills: a new connection needs room too ("could not write init file").
    conn = await asyncpg.connect(ctx.db)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS chaos_probe (x text)")
        await conn.execute("ALTER TABLE chaos_probe ALTER COLUMN x SET STORAGE PLAIN")  # a page a row, no TOAST
        filled = await asyncio.to_thread(_fill, ctx.disk)
        refused = False
        for _ in range(256):  # a page each: past whatever room the probe's table had
            try:
                await conn.execute("INSERT INTO chaos_probe SELECT repeat('x', 7000)")
            except asyncpg.DiskFullError:
                refused = True
                break
        if not refused:
            ctx.skip("disk full: PostgreSQL still had room after the disk was filled")
        ctx.notes.append(f"PostgreSQL's disk full ({filled / 2**20:.0f} MiB of filler) for {DISK_FULL_S:.0f}s")
        await asyncio.sleep(DISK_FULL_S)
    finally:
        await asyncio.to_thread((ctx.disk / "filler").unlink, missing_ok=True)
        await conn.close()


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
JUMP_S = 600  # each jump: ten minutes, forward or back, the way an NTP step moves a wall clock


async def _faked_clocks(ctx: Context) -> None:
    """kpi, coaching and recognition (replica 0 each) under libfaketime (Debian's `faketime`, installed when
    missing), each reading its offset from a file of its own: the wall clock (CLOCK_REALTIME) moves when the
    file changes; the monotonic clock does not (FAKETIME_DONT_FAKE_MONOTONIC), as with a real step."""
    if not await asyncio.to_thread(FAKETIME.exists):
        try:
            await asyncio.to_thread(apt_install, "faketime")
        except StackError as err:
            ctx.skip(f"clock jump: {err}")
            return
    folder = LOCAL / "chaos-clock"
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    for service in CONSUMERS:
        offset = folder / f"{ctx.run_id}-{service}"
        await asyncio.to_thread(offset.write_text, "+0\n")
        ctx.clock_files[service] = offset
        ctx.fleet.extra_env[(service, 0)] = {
            "LD_PRELOAD": str(FAKETIME), "FAKETIME_TIMESTAMP_FILE": str(offset), "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        ctx.cleanups.append(_unlinker(offset))


def _unlinker(path: Path) -> Callable[[], Coroutine[Any, Any, None]]:
    async def undo() -> None:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    return undo


def _faked(replica: Replica) -> bool:
    """Whether libfaketime is loaded in the replica's process."""
    if not replica.alive or replica.proc is None:
        return False
    with contextlib.suppress(OSError):
        return str(FAKETIME) in Path(f"/proc/{replica.proc.pid}/maps").read_text()
    return False


@prepared_by(_faked_clocks)
async def clock_jump(ctx: Context) -> None:
    """The wall clock of one service at a time jumps JUMP_S forward or back mid-stream and later back to the
    true time: kpi forward then back, coaching back then forward, recognition forward then back. Figures are
    ordered by kpi's revision, not its clock; timers and horizons must not double anything."""
    plan = [("kpi", +1, 0.15), ("kpi", 0, 0.3), ("coaching", -1, 0.4), ("coaching", 0, 0.55),
            ("recognition", +1, 0.65), ("recognition", 0, 0.8)]
    for service, sign, share in plan:
        await ctx.until_streamed(share)
        replica = ctx.fleet.replica(service)
        if service not in ctx.clock_files or not _faked(replica):
            ctx.skip(f"clock jump {service}: libfaketime is not loaded in it")
            continue
        await asyncio.to_thread(ctx.clock_files[service].write_text, f"{sign * JUMP_S:+d}\n")
        ctx.notes.append(f"{service}'s clock set {sign * JUMP_S:+d}s off the true time")


STUCK_BYTES = 2 * 1024 * 1024  # past the producer's max.request.size and the topics' max.message.bytes (1 MiB)
STUCK_WAIT_S = 60.0
STUCK_TOPICS = {"kpi": topics.ATTAINMENT.name, "coaching": topics.TASKS.name,
                "recognition": topics.CELEBRATIONS.name}


async def stuck_outbox(ctx: Context) -> None:
    """One tenant's event that Kafka refuses for good (larger than any record it takes) written into each
    service's outbox mid-stream, among everyone's: it must not hold back any other event, its tenant's
    included; it is moved to `outbox_dead` with its error within STUCK_WAIT_S, and the oracle finds every
    other event published, once."""
    await ctx.until_streamed(0.4)
    tenant = ctx.tenants[0]
    conn = await asyncpg.connect(ctx.db)
    try:
        for schema, topic in STUCK_TOPICS.items():
            event = CloudEvent(id=str(uuid.uuid4()), type="chaos.oversized", source="tests.chaos",
                               time=datetime.now(UTC), tenant=tenant, data={"blob": "x" * STUCK_BYTES})
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                await set_tenant(conn, tenant)
                await enqueue(conn, topic, message_key(tenant, "chaos"), event)
        deadline = time.monotonic() + STUCK_WAIT_S
        left = set(STUCK_TOPICS)
        while left and time.monotonic() < deadline:
            for schema in sorted(left):
                if not await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{schema}".outbox_dead WHERE tenant = $1'
                                           " AND length(value) > $2)", tenant, STUCK_BYTES):
                    continue
                ctx.notes.append(f"{schema}: the refused record was set aside in outbox_dead")
                left.discard(schema)
            await asyncio.sleep(1)
    finally:
        await conn.close()
    for schema in sorted(left):
        ctx.notes.append(f"{schema}: the refused record was not set aside within {STUCK_WAIT_S:.0f}s")
        ctx.failures += 1


SCENARIOS: dict[str, Fault] = {
    "poison": nothing,
    "sigkill": sigkill_each,
    "sigterm-drain": sigterm_drain,
    "broker-restart": broker_restart,
    "postgres-restart": postgres_restart,
    "postgres-away-30s": postgres_away_30s,
    "rebalance-storm": rebalance_storm,
    "zombie": zombie,
    "partition-postgres": partition_postgres,
    "partition-kafka": partition_kafka,
    "disk-full": disk_full,
    "clock-jump": clock_jump,
    "stuck-outbox": stuck_outbox,
}
