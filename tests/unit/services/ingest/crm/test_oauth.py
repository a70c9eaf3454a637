"""OAuth 2.0 with each CRM (services/ingest/crm/oauth.py) against a local stand-in that serves the vendors'
documented answers (oauth_standin.py): the authorization code flow with PKCE, refreshes before expiry, a revoked
refresh token, revocation, and no secret in any message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.ingest.crm import oauth
from services.ingest.crm.oauth import (
    Client,
    Denied,
    EndpointRefused,
    Refused,
    Revoked,
    StateMismatch,
    TokenSet,
    Unreachable,
    needs_refresh,
)
from services.ingest.crm.oauth_rules import after_failure
from tests.unit.services.ingest.crm.oauth_standin import API_DOMAIN, INSTANCE_URL, OAuthStandIn

CRMS = ["hubspot", "pipedrive", "salesforce"]
CLIENT = Client("attain-app", "s3cr3t-client-secret")
REDIRECT = "https://attain.example/v1/crm/oauth/callback"
LOCAL = ["127.0.0.1"]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LIFETIME = {"hubspot": timedelta(seconds=1800), "pipedrive": timedelta(seconds=3599),
            "salesforce": timedelta(minutes=15)}
API_BASE = {"hubspot": "https://api.hubapi.com", "pipedrive": API_DOMAIN, "salesforce": INSTANCE_URL}


@pytest.fixture(params=CRMS)
def standin(request: pytest.FixtureRequest) -> Iterator[OAuthStandIn]:
    with OAuthStandIn(request.param) as server:
        yield server


async def _authorize(server: OAuthStandIn, state: str, verifier: str) -> dict[str, str]:
    """What the browser brings back: the stand-in's redirect to REDIRECT, its query parameters."""
    url = oauth.authorization_url(server.crm, CLIENT.client_id, REDIRECT, state, verifier,
                                  oauth.endpoints(server.crm, server.base), allowed_hosts=LOCAL)
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def _connect(server: OAuthStandIn) -> TokenSet:
    state, verifier = oauth.new_state(), oauth.new_verifier()
    callback = await _authorize(server, state, verifier)
    return await oauth.exchange_code(server.crm, CLIENT, callback=callback, state=state, code_verifier=verifier,
                                     redirect_uri=REDIRECT, endpoints=oauth.endpoints(server.crm, server.base),
                                     now=NOW, allowed_hosts=LOCAL)


async def _refresh(server: OAuthStandIn, token: str, now: datetime = NOW) -> TokenSet:
    return await oauth.refresh(server.crm, CLIENT, token, endpoints=oauth.endpoints(server.crm, server.base),
                               now=now, allowed_hosts=LOCAL)


async def test_the_authorization_code_flow_with_pkce_grants_tokens_in_each_crms_shape(standin: OAuthStandIn) -> None:
    tokens = await _connect(standin)
    assert tokens.access_token and tokens.refresh_token in standin.live_refresh_tokens()
    assert tokens.expires_at == NOW + LIFETIME[standin.crm]
    assert tokens.api_base_url == API_BASE[standin.crm]
    authorize, exchange = standin.requests
    assert authorize.form["code_challenge_method"] == "S256" and authorize.form["code_challenge"]
    assert exchange.form["grant_type"] == "authorization_code" and exchange.form["code_verifier"]
    assert exchange.form["redirect_uri"] == REDIRECT


async def test_pipedrive_authenticates_the_client_with_http_basic_and_the_others_in_the_body() -> None:
    for crm in CRMS:
        with OAuthStandIn(crm) as server:
            await _connect(server)
            exchange = server.requests[-1]
            if crm == "pipedrive":
                assert exchange.authorization is not None and exchange.authorization.startswith("Basic ")
                assert "client_secret" not in exchange.form
            else:
                assert exchange.form["client_secret"] == CLIENT.client_secret


async def test_the_scopes_are_asked_in_the_url_except_at_pipedrive_whose_app_chooses_them() -> None:
    ends = oauth.endpoints("salesforce")
    url = oauth.authorization_url("salesforce", "app", REDIRECT, "st", "v" * 43, ends)
    assert parse_qs(urlsplit(url).query)["scope"] == ["api refresh_token"]
    assert url.startswith("https://login.salesforce.com/services/oauth2/authorize?")
    url = oauth.authorization_url("pipedrive", "app", REDIRECT, "st", "v" * 43, oauth.endpoints("pipedrive"))
    assert "scope" not in parse_qs(urlsplit(url).query)


async def test_a_wrong_state_is_refused_before_the_code_is_exchanged(standin: OAuthStandIn) -> None:
    verifier = oauth.new_verifier()
    callback = await _authorize(standin, oauth.new_state(), verifier)
    for other in (oauth.new_state(), ""):
        with pytest.raises(StateMismatch):
            await oauth.exchange_code(standin.crm, CLIENT, callback=callback, state=other, code_verifier=verifier,
                                      redirect_uri=REDIRECT, endpoints=oauth.endpoints(standin.crm, standin.base),
                                      now=NOW, allowed_hosts=LOCAL)
    assert [r.method for r in standin.requests] == ["GET"]  # the token endpoint never heard of it


async def test_a_code_with_another_verifier_is_refused_not_taken_for_a_revocation(standin: OAuthStandIn) -> None:
    state = oauth.new_state()
    callback = await _authorize(standin, state, oauth.new_verifier())
    with pytest.raises(Refused) as caught:
        await oauth.exchange_code(standin.crm, CLIENT, callback=callback, state=state,
                                  code_verifier=oauth.new_verifier(), redirect_uri=REDIRECT,
                                  endpoints=oauth.endpoints(standin.crm, standin.base), now=NOW, allowed_hosts=LOCAL)
    assert not isinstance(caught.value, Revoked)
    assert caught.value.error == "invalid_grant" and "verifier" in caught.value.reason


async def test_a_person_who_declines_is_denied() -> None:
    with OAuthStandIn("hubspot", deny=True) as server, pytest.raises(Denied, match="denied"):
        await _connect(server)


def test_an_access_token_is_refreshed_from_five_minutes_before_it_expires() -> None:
    expires = NOW + timedelta(minutes=30)
    assert not needs_refresh(expires, expires - timedelta(minutes=5, seconds=1))
    assert needs_refresh(expires, expires - timedelta(minutes=5))
    assert needs_refresh(expires, expires + timedelta(seconds=1))
    assert needs_refresh(None, NOW)
    assert not needs_refresh(expires, expires - timedelta(minutes=2), margin=timedelta(minutes=1))


async def test_a_refresh_before_expiry_grants_a_new_access_token_and_keeps_the_refresh_token(
        standin: OAuthStandIn) -> None:
    first = await _connect(standin)
    assert first.refresh_token is not None
    due = first.expires_at - timedelta(minutes=5)
    assert needs_refresh(first.expires_at, due)
    second = await _refresh(standin, first.refresh_token, due)
    assert second.access_token != first.access_token
    assert second.refresh_token == first.refresh_token  # Salesforce names none on refresh: the stored one is kept
    assert second.expires_at == due + LIFETIME[standin.crm]
    assert second.api_base_url == API_BASE[standin.crm]
    assert standin.requests[-1].form["grant_type"] == "refresh_token"


@pytest.mark.parametrize(("crm", "reason"), [("hubspot", "refresh token is invalid, expired or revoked"),
                                             ("pipedrive", "Invalid grant: refresh token is invalid"),
                                             ("salesforce", "expired access/refresh token")])
async def test_a_revoked_refresh_token_raises_revoked_with_the_crms_reason(crm: str, reason: str) -> None:
    with OAuthStandIn(crm) as server:
        tokens = await _connect(server)
        assert tokens.refresh_token is not None
        server.revoke_refresh(tokens.refresh_token)
        with pytest.raises(Revoked) as caught:
            await _refresh(server, tokens.refresh_token)
    assert caught.value.reason == reason
    after = after_failure(caught.value, failures=1, expires_at=tokens.expires_at, now=NOW)
    assert (after.status, after.reason, after.retry_at, after.forget_tokens) == ("revoked", reason, None, True)


async def test_a_crm_that_answers_503_or_not_at_all_is_unreachable_for_now(standin: OAuthStandIn) -> None:
    tokens = await _connect(standin)
    assert tokens.refresh_token is not None
    standin.fail_next = 1
    with pytest.raises(Unreachable, match="503"):
        await _refresh(standin, tokens.refresh_token)
    assert (await _refresh(standin, tokens.refresh_token)).access_token  # the next one works
    gone = oauth.endpoints(standin.crm, "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(Unreachable):
        await oauth.refresh(standin.crm, CLIENT, tokens.refresh_token, endpoints=gone, now=NOW, allowed_hosts=LOCAL)


async def test_a_wrong_client_secret_is_refused_not_revoked(standin: OAuthStandIn) -> None:
    tokens = await _connect(standin)
    assert tokens.refresh_token is not None
    with pytest.raises(Refused) as caught:
        await oauth.refresh(standin.crm, Client(CLIENT.client_id, "not-the-secret"), tokens.refresh_token,
                            endpoints=oauth.endpoints(standin.crm, standin.base), now=NOW, allowed_hosts=LOCAL)
    assert not isinstance(caught.value, Revoked) and caught.value.error == "invalid_client"
    assert after_failure(caught.value, failures=1, expires_at=tokens.expires_at, now=NOW).status == "error"


async def test_revocation_ends_the_refresh_token_where_the_crm_offers_it(standin: OAuthStandIn) -> None:
    tokens = await _connect(standin)
    assert tokens.refresh_token is not None
    ends = oauth.endpoints(standin.crm, standin.base)
    done = await oauth.revoke(standin.crm, CLIENT, tokens.refresh_token, endpoints=ends, allowed_hosts=LOCAL)
    assert done is (standin.crm != "pipedrive")
    if done:
        with pytest.raises(Revoked):
            await _refresh(standin, tokens.refresh_token)
        again = await oauth.revoke(standin.crm, CLIENT, tokens.refresh_token, endpoints=ends, allowed_hosts=LOCAL)
        assert again  # a token the CRM no longer knows counts as revoked


async def test_no_secret_code_or_token_is_in_any_message_or_repr(standin: OAuthStandIn) -> None:
    state, verifier = oauth.new_state(), oauth.new_verifier()
    callback = await _authorize(standin, state, verifier)
    tokens = await oauth.exchange_code(standin.crm, CLIENT, callback=callback, state=state, code_verifier=verifier,
                                       redirect_uri=REDIRECT, endpoints=oauth.endpoints(standin.crm, standin.base),
                                       now=NOW, allowed_hosts=LOCAL)
    assert tokens.refresh_token is not None
    secrets = [CLIENT.client_secret, tokens.access_token, tokens.refresh_token, callback["code"], verifier]
    shown = [repr(tokens), str(tokens), repr(CLIENT)]
    standin.revoke_refresh(tokens.refresh_token)
    failures: list[BaseException] = []
    attempts: list[Callable[[], Awaitable[object]]] = [lambda: _refresh(standin, tokens.refresh_token or ""),
                    lambda: oauth.refresh(standin.crm, Client("attain-app", "wrong-" + CLIENT.client_secret),
                                          tokens.refresh_token or "", endpoints=oauth.endpoints(standin.crm,
                                          standin.base), now=NOW, allowed_hosts=LOCAL),
                    lambda: oauth.exchange_code(standin.crm, CLIENT, callback=callback, state=state,
                                                code_verifier=verifier, redirect_uri=REDIRECT,
                                                endpoints=oauth.endpoints(standin.crm, standin.base), now=NOW,
                                                allowed_hosts=LOCAL)]
    for attempt in attempts:
        with pytest.raises(oauth.CrmOAuthError) as caught:
            await attempt()
        failures.append(caught.value)
    for err in failures:
        assert err.__cause__ is None and err.__suppress_context__  # no chained request with the secrets in it
        shown += [str(err), repr(err), *map(str, err.args)]
    assert not [s for s in secrets for text in shown if s in text]


async def test_an_endpoint_must_be_https_on_a_public_address_unless_its_host_is_allowed() -> None:
    async def internal(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]

    plain = oauth.endpoints("salesforce", "http://login.example.com")
    with pytest.raises(EndpointRefused, match="https"):
        await oauth.refresh("salesforce", CLIENT, "rt", endpoints=plain, now=NOW)
    with pytest.raises(EndpointRefused, match="https"):
        oauth.authorization_url("salesforce", "app", REDIRECT, "st", "v" * 43, plain)
    private = oauth.endpoints("salesforce", "https://login.example.com")
    with pytest.raises(EndpointRefused, match="not public"):
        await oauth.refresh("salesforce", CLIENT, "rt", endpoints=private, now=NOW, resolver=internal)


def test_an_endpoint_base_moves_every_endpoint_to_a_sandbox() -> None:
    sandbox = oauth.endpoints("salesforce", "https://test.salesforce.com/")
    assert sandbox == oauth.Endpoints("https://test.salesforce.com/services/oauth2/authorize",
                                      "https://test.salesforce.com/services/oauth2/token",
                                      "https://test.salesforce.com/services/oauth2/revoke")
    assert oauth.endpoints("pipedrive").revoke_url is None
    with pytest.raises(oauth.CrmOAuthError, match="not one of"):
        oauth.endpoints("zoho")
