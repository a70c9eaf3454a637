"""`python -m services.ingest tenants ...`: tenant administration (CONTRACT.md, section 4)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date, timedelta

from services.ingest import tenants
from services.ingest.app import SPEC
from services.ingest.settings import IngestSettings
from shared import db


def _locale(name: str) -> str:
    """An argparse type: the locale as Babel spells it, or a usage error naming it (exit status 2)."""
    try:
        return tenants.normalise_locale(name)
    except tenants.TenantError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m services.ingest tenants", description="Manage tenants.")
    sub = top.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a tenant and print its token as JSON")
    create.add_argument("slug")
    create.add_argument("--token", help="use this token instead of a new random one")
    create.add_argument("--timezone", default="UTC", help="IANA zone periods are computed in")
    create.add_argument("--currency", default="EUR", help="ISO 4217 reporting currency")
    create.add_argument("--fiscal-year-start-month", type=int, default=1, choices=range(1, 13), metavar="1-12")
    create.add_argument("--locale", type=_locale, default=tenants.DEFAULT_LOCALE,
                        help="Babel locale the tenant's figures are formatted in, e.g. de_DE (default: en)")
    secret = sub.add_parser("set-secret", help="set the secret a CRM's webhook scheme is verified with")
    secret.add_argument("slug")
    secret.add_argument("crm", choices=tenants.CRMS)
    secret.add_argument("secret")
    secret.add_argument("--org-id", help="Salesforce: the OrganizationId every message must carry")
    secret.add_argument("--grace-hours", type=float, default=None,
                        help="how long the replaced secret stays valid (default SECRET_ROTATION_GRACE_HOURS, 24)")
    api = sub.add_parser("set-api-token", help="let ingest fetch records a webhook left incomplete from the CRM's API")
    api.add_argument("slug")
    api.add_argument("crm", choices=tenants.CRMS)
    api.add_argument("token")
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
    revoke = sub.add_parser("revoke", help="revoke a tenant: its token stops working at once")
    revoke.add_argument("slug")
    return top


async def _run(args: argparse.Namespace) -> dict[str, str]:
    settings = IngestSettings()
    pool = await db.create_pool(settings.database_url, SPEC.schema, min_size=1, max_size=2)
    try:
        await db.migrate(pool, SPEC.schema, SPEC.migrations)
        async with pool.acquire() as conn, conn.transaction():
            if args.command == "create":
                token = await tenants.create(conn, args.slug, token=args.token, timezone=args.timezone,
                                             currency=args.currency,
                                             fiscal_start_month=args.fiscal_year_start_month, locale=args.locale)
                return {"tenant": args.slug, "token": token}
            if args.command == "set-secret":
                hours = settings.secret_rotation_grace_hours if args.grace_hours is None else args.grace_hours
                await tenants.set_secret(conn, args.slug, args.crm, args.secret, args.org_id,
                                         timedelta(hours=hours))
                return {"tenant": args.slug, "crm": args.crm, "status": "secret set"}
            if args.command == "set-api-token":
                await tenants.set_api_token(conn, args.slug, args.crm, args.token, args.base_url)
                return {"tenant": args.slug, "crm": args.crm, "status": "api token set"}
            if args.command == "set-rate":
                await tenants.set_rate(conn, args.slug, args.currency, args.rate, args.valid_from)
                return {"tenant": args.slug, "currency": args.currency, "rate": args.rate,
                        "from": args.valid_from.isoformat(), "status": "rate set"}
            if args.command == "locale":
                locale = await tenants.set_locale(conn, args.slug, args.locale)
                return {"tenant": args.slug, "locale": locale, "status": "locale set"}
            await tenants.revoke(conn, args.slug)
            return {"tenant": args.slug, "status": "revoked"}
    finally:
        await pool.close()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        print(json.dumps(asyncio.run(_run(args))))
    except tenants.TenantError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: cannot reach the database: {err}", file=sys.stderr)
        return 1
    return 0
