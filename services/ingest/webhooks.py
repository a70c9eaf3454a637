"""`POST /v1/webhooks/{crm}/{tenant}`: native CRM webhooks, proven by each CRM's own scheme.

Status codes follow what each CRM's retry logic expects: 2xx when the delivery is safely handled
(published, recognised as a duplicate, or kept as a dead-letter record with its reason), 401 for
a sender that cannot prove itself and 400 for a body that is not the vendor's format (its fault:
retrying will not help), 429 and 503 with Retry-After when the fault is ours or momentary (retry:
Kafka did not acknowledge, or a wait for a database connection, statement or lock timed out).
Salesforce gets the SOAP acknowledgement it needs to stop resending, or a SOAP fault.

A body is limited before it is read in full: a Content-Length past MAX_WEBHOOK_BODY_BYTES is refused
(413) before a byte is read, and a body without one is counted as it streams in and refused as soon as
it passes the limit; nothing is verified or parsed before that.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType
from typing import Literal

import asyncpg
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from services.ingest import tenants
from services.ingest.auth import Context, admit
from services.ingest.context import IngestContext
from services.ingest.crm import hubspot, pipedrive, salesforce
from services.ingest.crm.model import PayloadError, WebhookAuthError, WebhookRequest, storable
from services.ingest.crm.pipeline import Summary, load_properties
from services.ingest.intake import KafkaUnavailable
from shared.authz import public
from shared.db import tenant_tx
from shared.service import BUSY, BUSY_RETRY_AFTER_S

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
VENDORS: dict[str, ModuleType] = {"hubspot": hubspot, "pipedrive": pipedrive, "salesforce": salesforce}
DELIVERIES = Counter("attain_ingest_webhook_deliveries_total", "CRM webhook deliveries, by CRM and outcome.",
                     ["crm", "outcome"])
UNPROVEN = "the request could not be verified for this tenant"  # same words for unknown tenants: no enumeration


def _request(request: Request, body: bytes, public_base_url: str | None) -> WebhookRequest:
    url = str(request.url)
    if public_base_url:  # behind a proxy the CRM signed the public URL, not ours
        url = public_base_url.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return WebhookRequest(method=request.method, url=url, body=body, query=dict(request.query_params),
                          headers={k.lower(): v for k, v in request.headers.items()})


def _fail(crm: str, status: int, detail: str, retry_after: int | None = None) -> Response:
    DELIVERIES.labels(crm, str(status)).inc()
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    if crm == "salesforce":
        body, content_type = salesforce.nack_fault(detail)
        return Response(body, status_code=status, media_type=content_type, headers=headers)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class _Refusal(Exception):
    def __init__(self, status: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.retry_after = status, detail, retry_after


@router.post("/{crm}/{tenant}", responses={400: {}, 401: {}, 413: {}, 429: {}, 503: {}},
             dependencies=[public("a CRM's delivery: verified by the tenant's webhook secret, not a token")])
async def receive(crm: Literal["hubspot", "pipedrive", "salesforce"], tenant: str, request: Request,
                  ctx: Context) -> Response:
    """One delivery of `crm`'s webhooks for `tenant`, verified with that tenant's secret."""
    try:
        summary, changes = await _handle(crm, tenant, request, ctx)
    except _Refusal as refusal:
        return _fail(crm, refusal.status, refusal.detail, refusal.retry_after)
    except (*BUSY, asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as err:
        return _fail(crm, 503, f"the delivery could not be stored now ({err}); retry later", BUSY_RETRY_AFTER_S)
    DELIVERIES.labels(crm, "200").inc()
    if crm == "salesforce":
        ack, content_type = salesforce.ack()
        return Response(ack, media_type=content_type)
    return JSONResponse({"accepted": summary.accepted, "duplicate": summary.duplicate,
                         "dead_lettered": summary.dead_lettered, "changes": changes})


async def _handle(crm: str, tenant: str, request: Request, ctx: IngestContext) -> tuple[Summary, int]:
    limit = min(ctx.settings.max_webhook_body_bytes, ctx.settings.max_body_bytes)  # the stricter of the two
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _Refusal(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise _Refusal(413, f"body exceeds the limit of {limit} bytes")
    vendor = VENDORS[crm]
    webhook = _request(request, bytes(body), ctx.settings.public_base_url)
    if not tenants.SLUG.fullmatch(tenant):  # no such tenant can exist; and PostgreSQL refuses a NUL in a lookup
        raise _Refusal(401, UNPROVEN)
    async with tenant_tx(ctx.rt.pool, tenant) as conn:  # the path's tenant: its secrets only
        found = await tenants.by_slug(conn, tenant)
        secrets = await tenants.secrets_for(conn, tenant, crm, ctx.box) if found else []
        chosen = await load_properties(conn, tenant, crm) if found else ()
    if found is None or not secrets:
        raise _Refusal(401, UNPROVEN)
    try:
        vendor.verify(webhook, secrets, datetime.now(UTC))
    except WebhookAuthError as err:
        raise _Refusal(401, str(err)) from err
    try:
        admit(ctx, found.slug)
    except HTTPException as err:
        raise _Refusal(429, str(err.detail), int((err.headers or {}).get("Retry-After", "1"))) from err
    try:
        changes = vendor.parse(webhook, chosen)  # with the values of the CRM properties the tenant carries
        storable(changes)
    except PayloadError as err:
        raise _Refusal(400, f"not a valid {crm} webhook body: {err}") from err
    try:
        summary = await ctx.crm.deliver(found, crm, changes)
    except KafkaUnavailable as err:
        raise _Refusal(503, f"events could not be stored in Kafka ({err}); retry later", 5) from err
    if summary.dead_lettered:  # an owner no mapping names: the CRM's users are read again (crm/users_sync.py)
        await ctx.users.nudge(found, crm)
    return summary, len(changes)
