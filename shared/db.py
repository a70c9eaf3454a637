"""PostgreSQL access: one asyncpg pool per service, bound to the service's own schema, the
migration runner that brings that schema up to date at start-up, and tenant isolation enforced by
PostgreSQL itself (row-level security).

Each service owns one schema (ARCHITECTURE.md) and sets it as the pool's `search_path`, so its SQL
never names a schema. Migrations are plain `.sql` files applied in name order, each in its own
transaction, under an advisory lock so replicas starting together do not race.

Tenant isolation: after its migrations, every table of the schema that holds tenant data gets row-level
security, FORCEd (so it binds the tables' owner too), with one policy: a row is visible and writable
only when its tenant equals the transaction's `attain.tenant` setting. A service runs migrations as the
owner (`DATABASE_URL`) and does its work on a second pool that connects as its own role
(`attain_<service>`, or `DATABASE_APP_URL`'s), which owns nothing, is no superuser and has no
BYPASSRLS. Every transaction says whose data it touches (`tenant_tx`, `set_tenant`): a request its
caller's tenant, a consumer batch each tenant's part in turn. Without a setting nothing is visible.
Work that spans tenants by nature (timers: evaluation, escalation, pruning; the outbox relay burying a
refused row) cannot set the all-tenants scope `*` on itself: the policy honours `*` only for the table's
owner. It calls its schema's `sweep_*` functions (SECURITY DEFINER, owned by the owner, search_path pinned,
EXECUTE granted to the working role only), each of which returns or changes only what its timer needs.
Admin pools (migrations, CLIs, tests), which connect as the owner, default to `*`.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Collection, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from shared.errors import TransientError

log = logging.getLogger(__name__)

SHARED_MIGRATIONS = Path(__file__).with_name("migrations")
TENANT_SETTING = "attain.tenant"
ALL_TENANTS = "*"  # the scope of work that spans tenants by nature; no tenant slug can be "*"
# Tables without tenant rows: bookkeeping no endpoint serves (the outbox holds encoded events on their way
# to Kafka; offsets and migrations hold no tenant data).
UNSCOPED = frozenset({"outbox", "consumer_offsets", "consumer_fences", "schema_migrations"})
# Where a table's tenant is not a `tenant` column: another column, or its parent's row (USING-clause SQL).
TENANT_COLUMN = {"tenants": "slug", "exchange_rates": "slug"}  # when there is no `tenant` column (ingest's)
VIA_PARENT = {"plan_steps": "(EXISTS (SELECT 1 FROM action_plans p WHERE p.plan_id = plan_steps.plan_id))"}
# The tenant registry is readable in every scope: a bearer token is looked up before its tenant is known.
REGISTRY = frozenset({"tenants", "tokens"})


class PoolExhausted(TransientError, TimeoutError):
    """No connection of the pool came free within its acquire timeout: the service is busy (or stuck) for
    now. Transient: an HTTP request answers 503 with Retry-After, a consumer retries its batch."""


class _TimedAcquire:
    """`pool.acquire()` as asyncpg's, with its timeout turned into `PoolExhausted`."""

    __slots__ = ("_inner", "_timeout")

    def __init__(self, inner: Any, timeout: float | None) -> None:
        self._inner, self._timeout = inner, timeout

    def _exhausted(self) -> PoolExhausted:
        return PoolExhausted(f"no database connection came free within {self._timeout} s")

    async def __aenter__(self) -> Any:
        try:
            return await self._inner.__aenter__()
        except TimeoutError as err:
            raise self._exhausted() from err

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.__aexit__(*exc)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._acquired().__await__()

    async def _acquired(self) -> Any:
        try:
            return await self._inner
        except TimeoutError as err:
            raise self._exhausted() from err


class TimedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no type information
    """asyncpg's pool whose `acquire` waits at most `acquire_timeout_s` when the caller names no timeout, so a
    request never queues for a connection for ever (`PoolExhausted` instead)."""

    def __init__(self, *args: Any, acquire_timeout_s: float | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout_s = acquire_timeout_s

    def acquire(self, *, timeout: float | None = None) -> _TimedAcquire:
        timeout = self.acquire_timeout_s if timeout is None else timeout
        return _TimedAcquire(super().acquire(timeout=timeout), timeout)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a working pool's callers wait: for a connection (`acquire_s`), for one statement (PostgreSQL's
    `statement_timeout`; the client gives up `CLIENT_MARGIN_S` later, should the server not answer at all), for
    a row or table lock (`lock_timeout`). None: no limit (admin pools: a migration may take long)."""

    acquire_s: float | None = None
    statement_s: float | None = None
    lock_s: float | None = None


CLIENT_MARGIN_S = 5.0


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10,
                      scope: str | None = ALL_TENANTS, create_schema: bool = True,
                      timeouts: Timeouts = Timeouts()) -> asyncpg.Pool:
    """A pool whose connections see `schema` first (created if missing, with `create_schema`).

    `scope` is the session's default tenant scope: admin pools (migrations, CLIs, tests) see every
    tenant; a service's working pool passes None, so each transaction must say whose data it touches.
    `timeouts` bound every acquire, statement and lock wait (a service's working pool: the DB_*_TIMEOUT_S
    settings); a statement or lock wait past them fails with asyncpg's QueryCanceledError or
    LockNotAvailableError, an acquire with `PoolExhausted`."""
    if create_schema:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        except asyncpg.UniqueViolationError:
            pass  # two replicas created it at the same moment
        finally:
            await conn.close()
    settings = {"search_path": schema, "application_name": f"attain-{schema}"}
    if scope is not None:
        settings[TENANT_SETTING] = scope
    if timeouts.statement_s is not None:
        settings["statement_timeout"] = str(int(timeouts.statement_s * 1000))
    if timeouts.lock_s is not None:
        settings["lock_timeout"] = str(int(timeouts.lock_s * 1000))
    command_timeout = timeouts.statement_s + CLIENT_MARGIN_S if timeouts.statement_s is not None else None
    pool = TimedPool(dsn, acquire_timeout_s=timeouts.acquire_s, min_size=min_size, max_size=max_size,
                     max_queries=50_000, max_inactive_connection_lifetime=300.0, loop=None,
                     connection_class=asyncpg.Connection, record_class=asyncpg.Record, server_settings=settings,
                     command_timeout=command_timeout)
    await pool  # connects the first `min_size` connections, as `asyncpg.create_pool` does
    return pool


def app_role(service: str) -> str:
    """The role a service works as when `DATABASE_APP_URL` does not name one."""
    return f"attain_{service}"


@dataclass(frozen=True, slots=True)
class WorkingRole:
    """Who a service works as: its connection URL, the role's name, and the password to create it with."""

    url: str
    name: str
    password: str | None


def working_role(owner_dsn: str, app_url: str | None, service: str) -> WorkingRole:
    """`app_url` (DATABASE_APP_URL) when given, else `attain_<service>` on the owner's server."""
    url = app_url or app_dsn(owner_dsn, app_role(service))
    parts = urlsplit(url)
    return WorkingRole(url, unquote(parts.username or ""), unquote(parts.password) if parts.password else None)


def app_dsn(owner_dsn: str, role: str) -> str:
    """`owner_dsn` with `role` as the user (same host, database, options and password): the local stack and
    docker-compose need no second secret; a real deployment sets `DATABASE_APP_URL` instead."""
    parts = urlsplit(owner_dsn)
    password = parts.password
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = quote(role, safe="") + (f":{quote(unquote(password), safe='')}" if password else "")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


async def set_tenant(conn: asyncpg.Connection, tenant: str) -> None:
    """Scope the current transaction to `tenant` (row-level security), until it ends or is scoped again."""
    await conn.execute("SELECT set_config('attain.tenant', $1, true)", tenant)


@contextlib.asynccontextmanager
async def tenant_tx(pool: asyncpg.Pool, tenant: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction that sees and writes `tenant`'s rows only."""
    async with pool.acquire() as conn, conn.transaction():
        await set_tenant(conn, tenant)
        yield conn


@contextlib.asynccontextmanager
async def all_tenants_tx(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction that spans tenants, for the owner's pools (CLIs, tools, tests): a
    working role's scope `*` shows it nothing (`_policy`); its timers use `sweep_tx` and `sweep_*`."""
    async with pool.acquire() as conn, conn.transaction():
        await set_tenant(conn, ALL_TENANTS)
        yield conn


@contextlib.asynccontextmanager
async def sweep_tx(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction in no tenant's scope, for a timer's cross-tenant work: it reaches every
    tenant only through its schema's `sweep_*` functions (SECURITY DEFINER, each returning only what its
    timer needs), then scopes itself to each tenant in turn (`set_tenant`) for the rest."""
    async with pool.acquire() as conn, conn.transaction():
        await set_tenant(conn, "")
        yield conn


def _lock_key(schema: str) -> int:
    return zlib.crc32(f"attain-migrations:{schema}".encode())


async def migrate(pool: asyncpg.Pool, schema: str, *folders: Path, grant_to: str | None = None,
                  grant_password: str | None = None) -> list[str]:
    """Apply the shared migrations, then the service's own, then row-level security (`secure`); return
    the versions applied now. With `grant_to`, that role (created if missing, with `grant_password`)
    may read and write the schema's tables, through the policies."""
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for folder in (SHARED_MIGRATIONS, *folders):
                prefix = "shared" if folder == SHARED_MIGRATIONS else schema
                for path in sorted(folder.glob("*.sql")):
                    version = f"{prefix}:{path.stem}"
                    if version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(path.read_text())
                        await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                    applied_now.append(version)
                    log.info("migration applied", extra={"schema": schema, "version": version})
            await secure(conn, schema)
            if grant_to is not None:
                await grant(conn, schema, grant_to, grant_password)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
    return applied_now


# What marks a tenant policy that honours `*` for the table's owner only (policies made before test for it).
OWNER_ONLY_MARK = "relowner"


def _policy(table: str, has_tenant: bool) -> str:
    """The USING/WITH CHECK expression of `table`'s tenant policy: the transaction's tenant, or every tenant
    when the scope is `*` and the role at work owns the table - the migrating owner, or a `sweep_*`
    function running as it (SECURITY DEFINER). A working role that sets `*` on itself sees nothing."""
    if not has_tenant and table in VIA_PARENT:
        return VIA_PARENT[table]
    setting = "(SELECT current_setting('attain.tenant', true))"  # an InitPlan: read once per statement
    column = "tenant" if has_tenant else TENANT_COLUMN[table]
    # uncorrelated, so an InitPlan too, and evaluated only when the scope is `*` (never on a tenant's work);
    # the table's name is resolved to its oid when the policy is made
    owner = (f"(SELECT c.{OWNER_ONLY_MARK} = r.oid FROM pg_class c JOIN pg_roles r ON r.rolname = current_user"
             f" WHERE c.oid = '\"{table}\"'::regclass)")
    return f"({column} = {setting} OR ({setting} = '{ALL_TENANTS}' AND {owner}))"


async def secure(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Row-level security, forced, with the tenant policy on every table of `schema` but `UNSCOPED`; a
    table with no way to tell its tenant fails here, at start-up, rather than leak. Idempotent, and no
    DDL when nothing is missing (a restart takes no table locks). Returns the tables changed."""
    rows = await conn.fetch(
        "SELECT c.relname AS name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,"
        " EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant'"
        "         AND NOT a.attisdropped) AS has_tenant,"
        " array(SELECT polname FROM pg_policy WHERE polrelid = c.oid) AS policies,"
        " (SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = c.oid"
        "  AND polname = 'attain_tenant') AS tenant_policy"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname", schema)
    changed = []
    for row in rows:
        table = row["name"]
        if table in UNSCOPED:
            continue
        if not (row["has_tenant"] or table in TENANT_COLUMN or table in VIA_PARENT):
            raise RuntimeError(f"table {schema}.{table} has no tenant column and no tenant rule in shared/db.py:"
                               " add one (or list it as UNSCOPED) so row-level security covers it")
        statements = []
        if not row["enabled"]:
            statements.append(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
        if not row["forced"]:
            statements.append(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
        check = _policy(table, row["has_tenant"])
        if "attain_tenant" not in row["policies"]:
            statements.append(f'CREATE POLICY attain_tenant ON "{table}" USING {check} WITH CHECK {check}')
        elif table not in VIA_PARENT and OWNER_ONLY_MARK not in (row["tenant_policy"] or ""):
            # made before `*` was the owner's alone: any working role could widen its own scope
            statements.append(f'ALTER POLICY attain_tenant ON "{table}" USING {check} WITH CHECK {check}')
        if table in REGISTRY and "attain_registry_read" not in row["policies"]:
            statements.append(f'CREATE POLICY attain_registry_read ON "{table}" FOR SELECT USING (true)')
        if statements:
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
            changed.append(table)
    changed += await _pin_sweeps(conn, schema)
    if changed:
        log.info("row-level security applied", extra={"schema": schema, "tables": changed})
    return changed


async def _pin_sweeps(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Every SECURITY DEFINER function of `schema` (the `sweep_*` functions: cross-tenant work, run as the
    owner) gets a fixed `search_path` (the schema, then pg_temp: no object a caller creates can stand in
    for one it names) and loses PUBLIC's EXECUTE; `grant` gives EXECUTE to the working role. Returns the
    functions changed."""
    rows = await conn.fetch(
        "SELECT p.oid::regprocedure::text AS signature, p.proconfig AS config,"
        " has_function_privilege('public', p.oid, 'EXECUTE') AS public"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = $1 AND p.prosecdef ORDER BY 1", schema)
    pinned = await conn.fetchval("SELECT format('search_path=%I, pg_temp', $1::text)", schema)
    changed = []
    for row in rows:
        statements = []
        if pinned not in (row["config"] or []):
            statements.append(await conn.fetchval(
                "SELECT format('ALTER FUNCTION %s SET search_path = %I, pg_temp', $1::text, $2::text)",
                row["signature"], schema))
        if row["public"]:
            statements.append(f"REVOKE ALL ON FUNCTION {row['signature']} FROM PUBLIC")
        if statements:
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
            changed.append(row["signature"])
    return changed


async def grant(conn: asyncpg.Connection, schema: str, role: str, password: str | None = None) -> None:
    """Let `role` (created when missing: LOGIN, no superuser, no BYPASSRLS) read and write `schema`'s
    tables; ownership stays with the migrating role, so the policies bind it."""
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    if not exists:
        statement = await conn.fetchval(
            "SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE' ||"
            " CASE WHEN $2::text IS NULL THEN '' ELSE format(' PASSWORD %L', $2::text) END, $1::text)",
            role, password)
        with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            await conn.execute(statement)  # another replica may create it at the same moment
    quoted = await conn.fetchval("SELECT quote_ident($1)", role)
    for statement in (f'GRANT USAGE ON SCHEMA "{schema}" TO {quoted}',
                      f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {quoted}',
                      f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "{schema}" TO {quoted}',
                      f'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA "{schema}" TO {quoted}'):
        await conn.execute(statement)


def shipped_versions(schema: str, *folders: Path) -> list[str]:
    """The migration versions this code ships for `schema`, in the order `migrate` applies them."""
    return [f"{'shared' if folder == SHARED_MIGRATIONS else schema}:{path.stem}"
            for folder in (SHARED_MIGRATIONS, *folders) for path in sorted(folder.glob("*.sql"))]


class SchemaBehind(RuntimeError):
    """The schema misses migrations this code needs, and the service was told not to migrate."""


def missing_versions(shipped: Sequence[str], done: Collection[str]) -> list[str]:
    """The versions of `shipped` not in `done`, in the order they are applied.

    >>> missing_versions(["shared:001", "kpi:001", "kpi:002"], {"shared:001", "kpi:001"})
    ['kpi:002']
    """
    return [version for version in shipped if version not in done]


async def pending_migrations(conn: asyncpg.Connection, schema: str, *folders: Path) -> list[str]:
    """The migrations this code ships for `schema` that it lacks, as `conn`'s role sees it (search_path on the
    schema): a schema without its migrations table lacks them all."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")} if exists else set()
    return missing_versions(shipped_versions(schema, *folders), done)


async def check_migrated(pool: asyncpg.Pool, schema: str, *folders: Path) -> None:
    """Refuse to work on a schema that misses a migration this code ships (DB_MIGRATE_ON_START=false: the
    migration Job must run first), naming what is missing and the command that applies it."""
    async with pool.acquire() as conn:
        missing = await pending_migrations(conn, schema, *folders)
    if missing:
        raise SchemaBehind(f"schema {schema} misses {len(missing)} migration(s) {missing}: run `python -m"
                           " shared.migrate` as the schemas' owner (the Kubernetes Job attain-migrate) first")


async def check_app_role(pool: asyncpg.Pool, schema: str) -> str:
    """Refuse to work as a role that row-level security would not bind: a superuser, a BYPASSRLS role, or
    the owner of a table of `schema`. Returns the role's name."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT current_user AS name, r.rolsuper AS super, r.rolbypassrls AS bypass,"
            " (SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tableowner = current_user) AS owned"
            " FROM pg_roles r WHERE r.rolname = current_user", schema)
    problems = [text for flag, text in ((row["super"], "is a superuser"), (row["bypass"], "has BYPASSRLS"),
                                        (row["owned"], f"owns {row['owned']} table(s) of schema {schema}")) if flag]
    if problems:
        raise RuntimeError(f"the service's database role {row['name']!r} {' and '.join(problems)}: row-level"
                           " security would not bind it; point DATABASE_APP_URL at a role that owns nothing")
    return str(row["name"])
