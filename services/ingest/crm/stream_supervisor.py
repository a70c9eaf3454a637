"""Salesforce Change Data Capture without a relay, run by ingest (SALESFORCE_STREAMING=true): one Streaming API
subscription (crm/salesforce_stream.py) per tenant whose Salesforce OAuth connection is connected.

The supervisor (a `ServiceSpec` timer) looks every SALESFORCE_STREAMING_INTERVAL_S which tenants are connected
(`stream_store.streaming_tenants`, the one cross-tenant read): it starts a subscription for each new one, cancels
those of tenants that disconnected (or were revoked), and starts again one that ended (the error it ended with
is stored for the control room, `stream_store.record_error`).

Per tenant (`TenantStream`, the stream's callbacks):
- the access token and the org's instance URL come from the OAuth connection (`oauth_store.access`); when
  Salesforce refuses the token, the connection is marked due and renewed at once (`oauth_refresh.refresh_one`,
  the refresh timer's own step, so two renewals never race: the row is locked);
- `on_events`: the events read as deal changes (`salesforce_stream.changes`, with the tenant's chosen
  properties) go through the CRM pipeline's `deliver`, and each channel's last replay id is stored in that same
  transaction (`also`): a restart resumes exactly after the last event whose effect is stored, and an event is
  never applied twice (STYLE.md, rule 4). An event that is not a change event as Salesforce documents it is
  counted and logged, and its position stored all the same (it can never become readable);
- `on_gap`: the stored replay id fell out of Salesforce's retention: recorded (`stream_store.record_gap`) for
  reconciliation to cover; `on_error`: each transient failure recorded until an event is stored again.

One replica streams per tenant and channel: a subscription holds a PostgreSQL advisory lock (session level, on
its own connection) for as long as it runs, so a second ingest replica skips tenants the first one streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Iterable
from dataclasses import replace

import asyncpg
from prometheus_client import Counter

from services.ingest.context import IngestContext
from services.ingest.crm import oauth_store, salesforce_stream, stream_store
from services.ingest.crm.fetch import Resolver, resolve
from services.ingest.crm.model import Change, PayloadError
from services.ingest.crm.oauth_refresh import refresh_one
from services.ingest.crm.pipeline import CrmPipeline, load_properties
from services.ingest.crm.salesforce_stream import Gap, SalesforceStream, StreamAuthError, StreamClosed, StreamConfig
from services.ingest.tenants import by_slug
from shared.clock import Clock
from shared.db import sweep_tx, tenant_tx
from shared.secret_box import SecretBox
from shared.service import Runtime, every

log = logging.getLogger(__name__)
CRM = "salesforce"
# No tenant label: /metrics answers anyone who reaches the port (issue 16); the tenant is in the log line.
EVENTS = Counter("attain_ingest_salesforce_stream_events_total",
                 "Salesforce change events received over the Streaming API, by outcome (delivered, unreadable).",
                 ["outcome"])
ENDED = Counter("attain_ingest_salesforce_streams_ended_total",
                "Salesforce subscriptions that ended with an error (started again on the next pass).")


class TenantStream:
    """One tenant's subscription: the callbacks SalesforceStream calls, each in a short transaction of its own."""

    def __init__(self, tenant: str, pool: asyncpg.Pool, pipeline: CrmPipeline, box: SecretBox, clock: Clock, *,
                 allowed_hosts: Iterable[str] = (), resolver: Resolver = resolve) -> None:
        self.tenant, self._pool, self._pipeline, self._box, self._clock = tenant, pool, pipeline, box, clock
        self._allowed, self._resolver = tuple(allowed_hosts), resolver

    async def access(self) -> oauth_store.OAuthAccess | None:
        """The connection's working access token and instance URL; renewed first when it no longer works."""
        async with tenant_tx(self._pool, self.tenant) as conn:
            found = await oauth_store.access(conn, self.tenant, CRM, self._box, self._clock.now())
        if found is not None:
            return found
        await refresh_one(self._pool, self.tenant, CRM, self._box, self._clock.now(), allowed_hosts=self._allowed,
                          resolver=self._resolver)
        async with tenant_tx(self._pool, self.tenant) as conn:
            return await oauth_store.access(conn, self.tenant, CRM, self._box, self._clock.now())

    async def refresh_token(self) -> str:
        """Salesforce refused the access token: renew it now (StreamAuthError when that is not possible)."""
        async with tenant_tx(self._pool, self.tenant) as conn:
            await oauth_store.mark_due(conn, self.tenant, CRM, self._clock.now())
        found = await self.access()
        if found is None:
            raise StreamAuthError("the Salesforce connection has no working access token (see GET /v1/crm/oauth)")
        return found.access_token

    async def load_replay(self, channel: str) -> int | None:
        async with tenant_tx(self._pool, self.tenant) as conn:
            return await stream_store.replay_id(conn, self.tenant, channel)

    async def on_events(self, events: list[salesforce_stream.StreamEvent]) -> None:
        """The events' deal changes delivered, and each channel's last replay id stored, in one transaction."""
        async with tenant_tx(self._pool, self.tenant) as conn:
            tenant = await by_slug(conn, self.tenant)
            chosen = await load_properties(conn, self.tenant, CRM)
        if tenant is None:
            raise StreamClosed(f"tenant {self.tenant!r} is revoked")
        changes: list[Change] = []
        last: dict[str, int] = {}
        for event in events:
            last[event.channel] = event.replay_id
            try:
                changes += salesforce_stream.changes(event, chosen)
            except PayloadError as err:
                EVENTS.labels("unreadable").inc()
                log.warning("salesforce stream event unreadable, skipped", extra={
                    "tenant": self.tenant, "channel": event.channel, "replay_id": event.replay_id, "error": str(err)})
                continue
            EVENTS.labels("delivered").inc()
        now = self._clock.now()

        async def position(conn: asyncpg.Connection) -> None:
            for channel, replay in last.items():
                await stream_store.save_replay(conn, self.tenant, channel, replay, now)

        await self._pipeline.deliver(tenant, CRM, changes, also=position)

    async def on_gap(self, gap: Gap) -> None:
        log.warning("salesforce stream gap: events may have been missed", extra={
            "tenant": self.tenant, "channel": gap.channel, "refused": gap.refused, "error": gap.error})
        async with tenant_tx(self._pool, self.tenant) as conn:
            await stream_store.record_gap(conn, self.tenant, gap.channel, self._clock.now())

    async def on_error(self, message: str, channels: Iterable[str] = (salesforce_stream.OPPORTUNITY_CHANGES,)) -> None:
        async with tenant_tx(self._pool, self.tenant) as conn:
            for channel in channels:
                await stream_store.record_error(conn, self.tenant, channel, message, self._clock.now())


def _lock_key(tenant: str) -> int:
    return zlib.crc32(f"attain-salesforce-stream:{tenant}".encode())


class StreamSupervisor:
    """Keeps one running SalesforceStream per connected tenant (`sync`), in this replica or another."""

    def __init__(self, pool: asyncpg.Pool, pipeline: CrmPipeline, box: SecretBox, clock: Clock, *,
                 config: StreamConfig | None = None, allowed_hosts: Iterable[str] = (),
                 resolver: Resolver = resolve) -> None:
        """`config`: the subscription's channels, presets and timeouts (its instance URL is each tenant's)."""
        self._pool, self._pipeline, self._box, self._clock = pool, pipeline, box, clock
        self._config = config or StreamConfig(instance_url="")
        self._allowed, self._resolver = tuple(allowed_hosts), resolver
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> set[str]:
        """The tenants this replica streams now."""
        return {tenant for tenant, task in self._tasks.items() if not task.done()}

    async def sync(self) -> None:
        """Start a subscription for each connected tenant without one, cancel those of tenants no longer
        connected, and start again those that ended."""
        async with sweep_tx(self._pool) as conn:
            wanted = set(await stream_store.streaming_tenants(conn))
        for tenant in [t for t in self._tasks if t not in wanted]:
            await self._stop(tenant)
        for tenant in sorted(wanted):
            task = self._tasks.get(tenant)
            if task is None or task.done():
                self._tasks[tenant] = asyncio.create_task(self._run(tenant), name=f"salesforce-stream-{tenant}")

    async def close(self) -> None:
        for tenant in list(self._tasks):
            await self._stop(tenant)

    async def _stop(self, tenant: str) -> None:
        task = self._tasks.pop(tenant)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self, tenant: str) -> None:
        """One subscription, while this replica holds the tenant's stream lock; what ended it is recorded."""
        streamer = TenantStream(tenant, self._pool, self._pipeline, self._box, self._clock,
                                allowed_hosts=self._allowed, resolver=self._resolver)
        async with self._pool.acquire() as lock_conn:
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", _lock_key(tenant)):
                return  # another replica streams this tenant
            try:
                access = await streamer.access()
                if access is None:
                    raise StreamAuthError("the Salesforce connection has no working access token")
                stream = SalesforceStream(replace(self._config, instance_url=access.base_url), access.access_token,
                                          load_replay=streamer.load_replay, on_events=streamer.on_events,
                                          on_gap=streamer.on_gap, refresh_token=streamer.refresh_token,
                                          on_error=lambda message: streamer.on_error(message, self._config.channels))
                await stream.run()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # whatever ended it (Salesforce, a callback): recorded, started again later
                ENDED.inc()
                log.warning("salesforce stream ended", extra={"tenant": tenant, "error": repr(err)})
                with contextlib.suppress(Exception):
                    await streamer.on_error(f"{type(err).__name__}: {err}", self._config.channels)
            finally:
                with contextlib.suppress(Exception):
                    await lock_conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(tenant))


async def salesforce_streams(rt: Runtime) -> None:
    """The timer: with SALESFORCE_STREAMING on, every SALESFORCE_STREAMING_INTERVAL_S, one subscription per
    tenant connected to Salesforce by OAuth."""
    ctx: IngestContext = rt.context
    if not ctx.settings.salesforce_streaming:
        return
    supervisor = StreamSupervisor(rt.pool, ctx.crm, ctx.box, rt.clock,
                                  allowed_hosts=ctx.settings.crm_api_allowed_hosts.split(","))
    try:
        try:
            await supervisor.sync()
        except Exception as err:  # the database away at start: the next pass (`every`) tries again
            log.warning("salesforce streams not started yet", extra={"error": repr(err)})
        await every(ctx.settings.salesforce_streaming_interval_s, supervisor.sync, "ingest-salesforce-streams")
    finally:
        await supervisor.close()
