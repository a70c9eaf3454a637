"""`POST /v1/events`: the only HTTP write path (CONTRACT.md, section 2)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel

from services.ingest import tenants
from services.ingest.publishing import to_record
from services.ingest.validation import BodyError, Verdict, judge, parse_body
from shared.cloudevents import encode
from shared.events import DealDeletedEvent, DealUpsertedEvent
from shared.service import Runtime, runtime_of

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["events"])

EVENTS = Counter("attain_ingest_events_total", "Events received, by outcome.", ["outcome"])


class EventResult(BaseModel):
    index: int
    id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = None


class EventsResponse(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResult]


class Problem(BaseModel):
    detail: str


async def current_tenant(request: Request, authorization: Annotated[str | None, Header()] = None) -> tenants.Tenant:
    """The tenant of the bearer token (never of the body)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    rt = runtime_of(request)
    async with rt.pool.acquire() as conn:
        tenant = await tenants.authenticate(conn, token.strip())
    if tenant is None:
        raise HTTPException(401, "invalid or revoked bearer token", headers={"WWW-Authenticate": "Bearer"})
    return tenant


@router.post(
    "/events",
    response_model=EventsResponse,
    responses={400: {"model": Problem}, 401: {"model": Problem}, 413: {"model": Problem},
               422: {"model": EventsResponse, "description": "some events were rejected"},
               503: {"model": Problem, "description": "Kafka did not acknowledge; retry"}},
)
async def post_events(
    request: Request,
    tenant: Annotated[tenants.Tenant, Depends(current_tenant)],
    rt: Annotated[Runtime, Depends(runtime_of)],
) -> Any:
    """Take one event, a JSON array of events, or NDJSON. Answers after every accepted event is
    durably in Kafka. 200 when nothing was rejected; 422 (same body) when something was: the
    accepted events of that request are published all the same and a retry reports them duplicate."""
    settings = rt.settings
    body = await request.body()
    if len(body) > settings.max_body_bytes:  # type: ignore[attr-defined]
        raise HTTPException(413, f"body of {len(body)} bytes exceeds the limit of {settings.max_body_bytes}")  # type: ignore[attr-defined]
    try:
        items = parse_body(body, request.headers.get("content-type", ""), settings.max_events_per_request)  # type: ignore[attr-defined]
    except BodyError as err:
        raise HTTPException(400, str(err)) from err
    verdicts = [judge(i, item) for i, item in enumerate(items)]
    results = await _publish_new(rt, tenant, verdicts)
    counts = {s: sum(1 for r in results if r.status == s) for s in ("accepted", "duplicate", "rejected")}
    for status, n in counts.items():
        EVENTS.labels(status).inc(n)
    response = EventsResponse(results=results, **counts)
    return JSONResponse(response.model_dump(mode="json"), status_code=422 if counts["rejected"] else 200)


async def _publish_new(rt: Runtime, tenant: tenants.Tenant, verdicts: list[Verdict]) -> list[EventResult]:
    valid = [v for v in verdicts if v.event is not None]
    async with rt.pool.acquire() as conn:
        seen = {
            (r["source"], r["event_id"])
            for r in await conn.fetch(
                "SELECT source, event_id FROM accepted_events WHERE tenant = $1 AND (source, event_id) IN"
                " (SELECT * FROM unnest($2::text[], $3::text[]))",
                tenant.slug, [v.event.source for v in valid], [v.event.id for v in valid],  # type: ignore[union-attr]
            )
        }
        owners = dict(await conn.fetch(
            "SELECT deal_id, rep_id FROM deal_owners WHERE tenant = $1 AND deal_id = ANY($2::text[])",
            tenant.slug, [v.event.data.deal_id for v in valid if isinstance(v.event, DealDeletedEvent)],
        ))
    statuses: dict[int, str] = {}
    to_send = []
    for v in valid:
        assert v.event is not None
        ident = (v.event.source, v.event.id)
        if ident in seen:
            statuses[v.index] = "duplicate"
            continue
        seen.add(ident)
        if isinstance(v.event, DealUpsertedEvent):
            owners[v.event.data.deal_id] = v.event.data.rep_id
        owner = owners.get(v.event.data.deal_id) if isinstance(v.event, DealDeletedEvent) else None
        to_send.append((v, to_record(tenant, v.event, owner)))
        statuses[v.index] = "accepted"
    if to_send:
        await _send_all(rt, [record for _, record in to_send])
        async with rt.pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO accepted_events (tenant, source, event_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                [(tenant.slug, v.event.source, v.event.id) for v, _ in to_send],  # type: ignore[union-attr]
            )
            await conn.executemany(
                "INSERT INTO deal_owners (tenant, deal_id, rep_id) VALUES ($1, $2, $3)"
                " ON CONFLICT (tenant, deal_id) DO UPDATE SET rep_id = EXCLUDED.rep_id",
                [(tenant.slug, v.event.data.deal_id, v.event.data.rep_id)
                 for v, _ in to_send if isinstance(v.event, DealUpsertedEvent)],
            )
    return [
        EventResult(index=v.index, id=v.id, status=statuses.get(v.index, "rejected"), reason=v.reason)
        for v in verdicts
    ]


async def _send_all(rt: Runtime, records: list[Any]) -> None:
    """Publish and wait for every ack (acks=all); any failure fails the request with 503."""
    try:
        futures = []
        for topic, key, cloud_event in records:
            value, headers = encode(cloud_event)
            futures.append(await rt.broker.publish(
                value, topic, key=key, headers={k: v.decode() for k, v in headers}, no_confirm=True))
        await asyncio.gather(*futures)
    except Exception as err:  # any producer failure means "not durably stored": the client retries
        log.error("publish failed", extra={"error": repr(err)})
        raise HTTPException(503, "events could not be stored in Kafka; retry later",
                            headers={"Retry-After": "5"}) from err
