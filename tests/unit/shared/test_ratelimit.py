"""The HTTP edge's rate limits: failed authentications per client address, reads per credential."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException, Request
from pydantic import ValidationError

from shared import ratelimit
from shared.ratelimit import Buckets, EdgeLimits, client_address, credential, parse_networks
from shared.settings import ServiceSettings

GOOD = "good-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def app_with_limits(clock: Clock, **overrides: object) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/thing")
    async def thing(authorization: str | None = Header(None)) -> dict[str, str]:
        if authorization != f"Bearer {GOOD}":
            raise HTTPException(401, "invalid or revoked bearer token")
        return {"ok": "yes"}

    @app.get("/page")
    async def page(request: Request) -> dict[str, str]:
        if request.cookies.get("session") != GOOD:
            ratelimit.note_failed_authentication(request.scope)
        return {"page": "sign in first"}

    @app.post("/hooks/{tenant}")
    async def hook(tenant: str, x_signature: str | None = Header(None)) -> dict[str, str]:
        if x_signature != f"signed-for-{tenant}":
            raise HTTPException(401, "signature does not match")
        return {"ok": tenant}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    options: dict[str, object] = {"failure_rate": 0.5, "failure_burst": 5, "read_rate": 2.0, "read_burst": 10,
                                  "cookie": "session", "clock": clock, **overrides}
    app.add_middleware(EdgeLimits, **options)  # type: ignore[arg-type]
    return app


def client(app: FastAPI, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 4711)), base_url="http://t")


async def test_bad_tokens_from_one_address_get_429_past_the_burst_and_another_address_does_not() -> None:
    clock = Clock()
    app = app_with_limits(clock)
    async with client(app, "203.0.113.7") as guesser, client(app, "198.51.100.2") as other:
        statuses = [(await guesser.get("/v1/thing", headers={"Authorization": f"Bearer guess-{i}"})).status_code
                    for i in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        # an address in debt waits with any token it has not shown to be good, on any route
        refused = await guesser.get("/healthz", headers={"Authorization": "Bearer yet-another"})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert (await other.get("/v1/thing", headers={"Authorization": "Bearer nope"})).status_code == 401
        assert (await other.get("/v1/thing", headers={"Authorization": f"Bearer {GOOD}"})).status_code == 200
        clock.now += 2 * 5  # the debt is paid at 0.5 tokens a second
        assert (await guesser.get("/v1/thing", headers={"Authorization": "Bearer g"})).status_code == 401


async def test_failures_without_a_credential_count_against_the_address_and_path() -> None:
    """A CRM delivering for many tenants from one address: one tenant's wrong secret does not stop the others."""
    clock = Clock()
    app = app_with_limits(clock)
    async with client(app, "203.0.113.50") as crm:
        wrong = [(await crm.post("/hooks/acme", headers={"X-Signature": "stale"})).status_code for _ in range(7)]
        assert wrong == [401] * 5 + [429] * 2
        assert (await crm.post("/hooks/beta", headers={"X-Signature": "signed-for-beta"})).status_code == 200
        assert (await crm.post("/hooks/beta", headers={"X-Signature": "stale"})).status_code == 401
        assert (await crm.get("/healthz")).status_code == 200


async def test_a_cookie_that_does_not_authenticate_counts_as_a_failure() -> None:
    clock = Clock()
    app = app_with_limits(clock)
    async with client(app, "203.0.113.8") as guesser:
        statuses = [(await guesser.get("/page", headers={"Cookie": f"session=guess{i}"})).status_code
                    for i in range(7)]
    assert statuses == [200] * 5 + [429] * 2


async def test_reads_with_a_good_token_are_limited_per_token_and_not_by_the_addresses_debt() -> None:
    clock = Clock()
    app = app_with_limits(clock)
    async with client(app, "192.0.2.1") as shared_address:
        good = {"Authorization": f"Bearer {GOOD}"}
        assert (await shared_address.get("/v1/thing", headers=good)).status_code == 200
        for i in range(5):  # someone else behind the same address guesses until it is in debt
            await shared_address.get("/v1/thing", headers={"Authorization": f"Bearer guess-{i}"})
        assert (await shared_address.get("/v1/thing", headers={"Authorization": "Bearer x"})).status_code == 429
        statuses = [(await shared_address.get("/v1/thing", headers=good)).status_code for _ in range(11)]
        assert statuses == [200] * 9 + [429] * 2  # the first read took one of the burst of 10
        last = await shared_address.get("/v1/thing", headers=good)
        assert last.status_code == 429 and last.headers["Retry-After"] == "1"
        clock.now += 1
        assert (await shared_address.get("/v1/thing", headers=good)).status_code == 200


async def test_a_revoked_token_is_forgotten_and_counts_against_its_address() -> None:
    clock = Clock()
    app = app_with_limits(clock, failure_burst=1)
    async with client(app, "192.0.2.9") as c:
        assert (await c.get("/healthz", headers={"Authorization": "Bearer was-good"})).status_code == 200
        assert (await c.get("/v1/thing", headers={"Authorization": "Bearer was-good"})).status_code == 401
        assert (await c.get("/v1/thing", headers={"Authorization": "Bearer was-good"})).status_code == 429


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    proxies = parse_networks("10.0.0.0/8, 192.168.1.7")
    assert client_address("203.0.113.9", ["198.51.100.1"], proxies) == "203.0.113.9"
    assert client_address("192.168.1.7", ["198.51.100.1"], proxies) == "198.51.100.1"
    # the client wrote the left-most entries itself: the right-most one a proxy of ours did not add counts
    assert client_address("10.1.2.3", ["6.6.6.6, 198.51.100.1", "10.0.0.9"], proxies) == "198.51.100.1"
    assert client_address("10.1.2.3", ["garbage"], proxies) == "garbage"
    assert client_address("10.1.2.3", [], proxies) == "10.1.2.3"
    assert client_address("::ffff:203.0.113.9", [], ()) == "203.0.113.9"
    assert client_address("2001:db8::1", [], ()) == client_address("2001:db8::ffff:1", [], ()) == "2001:db8::/64"
    assert client_address(None, [], ()) == "unknown"


def test_a_trusted_proxy_setting_that_is_no_network_fails_at_start() -> None:
    with pytest.raises(ValidationError, match=r"TRUSTED_PROXIES: 'proxy\.local' is not an address or network"):
        ServiceSettings(trusted_proxies="10.0.0.0/8, proxy.local")
    assert ServiceSettings().trusted_proxies == ""


def test_the_credential_is_the_bearer_token_else_the_cookie_and_only_its_digest() -> None:
    bearer = [(b"authorization", b"Bearer s3cret"), (b"cookie", b"session=other")]
    assert credential(bearer, "session") == credential([(b"authorization", b"bearer  s3cret ")], None)
    assert "s3cret" not in (credential(bearer, "session") or "")
    assert credential([(b"cookie", b"a=1; session=s3cret")], "session") == credential(bearer, None)
    assert credential([(b"cookie", b"session=s3cret")], None) is None
    assert credential([(b"authorization", b"Basic abc")], "session") is None
    assert credential([(b"cookie", b'session="unterminated')], "session") is None


def test_buckets_refill_go_into_debt_and_keep_to_their_capacity() -> None:
    b = Buckets(rate=1.0, burst=2, capacity=3)
    assert [b.take("a", 0.0) for _ in range(3)] == [0, 0, 1]
    b.charge("a", 0.0, 3)  # debt: 3 tokens short of one
    assert b.wait("a", 0.0) == 4 and b.wait("a", 3.5) == 1 and b.wait("a", 4.0) == 0
    assert b.wait("never-seen", 0.0) == 0 and "never-seen" not in b
    for key in ("b", "c", "d"):
        b.charge(key, 5.0)
    assert len(b) == 3 and "a" not in b  # the least recently used went
    b.forget("b")
    assert "b" not in b
