"""`attain-notify rotate-secrets`: every secret notify keeps sealed again under NOTIFY_SECRET_KEYS' first key.

To rotate (shared/secret_box.py): put a new key in front of NOTIFY_SECRET_KEYS (the old one after it), roll
notify out, run this, then drop the old key. It re-encrypts team channels' Slack and Teams webhook URLs and
tenants' Slack bot tokens and webhook signing secrets, in one transaction across tenants (the owner's pool);
a value no key opens is named (tenant, where, which field: never the value) and nothing is written. Old
unsubscribe links, sealed under the old key, stop working once it is dropped (the preferences page still
works); a rotation that keeps the old key for a while keeps them working meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

import asyncpg
from pydantic import ValidationError

from services.notify.settings import SECRET_KEYS_SETTING, NotifySettings
from shared import db
from shared.cli import settings_problems
from shared.secret_box import SecretBox, Undecryptable

__all__ = ["main", "reseal"]

# (table, key columns, sealed columns)
SEALED: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("team_channels", ("tenant", "team_id"), ("slack_webhook", "teams_webhook")),
    ("tenant_channels", ("tenant",), ("slack_bot_token", "webhook_secret")),
)


class Unreadable(Exception):
    """Stored values no key opens, named by where they are; nothing was changed."""


async def reseal(conn: asyncpg.Connection, box: SecretBox) -> int:
    """Every sealed value re-encrypted under `box`'s first key, in the caller's transaction (rows locked);
    how many values were written. `Unreadable` names every value no key opens, before anything is written."""
    updates: list[tuple[str, tuple[str, ...], dict[str, str | None], tuple[object, ...]]] = []
    unreadable: list[str] = []
    for table, keys, columns in SEALED:
        rows = await conn.fetch(f"SELECT {', '.join(keys + columns)} FROM {table}"
                                f" ORDER BY {', '.join(keys)} FOR UPDATE")
        for row in rows:
            values: dict[str, str | None] = {}
            for column in columns:
                if row[column]:
                    try:
                        values[column] = box.reseal(row[column])
                    except Undecryptable:
                        where = "/".join(str(row[k]) for k in keys)
                        unreadable.append(f"{table} {where} {column}")
            if values:
                updates.append((table, keys, values, tuple(row[k] for k in keys)))
    if unreadable:
        raise Unreadable(f"no key of {SECRET_KEYS_SETTING} opens: {'; '.join(unreadable)} (set them again in the"
                         " control room, or put the key they were sealed with back); nothing was changed")
    written = 0
    for table, keys, values, ids in updates:
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(values, len(keys) + 1))
        where = " AND ".join(f"{k} = ${i}" for i, k in enumerate(keys, 1))
        await conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", *ids, *values.values())
        written += len(values)
    return written


async def _run(settings: NotifySettings, box: SecretBox) -> int:
    from services.notify.app import SPEC  # noqa: PLC0415 - the migrations' folder

    pool = await db.create_pool(settings.database_url, SPEC.schema, min_size=1, max_size=1)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        async with db.all_tenants_tx(pool) as conn:
            return await reseal(conn, box)
    finally:
        await pool.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="attain-notify rotate-secrets",
        description="Seal every webhook URL, Slack bot token and signing secret notify keeps under the first key"
                    f" of {SECRET_KEYS_SETTING} (then the old key can be dropped). Settings from the environment.")
    parser.parse_args(list(argv))
    try:
        settings = NotifySettings()
    except ValidationError as err:
        print(f"error: {settings_problems(err)}", file=sys.stderr)
        return 2
    box = settings.box()
    if box is None:
        print(f"error: {SECRET_KEYS_SETTING} is not set: there is no key to seal with", file=sys.stderr)
        return 2
    try:
        written = asyncio.run(_run(settings, box))
    except Unreadable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"status": "every secret sealed under the first key", "values": written}))
    return 0
