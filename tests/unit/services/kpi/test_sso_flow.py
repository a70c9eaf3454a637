"""The dashboard's single sign-on flow, pure parts (services/kpi/dashboard/sso.py): the state, nonce and PKCE
verifier kept in the browser's flow cookie, the provider's URL, and when a session is renewed."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

from services.kpi.dashboard.sso import SCOPES, Flow, Lifetime


def test_a_flow_survives_its_cookie_and_each_flow_is_new() -> None:
    one, two = Flow.start("acme", "/reps/ana?period=2026-Q4"), Flow.start("acme", "/")
    assert Flow.from_cookie(one.cookie()) == one
    assert len({one.state, one.nonce, one.code_verifier, two.state, two.nonce, two.code_verifier}) == 6
    assert 43 <= len(one.code_verifier) <= 128  # RFC 7636's bounds


def test_a_damaged_or_missing_flow_cookie_is_no_flow() -> None:
    good = Flow.start("acme", "/").cookie()
    for bad in (None, "", "not base64!", base64.urlsafe_b64encode(b'{"tenant": "acme"}').decode(), good[:-8]):
        assert Flow.from_cookie(bad) is None


def test_the_state_must_be_the_flows_own() -> None:
    flow = Flow.start("acme", "/")
    assert flow.matches(flow.state)
    assert not flow.matches(flow.state[:-1] + ("A" if flow.state[-1] != "A" else "B"))
    assert not flow.matches("") and not flow.matches(None)


def test_next_is_kept_only_when_it_is_a_path_of_this_site() -> None:
    assert Flow.start("acme", "//evil.example/x").next == "/leaderboard"
    assert Flow.start("acme", "https://evil.example").next == "/leaderboard"
    assert Flow.start("acme", "/check-ins").next == "/check-ins"


def test_the_provider_gets_a_code_request_with_an_s256_challenge_of_the_verifier() -> None:
    flow = Flow.start("acme", "/")
    url = flow.authorization_url("https://idp.test/auth?prompt=login", "attain", "https://kpi.test/signin/sso/callback")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    challenge = base64.urlsafe_b64encode(hashlib.sha256(flow.code_verifier.encode()).digest()).rstrip(b"=").decode()
    assert (parts.netloc, parts.path) == ("idp.test", "/auth")
    assert query == {"prompt": "login", "response_type": "code", "client_id": "attain",
                     "redirect_uri": "https://kpi.test/signin/sso/callback", "scope": SCOPES, "state": flow.state,
                     "nonce": flow.nonce, "code_challenge": challenge, "code_challenge_method": "S256"}
    assert flow.code_verifier not in url


def test_a_session_is_renewed_in_the_last_third_of_its_life_only() -> None:
    life = Lifetime(issued=1_000, expires=1_000 + 3_600)
    assert not life.refresh_due(1_000)
    assert not life.refresh_due(1_000 + 2_399)  # 1,201 s left: more than a third
    assert life.refresh_due(1_000 + 2_401)
    assert life.refresh_due(1_000 + 3_599)
    assert not life.refresh_due(1_000 + 3_600)  # ended: nothing to renew, sign in again


def test_the_session_cookie_holds_the_lifetime_and_nothing_else() -> None:
    life = Lifetime(1_700_000_000, 1_700_003_600)
    assert Lifetime.from_cookie(life.cookie()) == life
    for bad in (None, "", "1-", "x-y", "5-3", "1.5-9"):
        assert Lifetime.from_cookie(bad) is None
    assert life.max_age(1_700_003_000) == 600
    assert life.max_age(1_800_000_000) == 1
