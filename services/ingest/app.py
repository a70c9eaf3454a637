"""Ingest: validates CRM events and publishes them to Kafka (no consumers, no outbox events)."""

import asyncio
import logging
from pathlib import Path
from typing import Any

from services.ingest.api import router
from services.ingest.context import make_context
from services.ingest.crm_api import router as crm_router
from services.ingest.retention import prune_forever
from services.ingest.tenants import announce_all
from services.ingest.webhooks import router as webhook_router
from shared.consumer import TRANSIENT
from shared.events import CANONICAL_EVENT
from shared.service import Runtime, ServiceSpec

log = logging.getLogger(__name__)


async def announce_tenants(rt: Runtime) -> None:
    """Once at start-up: publish the whole tenant registry (see `tenants.announce_all`). A database that is
    busy or away for a moment (no connection within DB_ACQUIRE_TIMEOUT_S, a lock timeout) is waited out."""
    backoff = 0.5
    while True:
        try:
            await announce_all(rt.pool)
            break
        except TRANSIENT as err:
            log.warning("announcing the tenants failed, will retry", extra={"error": repr(err), "retry_in_s": backoff})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
    rt.relay.wake()


def _schemas() -> dict[str, Any]:
    schema = CANONICAL_EVENT.json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "CanonicalEvent": schema}


SPEC = ServiceSpec(
    name="ingest",
    schema="ingest",
    migrations=Path(__file__).with_name("migrations"),
    routers=[router, webhook_router, crm_router],
    openapi={"description": "The only HTTP write path of Attain: canonical CRM events in, Kafka out.",
             "version": "1"},
    schemas=_schemas,
    timers=[prune_forever, announce_tenants],
    context=make_context,
    limit_bodies=False,  # each route limits its own body (MAX_BODY_BYTES; NDJSON: MAX_NDJSON_BYTES, streamed)
)
