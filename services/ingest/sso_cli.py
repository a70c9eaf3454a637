"""`python -m services.ingest tenants set-sso SLUG --issuer URL --client-id ID [--admin-group G ...]
[--viewer-group G ...] [--session-minutes N]`: a tenant's single sign-on (services/ingest/sso.py).

The client secret never comes on the command line: it is read from the environment variable named by
`--client-secret-env NAME`, else from `--client-secret-file PATH`, else from standard input (one line; without
echo at a terminal). `--keep-secret` keeps the one stored. Prints the configuration, without the secret.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from services.ingest import sso, sso_repository
from services.ingest.app import SPEC
from services.ingest.cli import NOT_ON_ARGV, UsageError, one_line, printed, read_secret
from services.ingest.settings import IngestSettings, problems
from shared import audit, db
from shared.cli import program


def _minutes(text: str) -> Decimal:
    try:
        return sso.check_minutes(Decimal(text))
    except (InvalidOperation, sso.SsoError):
        raise argparse.ArgumentTypeError(f"{text!r}: minutes, more than 0 and at most 1440") from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=f"{program('services.ingest')} tenants set-sso",
                                  description="Set a tenant's single sign-on (OpenID Connect).")
    top.add_argument("slug")
    top.add_argument("--issuer", required=True, help="the provider's issuer URL, e.g. https://login.example.com")
    top.add_argument("--client-id", required=True, help="the client (application) id registered at the provider")
    top.add_argument("--admin-group", action="append", default=[], metavar="GROUP",
                     help="a provider group whose members are admins (repeat for several)")
    top.add_argument("--viewer-group", action="append", default=[], metavar="GROUP",
                     help="a provider group whose members, not on the roster, are viewers (repeat for several)")
    top.add_argument("--session-minutes", type=_minutes, default=sso.DEFAULT_SESSION_MINUTES, metavar="N",
                     help="how long a session token lives before it is renewed (default 60)")
    source = top.add_mutually_exclusive_group()
    source.add_argument("--client-secret-env", metavar="NAME", help="read the client secret from this variable")
    source.add_argument("--client-secret-file", type=Path, metavar="PATH",
                        help="read the client secret from this file (one line; '-': standard input, the default)")
    source.add_argument("--keep-secret", action="store_true", help="keep the client secret stored before")
    source.add_argument("--client-secret", dest="secret_on_argv", help=argparse.SUPPRESS)  # refused
    return top


def secret_of(args: argparse.Namespace, stdin: TextIO, environ: dict[str, str]) -> str | None:
    """The client secret as the module's docstring says; None with --keep-secret."""
    if args.secret_on_argv is not None:
        raise UsageError(NOT_ON_ARGV.format(what="--client-secret", how="use --client-secret-env NAME,"
                                            " --client-secret-file PATH, or pipe it on standard input"))
    if args.keep_secret:
        return None
    if args.client_secret_env:
        if args.client_secret_env not in environ:
            raise UsageError(f"the variable {args.client_secret_env} is not set")
        return one_line(environ[args.client_secret_env], f"the client secret in {args.client_secret_env}")
    return read_secret("the client secret", args.client_secret_file, stdin)


async def _run(args: argparse.Namespace, settings: IngestSettings, secret: str | None) -> list[dict[str, Any]]:
    cfg = sso.SsoConfig(args.slug, sso.check_issuer(args.issuer), args.client_id.strip(),
                        sso.check_groups(args.admin_group, "--admin-group"),
                        sso.check_groups(args.viewer_group, "--viewer-group"), args.session_minutes,
                        client_secret_set=True)
    pool = await db.create_pool(settings.database_url, SPEC.schema, min_size=1, max_size=2)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        async with db.tenant_tx(pool, args.slug) as conn:
            await sso_repository.save_config(conn, cfg, secret, settings.crm_secret_box(),
                                             actor=audit.actor_of(None, cli=True))
    finally:
        await pool.close()
    return [cfg.as_json() | {"status": "single sign-on set"}]


def main(argv: list[str], stdin: TextIO | None = None, environ: dict[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = IngestSettings()
        secret = secret_of(args, sys.stdin if stdin is None else stdin,
                           dict(os.environ) if environ is None else environ)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValidationError as err:
        print(f"error: {problems(err)}", file=sys.stderr)
        return 2
    return printed(lambda: asyncio.run(_run(args, settings, secret)))
