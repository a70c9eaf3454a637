"""The identity provider's side of single sign-on (services/ingest/sso.py): its discovery document and keys
(cached), the authorization code exchanged with PKCE and the client's secret, a refresh, and the ID token checked
(signature against the provider's JWKS, iss, aud, exp, nonce) with Authlib and joserfc.

Every failure is a ProviderError whose message holds no secret, no code and no token.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning  # it sets an "always" filter of its own, once imported
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from services.ingest.sso import ProviderError, Unreachable

with warnings.catch_warnings():  # Authlib 1.9 warns that its httpx integration moves to httpx2; it works as is
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

TIMEOUT_S = 10.0
CACHE_S = 300.0  # a provider's discovery document and keys are read again after this long
LEEWAY_S = 60  # clock skew allowed between the provider and ingest
CLIENT_AUTH = "client_secret_basic"  # the client's secret in the token request's Authorization header
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")


@dataclass(frozen=True, slots=True)
class Provider:
    """What ingest uses of a provider's discovery document, and its keys."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks: dict[str, Any]
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None

    def public(self, client_id: str) -> dict[str, Any]:
        """What kpi needs to send a browser to the provider (`GET /v1/sso/{tenant}/client`)."""
        return {"issuer": self.issuer, "authorization_endpoint": self.authorization_endpoint,
                "end_session_endpoint": self.end_session_endpoint, "client_id": client_id}


_cache: dict[str, tuple[float, Provider]] = {}


async def _get_json(client: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    try:
        response = await client.get(url)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as err:
        raise Unreachable(f"the identity provider's {what} could not be read ({type(err).__name__})") from err
    if not isinstance(body, dict):
        raise ProviderError(f"the identity provider's {what} is not a JSON object")
    return body


async def provider(issuer: str, *, fresh: bool = False) -> Provider:
    """The provider of `issuer` from its discovery document (cached CACHE_S), which must name that issuer."""
    cached = _cache.get(issuer)
    if cached and not fresh and time.monotonic() - cached[0] < CACHE_S:
        return cached[1]
    async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as client:
        doc = await _get_json(client, issuer + "/.well-known/openid-configuration", "discovery document")
        if str(doc.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
            raise ProviderError("the identity provider's discovery document names another issuer")
        try:
            found = Provider(str(doc["issuer"]), str(doc["authorization_endpoint"]), str(doc["token_endpoint"]),
                             await _get_json(client, str(doc["jwks_uri"]), "keys (JWKS)"),
                             doc.get("userinfo_endpoint"), doc.get("end_session_endpoint"))
        except KeyError as err:
            raise ProviderError(f"the identity provider's discovery document has no {err.args[0]}") from None
    _cache[issuer] = (time.monotonic(), found)
    return found


async def exchange(p: Provider, client_id: str, client_secret: str, *, code: str, code_verifier: str,
                   redirect_uri: str) -> dict[str, Any]:
    """The provider's token response for an authorization code (PKCE: its verifier)."""
    async with AsyncOAuth2Client(client_id, client_secret, token_endpoint_auth_method=CLIENT_AUTH,
                                 timeout=TIMEOUT_S) as client:
        try:
            token = await client.fetch_token(p.token_endpoint, grant_type="authorization_code", code=code,
                                             code_verifier=code_verifier, redirect_uri=redirect_uri)
        except OAuthError as err:
            raise ProviderError(f"the identity provider refused the sign-in ({err.error})") from None
        except httpx.HTTPError as err:
            raise Unreachable(f"the identity provider did not answer ({type(err).__name__})") from None
    return dict(token)


async def refresh(p: Provider, client_id: str, client_secret: str, refresh_token: str) -> dict[str, Any]:
    """The provider's token response for a refresh token."""
    async with AsyncOAuth2Client(client_id, client_secret, token_endpoint_auth_method=CLIENT_AUTH,
                                 timeout=TIMEOUT_S) as client:
        try:
            token = await client.refresh_token(p.token_endpoint, refresh_token=refresh_token)
        except OAuthError as err:
            raise ProviderError(f"the identity provider refused to renew the session ({err.error})") from None
        except httpx.HTTPError as err:
            raise Unreachable(f"the identity provider did not answer ({type(err).__name__})") from None
    return dict(token)


def verify_id_token(id_token: str, p: Provider, client_id: str, nonce: str | None, now: float) -> dict[str, Any]:
    """The claims of an ID token whose signature the provider's keys verify, issued by it for `client_id`,
    unexpired at `now` (seconds since the epoch, LEEWAY_S either way) and, when `nonce` is given, carrying it."""
    options: dict[str, Any] = {"iss": {"essential": True, "value": p.issuer},
                               "aud": {"essential": True, "value": client_id},
                               "exp": {"essential": True}, "sub": {"essential": True}}
    if nonce is not None:
        options["nonce"] = {"essential": True, "value": nonce}
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(p.jwks), algorithms=list(ALGORITHMS))  # type: ignore[arg-type]
        jwt.JWTClaimsRegistry(now=int(now), leeway=LEEWAY_S, **options).validate(token.claims)
    except (JoseError, ValueError) as err:
        raise ProviderError(f"the identity provider's ID token does not verify ({type(err).__name__})") from None
    return dict(token.claims)


async def userinfo(p: Provider, access_token: str) -> dict[str, Any]:
    """The person's claims from the userinfo endpoint (a refresh that answered no ID token)."""
    if not p.userinfo_endpoint or not access_token:
        raise ProviderError("the identity provider answered no ID token and has no userinfo endpoint")
    async with httpx.AsyncClient(timeout=TIMEOUT_S, headers={"Authorization": f"Bearer {access_token}"}) as client:
        return await _get_json(client, p.userinfo_endpoint, "userinfo")
