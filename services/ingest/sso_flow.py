"""Single sign-on's steps (services/ingest/sso.py): sign in with an authorization code, renew a session, sign
out. Each ends in tokens.py's create or revoke, so the change is announced on the registry like any token's.

The provider is called outside any transaction, except for a refresh, which holds its session's row so that two
requests of one browser renew it once (the provider may rotate the refresh token and refuse its second use).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.ingest import sso_oidc, sso_repository, tokens
from services.ingest.sso import REFRESH_GRACE, ProviderError, Refused, SsoConfig, map_person, session_days
from shared.db import tenant_tx
from shared.events import AuditActor
from shared.registry_signing import RegistrySigner
from shared.secret_box import SecretBox


@dataclass(frozen=True, slots=True)
class Minted:
    """A session token just made: its secret (known only now), role, lifetime, and where to sign out."""

    token: str
    token_id: str
    role: str
    email: str
    issued_at: datetime
    expires_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"token": self.token, "token_id": self.token_id, "role": self.role, "email": self.email,
                "issued_at": self.issued_at.isoformat(), "expires_at": self.expires_at.isoformat()}


async def _mint(conn: asyncpg.Connection, cfg: SsoConfig, claims: dict[str, Any], refresh_token: str | None, *,
                signer: RegistrySigner, box: SecretBox, now: datetime) -> Minted:
    people = await sso_repository.people_for(conn, cfg.tenant, str(claims.get("email", "")))
    who = map_person(claims, cfg, people)
    made = await tokens.create(conn, cfg.tenant, role=who.role, signer=signer, now=now, rep_id=who.rep_id,
                               manager_id=who.manager_id, name=f"sign-in: {who.email}",
                               expires_days=session_days(cfg),
                               actor=AuditActor(kind="system", name=f"single sign-on: {who.email}"))
    assert made.expires_at is not None
    await sso_repository.save_session(conn, cfg.tenant, made.token_id, who.email, refresh_token, now,
                                      made.expires_at, box)
    return Minted(made.token, made.token_id, made.role, who.email, now, made.expires_at)


async def client(pool: asyncpg.Pool, tenant: str, known: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """What kpi needs to send a browser to the tenant's provider. `known` runs once the tenant is known to have
    single sign-on (a rate limit: only then is a tenant's bucket made, whatever names strangers send)."""
    async with tenant_tx(pool, tenant) as conn:
        cfg = await sso_repository.config(conn, tenant)
    known()
    return (await sso_oidc.provider(cfg.issuer)).public(cfg.client_id)


async def sign_in(pool: asyncpg.Pool, tenant: str, *, code: str, code_verifier: str, redirect_uri: str, nonce: str,
                  signer: RegistrySigner, box: SecretBox, now: datetime,
                  known: Callable[[], None] = lambda: None) -> Minted:
    """A session token for the person whose authorization code this is (their ID token verified, their role
    mapped); Refused, ProviderError or NotConfigured otherwise. `known`: as for `client`."""
    async with tenant_tx(pool, tenant) as conn:
        cfg = await sso_repository.config(conn, tenant)
        secret = await sso_repository.client_secret(conn, tenant, box)
    known()
    p = await sso_oidc.provider(cfg.issuer)
    answer = await sso_oidc.exchange(p, cfg.client_id, secret, code=code, code_verifier=code_verifier,
                                     redirect_uri=redirect_uri)
    if not isinstance(answer.get("id_token"), str):
        raise ProviderError("the identity provider answered no ID token (is the 'openid' scope allowed?)")
    claims = sso_oidc.verify_id_token(answer["id_token"], p, cfg.client_id, nonce, time.time())
    async with tenant_tx(pool, tenant) as conn:
        await sso_repository.forget_ended(conn, tenant, now)
        return await _mint(conn, cfg, claims, answer.get("refresh_token"), signer=signer, box=box, now=now)


async def renew(pool: asyncpg.Pool, tenant: str, token_id: str, *, signer: RegistrySigner, box: SecretBox,
                now: datetime) -> Minted:
    """A new session token for the session of `token_id` (renewed at the provider, the person mapped again); the
    old one ends after REFRESH_GRACE. Refused (and the old token revoked) when the person lost their place;
    ProviderError when the provider will not renew (the session ends at its expiry); LookupError when
    `token_id` is no session (or was renewed already)."""
    async with tenant_tx(pool, tenant) as conn:
        session = await sso_repository.session(conn, tenant, token_id, box)
        if session is None:
            raise LookupError("not a single sign-on session (or renewed already)")
        if session.refresh_token is None:
            raise ProviderError("the identity provider gave this session no refresh token")
        cfg = await sso_repository.config(conn, tenant)
        secret = await sso_repository.client_secret(conn, tenant, box)
        p = await sso_oidc.provider(cfg.issuer)
        answer = await sso_oidc.refresh(p, cfg.client_id, secret, session.refresh_token)
        if isinstance(answer.get("id_token"), str):
            claims = sso_oidc.verify_id_token(answer["id_token"], p, cfg.client_id, None, time.time())
        else:
            claims = await sso_oidc.userinfo(p, str(answer.get("access_token", "")))
        if str(claims.get("email", "")).strip().lower() != session.email:
            raise ProviderError("the identity provider renewed the session for another e-mail address")
        await sso_repository.end_session(conn, tenant, token_id)
        await sso_repository.shorten_token(conn, tenant, token_id, now + REFRESH_GRACE)  # announced with the new
        try:
            minted = await _mint(conn, cfg, claims, answer.get("refresh_token") or session.refresh_token,
                                 signer=signer, box=box, now=now)
        except Refused as err:  # committed: the person lost their place, so the session ends now
            await tokens.revoke(conn, tenant, token_id, signer=signer, now=now)
            refused = err
        else:
            await sso_repository.forget_ended(conn, tenant, now)
            return minted
    raise refused


async def sign_out(pool: asyncpg.Pool, tenant: str, token_id: str, *, signer: RegistrySigner,
                   now: datetime) -> dict[str, Any]:
    """Revoke the session's token everywhere (announced) and forget its refresh token; where the provider
    signs its own session out (`end_session_endpoint`, when its discovery document has one). LookupError when
    `token_id` is no session."""
    async with tenant_tx(pool, tenant) as conn:
        if not await sso_repository.is_session(conn, tenant, token_id):
            raise LookupError("not a single sign-on session")
        await sso_repository.end_session(conn, tenant, token_id)
        await tokens.revoke(conn, tenant, token_id, signer=signer, now=now)
        cfg = await sso_repository.config(conn, tenant)
    try:
        p = await sso_oidc.provider(cfg.issuer)
    except ProviderError:
        return {"end_session_endpoint": None, "client_id": cfg.client_id}
    return {"end_session_endpoint": p.end_session_endpoint, "client_id": cfg.client_id}
