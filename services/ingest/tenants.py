"""Tenants: who may send events, with which token, and in which time zone their periods run.

Tokens are stored as SHA-256 digests only; a token is 32 random bytes, so a fast hash is enough
and a lookup by digest does not leak timing about the token. CRM webhook secrets and API tokens must be
used as they are (HMAC, a bearer header), so they are stored encrypted instead (`secret_box`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
from babel import Locale, UnknownLocaleError
from pydantic import ValidationError

from services.ingest.crm.model import Secret
from shared import audit, token_store, topics
from shared.authz import Principal
from shared.cloudevents import CloudEvent, encode, message_key
from shared.db import set_tenant, sweep_tx
from shared.events import AuditActor, ExchangeRate, Holidays, TenantUpserted, TokenGrant
from shared.outbox import enqueue
from shared.periods import validate_timezone
from shared.registry_signing import EXTENSION, RegistrySigner
from shared.secret_box import SecretBox, Undecryptable, is_sealed
from shared.workdays import NO_CALENDAR, HolidayCalendar

log = logging.getLogger(__name__)
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
CRMS = ("hubspot", "pipedrive", "salesforce")
DEFAULT_LOCALE = "en"


class TenantError(ValueError):
    """A tenant command was given something it cannot accept; the message says what."""


@dataclass(frozen=True, slots=True)
class Tenant:
    slug: str
    timezone: str
    currency: str
    fiscal_start_month: int


def normalise_locale(name: str) -> str:
    """`name` as Babel spells the locale ("de-DE" and "de_de" give "de_DE"); TenantError naming it when
    Babel knows no such locale, so a tenant is never announced with one the read side cannot format in."""
    try:
        return str(Locale.parse(name.replace("-", "_")))
    except (ValueError, UnknownLocaleError) as err:
        raise TenantError(f"unknown locale {name!r}: expected a Babel locale such as en, de_DE or fr_FR") from err


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


TOKEN_PREFIX = "atn_"  # noqa: S105 - a public prefix, not a secret


def new_token() -> str:
    """256 random bits, URL-safe, behind a fixed prefix: a token never starts with "-" (a CLI would
    take it for an option: `--token -9S-p6…` failed an import in CI) and secret scanners can find it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create(conn: asyncpg.Connection, slug: str, *, token: str | None, timezone: str,
                 currency: str, signer: RegistrySigner, fiscal_start_month: int = 1,
                 locale: str = DEFAULT_LOCALE, country: str | None = None, subdivision: str | None = None,
                 actor: AuditActor | None = None) -> str:
    """Create tenant `slug`; return its bearer token (a new random one unless given). With `country` (and
    `subdivision`) its public holidays are days off from the start."""
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
    locale = normalise_locale(locale)
    calendar = _calendar(country, subdivision, {}, frozenset())
    if token is not None and len(token) < 16:
        raise TenantError("a token must be at least 16 characters")
    token = token or new_token()
    try:  # the tenant and its first token, an admin one (the tenant's row keeps its digest as well)
        await conn.execute(
            "INSERT INTO tenants (slug, token_sha256, timezone, currency, fiscal_start_month, locale, holidays)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
            slug, token_digest(token), timezone, currency, fiscal_start_month, locale,
            json.dumps(calendar.to_json()) if calendar != NO_CALENDAR else None,
        )
        await conn.execute(
            "INSERT INTO tokens (tenant, token_id, token_sha256, role, name) VALUES ($1, $2, $3, 'admin', $4)",
            slug, token_store.INITIAL, token_digest(token), "the token the tenant was created with")
    except asyncpg.UniqueViolationError as err:
        raise TenantError(f"tenant {slug!r} (or that token) already exists") from err
    await announce(conn, slug, signer, actor=actor)
    return token


def signed(event: CloudEvent, key: bytes, signer: RegistrySigner) -> CloudEvent:
    """`event` with the `attainsig` extension: `signer`'s signature of the record it becomes under `key`
    (shared/registry_signing.py). The record is encoded here as the outbox will encode it: the same bytes."""
    value, headers = encode(event)
    extensions = {**event.extensions, EXTENSION: signer.signature(headers, key, value)}
    return CloudEvent(id=event.id, type=event.type, source=event.source, time=event.time, tenant=event.tenant,
                      data=event.data, extensions=extensions)


async def announce(conn: asyncpg.Connection, slug: str, signer: RegistrySigner, *, actor: AuditActor | None = None,
                   audited: bool = True) -> None:
    """Put the tenant's current registry entry in the outbox, signed (call inside the changing transaction):
    the other services learn tenants from `attain.tenants.v1`, never from ingest's tables, and apply only
    entries ingest's key signed. A change of the tenant's settings (zone, currency, fiscal year, locale,
    holidays, rates, active) since the last entry is written in the audit log as `actor`'s (`audited`: not
    at start-up, when every tenant is announced again as it is)."""
    row = await conn.fetchrow("SELECT slug, timezone, currency, fiscal_start_month, token_sha256, revoked_at,"
                              " locale, holidays FROM tenants WHERE slug = $1", slug)
    if row is None:
        return
    rates = [ExchangeRate(currency=r["currency"], valid_from=r["valid_from"], rate=r["rate"]) for r in await conn.fetch(
        "SELECT currency, valid_from, rate FROM exchange_rates WHERE slug = $1 ORDER BY currency, valid_from", slug)]
    grants = [TokenGrant(token_id=r["token_id"], token_sha256=r["token_sha256"].hex(), role=r["role"],
                         rep_id=r["rep_id"], manager_id=r["manager_id"], expires_at=r["expires_at"])
              for r in await conn.fetch(
                  "SELECT token_id, token_sha256, role, rep_id, manager_id, expires_at FROM tokens"
                  " WHERE tenant = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
                  " ORDER BY token_id", slug)]  # an expired token is refused by its expiry alone: no need to list it
    entry = TenantUpserted(tenant=row["slug"], timezone=row["timezone"], currency=row["currency"],
                           fiscal_start_month=row["fiscal_start_month"], token_sha256=row["token_sha256"].hex(),
                           active=row["revoked_at"] is None, rates=rates, locale=row["locale"], tokens=grants,
                           holidays=Holidays.model_validate_json(row["holidays"]) if row["holidays"] else None)
    if audited:
        await _audit_settings(conn, slug, entry, actor)
    event = CloudEvent(id=str(uuid.uuid4()), type="tenant.upserted", source="attain/ingest",
                       time=datetime.now(UTC), tenant=slug, data=entry)
    key = message_key(slug)
    await enqueue(conn, topics.TENANTS.name, key, signed(event, key, signer))


async def _audit_settings(conn: asyncpg.Connection, slug: str, entry: TenantUpserted,
                          actor: AuditActor | None) -> None:
    """The settings of `entry` against the last ones written down (`audit_values`): one audit entry when they
    differ. Tokens are audited where they change (tokens.py)."""
    now = entry.model_dump(mode="json", include={"timezone", "currency", "fiscal_start_month", "locale", "active",
                                                 "holidays", "rates"})
    raw = await conn.fetchval("SELECT value::text FROM audit_values WHERE tenant = $1 AND subject = 'settings:tenant'",
                              slug)
    was = json.loads(raw) if raw else None
    if was == now:
        return
    await conn.execute("INSERT INTO audit_values (tenant, subject, value) VALUES ($1, 'settings:tenant', $2::jsonb)"
                       " ON CONFLICT (tenant, subject) DO UPDATE SET value = EXCLUDED.value", slug, json.dumps(now))
    await audit.record(conn, tenant=slug, who=None, action="settings.changed" if was else "tenant.created",
                       subject="settings:tenant", before=was, after=now, at=datetime.now(UTC), service="ingest",
                       actor=actor)


def _calendar(country: str | None, subdivision: str | None, added: dict[date, str],
              removed: frozenset[date]) -> HolidayCalendar:
    try:
        return HolidayCalendar(country.upper() if country else None, subdivision.upper() if subdivision else None,
                               added, removed)
    except ValueError as err:
        raise TenantError(str(err)) from err


async def set_holidays(conn: asyncpg.Connection, slug: str, *, signer: RegistrySigner, country: str | None = None,
                       subdivision: str | None = None, add: dict[date, str] | None = None,
                       remove: frozenset[date] = frozenset(), clear: bool = False,
                       actor: AuditActor | None = None) -> HolidayCalendar:
    """Change the tenant's holiday calendar and announce it; return the calendar now in force.

    ``country`` (with ``subdivision``) replaces the country whose public holidays count; ``add`` adds
    named days off (or renames them), ``remove`` takes days out (a public holiday the tenant works; an added
    day). ``clear`` starts from no calendar at all first. Unchanged parts stay as they were."""
    raw = await conn.fetchval("SELECT holidays FROM tenants WHERE slug = $1 AND revoked_at IS NULL", slug)
    exists = await conn.fetchval("SELECT 1 FROM tenants WHERE slug = $1 AND revoked_at IS NULL", slug)
    if not exists:
        raise TenantError(f"no active tenant {slug!r}")
    before = NO_CALENDAR if clear or raw is None else HolidayCalendar.of(raw)
    country = country if country is not None else before.country
    subdivision = subdivision if subdivision is not None else (before.subdivision if country == before.country
                                                                 else None)
    added = {d: n for d, n in before.added.items() if d not in remove} | dict(add or {})
    removed = (before.removed - frozenset(add or {})) | frozenset(d for d in remove if d not in before.added)
    calendar = _calendar(country, subdivision, added, removed)
    await conn.execute("UPDATE tenants SET holidays = $2::jsonb WHERE slug = $1", slug,
                       json.dumps(calendar.to_json()) if calendar != NO_CALENDAR else None)
    await announce(conn, slug, signer, actor=actor)
    return calendar


async def set_rate(conn: asyncpg.Connection, slug: str, currency: str, rate: str, valid_from: date, *,
                   signer: RegistrySigner, actor: AuditActor | None = None) -> None:
    """Set the exchange rate of `currency` into the tenant's base currency from `valid_from` on, and
    announce it: kpi recounts the tenant's money figures with it."""
    tenant = await by_slug(conn, slug)
    if tenant is None:
        raise TenantError(f"no tenant {slug!r}")
    try:
        entry = ExchangeRate(currency=currency, valid_from=valid_from, rate=rate)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise TenantError(f"invalid exchange rate: {problems}") from None
    if entry.currency == tenant.currency:
        raise TenantError(f"{currency} is {slug!r}'s base currency: its rate is 1 by definition")
    await conn.execute(
        "INSERT INTO exchange_rates (slug, currency, valid_from, rate) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (slug, currency, valid_from) DO UPDATE SET rate = EXCLUDED.rate",
        slug, entry.currency, entry.valid_from, entry.rate)
    await announce(conn, slug, signer, actor=actor)


async def set_locale(conn: asyncpg.Connection, slug: str, locale: str, *, signer: RegistrySigner,
                     actor: AuditActor | None = None) -> str:
    """Set the locale the tenant's figures are formatted in and announce it; return it as Babel spells it."""
    locale = normalise_locale(locale)
    status = await conn.execute("UPDATE tenants SET locale = $2 WHERE slug = $1 AND revoked_at IS NULL", slug, locale)
    if status.endswith(" 0"):
        raise TenantError(f"no active tenant {slug!r}")
    await announce(conn, slug, signer, actor=actor)
    return locale


async def set_secret(conn: asyncpg.Connection, slug: str, crm: str, secret: str, org_id: str | None,
                     grace: timedelta = timedelta(hours=24), *, box: SecretBox,
                     actor: AuditActor | None = None) -> None:
    """Set the CRM secret, stored sealed by `box`; the one it replaces stays valid for `grace` (rotation without
    downtime), unless it is the same secret again. Sealed values of one secret differ (Fernet is randomised), so
    the comparison is made on the plain values here, with the tenant's row locked against a concurrent change."""
    if crm not in CRMS:
        raise TenantError(f"crm {crm!r} is not one of {', '.join(CRMS)}")
    if not secret:
        raise TenantError("the secret must not be empty")
    if await conn.fetchval("SELECT 1 FROM tenants WHERE slug = $1 AND revoked_at IS NULL FOR NO KEY UPDATE",
                           slug) is None:
        raise TenantError(f"no active tenant {slug!r}")
    row = await conn.fetchrow("SELECT secret, org_id, previous_secret, previous_valid_until FROM tenant_secrets"
                              " WHERE tenant = $1 AND crm = $2", slug, crm)
    await _audit_secret(conn, slug, crm, row, secret, org_id, box, actor)
    if row is None:
        await conn.execute("INSERT INTO tenant_secrets (tenant, crm, secret, org_id) VALUES ($1, $2, $3, $4)",
                           slug, crm, box.seal(secret), org_id)
        return
    try:
        current: str | None = box.unseal(row["secret"])
    except Undecryptable:  # its key is gone: it could verify nothing, so it is not kept as the previous one
        log.warning("the replaced crm secret cannot be decrypted and is dropped", extra={"tenant": slug, "crm": crm})
        current = None
    if current == secret:  # the same secret again: the previous one keeps its own grace
        previous, until = row["previous_secret"], row["previous_valid_until"]
        if previous and not is_sealed(previous):  # legacy plain text: sealed while it is at hand
            previous = box.seal(previous)
        await conn.execute("UPDATE tenant_secrets SET secret = $3, org_id = $4, previous_secret = $5,"
                           " previous_valid_until = $6, updated_at = now() WHERE tenant = $1 AND crm = $2",
                           slug, crm, box.seal(secret), org_id, previous, until)
        return
    await conn.execute("UPDATE tenant_secrets SET secret = $3, org_id = $4, previous_secret = $5,"
                       " previous_valid_until = now() + $6::interval, updated_at = now()"
                       " WHERE tenant = $1 AND crm = $2",
                       slug, crm, box.seal(secret), org_id, None if current is None else box.seal(current), grace)


async def _audit_secret(conn: asyncpg.Connection, slug: str, crm: str, row: asyncpg.Record | None, secret: str,
                        org_id: str | None, box: SecretBox, actor: AuditActor | None) -> None:
    """A CRM secret set or replaced, in the audit log: that it was (the log shows "(set)"), never its value."""
    try:
        was = None if row is None else {"secret": box.unseal(row["secret"]), "org_id": row["org_id"]}
    except Undecryptable:
        was = {"secret": "(undecryptable)", "org_id": row["org_id"] if row else None}
    await audit.record(conn, tenant=slug, who=None, action="crm.secret.set", subject=f"crm:{crm}/secret", before=was,
                       after={"secret": secret, "org_id": org_id}, at=datetime.now(UTC), service="ingest",
                       actor=actor)


async def set_api_token(conn: asyncpg.Connection, slug: str, crm: str, token: str, base_url: str, *,
                        box: SecretBox) -> None:
    """Let ingest fetch records from the CRM's API when a webhook lacks fields; the token is stored sealed."""
    if crm not in CRMS:
        raise TenantError(f"crm {crm!r} is not one of {', '.join(CRMS)}")
    if not token:
        raise TenantError("the api token must not be empty")
    if not base_url.startswith(("http://", "https://")):
        raise TenantError(f"base url {base_url!r} must start with http:// or https://")
    if await conn.fetchval("SELECT 1 FROM tenants WHERE slug = $1 AND revoked_at IS NULL", slug) is None:
        raise TenantError(f"no active tenant {slug!r}")
    await conn.execute(
        "INSERT INTO crm_api_tokens (tenant, crm, token, base_url) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant, crm) DO UPDATE SET token = EXCLUDED.token, base_url = EXCLUDED.base_url",
        slug, crm, box.seal(token), base_url.rstrip("/"),
    )


async def secrets_for(conn: asyncpg.Connection, slug: str, crm: str, box: SecretBox) -> list[Secret]:
    """The secrets a webhook of `crm` for tenant `slug` may prove itself with (none: unknown tenant). A stored
    secret that no key decrypts is left out and logged by tenant and CRM: the delivery is then refused as one
    with a wrong secret would be, never failed."""
    row = await conn.fetchrow(
        "SELECT s.secret, s.org_id, s.previous_secret, s.previous_valid_until > now() AS previous_valid"
        " FROM tenant_secrets s JOIN tenants t ON t.slug = s.tenant"
        " WHERE s.tenant = $1 AND s.crm = $2 AND t.revoked_at IS NULL",
        slug, crm,
    )
    if row is None:
        return []
    stored = [("secret", row["secret"])]
    if row["previous_secret"] and row["previous_valid"]:
        stored.append(("previous secret", row["previous_secret"]))
    found = []
    for which, value in stored:
        try:
            found.append(Secret(box.unseal(value), row["org_id"]))
        except Undecryptable as err:
            log.error("a stored crm secret cannot be decrypted with CRM_SECRET_KEYS; webhooks verified with it are"
                      " refused until it is set again or its key is listed",
                      extra={"tenant": slug, "crm": crm, "which": which, "error": str(err)})
    return found


async def by_slug(conn: asyncpg.Connection, slug: str) -> Tenant | None:
    row = await conn.fetchrow(
        "SELECT slug, timezone, currency, fiscal_start_month FROM tenants WHERE slug = $1 AND revoked_at IS NULL",
        slug,
    )
    return Tenant(**dict(row)) if row else None


async def revoke(conn: asyncpg.Connection, slug: str, *, signer: RegistrySigner,
                 actor: AuditActor | None = None) -> None:
    status = await conn.execute("UPDATE tenants SET revoked_at = now() WHERE slug = $1 AND revoked_at IS NULL", slug)
    if status.endswith(" 0"):
        raise TenantError(f"no active tenant {slug!r}")
    await announce(conn, slug, signer, actor=actor)


async def authenticate(conn: asyncpg.Connection, token: str) -> tuple[Tenant, Principal] | None:
    """The active tenant and the holder of `token` (not revoked, not expired), or None."""
    row = await conn.fetchrow(
        "SELECT t.slug, t.timezone, t.currency, t.fiscal_start_month, k.role, k.token_id, k.rep_id, k.manager_id"
        " FROM tokens k JOIN tenants t ON t.slug = k.tenant AND t.revoked_at IS NULL"
        " WHERE k.token_sha256 = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())",
        token_digest(token),
    )
    if row is None:
        return None
    return (Tenant(row["slug"], row["timezone"], row["currency"], row["fiscal_start_month"]),
            Principal(row["slug"], row["role"], row["token_id"], row["rep_id"], row["manager_id"]))


async def announce_all(pool: asyncpg.Pool, signer: RegistrySigner) -> int:
    """Re-announce every tenant, signed (at start-up): the registry topic is compacted, so this heals a consumer
    that lost its projection, publishes tenants created before the registry existed, and replaces the unsigned
    entries of versions before registry signing (which the readers refuse) with signed ones."""
    async with sweep_tx(pool) as conn:
        slugs = [r["slug"] for r in await conn.fetch("SELECT slug FROM tenants ORDER BY slug")]  # the registry
        for slug in slugs:  # readable in every scope; its rates in the tenant's own
            await set_tenant(conn, slug)
            await announce(conn, slug, signer, audited=False)
    return len(slugs)
