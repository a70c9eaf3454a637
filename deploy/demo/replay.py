"""`python -m deploy.demo.replay [--seed N] [--reps 24] [--teams 4] [--step-hours 3] [--runs 2]`.

Replays one simulated quarter (the demo's simulator, a fixed quarter: 2026-Q3) through the real kpi and
coaching code, on a simulated clock, against fresh PostgreSQL databases, and summarises the check-in
task stream coaching produced: tasks per rule, per ISO week, per manager. Done `--runs` times from
scratch; the exit code says whether every run produced the same stream (0) or not (1).

No Kafka: the records Kafka would carry are built in-process and handed to the services' own
`TransactionalConsumer` (ingest's topic, key and CloudEvent wrapping; kpi's outbox rows as its relay
publishes them). The clock moves in steps of `--step-hours`; at each step `now`:

1. kpi gets every canonical event due by `now` as one batch (ingest's duplicates left out, as ingest
   answers "duplicate" and publishes nothing); its figures are saved and published in that batch's
   own transaction;
2. kpi's new outbox rows become `kpi.attainment.v1` records;
3. coaching gets the step's sales records and those attainment records as one batch, and evaluates the
   reps they touched (`evaluate_owed`, its evaluator's pass);
4. coaching's timer pass (`tick`) runs once at `now`.

The steps go on, without new events, to the quarter's end, so escalations and reviews happen too.
Each run uses one database of its own holding both services' schemas (`kpi`, `coaching`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord
from rich.console import Console
from rich.table import Table

from deploy.demo.args import within
from deploy.demo.org import (
    MAX_REPS,
    MAX_TEAMS,
    MIN_REPS,
    MIN_TEAMS,
    TENANT_COUNTRY,
    TENANT_SUBDIVISION,
    Profile,
    Quarter,
)
from deploy.demo.simulator import CURRENCY, Scenario, build_scenario
from services.coaching import handlers as coaching_handlers
from services.coaching import repository as coaching_repository
from services.coaching.app import SPEC as COACHING
from services.coaching.effect import summarise as effect_summary
from services.coaching.model import RULES
from services.coaching.settings import CoachingSettings
from services.coaching.timers import evaluate_owed, tick
from services.ingest.publishing import to_record
from services.ingest.tenants import Tenant, signed
from services.kpi import handlers as kpi_handlers
from services.kpi.app import SPEC as KPI
from shared import topics
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent, encode, message_key
from shared.consumer import TransactionalConsumer
from shared.db import create_pool, migrate, tenant_tx
from shared.events import CANONICAL_EVENT, DealDeletedEvent, DealUpsertedEvent, Holidays, TenantUpserted
from shared.outbox import row_headers
from shared.registry_signing import RegistrySigner, RegistryVerifier, generate_private_key
from shared.service import Runtime

__all__ = [
    "COACHING_GRACE_S",
    "QUARTER",
    "Options",
    "Replay",
    "RunSummary",
    "TaskRow",
    "build_feed",
    "digest",
    "main",
    "replay_once",
    "run_replays",
    "steps",
    "summarise",
]

QUARTER = Quarter.containing(datetime(2026, 8, 15, tzinfo=UTC))  # 2026-Q3, whatever today is
COACHING_GRACE_S = 14 * 86400  # as the demo (deploy/demo/app.py): a new target waits two weeks
COOLDOWN_DAYS = 7  # as the demo
EFFECT_MIN_SAMPLE = 5  # follow-ups a rule needs before its effect is shown
TENANT_SLUG = "replay"
KPI_GROUP, COACHING_GROUP = "replay-kpi", "replay-coaching"
KPI_TOPICS = frozenset(
    {topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name, topics.TENANTS.name}
)
COACHING_TOPICS = frozenset({topics.ACTIVITIES.name, topics.DEALS.name, topics.ROSTER.name, topics.TENANTS.name})
OUTBOX_TYPES = (
    "coaching.task.created",
    "coaching.task.closed",
    "coaching.task.escalated",
    "coaching.review.published",
    "coaching.plan.step.completed",
)
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/attain"
NAMESPACE = uuid.UUID("0d6c1a9e-5b3f-4e27-8a41-c7f2e9b05d13")


# --------------------------------------------------------------------------- the records (pure)


@dataclass(frozen=True, slots=True)
class Due:
    """A record Kafka would carry, and the share of the quarter after which it is due."""

    offset: float
    record: ConsumerRecord


@dataclass(frozen=True, slots=True)
class Feed:
    """Every record of the quarter in delivery order, and what ingest left out on the way."""

    items: tuple[Due, ...]
    duplicates: int  # re-sent events ingest answers "duplicate" for: never on Kafka


class Offsets:
    """The next offset of each topic (one partition each)."""

    def __init__(self) -> None:
        self._next: Counter[str] = Counter()

    def record(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]], at: datetime
    ) -> ConsumerRecord:
        offset = self._next[topic]
        self._next[topic] += 1
        millis = int(at.timestamp() * 1000)
        return ConsumerRecord(topic, 0, offset, millis, 0, key, value, None, len(key), len(value), list(headers))


def tenant_of(quarter: Quarter) -> Tenant:
    return Tenant(slug=TENANT_SLUG, timezone=quarter.timezone, currency=CURRENCY, fiscal_start_month=1)


# The registry entry is signed as ingest signs it, and the consumers verify it as the services do: with a key
# pair of this process (the feed never leaves it; the task stream does not depend on the key).
REGISTRY_SIGNER = RegistrySigner(generate_private_key())
REGISTRY_VERIFIER = RegistryVerifier([REGISTRY_SIGNER.public_key])


def tenant_event(tenant: Tenant, seed: int, at: datetime) -> CloudEvent:
    """The registry entry ingest announces when the tenant is created (a fixed id: runs must match)."""
    entry = TenantUpserted(
        tenant=tenant.slug,
        timezone=tenant.timezone,
        currency=tenant.currency,
        fiscal_start_month=tenant.fiscal_start_month,
        token_sha256=hashlib.sha256(f"replay-{seed}".encode()).hexdigest(),
        active=True,
        holidays=Holidays(country=TENANT_COUNTRY, subdivision=TENANT_SUBDIVISION),
    )
    return CloudEvent(
        id=str(uuid.uuid5(NAMESPACE, f"{tenant.slug}|{seed}")),
        type="tenant.upserted",
        source="attain/ingest",
        time=at,
        tenant=tenant.slug,
        data=entry,
    )


def build_feed(scenario: Scenario, tenant: Tenant) -> Feed:
    """The records ingest would publish for the scenario's schedule, in order: the tenant's registry entry
    first, then each accepted canonical event (topic, key and CloudEvent from `publishing.to_record`);
    re-sent events are left out and a deletion is keyed by its deal's owner, as ingest does."""
    offsets = Offsets()
    start = scenario.quarter.start
    key = message_key(tenant.slug)
    entry = tenant_event(tenant, scenario.seed, start - timedelta(days=1))
    value, headers = encode(signed(entry, key, REGISTRY_SIGNER))
    items = [Due(0.0, offsets.record(topics.TENANTS.name, key, value, headers, start))]
    accepted: set[tuple[str, str]] = set()
    owners: dict[str, str] = {}
    duplicates = 0
    for scheduled in scenario.schedule:
        event = CANONICAL_EVENT.validate_python(scheduled.event)
        if (event.source, event.id) in accepted:
            duplicates += 1
            continue
        accepted.add((event.source, event.id))
        owner = None
        if isinstance(event, DealUpsertedEvent):
            owners[event.data.deal_id] = event.data.rep_id
        elif isinstance(event, DealDeletedEvent):
            owner = owners.get(event.data.deal_id)
        topic, key, cloud_event = to_record(tenant, event, owner)
        value, headers = encode(cloud_event)
        items.append(
            Due(scheduled.offset, offsets.record(topic, key, value, headers, scenario.quarter.at(scheduled.offset)))
        )
    return Feed(tuple(items), duplicates)


def steps(quarter: Quarter, step: timedelta) -> list[datetime]:
    """The simulated instants of the replay: the quarter's start, then every `step`, up to its end."""
    if step <= timedelta(0):
        raise ValueError(f"step must be positive, got {step}")
    out, at = [], quarter.start
    while at < quarter.end:
        out.append(at)
        at += step
    return out


def outbox_record(offsets: Offsets, row: asyncpg.Record | dict[str, Any], at: datetime) -> ConsumerRecord:
    """An outbox row as `OutboxRelay` publishes it: topic, key, value and the stored headers, encoded."""
    headers = row_headers(row.get("header_pack"), row.get("headers"))
    return offsets.record(row["topic"], bytes(row["key"]), bytes(row["value"]), headers, at)


# --------------------------------------------------------------------------- the summary (pure)


@dataclass(frozen=True, slots=True)
class TaskRow:
    task_id: str
    rep_id: str
    manager_id: str | None
    rule: str
    severity: str
    created_at: datetime
    due_at: datetime
    status: str
    escalated_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None


def digest(tasks: Iterable[TaskRow]) -> str:
    """SHA-256 over the sorted (task_id, rep_id, rule, severity, created_at, status, close_reason,
    escalated_at) of every task: equal for equal task streams."""
    rows = sorted(
        (
            t.task_id,
            t.rep_id,
            t.rule,
            t.severity,
            t.created_at.isoformat(),
            t.status,
            t.close_reason or "",
            t.escalated_at.isoformat() if t.escalated_at else "",
        )
        for t in tasks
    )
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def iso_week(moment: datetime, zone: ZoneInfo) -> str:
    iso = moment.astimezone(zone).isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one run produced, in the form it is printed and compared."""

    tasks: int
    by_status: tuple[tuple[str, int], ...]
    by_rule: tuple[tuple[str, int, int, int, int, int], ...]  # rule, total, warning, critical, escalated, recovered
    by_week: tuple[tuple[str, tuple[int, ...]], ...]  # week, count per rule of `rules`
    rules: tuple[str, ...]
    by_manager: tuple[tuple[str, int, int, int, int], ...]  # manager, reps with tasks, tasks, escalated, recovered
    by_profile: tuple[tuple[str, int, int, int], ...]  # profile, reps, reps with behind_pace, tasks
    outbox: tuple[tuple[str, int], ...]
    digest: str
    # each slipping rep and the local day of their first behind_pace check-in (None: never caught)
    slipping: tuple[tuple[str, str | None], ...] = ()


def summarise(
    tasks: Sequence[TaskRow], outbox: Counter[str], zone: ZoneInfo, profiles: dict[str, Profile]
) -> RunSummary:
    """Counts per status, rule, ISO week of creation (in the tenant's zone), manager and rep profile; and
    whether each slipping rep was caught (their first behind_pace check-in)."""
    rules = tuple(r for r in RULES if any(t.rule == r for t in tasks)) + tuple(
        sorted({t.rule for t in tasks} - set(RULES))
    )
    by_rule = tuple(
        (
            rule,
            len(mine),
            sum(t.severity == "warning" for t in mine),
            sum(t.severity == "critical" for t in mine),
            sum(t.escalated_at is not None for t in mine),
            sum(t.close_reason == "recovered" for t in mine),
        )
        for rule in rules
        for mine in [[t for t in tasks if t.rule == rule]]
    )
    weeks = Counter((iso_week(t.created_at, zone), t.rule) for t in tasks)
    by_week = tuple((week, tuple(weeks[(week, rule)] for rule in rules)) for week in sorted({w for w, _ in weeks}))
    managers = sorted({t.manager_id or "-" for t in tasks})
    by_manager = tuple(
        (
            m,
            len({t.rep_id for t in mine}),
            len(mine),
            sum(t.escalated_at is not None for t in mine),
            sum(t.close_reason == "recovered" for t in mine),
        )
        for m in managers
        for mine in [[t for t in tasks if (t.manager_id or "-") == m]]
    )
    by_profile = tuple(
        (
            profile.value,
            len(reps),
            len({t.rep_id for t in tasks if t.rep_id in reps and t.rule == "behind_pace"}),
            sum(t.rep_id in reps for t in tasks),
        )
        for profile in Profile
        for reps in [{r for r, p in profiles.items() if p is profile}]
    )
    return RunSummary(
        tasks=len(tasks),
        by_status=tuple(sorted(Counter(t.status for t in tasks).items())),
        by_rule=by_rule,
        by_week=by_week,
        rules=rules,
        by_manager=by_manager,
        by_profile=by_profile,
        outbox=tuple((kind, outbox[kind]) for kind in (*OUTBOX_TYPES, *sorted(set(outbox) - set(OUTBOX_TYPES)))),
        digest=digest(tasks),
        slipping=tuple(
            (rep, min((t.created_at.astimezone(zone).date().isoformat() for t in tasks
                       if t.rep_id == rep and t.rule == "behind_pace"), default=None))
            for rep in sorted(r for r, p in profiles.items() if p is Profile.SLIPPING)
        ),
    )


# --------------------------------------------------------------------------- one run (I/O)


@dataclass(slots=True)
class Replay:
    """One run's outcome."""

    run: int
    summary: RunSummary
    tasks: tuple[TaskRow, ...]
    elapsed_s: float
    steps: int
    kpi_records: int
    attainment_records: int
    coaching_records: int
    duplicates: int
    dead_letters: list[str] = field(default_factory=list)
    effect: list[dict[str, Any]] = field(default_factory=list)  # coaching's effectiveness by rule (effect.py)


class DeadLetters:
    """Stands in for the producer the consumers dead-letter with: here a dead letter is a finding to report."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def send_and_wait(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        why = dict(headers).get("attain_error", b"").decode(errors="replace")
        self.seen.append(f"{topic} key={(key or b'').decode(errors='replace')}: {why}")


@dataclass(frozen=True, slots=True)
class _Runtime:
    """What the services' handler factories read of their runtime: the clock and the settings."""

    clock: FixedClock
    settings: CoachingSettings


async def _new_outbox_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """kpi's unsent rows in `seq` order, deleted as the relay deletes what Kafka took."""
    async with pool.acquire() as conn, conn.transaction():
        rows = list(await conn.fetch("SELECT seq, topic, key, value, header_pack, headers FROM outbox ORDER BY seq"))
        if rows:
            await conn.execute("DELETE FROM outbox WHERE seq <= $1", rows[-1]["seq"])
    return rows


async def _read_tasks(pool: asyncpg.Pool, tenant: str) -> list[TaskRow]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT task_id, rep_id, manager_id, rule, severity, created_at, due_at, status, escalated_at,"
            " closed_at, close_reason FROM tasks WHERE tenant = $1 ORDER BY created_at, task_id",
            tenant,
        )
    return [
        TaskRow(
            str(r["task_id"]),
            r["rep_id"],
            r["manager_id"],
            r["rule"],
            r["severity"],
            r["created_at"],
            r["due_at"],
            r["status"],
            r["escalated_at"],
            r["closed_at"],
            r["close_reason"],
        )
        for r in rows
    ]


async def _outbox_types(pool: asyncpg.Pool) -> Counter[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT header_pack, headers FROM outbox")
    return Counter(dict(row_headers(r["header_pack"], r["headers"])).get("ce_type", b"?").decode() for r in rows)


async def replay_once(
    scenario: Scenario, dsn: str, step: timedelta, run: int = 1, progress: Callable[[int, int], None] | None = None
) -> Replay:
    """Replay `scenario` through kpi and coaching on the empty database `dsn`; summarise coaching's tasks."""
    started = time.perf_counter()
    quarter = scenario.quarter
    tenant = tenant_of(quarter)
    feed = build_feed(scenario, tenant)
    clock = FixedClock(quarter.start)
    settings = CoachingSettings(
        database_url=dsn,
        coaching_grace_s=COACHING_GRACE_S,
        coaching_cooldown_days=COOLDOWN_DAYS,
        coaching_pace_threshold=Decimal("0.7"),
        coaching_policy={},
    )
    policy = settings.policy()
    runtime = cast(Runtime, _Runtime(clock, settings))
    kpi_pool = await create_pool(dsn, KPI.schema, max_size=4)
    coaching_pool = await create_pool(dsn, COACHING.schema, max_size=4)
    dead = DeadLetters()
    producer = cast(AIOKafkaProducer, dead)
    try:
        await migrate(kpi_pool, KPI.schema, KPI.migrations)
        await migrate(coaching_pool, COACHING.schema, COACHING.migrations)
        kpi = TransactionalConsumer(
            pool=kpi_pool,
            producer=producer,
            group_id=KPI_GROUP,
            service=KPI.name,
            models=kpi_handlers.MODELS,
            handler=kpi_handlers.make_handler(runtime),
            verifier=REGISTRY_VERIFIER,
        )
        coaching = TransactionalConsumer(
            pool=coaching_pool,
            producer=producer,
            group_id=COACHING_GROUP,
            service=COACHING.name,
            models=coaching_handlers.MODELS,
            handler=coaching_handlers.make_handler(runtime),
            verifier=REGISTRY_VERIFIER,
        )
        attainment_offsets = Offsets()
        instants = steps(quarter, step)
        pending = list(feed.items)
        kpi_count = attainment_count = coaching_count = 0
        for i, now in enumerate(instants):
            clock.set(now)
            last = i == len(instants) - 1
            fraction = quarter.fraction(now)
            cut = (
                len(pending) if last else next((j for j, d in enumerate(pending) if d.offset > fraction), len(pending))
            )
            due, pending = [d.record for d in pending[:cut]], pending[cut:]
            if due:
                await kpi.process([r for r in due if r.topic in KPI_TOPICS])
            figures = [outbox_record(attainment_offsets, row, now) for row in await _new_outbox_rows(kpi_pool)]
            batch = [r for r in due if r.topic in COACHING_TOPICS] + figures
            if batch:
                await coaching.process(batch)
            await evaluate_owed(coaching_pool, now, policy)  # what coaching's evaluator does a second later
            await tick(coaching_pool, now, policy)
            kpi_count += sum(r.topic in KPI_TOPICS for r in due)
            attainment_count += len(figures)
            coaching_count += len(batch)
            if progress is not None:
                progress(i + 1, len(instants))
        tasks = await _read_tasks(coaching_pool, tenant.slug)
        outbox = await _outbox_types(coaching_pool)
        async with tenant_tx(coaching_pool, tenant.slug) as conn:
            followed = await coaching_repository.follow_ups(conn, tenant.slug, quarter.start, quarter.end)
    finally:
        await kpi_pool.close()
        await coaching_pool.close()
    profiles = {rep.rep_id: rep.profile for rep in scenario.org.reps}
    summary = summarise(tasks, outbox, ZoneInfo(quarter.timezone), profiles)
    return Replay(
        run,
        summary,
        tuple(tasks),
        time.perf_counter() - started,
        len(instants),
        kpi_count,
        attainment_count,
        coaching_count,
        feed.duplicates,
        dead.seen,
        effect_summary(followed, "rule", EFFECT_MIN_SAMPLE),
    )


# --------------------------------------------------------------------------- several runs


@dataclass(frozen=True, slots=True)
class Options:
    seed: int = 7
    reps: int = 24
    teams: int = 4
    step_hours: float = 3.0
    runs: int = 2
    database_url: str = DEFAULT_DATABASE_URL
    keep: bool = False


MakeDatabase = Callable[[int], Awaitable[str]]


def _server_database(base_url: str, name: str) -> str:
    return base_url.rsplit("/", 1)[0] + f"/{name}"


def database_maker(base_url: str, seed: int) -> MakeDatabase:
    """Run `n`'s database on the server of `base_url`: `attain_replay_<seed>_<n>`, dropped and created afresh."""

    async def make(run: int) -> str:
        name = f"attain_replay_{seed}_{run}"
        admin = await asyncpg.connect(base_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return _server_database(base_url, name)

    return make


async def drop_database(base_url: str, dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(base_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass(frozen=True, slots=True)
class Outcome:
    scenario: Scenario
    replays: tuple[Replay, ...]

    @property
    def identical(self) -> bool:
        first = self.replays[0]
        return all(r.summary == first.summary and r.tasks == first.tasks for r in self.replays[1:])

    @property
    def clean(self) -> bool:
        return not any(r.dead_letters for r in self.replays)


async def run_replays(
    options: Options, make_database: MakeDatabase | None = None, console: Console | None = None
) -> Outcome:
    """`options.runs` replays of the seed's quarter, each on a fresh database; printed when `console` is given."""
    scenario = build_scenario(options.seed, QUARTER, reps=options.reps, teams=options.teams)
    make = make_database or database_maker(options.database_url, options.seed)
    step = timedelta(hours=options.step_hours)
    if console is not None:
        _print_header(console, scenario, options)
    replays: list[Replay] = []
    for run in range(1, options.runs + 1):
        dsn = await make(run)
        try:
            replay = await replay_once(scenario, dsn, step, run, _progress(console, run))
        finally:
            if make_database is None and not options.keep:
                await drop_database(options.database_url, dsn)
        replays.append(replay)
        if console is not None:
            _print_run(console, replay, replays[0] if run > 1 else None)
    outcome = Outcome(scenario, tuple(replays))
    if console is not None:
        _print_verdict(console, outcome)
    return outcome


# --------------------------------------------------------------------------- printing


def _progress(console: Console | None, run: int) -> Callable[[int, int], None] | None:
    if console is None or not console.is_terminal:
        return None

    def show(done: int, total: int) -> None:
        if done % 40 == 0 or done == total:
            console.print(f"  run {run}: step {done}/{total}", end="\r")

    return show


def _print_header(console: Console, scenario: Scenario, options: Options) -> None:
    q = scenario.quarter
    profiles = Counter(rep.profile.value for rep in scenario.org.reps)
    console.print(
        f"[bold]Attain coaching replay[/]: seed {scenario.seed}, {q.label} ({q.timezone}), "
        f"{len(scenario.org.reps)} reps in {len(scenario.org.teams)} teams "
        f"({', '.join(f'{n} {p}' for p, n in sorted(profiles.items()))}), "
        f"{len(scenario.schedule)} scheduled events, steps of {options.step_hours:g} h, "
        f"grace {COACHING_GRACE_S // 86400} d, cool-down {COOLDOWN_DAYS} d"
    )


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=None, pad_edge=False, padding=(0, 1))
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    return table


def _short(rule: str) -> str:
    return {
        "behind_pace": "pace",
        "activity_shortfall": "activity",
        "stalled_pipeline": "stalled",
        "falling_win_rate": "win rate",
        "no_activity": "silent",
    }.get(rule, rule)


def _print_run(console: Console, replay: Replay, first: Replay | None) -> None:
    s = replay.summary
    statuses = ", ".join(f"{n} {status}" for status, n in s.by_status) or "none"
    console.print(
        f"\n[bold]run {replay.run}[/]: {s.tasks} tasks ({statuses}) · digest {s.digest} · "
        f"{replay.elapsed_s:.1f} s wall for {replay.steps} steps · records: {replay.kpi_records} to kpi, "
        f"{replay.attainment_records} attainment, {replay.coaching_records} to coaching · "
        f"{replay.duplicates} duplicates left out by ingest · {len(replay.dead_letters)} dead letters"
    )
    for line in replay.dead_letters[:10]:
        console.print(f"  [red]dead letter[/] {line}")
    if first is not None and first.summary == s and first.tasks == replay.tasks:
        console.print(f"  tables: the same as run {first.run}'s")
        return
    rules = _table("tasks per rule", "rule", "tasks", "warning", "critical", "escalated", "recovered")
    for rule, *counts in s.by_rule:
        rules.add_row(rule, *map(str, counts))
    console.print(rules)
    weeks = _table("tasks per ISO week of creation (tenant zone)", "week", *map(_short, s.rules), "all")
    for week, per_rule in s.by_week:
        weeks.add_row(week, *map(str, per_rule), str(sum(per_rule)))
    console.print(weeks)
    managers = _table("tasks per manager", "manager", "reps", "tasks", "escalated", "recovered")
    for manager, *counts in s.by_manager:
        managers.add_row(manager, *map(str, counts))
    console.print(managers)
    profiles = _table("reps by simulated profile", "profile", "reps", "with behind_pace", "tasks")
    for profile, *counts in s.by_profile:
        profiles.add_row(profile, *map(str, counts))
    console.print(profiles)
    caught = _table("slipping reps caught", "rep", "first behind_pace check-in")
    for rep, day in s.slipping:
        caught.add_row(rep, day or "[red]never[/]")
    console.print(caught)
    effect = _table("did it help? what followed check-ins, against findings that got none (recovered of count)",
                    "rule", "check-ins", "recovered", "comparison", "recovered ", "difference")
    for g in replay.effect:
        mine, theirs = g["check_ins"], g["comparison"]
        effect.add_row(g["key"], str(mine["n"]), _rate(mine), str(theirs["n"]), _rate(theirs),
                       "–" if g["difference"] is None else f"{g['difference'] * 100:+.0f} pts")
    console.print(effect)
    console.print("coaching outbox: " + ", ".join(f"{kind} {n}" for kind, n in s.outbox))
    if first is not None:
        _print_difference(console, first, replay)


def _rate(stats: dict[str, Any]) -> str:
    if not stats["enough"]:
        return "too few"
    low, high = stats["recovery_ci95"]
    return f"{stats['recovered']} ({stats['recovery_rate'] * 100:.0f} %, CI {low * 100:.0f}-{high * 100:.0f})"


def _print_difference(console: Console, first: Replay, other: Replay) -> None:
    mine = {t.task_id: t for t in first.tasks}
    theirs = {t.task_id: t for t in other.tasks}
    only_first = sorted(mine.keys() - theirs.keys())
    only_other = sorted(theirs.keys() - mine.keys())
    changed = sorted(k for k in mine.keys() & theirs.keys() if mine[k] != theirs[k])
    console.print(
        f"[red]differs from run {first.run}[/]: {len(only_first)} tasks only in run {first.run}, "
        f"{len(only_other)} only in run {other.run}, {len(changed)} in both but different"
    )
    for label, keys, table in (("only in first", only_first, mine), ("only in this", only_other, theirs)):
        for key in keys[:5]:
            t = table[key]
            console.print(f"  {label}: {t.rep_id} {t.rule} {t.severity} {t.created_at.isoformat()} {t.status}")
    for key in changed[:5]:
        console.print(f"  changed: {mine[key]} -> {theirs[key]}")


def _print_verdict(console: Console, outcome: Outcome) -> None:
    digests = ", ".join(f"run {r.run} {r.summary.digest[:16]}" for r in outcome.replays)
    console.print(f"\ndigests: {digests}")
    console.print(f"wall time: {', '.join(f'run {r.run} {r.elapsed_s:.1f} s' for r in outcome.replays)}")
    if not outcome.clean:
        console.print("[red]records were dead-lettered: a bug in kpi or coaching (see above)[/]")
    console.print(f"[bold]identical: {'yes' if outcome.identical else 'no'}[/]")


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.demo.replay",
        description="Replay one simulated quarter (2026-Q3) through kpi and coaching on a simulated clock, "
        "against fresh PostgreSQL databases (no Kafka), summarise the check-in tasks, and check that every "
        "run gives the same task stream (exit 0) or not (exit 1).",
    )
    parser.add_argument("--seed", type=within(int, 0, 2**31), default=7, help="simulator seed (default 7)")
    parser.add_argument(
        "--reps",
        type=within(int, MIN_REPS, MAX_REPS),
        default=24,
        help=f"sales reps ({MIN_REPS}..{MAX_REPS}, default 24)",
    )
    parser.add_argument(
        "--teams",
        type=within(int, MIN_TEAMS, MAX_TEAMS),
        default=4,
        help=f"teams, each with a manager ({MIN_TEAMS}..{MAX_TEAMS}, default 4)",
    )
    parser.add_argument(
        "--step-hours", type=within(float, 0.25, 24 * 7), default=3.0, help="simulated hours per step (default 3)"
    )
    parser.add_argument("--runs", type=within(int, 1, 10), default=2, help="replays to compare (default 2)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        help="a database on the server to create the runs' databases on (default $DATABASE_URL or the local stack's)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the runs' databases (attain_replay_<seed>_<n>)")
    args = parser.parse_args(argv)
    return Options(
        seed=int(args.seed),
        reps=int(args.reps),
        teams=int(args.teams),
        step_hours=float(args.step_hours),
        runs=int(args.runs),
        database_url=args.database_url,
        keep=bool(args.keep),
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    console = Console()
    try:
        outcome = asyncio.run(run_replays(options, console=console))
    except KeyboardInterrupt:
        return 130
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as err:
        console.print(
            f"[red]cannot reach PostgreSQL at {options.database_url}: {err}[/] "
            "(start it with `python -m deploy.local.stack up`)"
        )
        return 2
    return 0 if outcome.identical and outcome.clean else 1


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
