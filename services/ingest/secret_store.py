"""The stored CRM secrets and API tokens in bulk: legacy plain text sealed at start-up, everything re-sealed
under the first key by `tenants rotate-secrets` (shared/secret_box.py says why and how).

One tenant's values are written and read by tenants.py (`set_secret`, `set_api_token`, `secrets_for`) and
crm/fetch.py (`load_access`); this module holds the statements that walk them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from services.ingest.tenants import TenantError
from shared.db import set_tenant, sweep_tx
from shared.secret_box import PREFIX, SETTING, SecretBox, Undecryptable, is_sealed


class Unreadable(TenantError):
    """Stored values that no key of CRM_SECRET_KEYS decrypts, named by tenant, CRM and which value (never the
    value itself); nothing was changed."""


@dataclass(frozen=True, slots=True)
class Resealed:
    """What a pass wrote: webhook secrets (current and replaced ones), API tokens, and replaced secrets past
    their grace period that were forgotten rather than re-sealed."""

    secrets: int = 0
    tokens: int = 0
    expired: int = 0
    oauth: int = 0  # OAuth client secrets, access and refresh tokens, pending PKCE verifiers (rotation only)


async def reseal(conn: asyncpg.Connection, box: SecretBox, *, legacy_only: bool) -> Resealed:
    """Seal under `box`'s first key every CRM secret and API token the connection's scope shows, in the caller's
    transaction, the rows locked.

    `legacy_only` (start-up): only values still in plain text are sealed; nothing is decrypted, so nothing can
    fail, and a second pass writes nothing. Otherwise (rotation) every value is re-encrypted, and a replaced
    secret whose grace period has ended is forgotten: nothing verifies with it any more, and it may be sealed
    under the very key being retired. A value no key decrypts raises Unreadable, naming all of them, before
    anything is written, so the caller's transaction changes nothing: dropping the old key after a rotation
    that failed would lose them."""
    everything = not legacy_only
    secret_rows = await conn.fetch(
        "SELECT tenant, crm, secret, previous_secret, coalesce(previous_valid_until > now(), false) AS previous_valid"
        " FROM tenant_secrets WHERE $2 OR NOT starts_with(secret, $1) OR NOT starts_with(previous_secret, $1)"
        " ORDER BY tenant, crm FOR UPDATE", PREFIX, everything)
    token_rows = await conn.fetch(
        "SELECT tenant, crm, token FROM crm_api_tokens WHERE $2 OR NOT starts_with(token, $1)"
        " ORDER BY tenant, crm FOR UPDATE", PREFIX, everything)
    unreadable: list[str] = []

    def resealed(value: str, where: str) -> str:
        if legacy_only and is_sealed(value):
            return value
        try:
            return box.reseal(value)
        except Undecryptable:
            unreadable.append(where)
            return value

    secret_updates: list[tuple[str, str, str, str | None]] = []
    written = expired = 0
    for row in secret_rows:
        where = f"tenant {row['tenant']!r} crm {row['crm']}"
        secret, previous = resealed(row["secret"], f"{where} (secret)"), row["previous_secret"]
        if previous is not None and everything and not row["previous_valid"]:
            previous, expired = None, expired + 1
        elif previous is not None:
            previous = resealed(previous, f"{where} (replaced secret)")
            written += previous != row["previous_secret"]
        written += secret != row["secret"]
        secret_updates.append((row["tenant"], row["crm"], secret, previous))
    token_updates = [(row["tenant"], row["crm"], resealed(row["token"], f"tenant {row['tenant']!r} crm {row['crm']}"
                                                                        " (api token)")) for row in token_rows]
    oauth_updates, pending_updates = await _oauth_resealed(conn, resealed) if everything else ([], [])
    if unreadable:
        raise Unreadable(f"{len(unreadable)} stored value(s) cannot be decrypted with any key of {SETTING}, so"
                         f" nothing was changed: {', '.join(unreadable)}. List the key they were sealed with, or"
                         " set each again (tenants set-secret, tenants set-api-token)")
    await conn.executemany(
        "UPDATE tenant_secrets SET secret = $3, previous_secret = $4,"
        " previous_valid_until = CASE WHEN $4::text IS NULL THEN NULL ELSE previous_valid_until END"
        " WHERE tenant = $1 AND crm = $2", secret_updates)
    await conn.executemany("UPDATE crm_api_tokens SET token = $3 WHERE tenant = $1 AND crm = $2", token_updates)
    tokens = sum(1 for update, row in zip(token_updates, token_rows, strict=True) if update[2] != row["token"])
    await conn.executemany("UPDATE crm_oauth SET client_secret = $3, access_token = $4, refresh_token = $5"
                           " WHERE tenant = $1 AND crm = $2", oauth_updates)
    await conn.executemany("UPDATE crm_oauth_pending SET code_verifier = $4 WHERE tenant = $1 AND crm = $2"
                           " AND state = $3", pending_updates)
    oauth = sum(1 for u in oauth_updates for v in u[2:] if v) + len(pending_updates)
    return Resealed(written, tokens, expired, oauth)


OAuthRow = tuple[str, str, str, str | None, str | None]  # tenant, crm, client secret, access and refresh tokens
PendingRow = tuple[str, str, str, str]  # tenant, crm, state, PKCE verifier


async def _oauth_resealed(conn: asyncpg.Connection, resealed: Callable[[str, str], str]
                          ) -> tuple[list[OAuthRow], list[PendingRow]]:
    """The OAuth connections' sealed values (crm/oauth_store.py) and the pending authorizations' verifiers,
    re-sealed by `resealed` (which notes what no key opens), the rows locked."""
    rows = await conn.fetch("SELECT tenant, crm, client_secret, access_token, refresh_token FROM crm_oauth"
                            " ORDER BY tenant, crm FOR UPDATE")

    def opt(value: str | None, where: str) -> str | None:
        return resealed(value, where) if value else value

    updates = [(r["tenant"], r["crm"], resealed(r["client_secret"], f"tenant {r['tenant']!r} crm {r['crm']} (oauth"
                                                                      " client secret)"),
                opt(r["access_token"], f"tenant {r['tenant']!r} crm {r['crm']} (oauth access token)"),
                opt(r["refresh_token"], f"tenant {r['tenant']!r} crm {r['crm']} (oauth refresh token)"))
               for r in rows]
    pending = await conn.fetch("SELECT tenant, crm, state, code_verifier FROM crm_oauth_pending"
                               " ORDER BY tenant, crm, state FOR UPDATE")
    verifiers = [(r["tenant"], r["crm"], r["state"],
                  resealed(r["code_verifier"], f"tenant {r['tenant']!r} crm {r['crm']} (pending oauth verifier)"))
                 for r in pending]
    return updates, verifiers


async def seal_legacy(pool: asyncpg.Pool, box: SecretBox) -> int:
    """At start-up: seal every value still stored in plain text (written before ingest encrypted them); return
    how many. The working role sees one tenant's rows at a time, so it goes tenant by tenant, their slugs read
    from the registry (readable in every scope). Idempotent, and cheap once done: nothing is locked or written."""
    sealed = 0
    async with sweep_tx(pool) as conn:
        slugs = [r["slug"] for r in await conn.fetch("SELECT slug FROM tenants ORDER BY slug")]
        for slug in slugs:
            await set_tenant(conn, slug)
            done = await reseal(conn, box, legacy_only=True)
            sealed += done.secrets + done.tokens
    return sealed
