"""OAuth 2.0 connections to a tenant's CRM (services/ingest/crm/oauth.py): what a token set is, when it must be
refreshed, and what a failed refresh means for the connection the control room shows.

Pure: no I/O, and time is a parameter. No message and no repr here holds a secret, a code or a token.

A connection's status:

- `pending`: the tenant's client is set, nobody has authorized ingest yet (or not again since it was revoked);
- `connected`: ingest holds a refresh token and an access token it renews `REFRESH_MARGIN` before expiry;
- `revoked`: the CRM answered `invalid_grant` to a refresh (the tenant uninstalled the app, an admin revoked it,
  the refresh token expired unused): only a person authorizing again mends it, so ingest stops trying and the
  control room says so, with the CRM's reason;
- `error`: the CRM refused otherwise (a wrong client secret, a scope withdrawn) or did not answer while the access
  token ran out; ingest retries after a backoff, and the control room shows the last error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.errors import AttainError, TransientError

Status = Literal["pending", "connected", "revoked", "error"]
STATUSES: tuple[Status, ...] = ("pending", "connected", "revoked", "error")
REFRESH_MARGIN = timedelta(minutes=5)  # an access token is renewed this long before it expires
PENDING_TTL = timedelta(minutes=10)  # an authorization started longer ago than this is refused at its callback
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
MAX_REASON = 300  # a CRM's error text is cut to this many characters before it is stored and shown


class CrmOAuthError(AttainError):
    """Base of what a CRM's OAuth flow raises; no message holds a secret, a code or a token."""


class EndpointRefused(CrmOAuthError):
    """An endpoint ingest will not call: plain http, or a host that resolves to an address that is not public
    (crm/fetch.py's rules; CRM_API_ALLOWED_HOSTS exempts local stand-ins)."""


class StateMismatch(CrmOAuthError):
    """The authorization's callback carries no state, or another one than ingest sent: refused before any call."""


class Refused(CrmOAuthError):
    """The CRM answered with an OAuth error (`error`, and its own description as `reason`)."""

    def __init__(self, error: str, reason: str | None = None) -> None:
        self.error = error
        self.reason = clip(reason or error)
        super().__init__(f"the CRM refused ({error}): {self.reason}")


class Denied(Refused):
    """The person at the CRM declined the authorization (`error` on the callback, usually `access_denied`)."""


class Revoked(Refused):
    """The refresh token no longer works (`invalid_grant`): revoked, or expired unused. Authorize again."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__("invalid_grant", reason)


class Unreachable(CrmOAuthError, TransientError):
    """The CRM's OAuth server did not answer, answered 5xx or no JSON: retry later."""


def clip(text: str) -> str:
    """A CRM's error text as stored and shown: one line, at most MAX_REASON characters.

    >>> clip("refresh token is invalid,\\n expired or revoked")
    'refresh token is invalid, expired or revoked'
    """
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= MAX_REASON else one_line[: MAX_REASON - 1] + "…"


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What a CRM's token endpoint granted: the access token and until when it works (aware), the refresh token,
    the tenant's API base URL when the answer names one (Pipedrive's `api_domain`, Salesforce's `instance_url`),
    and the scopes granted. Its repr shows neither token."""

    access_token: str = field(repr=False)
    expires_at: datetime
    refresh_token: str | None = field(default=None, repr=False)
    api_base_url: str | None = None
    scopes: tuple[str, ...] = ()


def needs_refresh(expires_at: datetime | None, now: datetime, margin: timedelta = REFRESH_MARGIN) -> bool:
    """Whether an access token that expires at `expires_at` must be renewed at `now`: from `margin` before its
    expiry on (and when its expiry is unknown).

    >>> from datetime import UTC
    >>> at = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    >>> [needs_refresh(at, datetime(2025, 3, 1, 12, m, tzinfo=UTC)) for m in (24, 25, 31)]
    [False, True, True]
    """
    return expires_at is None or now >= expires_at - margin


def pending_expired(created_at: datetime, now: datetime, ttl: timedelta = PENDING_TTL) -> bool:
    """Whether an authorization started at `created_at` is too old for its callback at `now`."""
    return now - created_at > ttl


def backoff(failures: int) -> timedelta:
    """How long to wait before the next refresh after `failures` failed ones in a row: BACKOFF_FIRST, doubled
    each time, at most BACKOFF_MAX.

    >>> [int(backoff(n).total_seconds() // 60) for n in (1, 2, 3, 7, 20)]
    [1, 2, 4, 60, 60]
    """
    doubled: timedelta = BACKOFF_FIRST * 2 ** min(max(failures, 1) - 1, 16)
    return min(doubled, BACKOFF_MAX)


@dataclass(frozen=True, slots=True)
class AfterFailure:
    """What a failed refresh does to the connection: its status, the reason shown, when to try again (None:
    never, until someone authorizes again), whether the stored tokens are forgotten, and the failures in a row."""

    status: Status
    reason: str
    retry_at: datetime | None
    forget_tokens: bool
    failures: int


def after_failure(error: CrmOAuthError, *, failures: int, expires_at: datetime | None,
                  now: datetime) -> AfterFailure:
    """The connection after a refresh that raised `error`, its `failures`-th in a row (counting this one), its
    access token expiring at `expires_at`.

    A revoked refresh token ends the connection (`revoked`, tokens forgotten, no retry). Any other failure is
    retried after `backoff(failures)`; the connection stays `connected` while a transient failure leaves its
    access token working, and turns `error` once the token has run out or when the CRM refused outright.

    >>> from datetime import UTC
    >>> now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    >>> after_failure(Revoked("refresh token is invalid"), failures=1, expires_at=now, now=now).status
    'revoked'
    >>> later = now + timedelta(minutes=4)
    >>> after_failure(Unreachable("status 503"), failures=1, expires_at=later, now=now).status
    'connected'
    >>> after_failure(Unreachable("status 503"), failures=3, expires_at=now, now=now).retry_at == later
    True
    """
    if isinstance(error, Revoked):
        return AfterFailure("revoked", error.reason, None, True, failures)
    reason = error.reason if isinstance(error, Refused) else clip(str(error))
    still_works = expires_at is not None and now < expires_at
    status: Status = "connected" if isinstance(error, Unreachable) and still_works else "error"
    return AfterFailure(status, reason, now + backoff(failures), False, failures)
