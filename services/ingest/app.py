"""Ingest: validates CRM events and publishes them to Kafka (no consumers, no outbox events)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from services.ingest.api import router
from services.ingest.calendar_api import router as calendar_router
from services.ingest.context import IngestContext, make_context
from services.ingest.crm.backfill import backfill_forever
from services.ingest.crm.oauth_refresh import oauth_refresher
from services.ingest.crm.reconcile import reconcile_forever
from services.ingest.crm.stream_supervisor import salesforce_streams
from services.ingest.crm.users_sync import crm_users_sync
from services.ingest.crm_api import router as crm_router
from services.ingest.crm_backfill_api import router as crm_backfill_router
from services.ingest.crm_connection_api import router as crm_connection_router
from services.ingest.crm_oauth_api import router as crm_oauth_router
from services.ingest.crm_users_api import router as crm_users_router
from services.ingest.retention import prune_forever
from services.ingest.secret_store import seal_legacy
from services.ingest.sso_api import router as sso_router
from services.ingest.tenant_settings_api import router as tenant_settings_router
from services.ingest.tenants import announce_all
from services.ingest.tokens_api import router as tokens_router
from services.ingest.webhooks import router as webhook_router
from shared import topics
from shared.consumer import TRANSIENT
from shared.events import CANONICAL_EVENT
from shared.service import Runtime, ServiceSpec

log = logging.getLogger(__name__)


async def _until_done(what: str, step: Callable[[], Awaitable[int]]) -> int:
    """Run a start-up step until it succeeds: a database that is busy or away for a moment (no connection within
    DB_ACQUIRE_TIMEOUT_S, a lock timeout) is waited out."""
    backoff = 0.5
    while True:
        try:
            return await step()
        except TRANSIENT as err:
            log.warning(f"{what} failed, will retry", extra={"error": repr(err), "retry_in_s": backoff})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


async def announce_tenants(rt: Runtime) -> None:
    """Once at start-up: publish the whole tenant registry, signed (see `tenants.announce_all`)."""
    ctx: IngestContext = rt.context
    await _until_done("announcing the tenants", lambda: announce_all(rt.pool, ctx.signer))
    rt.relay.wake()


async def seal_legacy_secrets(rt: Runtime) -> None:
    """Once at start-up: encrypt the CRM secrets and API tokens still stored in plain text, written before ingest
    encrypted them (`secret_store.seal_legacy`; idempotent). Until it is done they are read as they are."""
    ctx: IngestContext = rt.context
    sealed = await _until_done("sealing the stored crm secrets", lambda: seal_legacy(rt.pool, ctx.box))
    if sealed:
        log.info("crm secrets stored in plain text were encrypted", extra={"values": sealed})


def _schemas() -> dict[str, Any]:
    schema = CANONICAL_EVENT.json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "CanonicalEvent": schema}


SPEC = ServiceSpec(
    name="ingest",
    schema="ingest",
    migrations=Path(__file__).with_name("migrations"),
    routers=[router, webhook_router, crm_router, tokens_router, calendar_router, crm_connection_router, sso_router,
             tenant_settings_router, crm_oauth_router, crm_users_router, crm_backfill_router],
    publishes=[topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name,
               topics.TENANTS.name, topics.AUDIT.name],
    openapi={"description": "The only HTTP write path of Attain: canonical CRM events in, Kafka out.",
             "version": "1"},
    schemas=_schemas,
    timers=[prune_forever, announce_tenants, seal_legacy_secrets, oauth_refresher, salesforce_streams,
            crm_users_sync, backfill_forever, reconcile_forever],
    context=make_context,
    limit_bodies=False,  # each route limits its own body (MAX_BODY_BYTES; NDJSON: MAX_NDJSON_BYTES, streamed)
)
