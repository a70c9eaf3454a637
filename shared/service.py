"""How a service runs: one process, one FastAPI app whose lifespan owns the pool, the producer, the
outbox relay, the consumer loops and the timers; `/healthz`, `/readyz` and `/metrics` on it.

A service describes its parts (`ServiceSpec`); this module wires them the same way everywhere.
On SIGTERM uvicorn ends the lifespan: consumer loops are cancelled (an open batch transaction
rolls back, so nothing is half-applied), the relay stops, the producer and pool close.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import STARTUP_FAILURE

from shared import authz, db, inbox, logs, metrics, ratelimit, topics, tracing
from shared.clock import Clock, clock_from_spec
from shared.consumer import ConsumerLoop, Handler, TransactionalConsumer, transient
from shared.kafka import broker_reachable, create_producer, last_position
from shared.outbox import OutboxRelay
from shared.registry_signing import BadKey, RegistryVerifier
from shared.settings import ServiceSettings
from shared.watchdog import Watchdog

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The live resources of a running service, handed to its handlers, routes and timers."""

    settings: ServiceSettings
    clock: Clock
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    relay: OutboxRelay
    context: Any = None  # the spec's per-service state (`ServiceSpec.context`), for routes and timers
    # Set when the process was told to stop (SIGTERM), before uvicorn waits for open connections to end:
    # long-lived responses (the dashboard's live stream) end at once, so that browsers reconnect to another
    # replica instead of holding this one for `timeout_graceful_shutdown`; /readyz answers 503.
    draining: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Subscription:
    """One consumer group of a service: which topics, which event types, which handler."""

    group: str  # the group id is "<KAFKA_CONSUMER_GROUP_PREFIX>-<group>"
    topics: Sequence[str]
    models: dict[str, Any]
    handler: Callable[[Runtime], Handler]
    max_batch: int = 500  # records per transaction at most: larger amortises per-batch work under backlog
    linger_s: float = 0.0  # once records came, wait this long for more before applying (ConsumerLoop)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    schema: str
    migrations: Path
    routers: Sequence[APIRouter] = ()
    subscriptions: Sequence[Subscription] = ()
    timers: Sequence[Callable[[Runtime], Coroutine[Any, Any, None]]] = ()
    openapi: dict[str, Any] = field(default_factory=dict)
    # Extra OpenAPI component schemas (e.g. bodies read by hand, not through a pydantic parameter).
    schemas: Callable[[], dict[str, Any]] | None = None
    # Per-service state built once the runtime exists; routes read it from `app.state.context`.
    context: Callable[[Runtime], Any] | None = None
    # Refuse request bodies past MAX_BODY_BYTES for every route (413). ingest limits its own routes (its
    # NDJSON imports have a limit of their own, streamed), so it says False.
    limit_bodies: bool = True
    # A cookie that carries a credential as the Authorization header does (kpi's dashboard): its reads are
    # rate-limited per credential too (shared/ratelimit.py).
    credential_cookie: str | None = None
    # The topics the service writes (through its outbox or its producer; the `.dlq` of what it subscribes to
    # and the outbox positions aside) and those it reads without a consumer group: its Kafka ACLs are derived
    # from these and its subscriptions (shared/acls.py).
    publishes: Sequence[str] = ()
    reads: Sequence[str] = ()


def _relay(spec: ServiceSpec, settings: ServiceSettings, pool: asyncpg.Pool) -> OutboxRelay:
    """The outbox relay: one identity per deployment and schema, which names its transactional producer
    (fencing a predecessor) and keys its position."""
    identity = f"{settings.kafka_consumer_group_prefix}/{spec.schema}"
    return OutboxRelay(
        pool,
        lambda: create_producer(settings, client_id=f"attain-{spec.name}-outbox",
                                transactional_id=f"attain-outbox:{identity}"),
        spec.schema, settings.outbox_poll_interval_s, identity, lambda: last_position(settings, identity))


def registry_verifier(spec: ServiceSpec, settings: ServiceSettings) -> RegistryVerifier | None:
    """The verifier of registry records when the service reads the registry (keys loaded once, here); BadKey
    naming REGISTRY_VERIFY_KEYS when it does and the setting holds no key: such a service refuses to start."""
    if not any(topics.TENANTS.name in sub.topics for sub in spec.subscriptions):
        return None
    return settings.registry_verifier()


def _consumer_loops(spec: ServiceSpec, rt: Runtime, verifier: RegistryVerifier | None) -> list[ConsumerLoop]:
    """One consumer loop per subscription of the service, its group `<prefix>-<group>`."""
    loops = []
    for sub in spec.subscriptions:
        processor = TransactionalConsumer(pool=rt.pool, producer=rt.producer,
                                          group_id=f"{rt.settings.kafka_consumer_group_prefix}-{sub.group}",
                                          service=spec.name, models=sub.models, handler=sub.handler(rt),
                                          after_commit=rt.relay.wake, verifier=verifier)
        loops.append(ConsumerLoop(rt.settings, sub.topics, processor, max_records=sub.max_batch,
                                  linger_s=sub.linger_s))
    return loops


def runtime_of(request: Request) -> Runtime:
    """The running service's resources, for route handlers (FastAPI dependency)."""
    rt: Runtime = request.app.state.runtime
    return rt


class RequestMetrics(logs.StatusObserver):
    """Observes every HTTP request's latency by route template (never the raw path: a tenant or rep id in
    a label would grow without bound), method and status code."""

    def done(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        metrics.HTTP_SECONDS.labels(route, scope["method"], str(status)).observe(seconds)


async def _working_pool(spec: ServiceSpec, settings: ServiceSettings) -> asyncpg.Pool:
    """Migrate as the owner (`DATABASE_URL`) unless DB_MIGRATE_ON_START is false, then open the pool the
    service works with, as a role that row-level security binds (`DATABASE_APP_URL`, or `attain_<service>`
    on DATABASE_URL's server); without migrating, refuse a schema that misses a migration this code ships."""
    app_url = settings.database_app_url.get_secret_value() if settings.database_app_url else None
    if not settings.db_migrate_on_start and app_url is None:
        raise RuntimeError("DB_MIGRATE_ON_START=false needs DATABASE_APP_URL: the service's working role, the"
                           " only database credential its pod should hold")
    role = db.working_role(settings.database_url, app_url, spec.name)
    if settings.db_migrate_on_start:
        owner = await db.create_pool(settings.database_url, spec.schema, min_size=1, max_size=1)
        try:
            await db.migrate(owner, spec.schema, spec.migrations, grant_to=role.name, grant_password=role.password)
        finally:
            await owner.close()
    timeouts = db.Timeouts(settings.db_acquire_timeout_s, settings.db_statement_timeout_s, settings.db_lock_timeout_s)
    pool = await db.create_pool(role.url, spec.schema, min_size=settings.db_pool_min, max_size=settings.db_pool_max,
                                scope=None, create_schema=False, timeouts=timeouts)
    try:
        await db.check_app_role(pool, spec.schema)
        if not settings.db_migrate_on_start:
            await db.check_migrated(pool, spec.schema, spec.migrations)
    except BaseException:
        await pool.close()
        raise
    return pool


class EdgeGuards:
    """What no route should have to remember: a path or query parameter holding a NUL (no id or text in
    PostgreSQL can) is a 422 naming it, and with `limit` a body past it is a 413 - by its Content-Length,
    or counted as it streams in."""

    def __init__(self, app: ASGIApp, limit: int | None) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if problem := _nul_in(scope):
            await JSONResponse({"detail": problem}, status_code=422)(scope, receive, send)
            return
        limit = self.limit
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send)
            return
        seen, started = 0, False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # FastAPI re-raises its own HTTPException from a body read (others become a 400)
                    raise HTTPException(413, f"body exceeds the limit of {limit} bytes (MAX_BODY_BYTES)")
            return message

        async def noting(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, noting)
        except HTTPException as err:  # read outside a route's body parsing: answer it here
            if started or err.status_code != 413:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"detail": f"body exceeds the limit of {self.limit} bytes (MAX_BODY_BYTES)"},
                           status_code=413)(scope, receive, send)


def _nul_in(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "path: must not contain the NUL character (\\u0000)"
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return f"query parameter {name.replace(chr(0), '?')!r}: must not contain the NUL character (\\u0000)"
    return None


def _watchdog(app: FastAPI, settings: ServiceSettings, pool: asyncpg.Pool) -> Watchdog:
    """The liveness watchdog of the app's working pool, kept where `/healthz` finds it."""
    watchdog = app.state.watchdog = Watchdog(
        pool, interval_s=settings.liveness_interval_s, acquire_timeout_s=settings.db_acquire_timeout_s,
        stall_s=settings.liveness_stall_s, max_lag_s=settings.liveness_max_loop_lag_s)
    return watchdog


async def _healthz(request: Request) -> JSONResponse:
    """Alive: the process answers and makes progress (shared/watchdog.py): 503 with the reason once no pooled
    connection came free for LIVENESS_STALL_S, or the event loop lags. An outage of the broker or the database
    does not fail it (that is /readyz)."""
    watchdog: Watchdog | None = getattr(request.app.state, "watchdog", None)
    reason = watchdog.verdict() if watchdog is not None else None
    if reason is not None:
        return JSONResponse({"status": "stuck", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ok"})


# A wait on PostgreSQL that ran out (shared/db.py `Timeouts`): the service is busy now, the client retries.
BUSY = (db.PoolExhausted, asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)
BUSY_RETRY_AFTER_S = 2


async def _busy(request: Request, exc: Exception) -> JSONResponse:
    """A timed-out wait for a connection, a statement or a lock: 503 with Retry-After, never a hang."""
    log.warning("database wait timed out", extra={"path": request.url.path, "error": repr(exc)})
    return JSONResponse({"detail": f"the service is busy ({exc}); retry later"}, status_code=503,
                        headers={"Retry-After": str(BUSY_RETRY_AFTER_S)})


# PostgreSQL cannot do any work now (53 insufficient resources such as 53100 disk full, 57 operator
# intervention such as a shutdown, 08 a lost connection, 58 and XX its own failures), or it cannot be reached,
# or the connection broke under the request (asyncpg's InterfaceError "the underlying connection is closed" at
# a transaction's end, InternalClientError: the postgres-restart chaos run found ingest answering 500 with it):
# nothing about the request, so 503 with Retry-After (the client retries), never a 500. The consumers count the
# same errors as transient (shared.consumer.TRANSIENT).
UNAVAILABLE = (asyncpg.InsufficientResourcesError, asyncpg.OperatorInterventionError,
               asyncpg.PostgresConnectionError, asyncpg.PostgresSystemError, asyncpg.InternalServerError,
               asyncpg.InterfaceError, asyncpg.InternalClientError, ConnectionError)
UNAVAILABLE_RETRY_AFTER_S = 5


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database failed for its own reasons: 503 with Retry-After."""
    log.warning("database unavailable", extra={"path": request.url.path, "error": repr(exc)})
    return JSONResponse({"detail": f"the database cannot serve this now ({type(exc).__name__}); retry later"},
                        status_code=503, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})


async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
    """The last line behind the models' own checks: a value PostgreSQL cannot store is the client's 422."""
    return JSONResponse({"detail": f"a value cannot be stored: {exc}"}, status_code=422)


# How the app answers errors no route translated: a value PostgreSQL cannot store (422), a timed-out wait (503),
# a database that cannot work now (503). The most specific class answers (a QueryCanceledError is a busy wait).
ERROR_ANSWERS: tuple[tuple[type[Exception], Callable[[Request, Exception], Coroutine[Any, Any, Response]]], ...] = (
    (asyncpg.CharacterNotInRepertoireError, _unstorable), (asyncpg.UntranslatableCharacterError, _unstorable),
    *((busy, _busy) for busy in BUSY), *((down, _unavailable) for down in UNAVAILABLE))


def create_app(spec: ServiceSpec, settings: ServiceSettings, clock: Clock | None = None) -> FastAPI:
    """The service's ASGI app; resources start in its lifespan."""
    loops: list[ConsumerLoop] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        verifier = registry_verifier(spec, settings)  # before anything is opened: no keys, no start
        pool = await _working_pool(spec, settings)
        producer = create_producer(settings, client_id=f"attain-{spec.name}")
        await producer.start()
        relay = _relay(spec, settings, pool)
        rt = Runtime(settings, clock or clock_from_spec(settings.attain_clock), pool, producer, relay)
        app.state.runtime, app.state.drain = rt, _drainer(rt.draining)
        rt.context = app.state.context = spec.context(rt) if spec.context else None
        tasks = [asyncio.create_task(relay.run(), name="outbox-relay"),
                 asyncio.create_task(_watchdog(app, settings, pool).run(), name="watchdog"),
                 asyncio.create_task(inbox.prune_forever(pool, timedelta(days=settings.inbox_retention_days)),
                                     name="inbox-retention")]
        loops.extend(_consumer_loops(spec, rt, verifier))
        tasks += [asyncio.create_task(loop.run(), name=f"consumer-{loop.processor.group_id}") for loop in loops]
        tasks += [asyncio.create_task(timer(rt), name="timer") for timer in spec.timers]
        for task in tasks:
            task.add_done_callback(_crash_on_failure)
        log.info("service started", extra={"port": settings.http_port})
        try:
            yield
        finally:
            relay.close()
            await stop_tasks(tasks)
            await producer.stop()
            await pool.close()
            log.info("service stopped")

    # FastAPI's own OpenTelemetry server spans (on once shared/tracing.py installed a provider), the probes left
    # out: a trace every few seconds per replica would bury the requests worth following.
    app = FastAPI(title=f"Attain {spec.name}", lifespan=lifespan, telemetry={"exclude": _probe}, **spec.openapi)
    app.add_middleware(EdgeGuards, limit=settings.max_body_bytes if spec.limit_bodies else None)
    app.add_middleware(ratelimit.EdgeLimits, failure_rate=settings.auth_failure_rate_per_s,
                       failure_burst=settings.auth_failure_burst, read_rate=settings.read_rate_per_s,
                       read_burst=settings.read_burst, cookie=spec.credential_cookie,
                       trusted_proxies=ratelimit.parse_networks(settings.trusted_proxies))
    app.add_middleware(RequestMetrics)
    app.add_middleware(logs.AccessLog)  # outermost: it logs what the client got, a 413 or a 429 too
    for error, answer in ERROR_ANSWERS:
        app.add_exception_handler(error, answer)

    probe = [authz.public("an orchestrator's probe or a Prometheus scrape: it says nothing of any tenant")]
    app.add_api_route("/healthz", _healthz, methods=["GET"], tags=["operations"], dependencies=probe,
                      responses={503: {"description": "stuck: no progress (see shared/watchdog.py); restart"}})

    @app.get("/readyz", tags=["operations"], dependencies=probe)
    async def readyz(request: Request) -> JSONResponse:
        """Ready: database and broker reachable, consumers joined their groups, no retry under way."""
        rt: Runtime | None = getattr(request.app.state, "runtime", None)
        checks = {"database": False, "broker": False, "consumers": all(lp.ready for lp in loops),
                  "outbox": rt is not None and rt.relay.healthy,
                  "serving": rt is not None and not rt.draining.is_set()}
        if rt is not None:
            with contextlib.suppress(Exception):
                async with rt.pool.acquire(timeout=2) as conn:
                    checks["database"] = await conn.fetchval("SELECT 1", timeout=2) == 1
            checks["broker"] = await broker_reachable(rt.producer)
        ok = all(checks.values())
        metrics.READY.set(1 if ok else 0)
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], dependencies=probe)
    async def prometheus_metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in spec.routers:
        app.include_router(router)
    if spec.schemas is not None:
        _add_schemas(app, spec.schemas)
    return app


def _probe(scope: Any) -> bool:
    """A probe or a scrape (`/healthz`, `/readyz`, `/metrics`): not traced."""
    return scope.get("path") in logs.QUIET_PATHS


def _add_schemas(app: FastAPI, schemas: Callable[[], dict[str, Any]]) -> None:
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = plain()
            doc.setdefault("components", {}).setdefault("schemas", {}).update(schemas())
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def every(interval_s: float, work: Callable[[], Awaitable[None]], component: str) -> None:
    """A timer's loop: run `work` every `interval_s`; a failed pass is counted and logged
    (`metrics.count_timer_failure`) and the next one runs all the same: a timer never dies (a dead task would
    stop its check-ins, celebrations or contests for good, without a word)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except Exception as err:
            metrics.count_timer_failure(component, err, transient(err))


# A stop cancels every background task, and again every RECANCEL_S while one is still running: a library that
# swallows a cancellation (aiokafka's client.close() does, when it is cancelled while awaiting its own
# metadata task) must not hang the stop. Cleanup in `finally` blocks (aborting an open Kafka transaction,
# at most outbox.ABORT_ON_STOP_S) gets that long before it is interrupted. Past STOP_GIVE_UP_S the stop goes
# on without the task, and says so.
RECANCEL_S = 6.0
STOP_GIVE_UP_S = 30.0


async def stop_tasks(tasks: Sequence[asyncio.Task[Any]], recancel_s: float = RECANCEL_S,
                     give_up_s: float = STOP_GIVE_UP_S) -> None:
    """Cancel `tasks` and wait until they end, cancelling again those still running every `recancel_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_s
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(recancel_s, max(deadline - loop.time(), 0)))
        if pending and loop.time() >= deadline:
            metrics.STOP_ABANDONED.inc(len(pending))
            log.error("background tasks did not stop; going on without them",
                      extra={"tasks": sorted(task.get_name() for task in pending), "waited_s": give_up_s})
            return
        if pending:
            log.warning("background tasks still running after a cancellation; cancelling again",
                        extra={"tasks": sorted(task.get_name() for task in pending)})


def _crash_on_failure(task: asyncio.Task[Any]) -> None:
    """A background task that dies on its own is a bug: log it and stop the process (k8s restarts it)."""
    if task.cancelled() or task.exception() is None:
        return
    log.critical("background task failed, exiting", exc_info=task.exception(), extra={"task": task.get_name()})
    os.kill(os.getpid(), signal.SIGTERM)


def _exit_cleanly(_sig: int, _frame: object) -> None:
    raise SystemExit(0)


def _drainer(draining: asyncio.Event) -> Callable[[], None]:
    """What the signal handler calls to set `draining` safely: from a signal handler the loop is only ever
    woken through its thread-safe door."""
    loop = asyncio.get_running_loop()

    def drain() -> None:
        loop.call_soon_threadsafe(draining.set)

    return drain


class _Server(uvicorn.Server):
    """uvicorn's server, which also tells the app it is draining the moment a stop is asked for."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        drain = getattr(getattr(self.config.app, "state", None), "drain", None)
        if drain is not None:
            drain()


# A young-generation collection every 50,000 net allocations instead of 700. A batch of records allocates
# hundreds of thousands of short-lived objects (records, headers, events, parameters), and with CPython's
# default a collection runs every few records and walks whatever survived: measured, decoding a record took
# 14.0 µs while the batch was kept against 8.6 µs with this threshold (benchmarks/README.md, "GC").
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Fewer, larger cyclic-GC passes; what was loaded at start (modules, settings, app) is frozen out of
    them: it lives as long as the process (`gc.freeze`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(spec: ServiceSpec, settings: ServiceSettings) -> None:
    """Run the service until SIGTERM/SIGINT (the `python -m services.<name>` entry point)."""
    logs.configure(spec.name, settings.log_level, settings.log_format)
    tracing.configure(spec.name)  # only when OTEL_EXPORTER_OTLP_ENDPOINT is set (shared/tracing.py)
    try:
        registry_verifier(spec, settings)
    except BadKey as err:  # said plainly, before uvicorn would wrap it in a failed lifespan's traceback
        print(f"error: {err}", file=sys.stderr)  # noqa: T201
        sys.exit(2)
    app = create_app(spec, settings)
    tune_gc()
    # uvicorn drains on SIGTERM, then raises the signal again under the handler it found, so that the
    # process ends "killed by SIGTERM" (exit status 143). A clean drain is a clean exit: 0, as Kubernetes and
    # the chaos suite expect. The handler found is this one (before uvicorn starts, it simply exits).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # proxy_headers=False: who the client is behind a proxy is TRUSTED_PROXIES' to say (shared/ratelimit.py),
    # not uvicorn's FORWARDED_ALLOW_IPS.
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_config=None,
                            access_log=False, timeout_graceful_shutdown=20, proxy_headers=False)
    server = _Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    tracing.shutdown()  # what the batch processor still holds goes out before the process ends
    if not server.started:  # as `uvicorn.run`: a port in use, a failed lifespan
        sys.exit(STARTUP_FAILURE)
