"""`python -m services.privacy export|erase --tenant T [--rep R]`: a tenant's or one rep's data, out of
every service's schema (export) or gone from them and from what Kafka compacts (erase).

    python -m services.privacy export --tenant acme [--rep ana] [--out ana.json]
    python -m services.privacy erase --tenant acme [--rep ana] --yes

Both connect as the schemas' owner (`DATABASE_URL`, from the environment like every setting; nothing secret
is taken on the command line). `export` writes one JSON document: the rows by schema and table, read in one
snapshot, numbers as exact text, times with their offset, sealed CRM secrets redacted. `erase` without
`--yes` only says what it would delete. With `--yes`, for a tenant it first revokes the tenant's token; then
it writes tombstones for the keys of the tenant (or rep) on the compacted topics, and in one transaction
per schema records the erasure (`erasures`) and deletes the rows; it does that twice, `--settle-s` apart, so
that a consumer batch in flight during the first pass is caught by the second (every batch that starts
after the first pass skips the erased records: shared/erasure.py). It prints a JSON report: rows deleted
per schema.table, tombstones per topic, and what Kafka still holds. Running it again is harmless.
docs/security.md, "Export and erasure".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.privacy import repository
from services.privacy.subjects import MENTIONS, SCHEMAS, Table, ordered, render_row
from shared import logs, topics
from shared.cli import program
from shared.kafka import client_kwargs
from shared.settings import ServiceSettings

EXIT_OK, EXIT_PROBLEM = 0, 2
TOMBSTONED = {"roster": topics.ROSTER, "targets": topics.TARGETS, "attainment": topics.ATTAINMENT}
# What Kafka still holds after an erasure, and until when: the topics that are not compacted.
STILL_IN_KAFKA = [
    {"topics": [topics.DEALS.name, topics.ACTIVITIES.name],
     "until": "kept forever (the system of record kpi rebuild replays); consumers and kpi rebuild skip the"
              " erased records"},
    {"topics": [topics.TASKS.name, topics.PLANS.name, topics.REVIEWS.name, topics.CELEBRATIONS.name],
     "until": "the topic's retention (the broker's log.retention.ms, 7 days by default)"},
    {"topics": [t.dlq for t in topics.ALL], "until": "14 days (dead letters)"},
    {"topics": [topics.ROSTER.name, topics.TARGETS.name, topics.ATTAINMENT.name, topics.TENANTS.name],
     "until": "the erased values stay until the log cleaner compacts their segment (not the active one);"
              " the tombstones themselves go delete.retention.ms (1 day by default) after that"},
]


async def export(conn: asyncpg.Connection, tenant: str, rep: str | None) -> dict[str, Any]:
    """Every row of `tenant` (or of its `rep`) in every schema, in one snapshot."""
    tables, jsonb = await repository.catalogue(conn)
    out: dict[str, dict[str, list[dict[str, Any]]]] = {schema: {} for schema in SCHEMAS}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        exported_at = await repository.now(conn)
        for table in tables:
            await repository.scope(conn, table.schema, tenant)
            rows = await repository.rows_of(conn, table, tenant, rep)
            if rows:
                out[table.schema][table.name] = [render_row(table, r, jsonb[table.qualified]) for r in rows]
    return {"tenant": tenant, "rep": rep, "exported_at": exported_at.isoformat(), "schemas": out}


async def _tombstones(settings: ServiceSettings, found: dict[str, set[bytes]], tenant: str,
                      rep: str | None) -> Counter[str]:
    written: Counter[str] = Counter()
    producer = AIOKafkaProducer(**client_kwargs(settings), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sends = [(TOMBSTONED[kind].name, key) for kind, keys in found.items() for key in sorted(keys)]
        if rep is None:
            sends.append((topics.TENANTS.name, tenant.encode()))
        for topic, key in sends:
            await producer.send(topic, None, key=key)
            written[topic] += 1
        await producer.flush()
    finally:
        await producer.stop()
    return written


async def _pass(conn: asyncpg.Connection, settings: ServiceSettings, tables: list[Table], tenant: str,
                rep: str | None, at: datetime, deleted: Counter[str], written: Counter[str]) -> None:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await repository.scope(conn, "kpi", tenant)
        found = await repository.keys(conn, tenant, rep)
    written.update(await _tombstones(settings, found, tenant, rep))
    for schema in SCHEMAS:
        async with conn.transaction():
            await repository.scope(conn, schema, tenant)
            await repository.record_erasure(conn, schema, tenant, rep or "", at)
            for table in ordered([t for t in tables if t.schema == schema]):
                deleted[table.qualified] += await repository.delete(conn, table, tenant, rep)


async def erase(conn: asyncpg.Connection, settings: ServiceSettings, tenant: str, rep: str | None, *,
                yes: bool, settle_s: float) -> dict[str, Any]:
    """Erase `tenant` (or its `rep`); the report. Without `yes`, only the rows it would delete."""
    tables, _ = await repository.catalogue(conn)
    if not yes:
        counts: dict[str, int] = {}
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for table in tables:
                await repository.scope(conn, table.schema, tenant)
                if n := await repository.count(conn, table, tenant, rep):
                    counts[table.qualified] = n
        return {"tenant": tenant, "rep": rep, "dry_run": True, "would_delete": counts,
                "hint": "run again with --yes to erase"}
    revoked = False
    if rep is None:
        async with conn.transaction():
            await repository.scope(conn, "ingest", tenant)
            revoked = await repository.revoke(conn, tenant)
    at = await repository.now(conn)
    deleted: Counter[str] = Counter({t.qualified: 0 for t in tables})
    written: Counter[str] = Counter()
    await _pass(conn, settings, tables, tenant, rep, at, deleted, written)
    await asyncio.sleep(settle_s)
    await _pass(conn, settings, tables, tenant, rep, at, deleted, written)
    return {
        "tenant": tenant, "rep": rep, "erased_at": at.isoformat(), "revoked_now": revoked,
        "deleted": {name: n for name, n in sorted(deleted.items()) if n},
        "deleted_total": sum(deleted.values()),
        "tombstones": dict(sorted(written.items())),
        "kept": {"erasures": "each schema's erasures table keeps the tenant's slug"
                 + (" and the rep's id" if rep else "") + " and the moment, so that no replay brings them back",
                 **({"references": {name: "rows of other reps naming this rep as their manager"
                                    for name in sorted(MENTIONS)}} if rep else {})},
        "kafka_still_holds": STILL_IN_KAFKA,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=program("services.privacy"), description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("export", "write every row of the tenant (or rep) as one JSON document"),
                        ("erase", "delete the tenant (or rep) from every schema and Kafka's compacted topics")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("--tenant", required=True, help="the tenant's slug")
        c.add_argument("--rep", help="only this rep of the tenant")
        if name == "export":
            c.add_argument("--out", type=Path, help="write here (created readable by its owner only), not stdout")
        else:
            c.add_argument("--yes", action="store_true", help="erase; without it, only say what would go")
            c.add_argument("--settle-s", type=float, default=5.0,
                           help="pause between the two passes (default 5 s: longer than a consumer batch)")
    return p


async def run(args: argparse.Namespace, settings: ServiceSettings) -> dict[str, Any]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        if args.command == "export":
            return await export(conn, args.tenant, args.rep)
        return await erase(conn, settings, args.tenant, args.rep, yes=args.yes, settle_s=args.settle_s)
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (default: `sys.argv[1:]`); the exit status."""
    args = parser().parse_args(argv)
    settings = ServiceSettings()
    logs.configure("privacy", settings.log_level, settings.log_format)
    try:
        document = asyncio.run(run(args, settings))
    except (OSError, asyncpg.PostgresError, KafkaError) as err:  # nothing is lost: running it again finishes it
        print(f"error: {err!r}", file=sys.stderr)
        return EXIT_PROBLEM
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if getattr(args, "out", None):
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        print(json.dumps({"written": str(args.out)}))
    else:
        print(text)
    return EXIT_OK
