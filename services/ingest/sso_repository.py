"""The SQL of single sign-on (services/ingest/sso.py): the tenants' configurations, the people of the roster by
e-mail, and the sessions' refresh tokens. Secrets are sealed and opened with the caller's SecretBox; every
statement runs in the caller's transaction, scoped to one tenant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.ingest.sso import NotConfigured, Person, SsoConfig
from shared import audit
from shared.events import AuditActor, RepUpserted
from shared.secret_box import SecretBox


@dataclass(frozen=True, slots=True)
class Session:
    """A session token minted at sign-in: whose, until when, and the provider's refresh token (opened)."""

    tenant: str
    token_id: str
    email: str
    refresh_token: str | None
    created_at: datetime
    expires_at: datetime


async def config(conn: asyncpg.Connection, tenant: str) -> SsoConfig:
    """The tenant's configuration (its secret not opened); NotConfigured when it has none."""
    row = await conn.fetchrow(
        "SELECT tenant, issuer, client_id, admin_groups, viewer_groups, session_minutes FROM sso_configs"
        " WHERE tenant = $1", tenant)
    if row is None:
        raise NotConfigured(f"{tenant!r} has no single sign-on; ask your Attain administrator")
    return SsoConfig(row["tenant"], row["issuer"], row["client_id"], tuple(row["admin_groups"]),
                     tuple(row["viewer_groups"]), row["session_minutes"], client_secret_set=True)


async def client_secret(conn: asyncpg.Connection, tenant: str, box: SecretBox) -> str:
    secret = await conn.fetchval("SELECT client_secret FROM sso_configs WHERE tenant = $1", tenant)
    if secret is None:
        raise NotConfigured(f"{tenant!r} has no single sign-on; ask your Attain administrator")
    opened: str = box.unseal(secret)
    return opened


async def save_config(conn: asyncpg.Connection, cfg: SsoConfig, secret: str | None, box: SecretBox, *,
                      actor: AuditActor | None = None) -> None:
    """Insert or replace the tenant's configuration; `secret` None keeps the stored one (NotConfigured when
    there is none yet). Written in the audit log as `actor`'s (a new secret as "(set)", never its value)."""
    try:
        was: dict[str, Any] | None = _public(await config(conn, cfg.tenant))
    except NotConfigured:
        was = None
    await audit.record(conn, tenant=cfg.tenant, who=None, action="sso.configured", subject="sso:tenant", before=was,
                       after=_public(cfg) | ({"client_secret": secret} if secret else {}), at=datetime.now(UTC),
                       service="ingest", actor=actor)
    sealed = box.seal(secret) if secret else None
    status = await conn.execute(
        "INSERT INTO sso_configs AS c (tenant, issuer, client_id, client_secret, admin_groups, viewer_groups,"
        " session_minutes, updated_at) SELECT $1, $2, $3, $4, $5, $6, $7, now() WHERE $4::text IS NOT NULL"
        " ON CONFLICT (tenant) DO UPDATE SET issuer = $2, client_id = $3,"
        " client_secret = coalesce($4, c.client_secret), admin_groups = $5, viewer_groups = $6,"
        " session_minutes = $7, updated_at = now()",
        cfg.tenant, cfg.issuer, cfg.client_id, sealed, list(cfg.admin_groups), list(cfg.viewer_groups),
        cfg.session_minutes)
    if status.endswith(" 0"):
        exists = await conn.fetchval("SELECT true FROM sso_configs WHERE tenant = $1", cfg.tenant)
        if not exists:
            raise NotConfigured("client_secret: the first configuration needs the client's secret")
        await conn.execute(
            "UPDATE sso_configs SET issuer = $2, client_id = $3, admin_groups = $4, viewer_groups = $5,"
            " session_minutes = $6, updated_at = now() WHERE tenant = $1",
            cfg.tenant, cfg.issuer, cfg.client_id, list(cfg.admin_groups), list(cfg.viewer_groups),
            cfg.session_minutes)


async def delete_config(conn: asyncpg.Connection, tenant: str, *, actor: AuditActor | None = None) -> bool:
    try:
        was = _public(await config(conn, tenant))
    except NotConfigured:
        return False
    await conn.execute("DELETE FROM sso_configs WHERE tenant = $1", tenant)
    await audit.record(conn, tenant=tenant, who=None, action="sso.removed", subject="sso:tenant", before=was,
                       after=None, at=datetime.now(UTC), service="ingest", actor=actor)
    return True


def _public(cfg: SsoConfig) -> dict[str, Any]:
    """A configuration as the audit log shows it: everything but the client's secret."""
    return {"issuer": cfg.issuer, "client_id": cfg.client_id, "admin_groups": list(cfg.admin_groups),
            "viewer_groups": list(cfg.viewer_groups), "session_minutes": cfg.session_minutes}


async def upsert_people(conn: asyncpg.Connection, tenant: str, reps: Sequence[RepUpserted]) -> None:
    """The people of accepted `rep.upserted` events, in the caller's (accepting) transaction; of one rep named
    twice, the last."""
    if not reps:
        return
    await conn.execute(
        "INSERT INTO people (tenant, rep_id, email, manager_id, active)"
        " SELECT DISTINCT ON (r) $1, r, e, m, a FROM unnest($2::text[], $3::text[], $4::text[], $5::boolean[])"
        " WITH ORDINALITY AS u(r, e, m, a, n) ORDER BY r, n DESC"
        " ON CONFLICT (tenant, rep_id) DO UPDATE SET email = EXCLUDED.email, manager_id = EXCLUDED.manager_id,"
        " active = EXCLUDED.active",
        tenant, [r.rep_id for r in reps], [(r.email or "").strip().lower() or None for r in reps],
        [r.manager_id for r in reps], [r.active for r in reps])


async def people_for(conn: asyncpg.Connection, tenant: str, email: str) -> list[Person]:
    """The active people with `email`, and the active people they manage (enough for sso.map_person)."""
    rows = await conn.fetch(
        "WITH mine AS (SELECT rep_id FROM people WHERE tenant = $1 AND email = $2 AND active)"
        " SELECT rep_id, email, manager_id, active FROM people WHERE tenant = $1 AND active"
        " AND (email = $2 OR manager_id IN (SELECT rep_id FROM mine))", tenant, email.strip().lower())
    return [Person(r["rep_id"], r["email"], r["manager_id"], r["active"]) for r in rows]


async def save_session(conn: asyncpg.Connection, tenant: str, token_id: str, email: str, refresh_token: str | None,
                       created_at: datetime, expires_at: datetime, box: SecretBox) -> None:
    await conn.execute(
        "INSERT INTO sso_sessions (tenant, token_id, email, refresh_token, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        tenant, token_id, email, box.seal(refresh_token) if refresh_token else None, created_at, expires_at)


async def session(conn: asyncpg.Connection, tenant: str, token_id: str, box: SecretBox) -> Session | None:
    """The session of token `token_id` (its row locked), or None when that token was not minted at sign-in."""
    row = await conn.fetchrow(
        "SELECT tenant, token_id, email, refresh_token, created_at, expires_at FROM sso_sessions"
        " WHERE tenant = $1 AND token_id = $2 FOR UPDATE", tenant, token_id)
    if row is None:
        return None
    refresh = box.unseal(row["refresh_token"]) if row["refresh_token"] else None
    return Session(row["tenant"], row["token_id"], row["email"], refresh, row["created_at"], row["expires_at"])


async def is_session(conn: asyncpg.Connection, tenant: str, token_id: str) -> bool:
    found = await conn.fetchval("SELECT true FROM sso_sessions WHERE tenant = $1 AND token_id = $2", tenant, token_id)
    return bool(found)


async def end_session(conn: asyncpg.Connection, tenant: str, token_id: str) -> None:
    await conn.execute("DELETE FROM sso_sessions WHERE tenant = $1 AND token_id = $2", tenant, token_id)


async def forget_ended(conn: asyncpg.Connection, tenant: str, now: datetime) -> None:
    """The tenant's sessions whose token has expired: their refresh tokens are of no more use."""
    await conn.execute("DELETE FROM sso_sessions WHERE tenant = $1 AND expires_at < $2", tenant, now)


async def shorten_token(conn: asyncpg.Connection, tenant: str, token_id: str, until: datetime) -> None:
    """The token ends at `until` at the latest (the grace of a refreshed session's old token); the caller
    announces."""
    await conn.execute("UPDATE tokens SET expires_at = least(coalesce(expires_at, $3), $3)"
                       " WHERE tenant = $1 AND token_id = $2 AND revoked_at IS NULL", tenant, token_id, until)
