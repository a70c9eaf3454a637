"""`POST /v1/events`: the only HTTP write path (CONTRACT.md, section 2)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.ingest.auth import Context, Holder, Poster
from services.ingest.context import IngestContext
from services.ingest.intake import KafkaUnavailable, Outcome
from services.ingest.tenants import Tenant
from services.ingest.validation import NDJSON, BodyError, Verdict, judge, judge_line, parse_body
from shared.authz import Principal

router = APIRouter(prefix="/v1", tags=["events"])
EVENT_REF = {"$ref": "#/components/schemas/CanonicalEvent"}


class EventResult(BaseModel):
    index: int
    id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = None
    line: int | None = None


class EventsResponse(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResult]


class Problem(BaseModel):
    detail: str


class TooLarge(Exception):
    pass


@router.post(
    "/events",
    response_model=EventsResponse,
    responses={400: {"model": Problem}, 401: {"model": Problem}, 413: {"model": Problem},
               422: {"model": EventsResponse, "description": "some events were rejected"},
               429: {"model": Problem, "description": "rate limited; see Retry-After"},
               503: {"model": Problem, "description": "Kafka did not acknowledge; retry"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"oneOf": [EVENT_REF, {"type": "array", "items": EVENT_REF}]}},
        NDJSON: {"schema": {"type": "string", "description": "one canonical event per line"}}}}},
)
async def post_events(request: Request, tenant: Poster, who: Holder, ctx: Context) -> Any:
    """Take one event, a JSON array of events, or NDJSON (streamed: up to `MAX_NDJSON_BYTES`).
    Answers after every accepted event is durably in Kafka: 200 when nothing was rejected, 422
    (same body) when something was; the accepted events are published all the same and a retry
    reports them duplicate. NDJSON results carry the line number of each event."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = request.headers.get("content-length", "")
    declared = int(length) if length.isdigit() else 0
    limit = ctx.settings.max_ndjson_bytes if content_type == NDJSON else ctx.settings.max_body_bytes
    if declared > limit:
        raise HTTPException(413, f"body of {declared} bytes exceeds the limit of {limit}")
    outcomes: list[Outcome] = []
    lines: dict[int, int] = {}
    try:
        if content_type == NDJSON:
            async for chunk in _ndjson_chunks(request, limit, ctx.settings.ndjson_chunk_events, len(outcomes)):
                lines.update({v.index: v.line for v in chunk if v.line is not None})
                outcomes += await _accept(ctx, tenant, chunk, who)
        else:
            body = await _read(request, limit)
            try:
                items = parse_body(body, content_type, ctx.settings.max_events_per_request)
            except BodyError as err:
                raise HTTPException(400, str(err)) from err
            outcomes = await _accept(ctx, tenant, [judge(i, item) for i, item in enumerate(items)], who)
    except TooLarge as err:
        done = f"; the first {len(outcomes)} events were processed, resend the rest" if outcomes else ""
        raise HTTPException(413, f"body exceeds the limit of {limit} bytes{done}") from err
    except BodyError as err:
        raise HTTPException(400, str(err)) from err
    if not outcomes:
        raise HTTPException(400, "the body holds no event: send one event object, a JSON array of them, or NDJSON")
    return _respond(outcomes, lines)


async def _accept(ctx: IngestContext, tenant: Tenant, verdicts: list[Verdict], who: Principal) -> list[Outcome]:
    try:
        outcomes = await ctx.intake.accept(tenant, verdicts, who=who)
    except KafkaUnavailable as err:
        raise HTTPException(503, f"events could not be stored in Kafka ({err}); retry later",
                            headers={"Retry-After": "5"}) from err
    ctx.limiter.charge_events(tenant.slug, len(verdicts), time.monotonic())
    return outcomes


def _respond(outcomes: list[Outcome], lines: dict[int, int]) -> JSONResponse:
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    results = []
    for o in outcomes:
        counts[o.status] += 1
        results.append({"index": o.index, "id": o.id, "status": o.status, "reason": o.reason,
                        "line": lines.get(o.index)})
    return JSONResponse({**counts, "results": results}, status_code=422 if counts["rejected"] else 200)


async def _read(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise TooLarge
    return bytes(body)


async def _ndjson_chunks(request: Request, limit: int, size: int, first_index: int) -> AsyncIterator[list[Verdict]]:
    """Verdicts of the body's lines, `size` at a time, while the body is still arriving."""
    received, number, index = 0, 0, first_index
    chunk: list[Verdict] = []
    rest = b""
    async for part in request.stream():
        received += len(part)
        if received > limit:
            raise TooLarge
        *complete, rest = (rest + part).split(b"\n")
        for line in complete:
            number += 1
            if line.strip():
                chunk.append(judge_line(index, line, number))
                index += 1
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if rest.strip():
        chunk.append(judge_line(index, rest, number + 1))
    if chunk:
        yield chunk
