"""A tenant's own settings in ingest's `tenants` row (the registry's record): read them, and change some of them
validated as `tenants create` and `tenants locale` validate them, announced on the registry (signed) in the
changing transaction, as the CLI's commands do (`tenant_settings_api.py` serves them to admins)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import asyncpg

from services.ingest import tenants
from shared.events import AuditActor
from shared.periods import validate_timezone
from shared.registry_signing import RegistrySigner

FIELDS = ("timezone", "currency", "fiscal_start_month", "locale")


def checked(given: Mapping[str, Any]) -> dict[str, Any]:
    """The fields given, each validated as `tenants create` / `tenants locale` do (the locale as Babel spells
    it); TenantError starting with the field's name.

    >>> checked({"currency": "USD", "locale": "de-DE"})
    {'currency': 'USD', 'locale': 'de_DE'}
    """
    out: dict[str, Any] = {}
    if "timezone" in given:
        try:
            validate_timezone(given["timezone"])
        except ValueError as err:
            raise tenants.TenantError(f"timezone: {err}") from err
        out["timezone"] = given["timezone"]
    if "currency" in given:
        if not re.fullmatch(r"[A-Z]{3}", given["currency"]):
            raise tenants.TenantError(f"currency: {given['currency']!r} is not an ISO 4217 code such as EUR")
        out["currency"] = given["currency"]
    if "fiscal_start_month" in given:
        if not 1 <= given["fiscal_start_month"] <= 12:
            raise tenants.TenantError("fiscal_start_month: must be 1-12")
        out["fiscal_start_month"] = given["fiscal_start_month"]
    if "locale" in given:
        try:
            out["locale"] = tenants.normalise_locale(given["locale"])
        except tenants.TenantError as err:
            raise tenants.TenantError(f"locale: {err}") from err
    return out


async def current(conn: asyncpg.Connection, slug: str) -> dict[str, Any] | None:
    """The active tenant's settings (None: no such tenant, or revoked)."""
    row = await conn.fetchrow("SELECT timezone, currency, fiscal_start_month, locale FROM tenants"
                              " WHERE slug = $1 AND revoked_at IS NULL", slug)
    return None if row is None else {k: (v.strip() if isinstance(v, str) else v) for k, v in dict(row).items()}


async def change(conn: asyncpg.Connection, slug: str, wanted: Mapping[str, Any], *,
                 signer: RegistrySigner, actor: AuditActor | None = None) -> tuple[dict[str, Any], list[str]]:
    """Set `wanted` (already `checked`) and announce the tenant when anything differs (written in the audit log
    as `actor`'s); the settings now, and the fields that changed. The row is locked against a concurrent
    change."""
    row = await conn.fetchrow("SELECT timezone, currency, fiscal_start_month, locale FROM tenants"
                              " WHERE slug = $1 AND revoked_at IS NULL FOR NO KEY UPDATE", slug)
    if row is None:
        raise tenants.TenantError(f"no active tenant {slug!r}")
    before = {k: (v.strip() if isinstance(v, str) else v) for k, v in dict(row).items()}
    now = {**before, **wanted}
    changed = [name for name in FIELDS if now[name] != before[name]]
    if changed:
        await conn.execute("UPDATE tenants SET timezone = $2, currency = $3, fiscal_start_month = $4, locale = $5"
                           " WHERE slug = $1", slug, *(now[name] for name in FIELDS))
        await tenants.announce(conn, slug, signer, actor=actor)
    return now, changed
