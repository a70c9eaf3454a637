"""Who is calling: the tenant of a bearer token, admitted by its rate limit."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import Depends, Header, HTTPException
from prometheus_client import Counter

from services.ingest import tenants
from services.ingest.context import IngestContext, context_of

# No tenant label: /metrics answers anyone who reaches the port, and a label would list the tenants (issue 16).
# Which tenant was throttled is in the log line.
THROTTLED = Counter("attain_ingest_throttled_total", "Requests refused with 429 (the tenant: in the log).")
log = logging.getLogger(__name__)


def admit(ctx: IngestContext, tenant: str) -> None:
    """Raise 429 with Retry-After when the tenant is over its rate limit."""
    wait = ctx.limiter.admit(tenant, time.monotonic())
    if wait:
        THROTTLED.inc()
        log.warning("request throttled", extra={"tenant": tenant, "retry_after_s": wait})
        raise HTTPException(429, f"rate limit exceeded for tenant {tenant}; retry in {wait} s",
                            headers={"Retry-After": str(wait)})


async def current_tenant(
    ctx: Annotated[IngestContext, Depends(context_of)],
    authorization: Annotated[str | None, Header()] = None,
) -> tenants.Tenant:
    """The tenant of the bearer token (never of the body), within its rate limit."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    async with ctx.rt.pool.acquire() as conn:
        tenant = await tenants.authenticate(conn, token.strip())
    if tenant is None:
        raise HTTPException(401, "invalid or revoked bearer token", headers={"WWW-Authenticate": "Bearer"})
    admit(ctx, tenant.slug)
    return tenant


CurrentTenant = Annotated[tenants.Tenant, Depends(current_tenant)]
Context = Annotated[IngestContext, Depends(context_of)]
