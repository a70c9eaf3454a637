"""The local PostgreSQL: the server at DATABASE_URL (or the default URL), else a cluster of our own.

`up` picks the server as the docstring of deploy/local/stack.py describes, creates the database
(and, on our own cluster, its role) when missing and returns the URL to use. The cluster of
our own, in .local/pg, is deploy/local/pg_cluster.py's.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from deploy.local.pg_cluster import PG_CONF_NAME, PG_DATA, PG_LOG, PG_READY_TIMEOUT_S, local_pid
from deploy.local.pg_cluster import start as start_local_cluster
from deploy.local.procs import HOST, ROOT, StackError, port_open, say, tail

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/attain"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}  # as urlsplit gives a host: IPv6 without brackets


@dataclass(frozen=True)
class Url:
    raw: str
    user: str
    password: str | None
    host: str
    port: int
    database: str

    @classmethod
    def parse(cls, url: str) -> Url:
        parts = urlsplit(url)
        scheme = parts.scheme.split("+", 1)[0]  # "postgresql+asyncpg" and friends
        if scheme not in {"postgres", "postgresql"}:
            raise StackError(f"not a PostgreSQL URL: {url!r}")
        raw = urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))
        return cls(
            raw=raw,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname or HOST,
            port=parts.port or 5432,
            database=unquote(parts.path.lstrip("/")) or unquote(parts.username or "postgres"),
        )

    def with_database(self, database: str, user: str | None = None) -> str:
        """This server, another database (and user: then without a password; trust auth)."""
        password = self.password if user in (None, self.user) else None
        auth = quote(user or self.user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{auth}@{host}:{self.port}/{quote(database, safe='')}"

    @property
    def display(self) -> str:
        """The URL with its password masked."""
        if self.password is None:
            return self.raw
        return self.raw.replace(":" + quote(self.password, safe="") + "@", ":***@", 1)

    @property
    def loopback(self) -> bool:
        return self.host in _LOOPBACK


async def probe(url: Url) -> str:
    """'ok', 'no-database', 'down' (nothing listens), 'starting' or 'refused: <why>' (a server said no)."""
    if not port_open(url.host, url.port, timeout=1.0):
        return "down"
    try:
        conn = await asyncpg.connect(url.raw, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        return "no-database"
    except (TimeoutError, OSError) as exc:
        return f"refused: {exc!r}"
    except asyncpg.CannotConnectNowError:
        return "starting"
    except Exception as exc:  # auth failures and the like
        return f"refused: {type(exc).__name__}: {exc}"
    await conn.close()
    return "ok"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _ensure_database(url: Url, admin_url: str | None = None) -> None:
    """Create url's database (and, on our own cluster, its role) when missing."""
    conn = await asyncpg.connect(admin_url or url.with_database("postgres"), timeout=10)
    try:
        role_missing = admin_url is not None and url.user != "postgres"
        role_missing = role_missing and not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", url.user)
        if role_missing:
            password = "" if url.password is None else " PASSWORD '" + url.password.replace("'", "''") + "'"
            await conn.execute(f"CREATE ROLE {_quote_ident(url.user)} LOGIN CREATEDB{password}")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", url.database):
            try:
                await conn.execute(f"CREATE DATABASE {_quote_ident(url.database)} OWNER {_quote_ident(url.user)}")
                say(f"postgres: created database {url.database}")
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


async def _ready(url: Url, admin: str, deadline: float) -> None:
    """Wait for the cluster to answer `admin` (its superuser URL), then create url's role and database."""
    while (found := await probe(Url.parse(admin))) != "ok":
        if time.monotonic() > deadline:
            raise StackError(
                f"PostgreSQL did not answer at {Url.parse(admin).display} ({found}); see {PG_LOG}:\n{tail(PG_LOG)}"
            )
        await asyncio.sleep(0.2)
    await _ensure_database(url, admin_url=admin)


async def _local_cluster_up(url: Url) -> None:
    """Start (creating it first if need be) the cluster in .local/pg on url's port."""
    started = time.monotonic()
    admin = url.with_database("postgres", user="postgres")
    pid = local_pid()
    if pid is not None:
        # ours, but it did not answer on url: still starting, or running on another port
        await _ready(url, admin, deadline=started + PG_READY_TIMEOUT_S)
        say(f"postgres: already up on {HOST}:{url.port} (local cluster, pid {pid})")
        return
    start_local_cluster(url.port)
    await _ready(url, admin, deadline=time.monotonic() + PG_READY_TIMEOUT_S)
    say(f"postgres: up on {HOST}:{url.port} in {time.monotonic() - started:.1f}s (cluster {PG_DATA.relative_to(ROOT)})")


def _whose(url: Url) -> str:
    """Who runs the server at url: our cluster in .local/pg, or someone else."""
    pid = local_pid()
    conf = PG_DATA / PG_CONF_NAME
    ours = pid and url.loopback and conf.exists() and f"port = {url.port}\n" in conf.read_text()
    return f"local cluster, pid {pid}" if ours else "a server not started here"


async def up() -> str:
    """Make sure a PostgreSQL answers with the database to use; returns its URL."""
    env_url = os.environ.get("DATABASE_URL", "").strip()
    if env_url:
        url = Url.parse(env_url)
        found = await probe(url)
        if found in {"ok", "no-database"}:
            await _ensure_database(url)
            say(f"postgres: using DATABASE_URL {url.display} ({_whose(url)})")
            return url.raw
        if found.startswith("refused"):
            raise StackError(
                f"the server at DATABASE_URL {url.display} answers but refuses the connection: {found[9:]}"
            )
        if url.loopback:
            await _local_cluster_up(url)
            return url.raw
        say(f"postgres: DATABASE_URL {url.display} does not answer; using {DEFAULT_DATABASE_URL} instead")
    url = Url.parse(DEFAULT_DATABASE_URL)
    found = await probe(url)
    if found in {"ok", "no-database"}:
        await _ensure_database(url)
        say(f"postgres: already up at {url.display} ({_whose(url)})")
        return url.raw
    if found.startswith("refused"):
        raise StackError(
            f"a server answers on {HOST}:{url.port} but refuses {url.display}: {found[9:]}. "
            "If it is Debian's own cluster (see `pg_lsclusters`), set DATABASE_URL to a URL it accepts, "
            "or stop it (`pg_ctlcluster <version> main stop`) so that `up` runs its own"
        )
    await _local_cluster_up(url)
    return url.raw
