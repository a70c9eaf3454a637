"""Bearer-token authentication for kpi, coaching and recognition.

Each service keeps the tokens ingest announces on `attain.tenants.v1` (each tenant's entry lists its tokens'
SHA-256 digests and roles) in its own `tokens` table; a token is hashed and looked up, never stored. A route
admits roles with `allow(...)` (shared/authz.py): `Who = allow("admin", "integration")`, then `who: Who`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException

from shared import token_store
from shared.authz import EVERYONE, Principal, admit_with, header_token, hidden, visible_reps
from shared.events import Role
from shared.service import Runtime, runtime_of


async def principal_of(rt: Annotated[Runtime, Depends(runtime_of)],
                       token: Annotated[str, Depends(header_token)]) -> Principal:
    """The holder of the request's bearer token, or 401: every read and write is scoped to its tenant."""
    async with rt.pool.acquire() as conn:
        who = await token_store.principal(conn, token, rt.clock.now())
    if who is None:
        raise HTTPException(401, "invalid, expired or revoked bearer token", headers={"WWW-Authenticate": "Bearer"})
    return who


def allow(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the request's principal, admitted only when its role is one of `roles` (403 otherwise)."""
    return admit_with(principal_of, *roles)


Anyone = Annotated[Principal, Depends(allow(*EVERYONE))]
Reader = Annotated[Principal, Depends(allow("admin", "integration"))]
Admin = Annotated[Principal, Depends(allow("admin"))]
# routes about particular reps: then `see_rep`
People = Annotated[Principal, Depends(allow("admin", "integration", "manager", "rep"))]


async def reps_visible(conn: Any, who: Principal, rep_id: str | None = None) -> frozenset[str] | None:
    """The reps whose own records `who` may read (shared.authz.visible_reps; for a manager, the roster as it
    stands now: one query), None for every rep; with `rep_id`, 404 (as for a rep that does not exist) unless
    it is one of them. kpi's and coaching's connections (their `reps`)."""
    under = await token_store.reps_under(conn, who.tenant, who.manager_id) if who.manager_id else set()
    visible = visible_reps(who, under)
    if rep_id is not None and visible is not None and rep_id not in visible:
        raise hidden(f"rep {rep_id!r}")
    return visible


async def see_rep(conn: Any, who: Principal, rep_id: str) -> None:
    """404 unless `who` may read rep `rep_id` (`reps_visible`)."""
    await reps_visible(conn, who, rep_id)
