"""`python -m shared.offsets show SERVICE` and `python -m shared.offsets reset SERVICE GROUP TOPIC --to N
[--partition P]`: the offsets PostgreSQL holds for a service's consumer groups, and the recovery after an
offset regression (shared/consumer.py, `attain_consumer_offset_regression`).

The offsets a group applied are stored in its service's schema (`consumer_offsets`), in the transaction of
the state they guard; records below them are skipped as replays. When a topic is recreated (or a cluster
migrated) its new records start below those offsets: the consumer pauses such a partition instead of
skipping them. Once the cause is understood, `reset` sets where the group resumes (`--to 0`: from the
new topic's start), then restart the service. Runs as the schemas' owner (DATABASE_URL). One JSON line
per row shown or changed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from shared import db
from shared.migrate import SERVICES, spec_of
from shared.settings import ServiceSettings


async def show(service: str) -> list[dict[str, object]]:
    pool = await db.create_pool(ServiceSettings().database_url, spec_of(service).schema, min_size=1, max_size=1,
                                create_schema=False)
    try:
        rows = await pool.fetch("SELECT group_id, topic, partition, next_offset FROM consumer_offsets"
                                " ORDER BY group_id, topic, partition")
    finally:
        await pool.close()
    return [dict(r) for r in rows]


async def reset(service: str, group: str, topic: str, partition: int | None, to: int) -> list[dict[str, object]]:
    pool = await db.create_pool(ServiceSettings().database_url, spec_of(service).schema, min_size=1, max_size=1,
                                create_schema=False)
    try:
        rows = await pool.fetch(
            "UPDATE consumer_offsets SET next_offset = $4, updated_at = now() WHERE group_id = $1 AND topic = $2"
            " AND ($3::int IS NULL OR partition = $3) RETURNING group_id, topic, partition, next_offset",
            group, topic, partition, to)
    finally:
        await pool.close()
    return [dict(r) for r in rows]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.offsets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("show", help="the stored offsets of a service's groups")
    listing.add_argument("service", choices=SERVICES)
    change = sub.add_parser("reset", help="set where a group resumes (then restart the service)")
    change.add_argument("service", choices=SERVICES)
    change.add_argument("group", help="e.g. attain-kpi (KAFKA_CONSUMER_GROUP_PREFIX-<group>)")
    change.add_argument("topic")
    change.add_argument("--partition", type=int, help="one partition (default: every partition of the topic)")
    change.add_argument("--to", type=int, required=True, help="the next offset to apply (0: the topic's start)")
    args = parser.parse_args(argv)
    if args.command == "reset" and args.to < 0:
        parser.error("--to must be 0 or more")
    found = asyncio.run(show(args.service) if args.command == "show" else
                        reset(args.service, args.group, args.topic, args.partition, args.to))
    if args.command == "reset" and not found:
        print(f"error: no stored offsets for group {args.group} on {args.topic}", file=sys.stderr)
        return 1
    for row in found:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
