"""Bearer-token authentication for the read APIs of kpi, coaching and recognition.

Each service keeps the tenant registry ingest publishes on `attain.tenants.v1` in its own
`tenants` table (token SHA-256 digest, active flag); a token is hashed and looked up, never stored.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, HTTPException

from shared.service import Runtime, runtime_of


async def tenant_of_token(conn: asyncpg.Connection, token: str) -> str | None:
    """The active tenant whose token this is (by its SHA-256 digest), or None."""
    found: str | None = await conn.fetchval("SELECT tenant FROM tenants WHERE token_sha256 = $1 AND active",
                                           hashlib.sha256(token.strip().encode()).digest())
    return found


async def read_tenant(rt: Annotated[Runtime, Depends(runtime_of)],
                      authorization: Annotated[str | None, Header()] = None) -> str:
    """The tenant of the bearer token: every read is scoped to it."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    async with rt.pool.acquire() as conn:
        tenant = await tenant_of_token(conn, token)
    if tenant is None:
        raise HTTPException(401, "invalid or revoked bearer token", headers={"WWW-Authenticate": "Bearer"})
    return tenant


ReadTenant = Annotated[str, Depends(read_tenant)]

