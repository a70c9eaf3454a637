"""Who is calling: the tenant and role of a bearer token, admitted by the tenant's rate limit and by the
roles a route allows (shared/authz.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from prometheus_client import Counter

from services.ingest import tenants
from services.ingest.context import IngestContext, context_of
from shared.authz import Principal, admit_with, header_token
from shared.events import Role

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


async def caller(
    ctx: Annotated[IngestContext, Depends(context_of)],
    token: Annotated[str, Depends(header_token)],
) -> tuple[tenants.Tenant, Principal]:
    """The tenant and holder of the bearer token (never of the body), within the tenant's rate limit; 401
    for a token that is unknown, revoked or expired."""
    async with ctx.rt.pool.acquire() as conn:
        found = await tenants.authenticate(conn, token)
    if found is None:
        raise HTTPException(401, "invalid, expired or revoked bearer token", headers={"WWW-Authenticate": "Bearer"})
    admit(ctx, found[0].slug)
    return found


async def _holder(found: Annotated[tuple[tenants.Tenant, Principal], Depends(caller)]) -> Principal:
    return found[1]


def principal_for(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, when its role is one of `roles` (403 otherwise; shared.authz.admit_with)."""
    return admit_with(_holder, *roles)


def tenant_for(*roles: Role) -> Callable[..., Awaitable[tenants.Tenant]]:
    """A dependency: the caller's tenant, when the caller's role is one of `roles` (403 otherwise). `caller`
    runs once per request (FastAPI caches it), so the role check and the tenant come from one lookup."""
    admitted = principal_for(*roles)

    async def tenant(found: Annotated[tuple[tenants.Tenant, Principal], Depends(caller)],
                     _: Principal = Depends(admitted)) -> tenants.Tenant:  # noqa: B008
        return found[0]

    return tenant


Poster = Annotated[tenants.Tenant, Depends(tenant_for("admin", "integration"))]  # a CRM bridge, an import
ReaderTenant = Annotated[tenants.Tenant, Depends(tenant_for("admin", "integration"))]
AdminTenant = Annotated[tenants.Tenant, Depends(tenant_for("admin"))]
AdminPrincipal = Annotated[Principal, Depends(principal_for("admin"))]
Holder = Annotated[Principal, Depends(_holder)]  # who the caller is, beside a route's role decision (the audit log)
Context = Annotated[IngestContext, Depends(context_of)]
