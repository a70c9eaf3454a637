"""Rebuild kpi's state from the topics, from the beginning, and check it against the live state.

    python -m services.kpi rebuild [--tenant SLUG] [--schema kpi_rebuild] [--replace [--force]]

1. A fresh schema (`kpi_rebuild`) gets kpi's migrations.
2. A read-only REPEATABLE READ snapshot of the live schema fixes the point to rebuild to: the
   offsets the live consumer group has committed, together with the state they produced (kpi
   writes both in one transaction, so the snapshot is consistent however busy kpi is).
3. Every input topic is read from its beginning up to exactly those offsets and applied by kpi's
   own consumer code (same handler, same batching rules, offsets stored in the same
   transaction), with a progress bar. Records that are not valid events are counted, not
   dead-lettered again. `--tenant` applies only that tenant's records. The live schema's erasures are
   copied first, so the records of an erased tenant or rep are skipped as the live consumer skips them
   (`python -m services.privacy erase`, shared/erasure.py).
4. Each table (deals, activities, roster, time off, targets, tenants, running tallies, figures) is compared
   with the snapshot, by a digest first and row by row where the digests differ. Exit status 0
   when equal, 1 when not (the differences are printed), 2 on a usage or connection problem.

`--replace` then swaps the rebuilt schema in for the live one (the old one is kept, renamed
`kpi_replaced_<time>`); it needs a full rebuild and refuses while the kpi group has members: stop kpi
first. When the rebuilt state differs from the live state it refuses too (exit 1, the differences
printed, nothing swapped) unless `--force` is given: a difference is either damage in the live state
(what `--force` repairs) or history the topics no longer hold (records older than a topic's retention,
versions compacted away: docs/architecture.md, "How far back a rebuild reaches"), which a swap would
lose for good. Figures that do not depend on the order of batches are compared; a figure's
revision and time stamp do (they count and date the batches), so they are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich import progress as rp
from rich.console import Console

from services.kpi.app import SPEC
from services.kpi.handlers import MODELS, make_handler
from services.kpi.settings import KpiSettings
from shared import db
from shared.clock import SystemClock
from shared.consumer import Incoming, TransactionalConsumer
from shared.kafka import client_kwargs

EXIT_SAME, EXIT_DIFFERENT, EXIT_PROBLEM = 0, 1, 2
STALL_S = 60.0  # no progress for this long while short of the target: give up
SHOWN = 10

_ZERO_TALLY = " AND ".join(f"{c} = 0" for c in ("won_revenue", "deals_won", "deals_lost", "pipeline_created",
                                                  "calls", "emails", "meetings", "activities", "unconverted"))
# What must be equal, as rows (numbers without trailing zeros: 1.50 and 1.5 are the same amount).
# A figure or tally of nothing is the same as no row: a key that rose and fell back within one
# rebuilt batch never got a row.
# The figures themselves (the `attainment` view) are computed from period_tallies and targets, so comparing
# those two compares every figure; a damaged tally is reported once, where it is.
TABLES: dict[str, str] = {
    "tenants": "SELECT tenant, timezone, fiscal_start_month, currency, token_sha256, active, locale, holidays"
               " FROM tenants",
    "deals": "SELECT tenant, deal_id, rep_id, trim_scale(amount), currency, stage, created_at, closed_at,"
             " updated_at, tiebreak, deleted FROM deals",
    "activities": "SELECT tenant, activity_id, rep_id, kind, occurred_at, deal_id, duration_s FROM activities",
    "reps": "SELECT tenant, rep_id, name, team_id, manager_id, timezone, active, version FROM reps",
    "memberships": "SELECT tenant, rep_id, valid_from, team_id FROM memberships",
    "leaves": "SELECT tenant, time_off_id, rep_id, first_day, last_day, cancelled, version_at, version_id FROM leaves",
    "teams": "SELECT tenant, team_id, name, parent_id, version FROM teams",
    "targets": "SELECT tenant, scope, scope_id, metric, period, trim_scale(value), version FROM targets",
    "period_tallies": "SELECT tenant, scope, scope_id, period, trim_scale(won_revenue), deals_won, deals_lost,"
                      " trim_scale(pipeline_created), calls, emails, meetings, activities, unconverted"
                      f" FROM period_tallies WHERE NOT ({_ZERO_TALLY})",
}


@dataclass(frozen=True)
class Difference:
    table: str
    live_rows: int
    rebuilt_rows: int
    only_live: list[tuple[Any, ...]]
    only_rebuilt: list[tuple[Any, ...]]


class _Replayer(TransactionalConsumer):
    """kpi's consumer, writing to the rebuild schema; invalid records were dead-lettered the first time."""

    invalid = 0

    async def _dead_letter(self, record: ConsumerRecord, error: str) -> None:
        self.invalid += 1


def _scoped(sql: str, tenant: str | None) -> tuple[str, list[str]]:
    if tenant is None:
        return sql, []
    return f"SELECT * FROM ({sql}) AS rows_of WHERE tenant = $1", [tenant]


async def _digest(conn: asyncpg.Connection, sql: str, args: list[str]) -> tuple[int, str | None]:
    row = await conn.fetchrow(f"SELECT count(*), md5(string_agg(r::text, E'\\n' ORDER BY r::text))"
                              f" FROM ({sql}) r", *args)
    return int(row[0]), row[1]


async def compare(live: asyncpg.Connection, rebuilt: asyncpg.Connection, tenant: str | None) -> list[Difference]:
    """Every table whose rows differ between the live snapshot and the rebuilt schema."""
    found = []
    for table, sql in TABLES.items():
        query, args = _scoped(sql, tenant)
        (n_live, d_live), (n_rebuilt, d_rebuilt) = await _digest(live, query, args), await _digest(rebuilt, query,
                                                                                                    args)
        if d_live == d_rebuilt:
            continue
        a = {tuple(r) for r in await live.fetch(query, *args)}
        b = {tuple(r) for r in await rebuilt.fetch(query, *args)}
        found.append(Difference(table, n_live, n_rebuilt, sorted(a - b, key=repr)[:SHOWN],
                                sorted(b - a, key=repr)[:SHOWN]))
    return found


async def _replay(settings: KpiSettings, pool: asyncpg.Pool, group: str, target: dict[TopicPartition, int],
                  tenant: str | None, console: Console) -> tuple[int, int]:
    """Apply every record before `target` with kpi's handler; returns (records applied, invalid)."""
    handle = make_handler(_Clocked(SystemClock()))

    async def only_tenant(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> None:
        mine = [m for m in batch if tenant is None or m.event.tenant == tenant]
        if mine:
            await handle(conn, mine)

    replayer = _Replayer(pool=pool, producer=cast(AIOKafkaProducer, None), group_id=group,
                         service="kpi-rebuild", models=MODELS, handler=only_tenant,
                         verifier=settings.registry_verifier())  # a forged registry entry is not rebuilt either
    wanted = [tp for tp, end in target.items() if end > 0]
    if not wanted:  # live kpi consumed nothing yet: nothing to replay (aiokafka fails to stop an unassigned consumer)
        return 0, replayer.invalid
    consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed", auto_offset_reset="earliest")
    await consumer.start()
    applied = 0
    try:
        consumer.assign(wanted)
        starts = await consumer.beginning_offsets(wanted)
        total = sum(target[tp] - starts[tp] for tp in wanted)
        done = {tp for tp in wanted if starts[tp] >= target[tp]}
        for tp in done:
            consumer.pause(tp)
        columns = (rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
                   rp.TaskProgressColumn(), rp.TimeRemainingColumn())
        with rp.Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("rebuilding kpi", total=max(total, 1))
            last_move = time.monotonic()
            while len(done) < len(wanted):
                batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                records = [r for tp, rs in batches.items() for r in rs if r.offset < target[tp]]
                if records:
                    await replayer.process(records)
                    applied += len(records)
                for tp in set(wanted) - done:
                    if await consumer.position(tp) >= target[tp]:
                        done.add(tp)
                        consumer.pause(tp)
                position = 0
                for tp in wanted:
                    position += min(await consumer.position(tp), target[tp]) - starts[tp]
                if position > bar.tasks[0].completed:
                    last_move = time.monotonic()
                elif time.monotonic() - last_move > STALL_S:
                    raise RuntimeError(f"no progress for {STALL_S:.0f} s at {position:,} of {total:,} offsets")
                bar.update(task, completed=position)
    finally:
        await consumer.stop()
    return applied, replayer.invalid


@dataclass(frozen=True)
class _Clocked:
    clock: SystemClock


async def _group_is_empty(settings: KpiSettings, group: str) -> bool:
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    groups = described[0].groups if described else []
    return all(not g[5] for g in groups)  # (error, group, state, protocol type, protocol, members, ...)


async def run(args: argparse.Namespace, settings: KpiSettings, console: Console) -> int:
    live_schema, schema, tenant = SPEC.schema, args.schema, args.tenant
    group = f"{settings.kafka_consumer_group_prefix}-kpi"
    if args.replace and tenant is not None:
        console.print("error: --replace needs a full rebuild (without --tenant)")
        return EXIT_PROBLEM
    if args.force and not args.replace:
        console.print("error: --force only applies to --replace")
        return EXIT_PROBLEM
    admin = await asyncpg.connect(settings.database_url)
    try:
        if await admin.fetchval("SELECT to_regclass($1)", f'"{live_schema}".erasures') is None:
            console.print(f"error: there is no live kpi state to rebuild: schema {live_schema!r} is missing or not"
                          " migrated in this database (start kpi, or run `attain-migrate`, first)")
            return EXIT_PROBLEM
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await admin.close()
    pool = await db.create_pool(settings.database_url, schema, min_size=1, max_size=2)
    live = await db.create_pool(settings.database_url, live_schema, min_size=1, max_size=1)
    try:
        role = db.working_role(settings.database_url, settings.database_app_url.get_secret_value()
                               if settings.database_app_url else None, SPEC.name)
        await db.migrate(pool, schema, SPEC.migrations, grant_to=role.name, grant_password=role.password)
        async with db.all_tenants_tx(pool) as conn:  # erased tenants and reps stay erased (shared/erasure.py)
            await conn.execute(f'INSERT INTO "{schema}".erasures SELECT * FROM "{live_schema}".erasures')
        async with live.acquire() as snapshot, snapshot.transaction(isolation="repeatable_read", readonly=True):
            target = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in await snapshot.fetch(
                "SELECT topic, partition, next_offset FROM consumer_offsets WHERE group_id = $1", group)}
            console.print(f"live kpi (group {group}) stands at {sum(target.values()):,} offsets over "
                          f"{len(target)} partitions; rebuilding {'tenant ' + tenant if tenant else 'every tenant'}"
                          f" into schema {schema!r}")
            started = time.perf_counter()
            applied, invalid = await _replay(settings, pool, group, target, tenant, console)
            seconds = time.perf_counter() - started
            console.print(f"replayed {applied:,} records in {seconds:.1f} s ({applied / max(seconds, 1e-9):,.0f}/s);"
                          f" {invalid:,} invalid records skipped")
            async with pool.acquire() as rebuilt:
                differences = await compare(snapshot, rebuilt, tenant)
    finally:
        await pool.close()
        await live.close()
    if differences:
        for d in differences:
            console.print(f"[red]{d.table}[/red]: live {d.live_rows:,} rows, rebuilt {d.rebuilt_rows:,}")
            for row in d.only_live:
                console.print(f"  only live:    {row}", markup=False)
            for row in d.only_rebuilt:
                console.print(f"  only rebuilt: {row}", markup=False)
        console.print(f"rebuilt state differs from the live state in {len(differences)} table(s)")
    else:
        console.print(f"rebuilt state equals the live state ({len(TABLES)} tables compared)")
    if args.replace and differences and not args.force:
        console.print("refusing to --replace: the rebuilt state differs from the live state (see above); the live"
                      " schema is unchanged. If the live state is the damaged one, and the topics still hold all"
                      " of its history, run again with --replace --force")
        return EXIT_DIFFERENT
    if args.replace:
        return await _replace(settings, schema, live_schema, group, console)
    return EXIT_DIFFERENT if differences else EXIT_SAME


async def _replace(settings: KpiSettings, schema: str, live_schema: str, group: str, console: Console) -> int:
    if not await _group_is_empty(settings, group):
        console.print(f"error: consumer group {group} has members: stop kpi before --replace")
        return EXIT_PROBLEM
    kept = f"kpi_replaced_{datetime.now(UTC):%Y%m%d%H%M%S}"
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            # The rebuild's own events were never meant to go out (the live ones went out already), and
            # the relay's published position counts on the outbox numbering going on where it was.
            await conn.execute(f'TRUNCATE "{schema}".outbox')
            await conn.execute(f"SELECT setval('\"{schema}\".outbox_seq_seq',"
                               f" (SELECT last_value FROM \"{live_schema}\".outbox_seq_seq))")
            # A figure published after the swap must be newer than any published before it (coaching and
            # recognition keep the highest revision, and its event id is made of it).
            await conn.execute(f"SELECT setval('\"{schema}\".figure_revisions', greatest("
                               f" (SELECT last_value FROM \"{schema}\".figure_revisions),"
                               f" (SELECT last_value FROM \"{live_schema}\".figure_revisions)))")
            await conn.execute(f'ALTER SCHEMA "{live_schema}" RENAME TO "{kept}"')
            await conn.execute(f'ALTER SCHEMA "{schema}" RENAME TO "{live_schema}"')
    finally:
        await conn.close()
    console.print(f"replaced: the rebuilt state is now schema {live_schema!r}; the old one is kept as {kept!r}")
    return EXIT_SAME


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.kpi rebuild", description=__doc__.split("\n\n")[0])
    p.add_argument("--tenant", help="rebuild and compare only this tenant")
    p.add_argument("--schema", default="kpi_rebuild", help="where to rebuild (dropped first; default kpi_rebuild)")
    p.add_argument("--replace", action="store_true",
                   help="swap the rebuilt schema in (kpi stopped); refused when it differs, unless --force")
    p.add_argument("--force", action="store_true",
                   help="with --replace: swap even when the rebuilt state differs from the live state")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    console = Console(stderr=True, highlight=False)
    try:
        return asyncio.run(run(args, KpiSettings(), console))
    except (OSError, asyncpg.PostgresError, RuntimeError) as err:
        console.print(f"error: {err}", markup=False)
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
