"""The OAuth refresh timer (a `ServiceSpec` timer of ingest): every CRM_OAUTH_REFRESH_INTERVAL_S, each tenant's
OAuth connection whose access token expires within oauth_rules.REFRESH_MARGIN is renewed at its CRM.

Each pass: which connections are due (`oauth_store.refresh_due`, the one cross-tenant read, in `sweep_tx`); then,
per connection, one transaction of its tenant (`tenant_tx`): the row locked (`connection(for_refresh=True)`: a
row another replica is refreshing is skipped), the CRM's token endpoint asked (`oauth.refresh`), and the answer
stored (`save_tokens`) or the failure as oauth_rules.after_failure decides it (`record_failure`: a revoked refresh
token ends the connection, with the CRM's reason for the control room; anything else backs off). The row lock is
held across the call on purpose: a CRM that rotates refresh tokens refuses an old one's second use, so two
replicas must never refresh the same connection at once. A revocation is written to the audit log (`system`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

import asyncpg
from prometheus_client import Counter

from services.ingest.context import IngestContext
from services.ingest.crm import oauth, oauth_store
from services.ingest.crm.fetch import Resolver, resolve
from services.ingest.crm.oauth_rules import CrmOAuthError, Revoked, after_failure, needs_refresh
from shared import audit
from shared.db import sweep_tx, tenant_tx
from shared.secret_box import SecretBox, Undecryptable
from shared.service import Runtime, every

log = logging.getLogger(__name__)
# No tenant label: /metrics answers anyone who reaches the port (issue 16); the tenant is in the log line.
REFRESHES = Counter("attain_ingest_crm_oauth_refreshes_total",
                    "OAuth access tokens renewed at a CRM, by CRM and outcome (ok, revoked, error).",
                    ["crm", "outcome"])


async def refresh_one(pool: asyncpg.Pool, tenant: str, crm: str, box: SecretBox, now: datetime, *,
                      allowed_hosts: Iterable[str] = (), resolver: Resolver = resolve) -> str:
    """Renew one connection's access token, if it is still due; its outcome: ok, revoked, error or skipped."""
    async with tenant_tx(pool, tenant) as conn:
        try:
            found = await oauth_store.connection(conn, tenant, crm, box, for_refresh=True)
        except Undecryptable as err:
            log.error("a crm oauth connection cannot be decrypted with CRM_SECRET_KEYS; not refreshed",
                      extra={"tenant": tenant, "crm": crm, "error": str(err)})
            return "skipped"
        if found is None or found.status not in ("connected", "error") or not needs_refresh(found.expires_at, now):
            return "skipped"  # another replica holds it, or renewed it since the sweep
        try:
            tokens = await oauth.refresh(crm, found.client, found.refresh_token or "",
                                         endpoints=oauth.endpoints(crm, found.auth_base), now=now,
                                         scopes=found.scopes, allowed_hosts=allowed_hosts, resolver=resolver)
        except CrmOAuthError as err:
            after = after_failure(err, failures=found.failures + 1, expires_at=found.expires_at, now=now)
            await oauth_store.record_failure(conn, tenant, crm, after, now)
            outcome = "revoked" if isinstance(err, Revoked) else "error"
            log.warning("crm oauth refresh failed", extra={"tenant": tenant, "crm": crm, "outcome": outcome,
                                                            "status": after.status, "reason": after.reason})
            if outcome == "revoked":
                await audit.record(conn, tenant=tenant, who=None, action="crm.oauth.revoked",
                                   subject=f"crm:{crm}/oauth", before={"status": found.status},
                                   after={"status": "revoked", "reason": after.reason}, at=now, service="ingest")
            REFRESHES.labels(crm, outcome).inc()
            return outcome
        await oauth_store.save_tokens(conn, tenant, crm, tokens, now, box)
    REFRESHES.labels(crm, "ok").inc()
    return "ok"


async def refresh_due(pool: asyncpg.Pool, box: SecretBox, now: datetime, *, allowed_hosts: Iterable[str] = (),
                      resolver: Resolver = resolve) -> dict[str, int]:
    """One pass: every due connection renewed in its tenant's transaction; how many by outcome."""
    async with sweep_tx(pool) as conn:
        due = await oauth_store.refresh_due(conn, now)
    counts: dict[str, int] = {}
    for tenant, crm in due:
        outcome = await refresh_one(pool, tenant, crm, box, now, allowed_hosts=allowed_hosts, resolver=resolver)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


async def oauth_refresher(rt: Runtime) -> None:
    """The timer: every CRM_OAUTH_REFRESH_INTERVAL_S, renew the access tokens about to expire."""
    ctx: IngestContext = rt.context
    hosts = ctx.settings.crm_api_allowed_hosts.split(",")

    async def work() -> None:
        if counts := await refresh_due(rt.pool, ctx.box, rt.clock.now(), allowed_hosts=hosts):
            log.info("crm oauth connections refreshed", extra={f"refreshes_{k}": n for k, n in counts.items()})

    await every(ctx.settings.crm_oauth_refresh_interval_s, work, "ingest-crm-oauth-refresh")
