"""`python -m services.ingest tokens ...`: tokens of people and machines (docs/contract.md, "Tokens and roles").

- `tokens create SLUG --role ROLE [--rep REP_ID] [--manager REP_ID] [--name TEXT] [--expires-days N]` prints
  `{"tenant", "token_id", "token", "role", "expires_at"}`: the only time the token is shown;
- `tokens list SLUG` prints one JSON object per token, never the token nor its digest;
- `tokens share SLUG [--name TEXT] [--expires-days N]` prints a TV's read-only share link (`path`, to put
  after kpi's address): a viewer token nobody sees, signed; `tokens revoke` ends it;
- `tokens revoke SLUG TOKEN_ID`; `tokens rotate SLUG TOKEN_ID [--grace-hours H]` prints the new token.

Exit status 2 for a usage error (named on standard error), 1 when the database cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from services.ingest import tokens
from services.ingest.app import SPEC
from services.ingest.cli import printed
from services.ingest.settings import IngestSettings, problems
from shared import audit, db
from shared.cli import program
from shared.events import ROLES


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=f"{program('services.ingest')} tokens", description="Manage a tenant's tokens.")
    sub = top.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="make a token with a role and print it (once) as JSON")
    create.add_argument("slug")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--rep", dest="rep_id", metavar="REP_ID", help="the rep a rep token is for")
    create.add_argument("--manager", dest="manager_id", metavar="REP_ID",
                        help="the manager a manager token reads for (their reps, directly or further down)")
    create.add_argument("--name", default="", help="who or what holds it, e.g. 'HubSpot bridge' or an e-mail")
    create.add_argument("--expires-days", type=float, default=None, metavar="N", help="valid for N days")
    shared = sub.add_parser("share", help="a read-only link for a TV: a viewer token shown to nobody, and its path")
    shared.add_argument("slug")
    shared.add_argument("--name", default="", help="which screen, e.g. 'Floor 2 TV'")
    shared.add_argument("--expires-days", type=float, default=None, metavar="N", help="valid for N days")
    listing = sub.add_parser("list", help="the tenant's tokens as JSON lines, without their secrets")
    listing.add_argument("slug")
    revoke = sub.add_parser("revoke", help="revoke one token: every service refuses it within seconds")
    revoke.add_argument("slug")
    revoke.add_argument("token_id")
    rotate = sub.add_parser("rotate", help="a new token like this one; the old one expires after a grace period")
    rotate.add_argument("slug")
    rotate.add_argument("token_id")
    rotate.add_argument("--grace-hours", type=float, default=24.0, help="how long the old token stays valid")
    return top


async def _run(args: argparse.Namespace, settings: IngestSettings) -> list[dict[str, Any]]:
    signer = settings.registry_signer()
    pool = await db.create_pool(settings.database_url, SPEC.schema, min_size=1, max_size=2)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        async with db.tenant_tx(pool, args.slug) as conn:
            now, actor = datetime.now(UTC), audit.actor_of(None, cli=True)
            if args.command == "create":
                made = await tokens.create(conn, args.slug, role=args.role, signer=signer, now=now,
                                           rep_id=args.rep_id, manager_id=args.manager_id, name=args.name,
                                           expires_days=args.expires_days, actor=actor)
                return [made.as_json()]
            if args.command == "share":
                return [await tokens.share(conn, args.slug, signer=signer, now=now, name=args.name,
                                           expires_days=args.expires_days, actor=actor)]
            if args.command == "list":
                return await tokens.listed(conn, args.slug)
            if args.command == "revoke":
                await tokens.revoke(conn, args.slug, args.token_id, signer=signer, now=now, actor=actor)
                return [{"tenant": args.slug, "token_id": args.token_id, "status": "revoked"}]
            made = await tokens.rotate(conn, args.slug, args.token_id, signer=signer, now=now,
                                       grace_hours=args.grace_hours, actor=actor)
            return [made.as_json() | {"replaces": args.token_id}]
    finally:
        await pool.close()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        settings = IngestSettings()
    except ValidationError as err:
        print(f"error: {problems(err)}", file=sys.stderr)
        return 2
    return printed(lambda: asyncio.run(_run(args, settings)))
