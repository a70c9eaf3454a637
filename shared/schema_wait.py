"""`python -m shared.schema_wait SERVICE [--timeout S] [--interval S]`: wait until SERVICE's schema has every
migration this code ships, connecting as the service's own working role (DATABASE_APP_URL), never as the owner.

Each Deployment of deploy/k8s runs it as an init container, so a rollout orders itself: the pods of a new image
wait until the migration Job (`python -m shared.migrate`, the only holder of the owner's credentials) has brought
the schema to the versions that image expects, then start; an older image's pods are not held back. Until the Job
has run, the working role may not exist yet or may not see the schema: such errors are "not yet", retried.

Exit 0 when the schema is current; 1 when `--timeout` passes first (naming what is missing, or the last error);
2 when DATABASE_APP_URL is not set.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from shared import db, logs
from shared.migrate import SERVICES, spec_of
from shared.settings import ServiceSettings

CONNECT_TIMEOUT_S = 5.0
# What "not yet" looks like before the Job has run: the server not answering, the role or its grants missing.
NOT_YET = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def pending(dsn: str, schema: str, *folders: Path) -> list[str]:
    """The migrations of `folders` (and the shared ones) that `schema` lacks, as the role of `dsn` sees it: a
    schema it cannot see yet lacks them all."""
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S, command_timeout=CONNECT_TIMEOUT_S,
                                 server_settings={"search_path": schema, "application_name": f"attain-{schema}-wait"})
    try:
        return await db.pending_migrations(conn, schema, *folders)
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the wait ended: `ready`, after `attempts` probes; else what the last probe found missing or failed on."""

    ready: bool
    attempts: int
    missing: tuple[str, ...] = ()
    error: str | None = None

    def describe(self, schema: str) -> str:
        if self.ready:
            return f"schema {schema} is current (after {self.attempts} check(s))"
        if self.error is not None:
            return f"schema {schema}: the database did not answer as the working role: {self.error}"
        return (f"schema {schema} still misses {len(self.missing)} migration(s) {list(self.missing)}: has the"
                " migration Job (python -m shared.migrate, as the owner) run for this image?")


async def wait(probe: Callable[[], Awaitable[list[str]]], *, timeout_s: float, interval_s: float,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
               report: Callable[[Outcome], None] = lambda _: None) -> Outcome:
    """Call `probe` every `interval_s` until it finds nothing missing, or `timeout_s` has passed (then the last
    finding). A probe failing with a `NOT_YET` error counts as not yet; `report` hears every unfinished attempt."""
    deadline = clock() + timeout_s
    attempts = 0
    while True:
        attempts += 1
        try:
            lacking = await probe()
        except NOT_YET as err:
            outcome = Outcome(False, attempts, error=f"{type(err).__name__}: {err}")
        else:
            if not lacking:
                return Outcome(True, attempts)
            outcome = Outcome(False, attempts, missing=tuple(lacking))
        if clock() + interval_s > deadline:
            return outcome
        report(outcome)
        await sleep(interval_s)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.schema_wait", description=__doc__.split("\n\n")[0])
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S",
                        help="give up after this many seconds, exit 1 (default 600)")
    parser.add_argument("--interval", type=float, default=3.0, metavar="S", help="between checks (default 3)")
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    logs.configure(f"{args.service}-schema-wait", settings.log_level, settings.log_format)
    if settings.database_app_url is None:
        sys.stderr.write("error: DATABASE_APP_URL is not set: the wait connects as the service's working role, never"
                         " as the schemas' owner\n")
        return 2
    dsn = settings.database_app_url.get_secret_value()
    spec = spec_of(args.service)

    def heard(outcome: Outcome) -> None:
        sys.stderr.write(f"waiting: {outcome.describe(spec.schema)}\n")
        sys.stderr.flush()

    outcome = asyncio.run(wait(lambda: pending(dsn, spec.schema, spec.migrations), timeout_s=args.timeout,
                               interval_s=args.interval, report=heard))
    (sys.stdout if outcome.ready else sys.stderr).write(outcome.describe(spec.schema) + "\n")
    return 0 if outcome.ready else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
