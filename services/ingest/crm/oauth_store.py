"""The SQL of OAuth 2.0 connections to a tenant's CRM (crm/oauth.py, oauth_rules.py; migration 011_crm_oauth.sql):
each tenant's client, tokens and status, its pending authorizations, and which connections the refresh timer must
renew. Secrets are sealed and opened with the caller's SecretBox (CRM_SECRET_KEYS); a stored value no key opens
raises shared.secret_box.Undecryptable. Every function runs in the caller's transaction, scoped to one tenant
(`tenant_tx`), except `refresh_due`, which spans tenants through its sweep function (`sweep_tx`).

The CRM is never called while a statement here holds a lock, except by a refresh: `connection(..., for_refresh=True)`
locks the row (skipping one another replica holds) until the caller's transaction stores the answer, since a CRM
that rotates refresh tokens refuses the old one's second use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.ingest.crm.oauth import Client
from services.ingest.crm.oauth_rules import (
    PENDING_TTL,
    REFRESH_MARGIN,
    AfterFailure,
    CrmOAuthError,
    Revoked,
    Status,
    TokenSet,
    after_failure,
    pending_expired,
)
from shared.secret_box import SecretBox


class NotConfigured(CrmOAuthError):
    """The tenant set no OAuth client for this CRM (or, for a first one, no client secret)."""


@dataclass(frozen=True, slots=True)
class Connection:
    """A tenant's OAuth connection to one CRM, its secrets opened; its repr shows none of them."""

    tenant: str
    crm: str
    client: Client
    auth_base: str | None
    scopes: tuple[str, ...]
    status: Status
    access_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    api_base_url: str | None
    last_error: str | None
    error_at: datetime | None
    failures: int


@dataclass(frozen=True, slots=True)
class Pending:
    """An authorization taken by its callback: the PKCE verifier (opened) and the redirect URI to exchange with."""

    state: str
    code_verifier: str = field(repr=False)
    redirect_uri: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OAuthAccess:
    """What reading the CRM needs: a working access token (a Bearer token) and the tenant's API base URL."""

    access_token: str = field(repr=False)
    base_url: str


@dataclass(frozen=True, slots=True)
class View:
    """A connection as the control room shows it: no secret, its status and last error (a revoked refresh token
    with the CRM's reason)."""

    crm: str
    client_id: str
    status: Status
    scopes: tuple[str, ...]
    expires_at: datetime | None
    connected_at: datetime | None
    last_error: str | None
    error_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        return {"crm": self.crm, "client_id": self.client_id, "status": self.status, "scopes": list(self.scopes),
                "expires_at": iso(self.expires_at), "connected_at": iso(self.connected_at),
                "last_error": self.last_error, "error_at": iso(self.error_at)}


async def save_client(conn: asyncpg.Connection, tenant: str, crm: str, client_id: str, client_secret: str | None,
                      box: SecretBox, *, auth_base: str | None = None, scopes: tuple[str, ...] = ()) -> None:
    """Set the tenant's OAuth client for `crm` (`client_secret` None keeps the stored one; NotConfigured when there
    is none). Another client id than before forgets the tokens: they were granted to the other client."""
    if client_secret is None:
        status = await conn.execute(
            "UPDATE crm_oauth SET auth_base = $4, scopes = $5, updated_at = now(),"
            " status = CASE WHEN client_id = $3 THEN status ELSE 'pending' END,"
            " access_token = CASE WHEN client_id = $3 THEN access_token END,"
            " refresh_token = CASE WHEN client_id = $3 THEN refresh_token END,"
            " expires_at = CASE WHEN client_id = $3 THEN expires_at END, client_id = $3"
            " WHERE tenant = $1 AND crm = $2", tenant, crm, client_id, auth_base, list(scopes))
        if status.endswith(" 0"):
            raise NotConfigured(f"{crm}: the first OAuth client needs its client secret")
        return
    await conn.execute(
        "INSERT INTO crm_oauth AS c (tenant, crm, client_id, client_secret, auth_base, scopes)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (tenant, crm) DO UPDATE SET client_secret = EXCLUDED.client_secret,"
        " auth_base = EXCLUDED.auth_base, scopes = EXCLUDED.scopes, updated_at = now(),"
        " status = CASE WHEN c.client_id = EXCLUDED.client_id THEN c.status ELSE 'pending' END,"
        " access_token = CASE WHEN c.client_id = EXCLUDED.client_id THEN c.access_token END,"
        " refresh_token = CASE WHEN c.client_id = EXCLUDED.client_id THEN c.refresh_token END,"
        " expires_at = CASE WHEN c.client_id = EXCLUDED.client_id THEN c.expires_at END,"
        " client_id = EXCLUDED.client_id",
        tenant, crm, client_id, box.seal(client_secret), auth_base, list(scopes))


async def start_authorization(conn: asyncpg.Connection, tenant: str, crm: str, *, state: str, code_verifier: str,
                              redirect_uri: str, now: datetime, box: SecretBox) -> None:
    """Remember an authorization just sent to the CRM (its state, the PKCE verifier sealed, the redirect URI),
    and forget the tenant's older ones past PENDING_TTL. NotConfigured when the tenant set no client."""
    await conn.execute("DELETE FROM crm_oauth_pending WHERE tenant = $1 AND crm = $2 AND created_at < $3",
                       tenant, crm, now - PENDING_TTL)
    status = await conn.execute(
        "INSERT INTO crm_oauth_pending (tenant, crm, state, code_verifier, redirect_uri, created_at)"
        " SELECT tenant, crm, $3, $4, $5, $6 FROM crm_oauth WHERE tenant = $1 AND crm = $2",
        tenant, crm, state, box.seal(code_verifier), redirect_uri, now)
    if status.endswith(" 0"):
        raise NotConfigured(f"{crm}: set the tenant's OAuth client first")


async def take_pending(conn: asyncpg.Connection, tenant: str, crm: str, state: str, now: datetime,
                       box: SecretBox) -> Pending | None:
    """The authorization with `state`, taken once (deleted); None when there is none or it is older than
    PENDING_TTL (a callback then is refused: StateMismatch at the caller)."""
    row = await conn.fetchrow(
        "DELETE FROM crm_oauth_pending WHERE tenant = $1 AND crm = $2 AND state = $3"
        " RETURNING state, code_verifier, redirect_uri, created_at", tenant, crm, state)
    if row is None or pending_expired(row["created_at"], now):
        return None
    return Pending(row["state"], box.unseal(row["code_verifier"]), row["redirect_uri"], row["created_at"])


_COLUMNS = ("tenant, crm, client_id, client_secret, auth_base, scopes, status, access_token, refresh_token,"
            " expires_at, api_base_url, last_error, error_at, failures")


async def connection(conn: asyncpg.Connection, tenant: str, crm: str, box: SecretBox, *,
                     for_refresh: bool = False) -> Connection | None:
    """The tenant's connection to `crm`, its secrets opened, or None. `for_refresh`: its row locked until the
    caller's transaction ends, None when another transaction holds it (refreshing it now)."""
    lock = " FOR UPDATE SKIP LOCKED" if for_refresh else ""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM crm_oauth WHERE tenant = $1 AND crm = $2{lock}", tenant, crm)
    if row is None:
        return None

    def opened(column: str) -> str | None:
        value = row[column]
        return box.unseal(value) if value else None

    return Connection(row["tenant"], row["crm"], Client(row["client_id"], box.unseal(row["client_secret"])),
                      row["auth_base"], tuple(row["scopes"]), row["status"], opened("access_token"),
                      opened("refresh_token"), row["expires_at"], row["api_base_url"], row["last_error"],
                      row["error_at"], row["failures"])


async def save_tokens(conn: asyncpg.Connection, tenant: str, crm: str, tokens: TokenSet, now: datetime,
                      box: SecretBox, *, authorized: bool = False) -> None:
    """Store what the CRM granted (an exchange, `authorized`, or a refresh): the connection is `connected`, its
    errors and backoff cleared. A refresh token or API base the answer did not name keeps the stored one."""
    await conn.execute(
        "UPDATE crm_oauth SET access_token = $3, refresh_token = coalesce($4, refresh_token), expires_at = $5,"
        " api_base_url = coalesce($6, api_base_url),"
        " scopes = CASE WHEN cardinality($7::text[]) > 0 THEN $7 ELSE scopes END,"
        " status = 'connected', last_error = NULL, error_at = NULL, failures = 0, retry_at = NULL,"
        " connected_at = CASE WHEN $8 THEN $9 ELSE coalesce(connected_at, $9) END, updated_at = $9"
        " WHERE tenant = $1 AND crm = $2",
        tenant, crm, box.seal(tokens.access_token), box.seal(tokens.refresh_token) if tokens.refresh_token else None,
        tokens.expires_at, tokens.api_base_url, list(tokens.scopes), authorized, now)


async def record_failure(conn: asyncpg.Connection, tenant: str, crm: str, after: AfterFailure,
                         now: datetime) -> None:
    """Store a failed refresh as oauth_rules.after_failure decided: status, reason, backoff, tokens forgotten
    when revoked."""
    await conn.execute(
        "UPDATE crm_oauth SET status = $3, last_error = $4, error_at = $5, failures = $6, retry_at = $7,"
        " access_token = CASE WHEN $8 THEN NULL ELSE access_token END,"
        " refresh_token = CASE WHEN $8 THEN NULL ELSE refresh_token END,"
        " expires_at = CASE WHEN $8 THEN NULL ELSE expires_at END, updated_at = $5"
        " WHERE tenant = $1 AND crm = $2",
        tenant, crm, after.status, after.reason, now, after.failures, after.retry_at, after.forget_tokens)


async def mark_revoked(conn: asyncpg.Connection, tenant: str, crm: str, reason: str, now: datetime) -> None:
    """The CRM no longer honours the refresh token (its `reason` kept for the control room): the connection is
    `revoked`, its tokens forgotten, and the timer leaves it alone until someone authorizes again."""
    await record_failure(conn, tenant, crm, after_failure(Revoked(reason), failures=1, expires_at=None, now=now),
                         now)


async def disconnect(conn: asyncpg.Connection, tenant: str, crm: str, box: SecretBox) -> str | None:
    """Forget the connection's tokens (status `pending`, the client kept) and return the refresh token, opened,
    for the caller to revoke at the CRM after the transaction (oauth.revoke); None when there was none."""
    stored = await conn.fetchval("SELECT refresh_token FROM crm_oauth WHERE tenant = $1 AND crm = $2 FOR UPDATE",
                                 tenant, crm)
    await conn.execute(
        "UPDATE crm_oauth SET status = 'pending', access_token = NULL, refresh_token = NULL, expires_at = NULL,"
        " failures = 0, retry_at = NULL, updated_at = now() WHERE tenant = $1 AND crm = $2", tenant, crm)
    if not stored:
        return None
    opened: str = box.unseal(stored)
    return opened


async def delete(conn: asyncpg.Connection, tenant: str, crm: str) -> bool:
    """Forget the tenant's connection to `crm` altogether (its pending authorizations with it)."""
    status = await conn.execute("DELETE FROM crm_oauth WHERE tenant = $1 AND crm = $2", tenant, crm)
    return not status.endswith(" 0")


async def refresh_due(conn: asyncpg.Connection, now: datetime,
                      margin: timedelta = REFRESH_MARGIN) -> list[tuple[str, str]]:
    """(tenant, crm) of every connection to refresh at `now`: its access token expires within `margin` (or its
    expiry is unknown), its status `connected` or `error`, no backoff pending. Across tenants, through
    `sweep_crm_oauth_due` (a `sweep_tx` connection); each is then refreshed in its tenant's transaction."""
    rows = await conn.fetch("SELECT tenant, crm FROM sweep_crm_oauth_due($1, $2)", now, margin)
    return [(r["tenant"], r["crm"]) for r in rows]


async def access(conn: asyncpg.Connection, tenant: str, crm: str, box: SecretBox,
                 now: datetime) -> OAuthAccess | None:
    """The tenant's working access token to `crm` and its API base URL, or None (not connected, expired)."""
    row = await conn.fetchrow(
        "SELECT access_token, api_base_url FROM crm_oauth WHERE tenant = $1 AND crm = $2 AND status = 'connected'"
        " AND expires_at > $3 AND api_base_url IS NOT NULL", tenant, crm, now)
    if row is None:
        return None
    return OAuthAccess(box.unseal(row["access_token"]), row["api_base_url"])


async def views(conn: asyncpg.Connection, tenant: str) -> list[View]:
    """The tenant's connections as the control room shows them, by CRM."""
    rows = await conn.fetch(
        "SELECT crm, client_id, status, scopes, expires_at, connected_at, last_error, error_at FROM crm_oauth"
        " WHERE tenant = $1 ORDER BY crm", tenant)
    return [View(r["crm"], r["client_id"], r["status"], tuple(r["scopes"]), r["expires_at"], r["connected_at"],
                 r["last_error"], r["error_at"]) for r in rows]


async def mark_due(conn: asyncpg.Connection, tenant: str, crm: str, now: datetime) -> None:
    """The CRM refused the access token (401) before its stated expiry: treat it as expired at `now`, so reads
    stop using it and the refresh timer renews it on its next pass."""
    await conn.execute(
        "UPDATE crm_oauth SET expires_at = $3, updated_at = $3 WHERE tenant = $1 AND crm = $2"
        " AND status = 'connected' AND expires_at > $3", tenant, crm, now)
