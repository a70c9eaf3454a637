"""The real thing: Kafka and PostgreSQL from deploy/local, the five services as subprocesses (and a mail server
for notify's e-mail, `tests/integration/mailbox.py`).

Every test makes its own tenant, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.local import crm_keys, registry_keys
from shared import db, topics
from shared.cloudevents import decode
from shared.errors import InvalidMessage
from shared.kafka import partitions_of
from tests.integration import mailbox
from tests.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".local" / "test-logs"
# The suite's services listen on free ports, chosen once per run: never numbers another run may hold.
PORTS = dict(zip(("ingest", "kpi", "coaching", "recognition", "notify"), free_ports(5), strict=True))
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
# Tests keep to their own database and consumer groups, so a demo running beside them is not disturbed.
DATABASE_URL = os.environ.get("ATTAIN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/attain_test")
GROUP_PREFIX = "attain-test"
COACHING_GRACE_S = 3


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers",
                            "early: reads the topics from their start: run before the other integration tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark integration tests; run the `load` tests (100k-event imports, fuzzing) last, so the backlog
    they leave in the consumers does not delay the tests that wait for derived events."""
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
    # Tests that run their own replicas of a service (in-process, own groups) go before the first test
    # that starts the suite's shared services: those consume the same topics under another group and would
    # answer the in-process tests' events too (two deployments on one cluster), doubling what they publish.
    # `early` tests read every topic from its start (a kpi rebuild, the docs' own services): they go first among the
    # integration tests, before the rest fill the topics, so that their cost does not grow with the suite; but
    # never one that uses the shared services, which would then start first and answer everyone's events.
    def key(item: pytest.Item) -> tuple[bool, bool, bool]:
        shared = "services" in getattr(item, "fixturenames", ())
        early = item.get_closest_marker("early") is not None and not shared
        later = "tests/integration" in str(item.fspath) and not early
        return later, item.get_closest_marker("load") is not None, shared

    items.sort(key=key)


@pytest.fixture(scope="session", autouse=True)
def registry_key_pair() -> Iterator[None]:
    """Every service the integration tests start, as a process (`**os.environ`) or in-process (settings read the
    environment), signs and verifies the tenant registry with the local key pair, as they all get the local
    CRM_SECRET_KEYS. Set for the integration tests' session only, and taken back after."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in registry_keys.env().items():
            if name not in os.environ:
                patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def stack() -> None:
    """Kafka and PostgreSQL up (a fast no-op when they already are)."""
    subprocess.run([sys.executable, "-m", "deploy.local.stack", "up"], cwd=ROOT, check=True,
                   env={**os.environ, "DATABASE_URL": DATABASE_URL})


def _service_env(name: str) -> dict[str, str]:
    return {
        **os.environ,
        **registry_keys.env(),  # the local registry key pair: ingest signs, the readers verify
        **crm_keys.env(),  # ingest seals CRM secrets with it; the suite's CLI calls use the same local key
        "HTTP_PORT": str(PORTS[name]),
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "DATABASE_URL": DATABASE_URL,
        "LOG_LEVEL": "INFO",
        "COACHING_EVALUATION_INTERVAL_S": "1",
        "RECOGNITION_CONTEST_INTERVAL_S": "1",  # a lasting lead is celebrated within a second of its debounce
        "COACHING_GRACE_S": str(COACHING_GRACE_S),
        "OUTBOX_POLL_INTERVAL_S": "0.2",
        "KAFKA_CONSUMER_GROUP_PREFIX": GROUP_PREFIX,
        # Fuzzing sends thousands of requests: high enough that most are not throttled, low enough to test 429.
        "RATE_LIMIT_REQUESTS_PER_S": "500",
        "RATE_LIMIT_REQUEST_BURST": "500",
        # Every test calls from 127.0.0.1: one client address, and a few tokens read hard, for the whole session.
        # The edge limits' own tests run apps of their own (tests/integration/exposure, tests/unit/shared).
        "AUTH_FAILURE_BURST": "1000",
        "READ_RATE_PER_S": "1000",
        "READ_BURST": "1000",
        # test_crm_fetch's stand-in CRM API listens on loopback, which the fetcher refuses unless allowed.
        "CRM_API_ALLOWED_HOSTS": "127.0.0.1",
        "DASHBOARD_COACHING_URL": f"http://127.0.0.1:{PORTS['coaching']}",
        "DASHBOARD_RECOGNITION_URL": f"http://127.0.0.1:{PORTS['recognition']}",
        "DASHBOARD_INGEST_URL": f"http://127.0.0.1:{PORTS['ingest']}",
        "DASHBOARD_NOTIFY_URL": f"http://127.0.0.1:{PORTS['notify']}",
        # notify's links (the dashboard's pages, the e-mails' unsubscribe) point at the suite's kpi
        "DASHBOARD_BASE_URL": f"http://127.0.0.1:{PORTS['kpi']}",
        "NOTIFY_INTERVAL_S": "0.5",
        # notify's e-mail: to the session's mail server, once the `services` fixture started it
        **({"SMTP_URL": url} if name == "notify" and (url := mailbox.url()) else {}),
    }


@contextlib.contextmanager
def running(ports: dict[str, int], extra_env: dict[str, str] | None = None, log_suffix: str = "",
            env_of: dict[str, dict[str, str]] | None = None,
            procs: dict[str, subprocess.Popen[bytes]] | None = None) -> Iterator[dict[str, str]]:
    """Services started with `python -m services.<name>` on `ports`, ready; stopped with SIGTERM after.
    `env_of`: more environment for one service (its own Kafka principal, say), over `extra_env`. `procs`, when
    given, holds the processes (`sigkill_and_restart` replaces one; the one there at the end is stopped)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    procs = {} if procs is None else procs
    for name, port in ports.items():
        log = (LOGS / f"{name}{log_suffix}.log").open("wb")
        env = {**_service_env(name), "HTTP_PORT": str(port), **(extra_env or {}), **(env_of or {}).get(name, {})}
        procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT,
                                       env=env, stdout=log, stderr=subprocess.STDOUT)
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        deadline = time.monotonic() + 90
        for name, url in urls.items():
            while True:
                if procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited with {procs[name].returncode}; see {LOGS / (name + '.log')}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready after 90 s; see {LOGS / (name + '.log')}")
                time.sleep(0.3)
        yield urls
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def services(stack: None) -> Iterator[dict[str, str]]:
    """The five services, started with `python -m services.<name>`, ready and caught up with what the
    topics held when they started (earlier tests' events) before any test uses them. notify sends e-mail to
    the session's mail server (`mailbox`), started first."""
    mailbox.start()
    try:
        with running(PORTS, procs=SESSION_PROCS) as urls:
            asyncio.run(_caught_up(time.monotonic() + 240))
            yield urls
    finally:
        mailbox.stop()


SESSION_PROCS: dict[str, subprocess.Popen[bytes]] = {}  # the session's services (`services`)


def sigkill_and_restart(name: str, between: Callable[[], None] | None = None) -> None:
    """SIGKILL one of the session's services (no shutdown of any kind: its transactions die where they are),
    call `between`, start it again with the same environment and port, and wait until it is ready."""
    proc = SESSION_PROCS[name]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if between is not None:
        between()
    log = (LOGS / f"{name}-restarted.log").open("ab")
    SESSION_PROCS[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT,
                                           env=_service_env(name), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while True:
        assert SESSION_PROCS[name].poll() is None, f"{name} exited; see {LOGS / (name + '-restarted.log')}"
        try:
            if httpx.get(f"http://127.0.0.1:{PORTS[name]}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{name} not ready after a restart"
        time.sleep(0.3)


def database_url(name: str) -> str:
    """The URL of database `name` on the test server."""
    return DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"


async def as_admin(*statements: str) -> None:
    """Run `statements` in turn on the test server's maintenance database (`postgres`): statements such as
    CREATE DATABASE that no transaction and no other database may hold."""
    admin = await asyncpg.connect(database_url("postgres"))
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


async def fresh_database(name: str) -> str:
    """Drop and create database `name` on the test server; its URL. Done from the server's maintenance
    database, so it works before the test database exists (`make chaos` and `make soak` on a fresh machine)."""
    await as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return database_url(name)


async def owned_by_a_plain_role(name: str, owner_role: str) -> tuple[str, str]:
    """Production's shape: database `name`, fresh, owned by `owner_role`, a new ordinary role (LOGIN
    NOSUPERUSER NOBYPASSRLS CREATEROLE) that may create schemas in it. The database's URL as the server's
    superuser, and as `owner_role`."""
    url = await fresh_database(name)
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE ROLE {owner_role} LOGIN NOSUPERUSER NOBYPASSRLS CREATEROLE")
        await admin.execute(f'ALTER DATABASE "{name}" OWNER TO {owner_role}')
        await admin.execute(f'GRANT CREATE ON DATABASE "{name}" TO {owner_role}')
    finally:
        await admin.close()
    return url, db.app_dsn(url, owner_role)


async def end_offsets(names: list[str]) -> dict[TopicPartition, int]:
    """Where each partition of the topics ends for a read_committed reader (past committed records)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, isolation_level="read_committed")
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(t, p) for t in names for p in metadata.partitions_for_topic(t) or ()]
        return dict(await consumer.end_offsets(parts))
    finally:
        await consumer.stop()


async def _reached(conn: asyncpg.Connection, schema: str, group: str, end: dict[TopicPartition, int]) -> bool:
    """Has `group` applied every record before `end`? Offsets alone cannot say for a topic written in
    Kafka transactions (the commit marker after the last record takes an offset of its own), so the
    partitions short of `end` are read from the stored offset on: caught up when nothing but markers."""
    rows = await conn.fetch(f"SELECT topic, partition, next_offset FROM {schema}.consumer_offsets"
                            " WHERE group_id = $1", group)
    done = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    short = {tp: done.get(tp, 0) for tp, offset in end.items() if done.get(tp, 0) < offset}
    if not short:
        return True
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign(list(short))
        for tp, offset in short.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                if any(r.offset < end[tp] for r in records):
                    return False  # a record the group has not applied yet
            positions = {tp: await consumer.position(tp) for tp in short}
            if all(positions[tp] >= end[tp] for tp in short):
                return True
        return False
    finally:
        await consumer.stop()


async def _caught_up(deadline: float) -> None:
    """kpi has applied the sales topics' backlog and sent its figures; then coaching and recognition
    have applied every attainment update up to there (earlier tests may have left hundreds of thousands),
    and the sales events too."""
    sales = await end_offsets([t.name for t in (topics.DEALS, topics.ACTIVITIES, topics.ROSTER, topics.TARGETS)])
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        while not (await _reached(conn, "kpi", f"{GROUP_PREFIX}-kpi", sales) and not await conn.fetchval(
                "SELECT count(*) FROM kpi.outbox")):
            if time.monotonic() > deadline:
                raise RuntimeError("kpi did not catch up with the topics' backlog within 240 s")
            await asyncio.sleep(0.5)
        figures = await end_offsets([topics.ATTAINMENT.name])
        for service in ("coaching", "recognition"):
            # both read the sales topics too (activities, deals, roster): caught up on those as well
            read = {tp: o for tp, o in sales.items() if tp.topic != topics.TARGETS.name}
            ends = figures | read
            while not await _reached(conn, service, f"{GROUP_PREFIX}-{service}", ends):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{service} did not catch up with the attainment backlog within 240 s")
                await asyncio.sleep(0.5)
    finally:
        await conn.close()


@dataclass
class Tenant:
    slug: str
    token: str
    timezone: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def create_tenant(timezone: str = "Europe/Berlin") -> Tenant:
    slug = f"t-{uuid.uuid4().hex[:12]}"
    out = subprocess.run(
        [sys.executable, "-m", "services.ingest", "tenants", "create", slug, "--timezone", timezone],
        cwd=ROOT, check=True, capture_output=True, text=True,
        env={**os.environ, **crm_keys.env(), **registry_keys.env(), "DATABASE_URL": DATABASE_URL},
    )
    created = json.loads(out.stdout)
    return Tenant(created["tenant"], created["token"], timezone)


@pytest.fixture
def tenant(services: dict[str, str]) -> Tenant:
    return create_tenant()


@dataclass
class Watch:
    """Collects one tenant's records from topics, from the moment the watch started."""

    tenant: str
    consumer: AIOKafkaConsumer
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def poll(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            batches = await self.consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for records in batches.values():
                for r in records:
                    try:
                        event = decode(r.headers, r.value)
                    except InvalidMessage:  # dead letters and other tests' poison
                        if (r.key or b"").startswith(f"{self.tenant}:".encode()):
                            self.seen.append({"topic": r.topic, "type": None, "id": None, "key": r.key,
                                              "headers": dict(r.headers), "data": {}})
                        continue
                    if event.tenant == self.tenant:
                        self.seen.append({"topic": r.topic, "type": event.type, "id": event.id,
                                          "key": r.key, "headers": dict(r.headers), "data": dict(event.data)})

    async def wait_for(self, predicate: Any, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for item in self.seen:
                if predicate(item):
                    return item
            await self.poll(0.5)
        raise AssertionError(f"nothing matched within {timeout}s; saw {[(s['topic'], s['type']) for s in self.seen]}")


async def open_watch(tenant: str, *topic_names: str) -> Watch:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        parts = await partitions_of(consumer, topic_names)  # every topic, or a loud error: never a silent gap
    except BaseException:
        await consumer.stop()
        raise
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)
    return Watch(tenant, consumer)


@pytest.fixture
async def watch() -> AsyncIterator[Any]:
    opened: list[Watch] = []

    async def _open(tenant: str, *topic_names: str) -> Watch:
        w = await open_watch(tenant, *topic_names)
        opened.append(w)
        return w

    yield _open
    for w in opened:
        await w.consumer.stop()


async def post(url: str, tenant: Tenant, body: Any, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{url}/v1/events", json=body, headers=tenant.auth, **kw)


def sleep(seconds: float) -> Any:
    return asyncio.sleep(seconds)


def tenant_cli(*args: str, input: str | None = None) -> dict[str, Any]:
    """Run `python -m services.ingest tenants ...` against the test database, `input` on its standard input (a
    secret: never on the command line); its JSON answer."""
    out = subprocess.run([sys.executable, "-m", "services.ingest", "tenants", *args], cwd=ROOT, check=True,
                         capture_output=True, text=True, input=input if input is not None else "",
                         env={**os.environ, **crm_keys.env(), **registry_keys.env(), "DATABASE_URL": DATABASE_URL})
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


def tokens_cli(*args: str) -> list[dict[str, Any]]:
    """Run `python -m services.ingest tokens ...` against the test database; its JSON lines (one per token for
    `list`, one otherwise). Fails the test, with the command's error, when it exits non-zero."""
    out = subprocess.run([sys.executable, "-m", "services.ingest", "tokens", *args], cwd=ROOT, check=False,
                         capture_output=True, text=True,
                         env={**os.environ, **crm_keys.env(), **registry_keys.env(), "DATABASE_URL": DATABASE_URL})
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def token_cli(*args: str) -> dict[str, Any]:
    """`tokens_cli` for a command that prints one object (create, rotate, share, revoke)."""
    return tokens_cli(*args)[-1]


async def check_ins_from_day_one(coaching: str, tenant: Tenant, timeout: float = 60) -> None:  # noqa: ASYNC109
    """Let coaching judge the tenant's reps from a quarter's first day (`pace_grace_share` 0): a test that needs
    check-ins then finds the pipeline-coverage one on any date (the pace rule still needs time to pass), so it
    does not fail in the first days of a quarter. Waits until coaching knows the tenant's token."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        while (put := await client.put(f"{coaching}/v1/policies", json={"pace_grace_share": "0"})).status_code == 401:
            assert time.monotonic() < deadline, put.text
            await asyncio.sleep(0.2)
    assert put.status_code == 200, put.text
