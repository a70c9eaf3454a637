"""µs per record of recognition's handler, before (main at 5388e05, one record at a time) and after (batched),
on the same records and the same database, printed side by side. Not a test (no timed assertion).

    .venv/bin/python -m tests.integration.recognition.bench_handler [--records 3000] [--runs 3]

The "before" handler is the committed `services/recognition/handlers.py` and `repository.py` of `--before`
(default HEAD), materialised into a temporary package; both run on the current schema (migration 003 only
adds columns and triggers the old code does not use). Each run uses fresh tenants; runs alternate; medians.
The workload is what recognition receives at live load once kpi publishes targeted figures only: per rep,
won deals, activities and figures (each with a target), one tenant's records per batch, as the consumer
hands them over.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg

from services.recognition.app import SPEC
from services.recognition.config import ConfigCache
from services.recognition.handlers import make_handler
from shared import db
from shared.clock import FixedClock
from shared.consumer import Incoming
from tests.integration.conftest import ROOT, database_url, fresh_database
from tests.unit.services.recognition.streams import activity, figure, rep, won

NOW = datetime(2026, 11, 18, 10, tzinfo=UTC)


def before_module(revision: str) -> Any:
    """The handlers module of `revision`, importable beside today's, with its own repository module."""
    folder = Path(tempfile.mkdtemp(prefix="recog_before_"))
    package = folder / "recognition_before"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("handlers", "repository"):
        text = subprocess.run(["git", "show", f"{revision}:services/recognition/{name}.py"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
        text = text.replace("from services.recognition import repository as repo",
                            "from recognition_before import repository as repo")
        (package / f"{name}.py").write_text(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module("recognition_before.handlers")


def workload(tenant: str, records: int, reps: int, seed: int) -> list[Incoming]:
    """Roster, then each rep's deals, activities and targeted figures in time order, reps interleaved."""
    rnd = random.Random(seed)
    out = [rep(tenant, f"rep-{i}", f"team-{i % 5}") for i in range(reps)]
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    revenue = dict.fromkeys(range(reps), Decimal(0))
    for n in range(records - reps):
        i, at = rnd.randrange(reps), start + timedelta(minutes=20 * n // reps + rnd.randrange(20))
        kind = rnd.random()
        if kind < 0.4:
            out.append(activity(tenant, f"a-{n}", f"rep-{i}", at))
        elif kind < 0.7:
            amount = rnd.randrange(1, 40) * 1000
            revenue[i] += amount
            out.append(won(tenant, f"d-{n}", f"rep-{i}", str(amount), at))
        else:
            share = (revenue[i] / 200_000).quantize(Decimal("0.0001"))
            out.append(figure(tenant, f"rep-{i}", str(share), at))
    return out


class Counting:
    """A connection that counts the statements sent through it."""

    def __init__(self, conn: asyncpg.Connection, counter: list[int]) -> None:
        self._conn, self._counter = conn, counter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in ("fetch", "fetchval", "fetchrow", "execute", "executemany"):
            return attr

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self._counter[0] += 1
            return await attr(*args, **kwargs)
        return counted


async def timed(pool: asyncpg.Pool, handler: Callable[..., Any], batches: Sequence[Sequence[Incoming]],
                counter: list[int] | None = None) -> tuple[float, float]:
    """Seconds spent in the handler, and in all (with each batch's transaction: begin, tenant scope, commit)."""
    in_handler, started = 0.0, time.perf_counter()
    for batch in batches:
        async with db.tenant_tx(pool, batch[0].event.tenant) as conn:
            entered = time.perf_counter()
            await handler(conn if counter is None else Counting(conn, counter), batch)
            in_handler += time.perf_counter() - entered
    return in_handler, time.perf_counter() - started


async def ledger(pool: asyncpg.Pool, tenant: str) -> set[tuple[Any, ...]]:
    """What the ledger says, without the tenant (so two tenants fed the same records compare)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT scope, scope_id, milestone, period, value, headline, status FROM celebrations"
                                " WHERE tenant = $1", tenant)
    return {tuple(r) for r in rows}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", default="HEAD")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 20, 500], help="records per batch")
    args = parser.parse_args()
    old = before_module(args.before)
    name = f"recog_bench_{uuid.uuid4().hex[:6]}"
    pool = await db.create_pool(await fresh_database(name), SPEC.schema, max_size=2)
    await db.migrate(pool, SPEC.schema, SPEC.migrations)
    clock = FixedClock(NOW)
    handlers = {"before": old.make_handler(SimpleNamespace(clock=clock)),
                "after": make_handler(SimpleNamespace(clock=clock, context=ConfigCache()))}  # type: ignore[arg-type]
    print(f"recognition handler, {args.records} records ({args.reps} reps: 40 % activities, 30 % won deals,"
          f" 30 % targeted figures), median of {args.runs} alternating runs, µs per record")
    print(f"{'':>10} {'handler only':^31} {'with the transaction':^31} {'statements per record':^23}")
    columns = f" {'before':>10} {'after':>10} {'speed-up':>9}" * 2
    print(f"{'batch size':>10}{columns} {'before':>11} {'after':>11}")
    for size in args.sizes:
        statements, ledgers = {}, []
        for name in ("before", "after"):  # one more pass, untimed: statements counted, ledgers compared
            tenant, counter = f"c-{uuid.uuid4().hex[:8]}", [0]
            records = workload(tenant, args.records, args.reps, seed=99)
            await timed(pool, handlers[name], [records[i:i + size] for i in range(0, len(records), size)], counter)
            statements[name] = counter[0] / args.records
            ledgers.append(await ledger(pool, tenant))
        seconds: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        for run in range(args.runs):
            for name in ("before", "after") if run % 2 == 0 else ("after", "before"):
                records = workload(f"b-{uuid.uuid4().hex[:8]}", args.records, args.reps, seed=run)
                batches = [records[i:i + size] for i in range(0, len(records), size)]
                seconds[name].append(await timed(pool, handlers[name], batches))
        cells = ""
        for part in (0, 1):
            before, after = (statistics.median(s[part] for s in seconds[n]) * 1e6 / args.records
                             for n in ("before", "after"))
            cells += f" {before:>10.0f} {after:>10.0f} {before / after:>8.1f}x"
        same = "same ledger" if ledgers[0] == ledgers[1] else f"LEDGERS DIFFER: {len(ledgers[0] ^ ledgers[1])} rows"
        print(f"{size:>10}{cells} {statements['before']:>11.2f} {statements['after']:>11.2f}  {same}")
    await pool.close()
    admin = await asyncpg.connect(database_url("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
