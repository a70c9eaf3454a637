"""OAuth 2.0 with a tenant's CRM, the CRM's side: the authorization URL (authorization code with PKCE, S256), the
code exchanged for tokens, the access token refreshed before it expires, and revocation where the CRM offers it;
through Authlib's AsyncOAuth2Client, as single sign-on does (services/ingest/sso_oidc.py). The decisions (when to
refresh, what a failure means) are crm/oauth_rules.py; the stored connections crm/oauth_store.py.

Each CRM's documented endpoints (`VENDORS`):

- HubSpot: authorize `https://app.hubspot.com/oauth/authorize`, token `https://api.hubapi.com/oauth/2026-03/token`,
  revoke `.../oauth/2026-03/token/revoke` (every parameter in the body, the client's secret too; the v1 endpoints
  `/oauth/v1/token` are deprecated and end on 2027-02-16). Access tokens last 30 minutes (`expires_in`); the
  refresh token lasts until the app is uninstalled or the token revoked. The API is `https://api.hubapi.com`.
  https://developers.hubspot.com/docs/api-reference/latest/authentication/manage-oauth-tokens
  https://developers.hubspot.com/docs/api-reference/latest/authentication/oauth-tokens/revoke-token
  https://developers.hubspot.com/changelog/v1-oauth-api-deprecation
- Pipedrive: authorize `https://oauth.pipedrive.com/oauth/authorize`, token `https://oauth.pipedrive.com/oauth/token`
  with the client authenticated by HTTP Basic. Access tokens last an hour; a refresh token expires after 60 days
  unused. The answer's `api_domain` is the tenant's API base URL. Scopes are chosen on the app in Pipedrive's
  Marketplace Manager, not in the URL; PKCE is not documented (its parameters are sent and, per RFC 6749 3.1 and
  4.1.3, ignored by a server that does not know them). No revocation endpoint is documented: uninstalling the app
  at Pipedrive revokes it.
  https://pipedrive.readme.io/docs/marketplace-oauth-authorization
  https://developers.pipedrive.com/docs/api/v1/Oauth
- Salesforce: authorize `https://login.salesforce.com/services/oauth2/authorize`, token `.../services/oauth2/token`,
  revoke `.../services/oauth2/revoke` (a sandbox: `https://test.salesforce.com`, or the org's My Domain). The
  answer's `instance_url` is the tenant's API base URL. It names no lifetime: the access token lives as long as
  the org's session timeout (15 minutes to 24 hours), so ingest assumes the shortest. Refresh tokens do not expire
  by default but can be revoked; scopes `api refresh_token`.
  https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_web_server_flow.htm&type=5
  https://help.salesforce.com/apex/HTViewHelpDoc?id=remoteaccess_oauth_refresh_token_flow.htm
  https://developer.salesforce.com/docs/platform/mobile-sdk/guide/oauth-revoking-tokens.html

Every endpoint can be moved to another origin per tenant connection (`endpoints(crm, base)`: a Salesforce sandbox,
a local stand-in in tests). So a call is guarded as crm/fetch.py guards its reads: https only, the host resolved
first and refused when any of its addresses is not public, the connection made to the address that was checked
(no second lookup), no redirects, no proxies from the environment. CRM_API_ALLOWED_HOSTS (`allowed_hosts`) exempts
local stand-ins from the address and https checks.

Errors are oauth_rules' CrmOAuthError: `Revoked` (a refresh answered `invalid_grant`), `Refused` (any other OAuth
error), `Denied` (the person declined), `StateMismatch`, `EndpointRefused`, and `Unreachable` (timeout, connection,
5xx, 429, no JSON: transient). No message, repr or chained exception holds a secret, a code or a token.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import warnings
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.deprecate import AuthlibDeprecationWarning  # it sets an "always" filter of its own, once imported

from services.ingest.crm.fetch import Resolver, is_public, resolve
from services.ingest.crm.oauth_rules import (
    CrmOAuthError,
    Denied,
    EndpointRefused,
    Refused,
    Revoked,
    StateMismatch,
    TokenSet,
    Unreachable,
    needs_refresh,
)

with warnings.catch_warnings():  # Authlib 1.9 warns that its httpx integration moves to httpx2; it works as is
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = ["VENDORS", "Client", "CrmOAuthError", "Denied", "EndpointRefused", "Endpoints", "Refused", "Revoked",
           "StateMismatch", "TokenSet", "Unreachable", "Vendor", "authorization_url", "endpoints", "exchange_code",
           "needs_refresh", "new_state", "new_verifier", "refresh", "revoke"]

TIMEOUT_S = 10.0
REFRESH_HINT = "refresh_token"  # RFC 7009 token_type_hint, no secret
DEFAULT_LIFETIME = timedelta(minutes=30)  # when an answer names no lifetime and the vendor documents none


@dataclass(frozen=True, slots=True)
class Vendor:
    """A CRM's documented OAuth endpoints and habits."""

    authorize_url: str
    token_url: str
    revoke_url: str | None
    scopes: tuple[str, ...]
    client_auth: str  # how the token endpoint wants the client's secret: client_secret_post or client_secret_basic
    base_field: str | None  # the answer's field naming the tenant's API base URL
    api_base_url: str | None  # the API's base URL when the answer names none
    lifetime: timedelta | None = None  # assumed when the answer has no expires_in
    scopes_in_url: bool = True  # False: the scopes are chosen on the app at the CRM


VENDORS: dict[str, Vendor] = {
    "hubspot": Vendor(
        "https://app.hubspot.com/oauth/authorize", "https://api.hubapi.com/oauth/2026-03/token",
        "https://api.hubapi.com/oauth/2026-03/token/revoke",
        ("crm.objects.deals.read", "crm.objects.owners.read", "crm.objects.contacts.read"),
        "client_secret_post", None, "https://api.hubapi.com"),
    "pipedrive": Vendor(
        "https://oauth.pipedrive.com/oauth/authorize", "https://oauth.pipedrive.com/oauth/token", None,
        ("deals:read", "activities:read", "users:read"), "client_secret_basic", "api_domain", None,
        scopes_in_url=False),
    "salesforce": Vendor(
        "https://login.salesforce.com/services/oauth2/authorize", "https://login.salesforce.com/services/oauth2/token",
        "https://login.salesforce.com/services/oauth2/revoke", ("api", "refresh_token"), "client_secret_post",
        "instance_url", None, lifetime=timedelta(minutes=15)),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where one tenant connection's authorization, token and revocation requests go."""

    authorize_url: str
    token_url: str
    revoke_url: str | None


@dataclass(frozen=True, slots=True)
class Client:
    """The OAuth client (app) the tenant registered at its CRM for ingest. Its repr hides the secret."""

    client_id: str
    client_secret: str = field(repr=False)


def vendor(crm: str) -> Vendor:
    try:
        return VENDORS[crm]
    except KeyError:
        raise CrmOAuthError(f"crm {crm!r} is not one of {', '.join(VENDORS)}") from None


def endpoints(crm: str, base: str | None = None) -> Endpoints:
    """The CRM's documented endpoints, or the same paths on `base`, an origin (`https://test.salesforce.com`, a
    stand-in's `http://127.0.0.1:8123`).

    >>> endpoints("salesforce", "https://test.salesforce.com").token_url
    'https://test.salesforce.com/services/oauth2/token'
    """
    v = vendor(crm)
    if not base:
        return Endpoints(v.authorize_url, v.token_url, v.revoke_url)
    origin = base.rstrip("/")

    def moved(url: str) -> str:
        return origin + urlsplit(url).path

    return Endpoints(moved(v.authorize_url), moved(v.token_url), moved(v.revoke_url) if v.revoke_url else None)


def new_state() -> str:
    """A fresh `state` for one authorization (256 random bits)."""
    return secrets.token_urlsafe(32)


def new_verifier() -> str:
    """A fresh PKCE code verifier (RFC 7636: 43 to 128 unreserved characters; here 86, 512 random bits)."""
    return secrets.token_urlsafe(64)


def _allowed(hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in hosts if h.strip())


def _checked_url(url: str, allowed: frozenset[str], what: str) -> httpx.URL:
    """`url` when it is https (or http to an allowed host); EndpointRefused otherwise."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as err:
        raise EndpointRefused(f"the {what} is not a URL") from err
    if not parsed.host:
        raise EndpointRefused(f"the {what} names no host")
    if parsed.scheme != "https" and not (parsed.scheme == "http" and parsed.host.lower() in allowed):
        raise EndpointRefused(f"the {what} must be https ({parsed.scheme}:// is not allowed)")
    return parsed


def authorization_url(crm: str, client_id: str, redirect_uri: str, state: str, code_verifier: str,
                      endpoints: Endpoints, *, scopes: Sequence[str] | None = None,
                      allowed_hosts: Iterable[str] = ()) -> str:
    """Where to send the person who authorizes ingest at the CRM: the authorization endpoint with the client,
    `redirect_uri`, `state`, the PKCE challenge of `code_verifier` (S256) and the scopes (`scopes`, else the CRM's
    default; none in the URL for Pipedrive, whose app chooses them). No call is made."""
    v = vendor(crm)
    _checked_url(endpoints.authorize_url, _allowed(allowed_hosts), "authorization endpoint")
    if not state or not code_verifier:
        raise CrmOAuthError("an authorization needs a state and a PKCE code verifier")
    extra: dict[str, str] = {}
    if v.scopes_in_url:
        extra["scope"] = " ".join(scopes if scopes is not None else v.scopes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        client = AsyncOAuth2Client(client_id, code_challenge_method="S256")
    url, _ = client.create_authorization_url(endpoints.authorize_url, state=state, code_verifier=code_verifier,
                                             redirect_uri=redirect_uri, **extra)
    return str(url)


class _Pinned(httpx.AsyncBaseTransport):
    """Sends every request to the address that was checked, the host's name kept for the Host header and TLS."""

    def __init__(self, host: str, address: str) -> None:
        self._host, self._address = host, address.split("%", 1)[0]
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host.lower() != self._host:
            raise EndpointRefused("a request to another host than the one checked")
        request.url = request.url.copy_with(host=self._address)
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": self._host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _transport(url: httpx.URL, allowed: frozenset[str], resolver: Resolver, what: str) -> _Pinned:
    host = url.host.lower()
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await resolver(host, port)
    except OSError as err:
        raise Unreachable(f"the {what}'s host does not resolve ({type(err).__name__})") from None
    refused = [a for a in addresses if not is_public(a)]
    if not addresses or (refused and host not in allowed):
        raise EndpointRefused(f"the {what}'s host {host} resolves to an address that is not public")
    return _Pinned(host, addresses[0])


def _vendor_errors(response: httpx.Response) -> httpx.Response:
    """A token endpoint's refusal as RFC 6749 5.2 has it: HubSpot and Pipedrive also (or only) say `message`,
    which becomes the `error_description`; a refusal without `error` gets `http_<status>`. A 429 is transient."""
    if response.status_code == 429:
        response.raise_for_status()
    if not 400 <= response.status_code < 500:
        return response
    try:
        body = response.json()
    except ValueError:
        return response
    if not isinstance(body, dict) or ("error" in body and "error_description" in body):
        return response
    mended = {**body, "error": str(body.get("error") or f"http_{response.status_code}")}
    if "error_description" not in body and isinstance(body.get("message"), str):
        mended["error_description"] = body["message"]
    return httpx.Response(response.status_code, json=mended, request=response.request)


@asynccontextmanager
async def _oauth_client(crm: str, client: Client, url: str, allowed_hosts: Iterable[str], resolver: Resolver,
                        what: str) -> AsyncIterator[AsyncOAuth2Client]:
    allowed = _allowed(allowed_hosts)
    transport = await _transport(_checked_url(url, allowed, what), allowed, resolver, what)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        oauth = AsyncOAuth2Client(client.client_id, client.client_secret,
                                  token_endpoint_auth_method=vendor(crm).client_auth,
                                  revocation_endpoint_auth_method="client_secret_post", timeout=TIMEOUT_S,
                                  transport=transport, trust_env=False, follow_redirects=False)
    oauth.register_compliance_hook("access_token_response", _vendor_errors)
    oauth.register_compliance_hook("refresh_token_response", _vendor_errors)
    async with oauth:
        yield oauth


@asynccontextmanager
async def _calling(what: str, revoked_on: str | None = None) -> AsyncIterator[None]:
    """Translates what Authlib and httpx raise while calling the CRM's `what` (no chained cause: a request's
    body holds secrets); an OAuth error `revoked_on` is Revoked."""
    try:
        async with asyncio.timeout(TIMEOUT_S):  # the whole call: lookup, connect, every byte
            yield
    except OAuthError as err:
        error = str(err.error or "unknown_error")
        reason = str(err.description) if err.description else None
        if error == revoked_on:
            raise Revoked(reason) from None
        if error == "access_denied":
            raise Denied(error, reason) from None
        raise Refused(error, reason) from None
    except httpx.HTTPStatusError as err:
        code = err.response.status_code
        if code >= 500 or code == 429:
            raise Unreachable(f"the CRM's {what} answered status {code}") from None
        raise Refused(f"http_{code}", f"the CRM's {what} answered status {code}") from None
    except (httpx.HTTPError, OSError, TimeoutError) as err:
        raise Unreachable(f"the CRM's {what} did not answer ({type(err).__name__})") from None
    except ValueError:
        raise Unreachable(f"the CRM's {what} answered no JSON object") from None


def _scopes(value: object, asked: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(s for s in value.replace(",", " ").split() if s)
    if isinstance(value, list):
        return tuple(str(s) for s in value)
    return tuple(asked)


def _token_set(crm: str, answer: Mapping[str, Any], now: datetime, *, refresh_token: str | None,
               allowed: frozenset[str], asked: Sequence[str]) -> TokenSet:
    """A token endpoint's answer as a TokenSet (`refresh_token`: the one kept when the answer names none)."""
    v = vendor(crm)
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise Refused("invalid_response", "the token endpoint answered no access token")
    lifetime = answer.get("expires_in")
    try:
        seconds = int(str(lifetime)) if lifetime is not None else None
    except ValueError:
        seconds = None
    expires = timedelta(seconds=seconds) if seconds and seconds > 0 else v.lifetime or DEFAULT_LIFETIME
    base = answer.get(v.base_field) if v.base_field else None
    if isinstance(base, str) and base:
        base = str(_checked_url(base, allowed, "API base URL the token endpoint named")).rstrip("/")
    else:
        base = v.api_base_url
    fresh = answer.get("refresh_token")
    return TokenSet(access, now + expires, fresh if isinstance(fresh, str) and fresh else refresh_token, base,
                    _scopes(answer.get("scope"), asked))


def _expected_state(callback: Mapping[str, str], state: str) -> None:
    got = callback.get("state") or ""
    if not state or not hmac.compare_digest(got.encode(), state.encode()):
        raise StateMismatch("the authorization's callback carries another state than ingest sent; start again")


async def exchange_code(crm: str, client: Client, *, callback: Mapping[str, str], state: str, code_verifier: str,
                        redirect_uri: str, endpoints: Endpoints, now: datetime, allowed_hosts: Iterable[str] = (),
                        resolver: Resolver = resolve) -> TokenSet:
    """The tokens for the authorization whose callback (the redirect's query parameters) is `callback`: its state
    must be `state` (StateMismatch before any call), its `error` is Denied or Refused, its `code` is exchanged
    with the PKCE `code_verifier` and the same `redirect_uri`."""
    _expected_state(callback, state)
    if callback.get("error"):
        error = callback["error"]
        if error == "access_denied":
            raise Denied(error, callback.get("error_description"))
        raise Refused(error, callback.get("error_description"))
    code = callback.get("code")
    if not code:
        raise Refused("invalid_request", "the authorization's callback carries no code")
    v = vendor(crm)
    async with _calling("token endpoint"), \
            _oauth_client(crm, client, endpoints.token_url, allowed_hosts, resolver, "token endpoint") as oauth:
        answer = await oauth.fetch_token(endpoints.token_url, grant_type="authorization_code", code=code,
                                         code_verifier=code_verifier, redirect_uri=redirect_uri)
    return _token_set(crm, answer, now, refresh_token=None, allowed=_allowed(allowed_hosts), asked=v.scopes)


async def refresh(crm: str, client: Client, refresh_token: str, *, endpoints: Endpoints, now: datetime,
                  scopes: Sequence[str] = (), allowed_hosts: Iterable[str] = (),
                  resolver: Resolver = resolve) -> TokenSet:
    """A new access token for `refresh_token`; the refresh token the CRM rotated to, or the same one when it keeps
    it. Revoked (with the CRM's reason) when the CRM answers `invalid_grant`; Unreachable when it does not answer,
    answers 5xx or 429; Refused for any other refusal. `scopes`: those granted, when the answer names none."""
    if not refresh_token:
        raise Revoked("no refresh token is stored; authorize again")
    async with _calling("token endpoint", revoked_on="invalid_grant"), \
            _oauth_client(crm, client, endpoints.token_url, allowed_hosts, resolver, "token endpoint") as oauth:
        answer = await oauth.refresh_token(endpoints.token_url, refresh_token=refresh_token)
    return _token_set(crm, answer, now, refresh_token=refresh_token, allowed=_allowed(allowed_hosts),
                      asked=scopes or vendor(crm).scopes)


async def revoke(crm: str, client: Client, token: str, *, endpoints: Endpoints, allowed_hosts: Iterable[str] = (),
                 resolver: Resolver = resolve, hint: str = REFRESH_HINT) -> bool:
    """Revoke `token` (a refresh token: its access tokens go with it) at the CRM; False when the CRM documents no
    revocation endpoint (Pipedrive: the tenant uninstalls the app there). A token the CRM no longer knows counts
    as revoked (`invalid_token`)."""
    if endpoints.revoke_url is None:
        return False
    async with _calling("revocation endpoint"), _oauth_client(crm, client, endpoints.revoke_url, allowed_hosts,
                                                              resolver, "revocation endpoint") as oauth:
        response = await oauth.revoke_token(endpoints.revoke_url, token=token, token_type_hint=hint)
        if response.status_code == 400 and _error_of(response) == "invalid_token":
            return True
        response.raise_for_status()
    return True


def _error_of(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("error")) if isinstance(body, dict) and body.get("error") else None

