"""Live updates for the dashboard: attainment changes and celebrations, pushed to browsers as
server-sent events.

Figures come from kpi's own state: every batch that changes a tenant's figures (targeted or not; only
targeted ones go out on `kpi.attainment.v1`) NOTIFYs the periods it moved at commit
(`repository.FIGURES_CHANNEL`), and every kpi replica LISTENs; a contest's published standings come the same
way, labelled ``contest:<id>`` instead of a period (`contesting._publish`). A page re-reads itself when a
label concerns it (`static/dashboard.js`: its period, its contest, or any contest). Celebrations come from one
Kafka consumer per kpi process reading `recognition.celebrations.v1` from its end (no consumer group: every replica
shows every update to the browsers connected to it), read_committed like every subscriber. Both run
only while someone watches: the first browser starts them, and they stop a minute after the last one
left. Updates are routed by tenant and decoded only when a browser of that tenant is connected; each
browser gets a bounded queue, so a slow one loses old updates (the page re-reads its view on the next
one) instead of holding memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from prometheus_client import Gauge

from services.kpi.repository import FIGURES_CHANNEL
from shared import topics
from shared.cloudevents import H_TENANT, H_TYPE
from shared.kafka import client_kwargs, partitions_of
from shared.service import Runtime

log = logging.getLogger(__name__)

TOPICS = (topics.CELEBRATIONS.name,)
KINDS = {"recognition.milestone.reached": "celebration"}
CELEBRATION_FIELDS = ("celebration_id", "milestone", "scope", "scope_id", "period", "headline")
QUEUE_SIZE = 100
IDLE_STOP_S = 60.0
HEARTBEAT_S = 15.0
WATCHERS = Gauge("attain_kpi_dashboard_streams", "Browsers connected to the dashboard's live stream.")


@dataclass
class Hub:
    """Who is watching which tenant, and the queues their updates go to."""

    watchers: dict[str, set[asyncio.Queue[tuple[str, str]]]] = field(default_factory=dict)
    wanted: asyncio.Event = field(default_factory=asyncio.Event)
    running: bool = False

    def count(self) -> int:
        return sum(len(queues) for queues in self.watchers.values())

    def subscribe(self, tenant: str) -> asyncio.Queue[tuple[str, str]]:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(QUEUE_SIZE)
        self.watchers.setdefault(tenant, set()).add(queue)
        self.wanted.set()
        WATCHERS.set(self.count())
        return queue

    def unsubscribe(self, tenant: str, queue: asyncio.Queue[tuple[str, str]]) -> None:
        queues = self.watchers.get(tenant, set())
        queues.discard(queue)
        if not queues:
            self.watchers.pop(tenant, None)
        WATCHERS.set(self.count())

    def publish(self, tenant: str, kind: str, payload: str) -> None:
        """Hand an update to every browser of `tenant`; a full queue drops its oldest update."""
        for queue in self.watchers.get(tenant, ()):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait((kind, payload))


def route_figures(hub: Hub, payload: str) -> None:
    """One NOTIFY from a kpi batch: each moved period of the tenant, to its browsers (they re-read their view)."""
    try:
        moved = json.loads(payload)
        tenant, periods = str(moved["tenant"]), [str(p) for p in moved["periods"]]
    except (ValueError, KeyError, TypeError):
        return
    if tenant not in hub.watchers:
        return
    for period in periods:
        hub.publish(tenant, "attainment", json.dumps({"period": period}))


def route(hub: Hub, headers: Any, value: bytes | None) -> None:
    """One record off the topics: to the browsers of its tenant, if any are connected."""
    attrs = {name: raw for name, raw in headers or ()}
    tenant = (attrs.get(H_TENANT) or b"").decode(errors="replace")
    kind = KINDS.get((attrs.get(H_TYPE) or b"").decode(errors="replace"))
    if kind is None or tenant not in hub.watchers or value is None:
        return
    try:
        data = json.loads(value)
    except ValueError:
        return  # not ours to judge: the consumers of the topic dead-letter it
    hub.publish(tenant, kind, json.dumps({k: data.get(k) for k in CELEBRATION_FIELDS}))


async def run(rt: Runtime) -> None:
    """A kpi timer: consume the live topics whenever a browser watches."""
    hub: Hub = rt.context.hub
    while True:
        await hub.wanted.wait()
        consumer = AIOKafkaConsumer(**client_kwargs(rt.settings), enable_auto_commit=False,
                                    isolation_level="read_committed", client_id="attain-kpi-dashboard")
        listener: asyncpg.Connection | None = None

        def on_figures(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            route_figures(hub, payload)

        try:
            listener = await rt.pool.acquire()
            await listener.add_listener(FIGURES_CHANNEL, on_figures)
            await consumer.start()
            parts = await partitions_of(consumer, TOPICS)
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            hub.running = True
            idle_since: float | None = None
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batches.values():
                    for record in records:
                        route(hub, record.headers, record.value)
                if hub.count():
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > IDLE_STOP_S:
                    hub.wanted.clear()
                    break
        except Exception as err:  # Kafka away: say so, wait, try again (browsers keep their page)
            log.warning("dashboard live feed failed, retrying", extra={"error": repr(err)})
            await asyncio.sleep(2.0)
        finally:
            hub.running = False
            with contextlib.suppress(Exception):
                await consumer.stop()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(FIGURES_CHANNEL, on_figures)
                with contextlib.suppress(Exception):
                    await rt.pool.release(listener)


async def stream(hub: Hub, tenant: str, draining: asyncio.Event | None = None) -> AsyncIterator[str]:
    """Server-sent events for one browser: `attainment` and `celebration` updates, and a `ping` every
    HEARTBEAT_S so proxies keep the connection open and the page notices one that died without a word (an
    SSE comment would not reach its script). When the process is
    told to stop (`draining`), a `bye` event ends the stream at once: the browser reconnects (to another
    replica) instead of holding this one until the graceful-shutdown timeout."""
    queue = hub.subscribe(tenant)
    stop = draining if draining is not None else asyncio.Event()
    try:
        yield "retry: 2000\n\n"
        for _ in range(200):  # "hello" once the feed reads the topics: from then on nothing is missed
            if hub.running or stop.is_set():
                break
            await asyncio.sleep(0.1)
        if stop.is_set():
            yield "event: bye\ndata: {}\n\n"
            return
        yield "event: hello\ndata: {}\n\n"
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                getting = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getting, stopping}, timeout=HEARTBEAT_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                if getting not in done:
                    getting.cancel()
                if stopping in done:
                    yield "event: bye\ndata: {}\n\n"
                    return
                if not done:
                    yield "event: ping\ndata: {}\n\n"
                    continue
                kind, payload = getting.result()
                yield f"event: {kind}\ndata: {payload}\n\n"
        finally:
            stopping.cancel()
    finally:
        hub.unsubscribe(tenant, queue)
