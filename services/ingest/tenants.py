"""Tenants: who may send events, with which token, and in which time zone their periods run.

Tokens are stored as SHA-256 digests only; a token is 32 random bytes, so a fast hash is enough
and a lookup by digest does not leak timing about the token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import asyncpg

from shared.periods import validate_timezone

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
CRMS = ("hubspot", "pipedrive", "salesforce")


class TenantError(ValueError):
    """A tenant command was given something it cannot accept; the message says what."""


@dataclass(frozen=True, slots=True)
class Tenant:
    slug: str
    timezone: str
    currency: str
    fiscal_start_month: int


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def create(conn: asyncpg.Connection, slug: str, *, token: str | None, timezone: str,
                 currency: str, fiscal_start_month: int = 1) -> str:
    """Create tenant `slug`; return its bearer token (a new random one unless given)."""
    if not SLUG.match(slug):
        raise TenantError(f"tenant slug {slug!r} must be 2-63 lowercase letters, digits or '-'")
    try:
        validate_timezone(timezone)
    except ValueError as err:
        raise TenantError(str(err)) from err
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise TenantError(f"currency {currency!r} is not an ISO 4217 code such as EUR")
    if not 1 <= fiscal_start_month <= 12:
        raise TenantError("fiscal year start month must be 1-12")
    if token is not None and len(token) < 16:
        raise TenantError("a token must be at least 16 characters")
    token = token or new_token()
    try:
        await conn.execute(
            "INSERT INTO tenants (slug, token_sha256, timezone, currency, fiscal_start_month)"
            " VALUES ($1, $2, $3, $4, $5)",
            slug, token_digest(token), timezone, currency, fiscal_start_month,
        )
    except asyncpg.UniqueViolationError as err:
        raise TenantError(f"tenant {slug!r} (or that token) already exists") from err
    return token


async def set_secret(conn: asyncpg.Connection, slug: str, crm: str, secret: str, org_id: str | None) -> None:
    if crm not in CRMS:
        raise TenantError(f"crm {crm!r} is not one of {', '.join(CRMS)}")
    if not secret:
        raise TenantError("the secret must not be empty")
    if await conn.fetchval("SELECT 1 FROM tenants WHERE slug = $1 AND revoked_at IS NULL", slug) is None:
        raise TenantError(f"no active tenant {slug!r}")
    await conn.execute(
        "INSERT INTO tenant_secrets (tenant, crm, secret, org_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant, crm) DO UPDATE SET secret = EXCLUDED.secret, org_id = EXCLUDED.org_id,"
        " updated_at = now()",
        slug, crm, secret, org_id,
    )


async def revoke(conn: asyncpg.Connection, slug: str) -> None:
    status = await conn.execute("UPDATE tenants SET revoked_at = now() WHERE slug = $1 AND revoked_at IS NULL", slug)
    if status.endswith(" 0"):
        raise TenantError(f"no active tenant {slug!r}")


async def authenticate(conn: asyncpg.Connection, token: str) -> Tenant | None:
    """The active tenant whose token this is, or None."""
    row = await conn.fetchrow(
        "SELECT slug, timezone, currency, fiscal_start_month FROM tenants"
        " WHERE token_sha256 = $1 AND revoked_at IS NULL",
        token_digest(token),
    )
    return Tenant(**dict(row)) if row else None
