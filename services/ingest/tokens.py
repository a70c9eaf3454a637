"""Tokens of people and machines (docs/contract.md, "Tokens and roles"): each with one role in one tenant,
stored as its SHA-256 digest only, listed without the secret, revocable one by one, optionally expiring.

Every change announces the tenant's registry entry again (signed, in the same transaction), so kpi, coaching
and recognition learn the new list within one relay and one consumer batch: a revoked token stops working
in every service within seconds. Rotation without downtime: `rotate` makes a new token with the same role and
person and lets the old one expire after a grace period, so two are valid while clients change over.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.ingest.tenants import TenantError, announce, by_slug, new_token, token_digest
from shared import audit, share_link
from shared.events import ROLES, AuditActor
from shared.registry_signing import RegistrySigner

SERVICE = "ingest"  # in the audit log

PERSON = re.compile(r"^[^\x00-\x1f]{1,200}$")
MAX_EXPIRY_DAYS = 3650


@dataclass(frozen=True, slots=True)
class Issued:
    """A token just made: the only moment its secret is known."""

    tenant: str
    token_id: str
    token: str
    role: str
    expires_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "token_id": self.token_id, "token": self.token, "role": self.role,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}


def check_grant(role: str, rep_id: str | None, manager_id: str | None, expires_days: float | None) -> None:
    """TenantError naming the problem when a role and its person do not go together.

    >>> check_grant("rep", None, None, None)
    Traceback (most recent call last):
    ...
    services.ingest.tenants.TenantError: a rep token names its rep: give --rep REP_ID
    """
    if role not in ROLES:
        raise TenantError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role == "rep" and not rep_id:
        raise TenantError("a rep token names its rep: give --rep REP_ID")
    if role == "manager" and not manager_id:
        raise TenantError("a manager token names its manager: give --manager REP_ID")
    if rep_id and role != "rep":
        raise TenantError(f"--rep is for rep tokens, not {role} tokens")
    if manager_id and role != "manager":
        raise TenantError(f"--manager is for manager tokens, not {role} tokens")
    for given in (rep_id, manager_id):
        if given is not None and not PERSON.match(given):
            raise TenantError("a rep id is 1-200 characters without control characters")
    if expires_days is not None and not 0 < expires_days <= MAX_EXPIRY_DAYS:
        raise TenantError(f"--expires-days must be more than 0 and at most {MAX_EXPIRY_DAYS}")


async def create(conn: asyncpg.Connection, slug: str, *, role: str, signer: RegistrySigner, now: datetime,
                 rep_id: str | None = None, manager_id: str | None = None, name: str = "",
                 expires_days: float | None = None, actor: AuditActor | None = None) -> Issued:
    """A new token for tenant `slug` with `role` (and its rep or manager), announced, and written in the audit
    log as `actor`'s (default: the service's own); its secret returned once."""
    check_grant(role, rep_id, manager_id, expires_days)
    if await by_slug(conn, slug) is None:
        raise TenantError(f"no active tenant {slug!r}")
    token, token_id = new_token(), uuid.uuid4().hex[:12]
    expires_at = now + timedelta(days=expires_days) if expires_days is not None else None
    await conn.execute(
        "INSERT INTO tokens (tenant, token_id, token_sha256, role, rep_id, manager_id, name, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        slug, token_id, token_digest(token), role, rep_id, manager_id, name[:200], now, expires_at)
    await announce(conn, slug, signer, actor=actor)
    await audit.record(conn, tenant=slug, who=None, action="token.created", subject=f"token:{token_id}", before=None,
                       after=await _grant(conn, slug, token_id), at=now, service=SERVICE, actor=actor)
    return Issued(slug, token_id, token, role, expires_at)


async def _grant(conn: asyncpg.Connection, slug: str, token_id: str) -> dict[str, Any] | None:
    """A token as the audit log shows it: who it is for and its lifetime, never its secret or digest."""
    row = await conn.fetchrow("SELECT token_id, role, rep_id, manager_id, name, expires_at, revoked_at FROM tokens"
                              " WHERE tenant = $1 AND token_id = $2", slug, token_id)
    return None if row is None else dict(row)


async def share(conn: asyncpg.Connection, slug: str, *, signer: RegistrySigner, now: datetime, name: str = "",
                expires_days: float | None = None, actor: AuditActor | None = None) -> dict[str, Any]:
    """A TV's share link (shared/share_link.py): a new `viewer` token whose secret is never shown, and the signed
    path that opens the TV with it. Revoking the token ends the link."""
    made = await create(conn, slug, role="viewer", signer=signer, now=now, name=name or "a screen's share link",
                        expires_days=expires_days, actor=actor)
    return {"tenant": slug, "token_id": made.token_id, "role": "viewer",
            "path": share_link.PREFIX + share_link.make(signer, slug, made.token_id),
            "expires_at": made.expires_at.isoformat() if made.expires_at else None}


async def listed(conn: asyncpg.Connection, slug: str) -> list[dict[str, Any]]:
    """The tenant's tokens, newest first, without their secrets (nor their digests)."""
    rows = await conn.fetch(
        "SELECT token_id, role, rep_id, manager_id, name, created_at, expires_at, revoked_at FROM tokens"
        " WHERE tenant = $1 ORDER BY created_at DESC, token_id", slug)
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()} | {"tenant": slug}
            for r in rows]


async def revoke(conn: asyncpg.Connection, slug: str, token_id: str, *, signer: RegistrySigner,
                 now: datetime, actor: AuditActor | None = None) -> None:
    """Revoke one token (the others keep working), announced and audited."""
    before = await _grant(conn, slug, token_id)
    status = await conn.execute("UPDATE tokens SET revoked_at = $3 WHERE tenant = $1 AND token_id = $2"
                                " AND revoked_at IS NULL", slug, token_id, now)
    if status.endswith(" 0"):
        raise TenantError(f"tenant {slug!r} has no unrevoked token {token_id!r}")
    await announce(conn, slug, signer, actor=actor)
    await audit.record(conn, tenant=slug, who=None, action="token.revoked", subject=f"token:{token_id}",
                       before=before, after=await _grant(conn, slug, token_id), at=now, service=SERVICE, actor=actor)


async def rotate(conn: asyncpg.Connection, slug: str, token_id: str, *, signer: RegistrySigner, now: datetime,
                 grace_hours: float = 24.0, actor: AuditActor | None = None) -> Issued:
    """A new token like `token_id` (role, person, name, and lifetime when it had one); the old one stays valid
    for `grace_hours` more, then expires. Both announced in one entry."""
    if not 0 <= grace_hours <= 24 * 30:
        raise TenantError("--grace-hours must be between 0 and 720")
    old = await conn.fetchrow("SELECT role, rep_id, manager_id, name, created_at, expires_at FROM tokens"
                              " WHERE tenant = $1"
                              " AND token_id = $2 AND revoked_at IS NULL FOR UPDATE", slug, token_id)
    if old is None:
        raise TenantError(f"tenant {slug!r} has no unrevoked token {token_id!r}")
    ends = now + timedelta(hours=grace_hours)
    if old["expires_at"] is None or old["expires_at"] > ends:
        await conn.execute("UPDATE tokens SET expires_at = $3 WHERE tenant = $1 AND token_id = $2",
                           slug, token_id, ends)
    lifetime = (old["expires_at"] - old["created_at"]).total_seconds() / 86400 if old["expires_at"] else None
    before = await _grant(conn, slug, token_id)
    made = await create(conn, slug, role=old["role"], signer=signer, now=now, rep_id=old["rep_id"],
                        manager_id=old["manager_id"], name=old["name"],
                        expires_days=None if lifetime is None else min(max(lifetime, 1 / 24), MAX_EXPIRY_DAYS),
                        actor=actor)
    after = await _grant(conn, slug, token_id)
    await audit.record(conn, tenant=slug, who=None, action="token.rotated", subject=f"token:{token_id}",
                       before=before, after=None if after is None else after | {"replaced_by": made.token_id},
                       at=now, service=SERVICE, actor=actor)
    return made
