"""`python -m services.ingest tenants ...`: tenant administration (CONTRACT.md, section 4).

Secrets never come on the command line, where `ps` shows them to every user of the machine and shells keep
them in their history: a CRM secret, an API token or a chosen bearer token is read from standard input (one
line; a trailing newline is dropped; typed without echo at a terminal) or from a file named by an option
(`--secret-file PATH`, `--token-file PATH`; `-` names standard input). An old spelling that put the secret on
the command line is refused, naming the way to give it instead.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import asyncpg
from pydantic import ValidationError

from services.ingest import secret_store, tenants
from services.ingest.app import SPEC
from services.ingest.crm.backfill import BackfillRefused, request_backfill
from services.ingest.settings import IngestSettings, problems
from shared import audit, db
from shared.cli import program
from shared.registry_signing import RegistrySigner
from shared.secret_box import SecretBox

NOT_ON_ARGV = "{what} is not taken on the command line, where `ps` shows it: {how}"


class UsageError(Exception):
    """The command line or the secret given is not usable; the message says why (exit status 2)."""


def one_line(text: str, what: str) -> str:
    """`text` as one secret: without its trailing newline, and neither empty nor of several lines.

    >>> one_line("s3cret\\n", "the secret")
    's3cret'
    """
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise UsageError(f"{what} is empty")
    if "\n" in value or "\r" in value:
        raise UsageError(f"{what} must be one line")
    return value


def read_secret(what: str, path: Path | None, stdin: TextIO) -> str:
    """The secret in the file at `path`, else (no path, or `-`) on `stdin` (asked for without echo at a terminal)."""
    if path is not None and str(path) != "-":
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise UsageError(f"cannot read {what} from {path}: {err.strerror or type(err).__name__}") from None
        except UnicodeError:  # its message would quote a byte of the file
            raise UsageError(f"{what} in {path} is not UTF-8 text") from None
        return one_line(text, f"{what} in {path}")
    if stdin.isatty():
        return one_line(getpass.getpass(f"{what}: "), what)
    return one_line(stdin.read(), f"{what} on standard input")


def _named_day(text: str) -> tuple[date, str]:
    """An argparse type: ``2026-12-24=Christmas Eve`` -> (date, name)."""
    day, _, name = text.partition("=")
    try:
        return date.fromisoformat(day.strip()), name.strip() or "day off"
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD=NAME, e.g. 2026-12-24=Christmas Eve") from None


def _locale(name: str) -> str:
    """An argparse type: the locale as Babel spells it, or a usage error naming it (exit status 2)."""
    try:
        return tenants.normalise_locale(name)
    except tenants.TenantError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=f"{program('services.ingest')} tenants", description="Manage tenants.")
    sub = top.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a tenant and print its token as JSON")
    create.add_argument("slug")
    chosen = create.add_mutually_exclusive_group()
    chosen.add_argument("--token-file", type=Path, metavar="PATH",
                        help="use the token in this file (one line; '-': standard input) instead of a new random one")
    chosen.add_argument("--token-stdin", action="store_true",
                        help="read the token from standard input (one line) instead of making a new random one")
    create.add_argument("--token", dest="token_on_argv", help=argparse.SUPPRESS)  # refused, with how instead
    create.add_argument("--timezone", default="UTC", help="IANA zone periods are computed in")
    create.add_argument("--currency", default="EUR", help="ISO 4217 reporting currency")
    create.add_argument("--fiscal-year-start-month", type=int, default=1, choices=range(1, 13), metavar="1-12")
    create.add_argument("--locale", type=_locale, default=tenants.DEFAULT_LOCALE,
                        help="Babel locale the tenant's figures are formatted in, e.g. de_DE (default: en)")
    create.add_argument("--country", help="ISO 3166-1 code whose public holidays are days off, e.g. DE (default: none)")
    create.add_argument("--subdivision", help="the country's subdivision, e.g. BE for Berlin (its own holidays too)")
    secret = sub.add_parser("set-secret", help="set the secret a CRM's webhook scheme is verified with",
                            description="The secret is read from standard input (one line), or from --secret-file.")
    secret.add_argument("slug")
    secret.add_argument("crm", choices=tenants.CRMS)
    secret.add_argument("secret_on_argv", nargs="?", help=argparse.SUPPRESS)  # refused, with how instead
    secret.add_argument("--secret-file", type=Path, metavar="PATH",
                        help="read the secret from this file (one line; '-': standard input, the default)")
    secret.add_argument("--org-id", help="Salesforce: the OrganizationId every message must carry")
    secret.add_argument("--grace-hours", type=float, default=None,
                        help="how long the replaced secret stays valid (default SECRET_ROTATION_GRACE_HOURS, 24)")
    api = sub.add_parser("set-api-token", help="let ingest fetch records a webhook left incomplete from the CRM's API",
                         description="The token is read from standard input (one line), or from --token-file.")
    api.add_argument("slug")
    api.add_argument("crm", choices=tenants.CRMS)
    api.add_argument("token_on_argv", nargs="?", help=argparse.SUPPRESS)  # refused, with how instead
    api.add_argument("--token-file", type=Path, metavar="PATH",
                     help="read the token from this file (one line; '-': standard input, the default)")
    api.add_argument("--base-url", required=True, help="e.g. https://api.hubapi.com")
    rate = sub.add_parser("set-rate", help="set an exchange rate into the tenant's base currency (kpi recounts)")
    rate.add_argument("slug")
    rate.add_argument("currency", help="ISO 4217 code of the deals' currency, e.g. USD")
    rate.add_argument("rate", help="base-currency units per 1 unit of CURRENCY, e.g. 0.9215")
    rate.add_argument("--from", dest="valid_from", type=date.fromisoformat, default=date(1900, 1, 1),
                      metavar="YYYY-MM-DD", help="first local day it applies (default: all history, until a later"
                      " rate of the same currency)")
    locale = sub.add_parser("locale", help="set the locale the tenant's figures are formatted in (announced)")
    locale.add_argument("slug")
    locale.add_argument("locale", type=_locale, help="a Babel locale such as en, de_DE or fr_FR (de-DE also reads)")
    days = sub.add_parser("holidays", help="set the tenant's holiday calendar: the days off every service counts pace"
                          " with (announced); prints it and its holidays of --year")
    days.add_argument("slug")
    days.add_argument("--country", help="ISO 3166-1 code whose public holidays count, e.g. DE")
    days.add_argument("--subdivision", help="the country's subdivision, e.g. BE (Berlin)")
    days.add_argument("--add", action="append", default=[], type=_named_day, metavar="YYYY-MM-DD=NAME",
                      help="a day off of the tenant's own (a company day, a bridge day); repeatable")
    days.add_argument("--remove", action="append", default=[], type=date.fromisoformat, metavar="YYYY-MM-DD",
                      help="a public holiday the tenant works, or an added day to drop; repeatable")
    days.add_argument("--clear", action="store_true", help="start from no calendar at all")
    days.add_argument("--year", type=int, default=None, help="list the holidays of this year (default: this year)")
    _backfill_parser(sub)
    revoke = sub.add_parser("revoke", help="revoke a tenant: its token stops working at once")
    revoke.add_argument("slug")
    sub.add_parser("set-sso", help="single sign-on (OpenID Connect): issuer, client, groups; see set-sso --help",
                   add_help=False)
    sub.add_parser("reannounce", help="publish every tenant's registry entry again, signed (ingest also does at start)")
    sub.add_parser("rotate-secrets", help="re-encrypt every stored CRM secret and API token under the first key of"
                   " CRM_SECRET_KEYS (then the other keys may be dropped)")
    return top


def _backfill_parser(sub: Any) -> None:
    fill = sub.add_parser("backfill", help="import the deals and activities changed since the start of the tenant's"
                          " fiscal year (or --since) through the CRM's API; a running ingest does the work")
    fill.add_argument("slug")
    fill.add_argument("crm", choices=tenants.CRMS)
    fill.add_argument("--since", type=datetime.fromisoformat, metavar="YYYY-MM-DDTHH:MM:SS+00:00",
                      help="an aware time to read from (default: the start of the tenant's current fiscal year)")
    fill.add_argument("--resume", action="store_true", help="go on with the failed backfill from where it stopped")


def refuse_secret_on_argv(args: argparse.Namespace) -> None:
    """UsageError, saying how to give it instead, when a secret came on the command line (it is not repeated)."""
    if args.command == "create" and args.token_on_argv is not None:
        raise UsageError(NOT_ON_ARGV.format(what="--token", how="use --token-file PATH or --token-stdin"))
    if args.command == "set-secret" and args.secret_on_argv is not None:
        raise UsageError(NOT_ON_ARGV.format(what="the secret",
                                            how="pipe it on standard input or use --secret-file PATH"))
    if args.command == "set-api-token" and args.token_on_argv is not None:
        raise UsageError(NOT_ON_ARGV.format(what="the api token",
                                            how="pipe it on standard input or use --token-file PATH"))


def secret_of(args: argparse.Namespace, stdin: TextIO) -> str | None:
    """The secret the command needs, read as the module's docstring says; None when it takes none (`create`
    without --token-file or --token-stdin makes a token itself)."""
    if args.command == "create":
        chosen = args.token_file is not None or args.token_stdin
        return read_secret("the token", args.token_file, stdin) if chosen else None
    if args.command == "set-secret":
        return read_secret("the secret", args.secret_file, stdin)
    if args.command == "set-api-token":
        return read_secret("the api token", args.token_file, stdin)
    return None


async def _secrets(conn: asyncpg.Connection, args: argparse.Namespace, settings: IngestSettings,
                   secret: str | None) -> dict[str, str | int]:
    """The commands that store CRM secrets (sealed with CRM_SECRET_KEYS' first key) or re-seal them."""
    box: SecretBox = settings.crm_secret_box()
    if args.command == "rotate-secrets":
        done = await secret_store.reseal(conn, box, legacy_only=False)
        return {"status": "secrets re-encrypted under the first key", "secrets": done.secrets,
                "api_tokens": done.tokens, "expired_secrets_forgotten": done.expired, "oauth_values": done.oauth}
    assert secret is not None
    if args.command == "set-secret":
        hours = settings.secret_rotation_grace_hours if args.grace_hours is None else args.grace_hours
        await tenants.set_secret(conn, args.slug, args.crm, secret, args.org_id, timedelta(hours=hours), box=box,
                                 actor=audit.actor_of(None, cli=True))
        return {"tenant": args.slug, "crm": args.crm, "status": "secret set"}
    await tenants.set_api_token(conn, args.slug, args.crm, secret, args.base_url, box=box)
    return {"tenant": args.slug, "crm": args.crm, "status": "api token set"}


async def _calendar(conn: asyncpg.Connection, args: argparse.Namespace, signer: RegistrySigner) -> dict[str, Any]:
    """`set-rate`, `locale` and `holidays`: how the tenant's figures are counted and shown (each announced)."""
    if args.command == "set-rate":
        await tenants.set_rate(conn, args.slug, args.currency, args.rate, args.valid_from, signer=signer,
                               actor=audit.actor_of(None, cli=True))
        return {"tenant": args.slug, "currency": args.currency, "rate": args.rate,
                "from": args.valid_from.isoformat(), "status": "rate set"}
    if args.command == "locale":
        locale = await tenants.set_locale(conn, args.slug, args.locale, signer=signer,
                                          actor=audit.actor_of(None, cli=True))
        return {"tenant": args.slug, "locale": locale, "status": "locale set"}
    calendar = await tenants.set_holidays(conn, args.slug, signer=signer, country=args.country,
                                          subdivision=args.subdivision, add=dict(args.add),
                                          remove=frozenset(args.remove), clear=args.clear,
                                          actor=audit.actor_of(None, cli=True))
    year = args.year or datetime.now(UTC).year
    listed = sorted(calendar.between(date(year, 1, 1), date(year, 12, 31)).items())
    return {"tenant": args.slug, "status": "holidays set", **calendar.to_json(), "year": year,
            "holidays": [{"day": d.isoformat(), "name": n} for d, n in listed]}


async def _backfill(conn: asyncpg.Connection, args: argparse.Namespace, settings: IngestSettings) -> dict[str, Any]:
    """`backfill`: the job asked for (crm/backfill.py), written in the audit log; its progress:
    `GET /v1/crm/{crm}/backfill`."""
    tenant = await tenants.by_slug(conn, args.slug)
    if tenant is None:
        raise tenants.TenantError(f"no active tenant {args.slug!r}")
    if args.since is not None and args.since.utcoffset() is None:
        raise tenants.TenantError("--since: give a time with its UTC offset, e.g. 2026-01-01T00:00:00+01:00")
    now = datetime.now(UTC)
    try:
        since = await request_backfill(conn, tenant, args.crm, args.since, args.resume, now,
                                       settings.crm_secret_box(), "cli")
    except BackfillRefused as err:
        raise tenants.TenantError(str(err)) from None
    await audit.record(conn, tenant=args.slug, who=None, action="crm.backfill.requested",
                       subject=f"crm:{args.crm}/backfill", before=None,
                       after={"since": since.isoformat(), "resume": args.resume}, at=now, service="ingest",
                       actor=audit.actor_of(None, cli=True))
    return {"tenant": args.slug, "crm": args.crm, "since": since.isoformat(),
            "status": "backfill resumed" if args.resume else "backfill requested"}


async def _run(args: argparse.Namespace, settings: IngestSettings, secret: str | None) -> dict[str, Any]:
    signer = settings.registry_signer()
    pool = await db.create_pool(settings.database_url, SPEC.schema, min_size=1, max_size=2)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        async with pool.acquire() as conn, conn.transaction():
            if args.command == "create":
                token = await tenants.create(conn, args.slug, token=secret, timezone=args.timezone,
                                             currency=args.currency, signer=signer,
                                             fiscal_start_month=args.fiscal_year_start_month, locale=args.locale,
                                             country=args.country, subdivision=args.subdivision,
                                             actor=audit.actor_of(None, cli=True))
                return {"tenant": args.slug, "token": token}
            if args.command in ("holidays", "set-rate", "locale"):
                return await _calendar(conn, args, signer)
            if args.command in ("set-secret", "set-api-token", "rotate-secrets"):
                return await _secrets(conn, args, settings, secret)
            if args.command == "backfill":
                return await _backfill(conn, args, settings)
            if args.command == "reannounce":
                return {"status": "every tenant announced, signed", "tenants": await tenants.announce_all(pool, signer)}
            await tenants.revoke(conn, args.slug, signer=signer, actor=audit.actor_of(None, cli=True))
            return {"tenant": args.slug, "status": "revoked"}
    finally:
        await pool.close()


def main(argv: list[str], stdin: TextIO | None = None) -> int:
    if argv[:1] == ["set-sso"]:  # single sign-on has a parser of its own (services/ingest/sso_cli.py)
        from services.ingest.sso_cli import main as sso_main  # noqa: PLC0415 - it imports this module

        return sso_main(argv[1:], stdin)
    args = parser().parse_args(argv)
    try:
        refuse_secret_on_argv(args)
        settings = IngestSettings()  # CRM_SECRET_KEYS unset, say, fails before a secret is asked for
        secret = secret_of(args, sys.stdin if stdin is None else stdin)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValidationError as err:
        print(f"error: {problems(err)}", file=sys.stderr)
        return 2
    return printed(lambda: [asyncio.run(_run(args, settings, secret))])


def printed(run: Callable[[], list[Any]]) -> int:
    """Print what `run` returns as JSON lines; the exit status of the contract (section 4): 0, 2 for a tenant
    error (named on standard error), 1 when the database cannot be reached."""
    try:
        for line in run():
            print(json.dumps(line))
    except tenants.TenantError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: cannot reach the database: {err}", file=sys.stderr)
        return 1
    return 0
