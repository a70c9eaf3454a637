"""Single sign-on with OpenID Connect (docs/contract.md section 4, "Single sign-on"): who a verified ID token is.

A tenant names its identity provider (issuer, client), which of the provider's groups are admins and viewers, and
how long a session lasts. A person who signs in gets a short-lived personal token minted by ingest
(sso_api.py), so roles, object checks and revocation work as for any token; this module decides which role.

Pure: no I/O. The provider's side (discovery, the code exchange, the ID token's signature) is sso_oidc.py; the
SQL is sso_repository.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from services.ingest.tenants import TenantError
from shared.events import Role

DEFAULT_SESSION_MINUTES = Decimal(60)
MAX_SESSION_MINUTES = Decimal(1440)
REFRESH_GRACE = timedelta(minutes=2)  # a refreshed session's old token stays valid this long (requests in flight)
MAX_GROUPS = 50


class SsoError(TenantError):
    """Base of what single sign-on refuses; the message is for the person signing in and holds no secret."""


class NotConfigured(SsoError):
    """The tenant has no single sign-on configuration."""


class Refused(SsoError):
    """The person may not sign in (not on the roster, e-mail not verified, no e-mail)."""


class ProviderError(SsoError):
    """The identity provider refused, or answered something that does not verify."""


class Unreachable(ProviderError):
    """The identity provider did not answer (or not with JSON)."""


@dataclass(frozen=True, slots=True)
class SsoConfig:
    """A tenant's single sign-on: its provider, its client (the secret never leaves ingest) and role mapping."""

    tenant: str
    issuer: str
    client_id: str
    admin_groups: tuple[str, ...] = ()
    viewer_groups: tuple[str, ...] = ()
    session_minutes: Decimal = DEFAULT_SESSION_MINUTES
    client_secret_set: bool = False

    def as_json(self) -> dict[str, Any]:
        """What `GET /v1/sso` shows: everything but the secret, which it says is set or not."""
        return {"tenant": self.tenant, "issuer": self.issuer, "client_id": self.client_id,
                "admin_groups": list(self.admin_groups), "viewer_groups": list(self.viewer_groups),
                "session_minutes": float(self.session_minutes), "client_secret_set": self.client_secret_set}


@dataclass(frozen=True, slots=True)
class Person:
    """A rep of the roster as ingest last accepted them."""

    rep_id: str
    email: str | None
    manager_id: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class Mapped:
    """The role (and person) a signed-in person's token gets."""

    email: str
    role: Role
    rep_id: str | None = None
    manager_id: str | None = None
    groups: tuple[str, ...] = field(default=())


def check_issuer(issuer: str) -> str:
    """The issuer URL as stored (no trailing slash), or SsoError: https, or http on a loopback address only (a
    provider on the same machine, for development and tests): ingest fetches it, with the client's secret.

    >>> check_issuer("https://login.example.com/"), check_issuer("http://127.0.0.1:5556/dex")
    ('https://login.example.com', 'http://127.0.0.1:5556/dex')
    """
    parts = urlsplit(issuer.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise SsoError("issuer: an https:// URL without query or fragment, e.g. https://login.example.com")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise SsoError("issuer: https is required (http only for a provider on this machine, 127.0.0.1)")
    return issuer.strip().rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_groups(groups: Iterable[str], what: str) -> tuple[str, ...]:
    """Group names as stored: stripped, each once, in order; SsoError for an empty or over-long one."""
    out: list[str] = []
    for group in groups:
        name = group.strip()
        if not name or len(name) > 200 or any(not c.isprintable() for c in name):
            raise SsoError(f"{what}: a group name is 1-200 printable characters")
        if name not in out:
            out.append(name)
    if len(out) > MAX_GROUPS:
        raise SsoError(f"{what}: at most {MAX_GROUPS} groups")
    return tuple(out)


def check_minutes(minutes: Decimal) -> Decimal:
    if not Decimal(0) < minutes <= MAX_SESSION_MINUTES:
        raise SsoError(f"session_minutes: more than 0 and at most {MAX_SESSION_MINUTES}")
    return minutes


def _email(claims: Mapping[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Refused("your identity provider did not say your e-mail address (ask for the 'email' scope);"
                      " ask your Attain administrator")
    if "email_verified" in claims and claims["email_verified"] is not True:
        raise Refused(f"{email.strip()} is not a verified e-mail address at your identity provider")
    return email.strip().lower()


def groups_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The token's `groups` claim as names (a provider that sends one group as a string: that one)."""
    raw = claims.get("groups")
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list):
        return tuple(g for g in raw if isinstance(g, str))
    return ()


def map_person(claims: Mapping[str, Any], config: SsoConfig, people: Sequence[Person]) -> Mapped:
    """The role of the person a verified ID token speaks for.

    `admin` when one of its groups is an admin group; else `manager` (for that person's rep id) when the e-mail is
    an active person's whom an active person has as manager; else `rep` when it is an active person's; else
    `viewer` when a group is a viewer group; else Refused, naming the e-mail and tenant. `email_verified`, when
    present, must be true. `people` are the tenant's (any subset holding those with this e-mail and their reports).

    >>> cfg = SsoConfig("acme", "https://idp", "attain", admin_groups=("ops",), viewer_groups=("floor",))
    >>> roster = [Person("mia", "Mia@acme.test"), Person("bo", "bo@acme.test", manager_id="mia")]
    >>> map_person({"email": "mia@acme.test"}, cfg, roster).role, map_person({"email": "BO@acme.test"}, cfg,
    ...     roster).rep_id
    ('manager', 'bo')
    >>> map_person({"email": "x@acme.test", "groups": ["floor"]}, cfg, roster).role
    'viewer'
    """
    email, groups = _email(claims), groups_of(claims)
    if set(groups) & set(config.admin_groups):
        return Mapped(email, "admin", groups=groups)
    active = [p for p in people if p.active]
    mine = sorted((p for p in active if (p.email or "").strip().lower() == email), key=lambda p: p.rep_id)
    managers = {p.manager_id for p in active if p.manager_id}
    for person in mine:
        if person.rep_id in managers:
            return Mapped(email, "manager", manager_id=person.rep_id, groups=groups)
    if mine:
        return Mapped(email, "rep", rep_id=mine[0].rep_id, groups=groups)
    if set(groups) & set(config.viewer_groups):
        return Mapped(email, "viewer", groups=groups)
    raise Refused(f"{email} is not on {config.tenant}'s roster; ask your Attain administrator")


def session_days(config: SsoConfig) -> float:
    """A session token's lifetime in days, as tokens.create takes it."""
    return float(config.session_minutes) / 1440


def session_ends(config: SsoConfig, now: datetime) -> datetime:
    return now + timedelta(minutes=float(config.session_minutes))
