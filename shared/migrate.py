"""`python -m shared.migrate [SERVICE ...]`: apply every service's schema migrations as the schemas' owner
(DATABASE_URL), apply row-level security, and let each service's working role use its schema.

What the services do at start when DB_MIGRATE_ON_START is true (the default: development, compose, the
demo). In Kubernetes the pods hold only their working role (DATABASE_APP_URL, DB_MIGRATE_ON_START=false)
and this command runs first, as the Job `attain-migrate`, the only place the owner's credentials go.
Each service's working role is `attain_<service>`, created with DATABASE_URL's password when missing
(which needs CREATEROLE), or the user of `DATABASE_APP_URL_<SERVICE>` when that is set. Exit 0 and one
JSON line per schema with the versions applied; 1 with the error when a migration fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from importlib import import_module

from shared import db, logs
from shared.cli import program
from shared.service import ServiceSpec
from shared.settings import ServiceSettings

SERVICES = ("ingest", "kpi", "coaching", "recognition", "notify")


def spec_of(name: str) -> ServiceSpec:
    spec: ServiceSpec = import_module(f"services.{name}.app").SPEC
    return spec


async def migrate(names: list[str]) -> list[dict[str, object]]:
    settings = ServiceSettings()
    report: list[dict[str, object]] = []
    for name in names:
        spec = spec_of(name)
        role = db.working_role(settings.database_url, os.environ.get(f"DATABASE_APP_URL_{name.upper()}"), name)
        pool = await db.create_pool(settings.database_url, spec.schema, min_size=1, max_size=1)
        try:
            applied = await db.migrate(pool, spec.schema, spec.migrations, grant_to=role.name,
                                       grant_password=role.password)
        finally:
            await pool.close()
        report.append({"service": name, "schema": spec.schema, "working_role": role.name, "applied": applied})
    return report


def main(argv: list[str] | None = None) -> int:
    """`attain-migrate` / `python -m shared.migrate`: the command line (default `sys.argv[1:]`); the exit status."""
    parser = argparse.ArgumentParser(prog=program("shared.migrate"), description=__doc__.split("\n\n")[0])
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)}; default all")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:
        parser.error(f"no service {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    settings = ServiceSettings()
    logs.configure("migrate", settings.log_level, settings.log_format)
    try:
        for line in asyncio.run(migrate(list(args.services) or list(SERVICES))):
            print(json.dumps(line), flush=True)
    except Exception as err:  # a failed migration: its error, exit 1 (the Job retries, the rollout stops)
        print(f"error: migration failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
