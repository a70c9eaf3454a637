"""Reading a CRM's API with an OAuth access token (services/ingest/crm/fetch.py): Pipedrive is sent a Bearer token
instead of its `x-api-token`, and a 401 to an OAuth token is reported (the connection is then due for refresh),
while a 401 to an API token is not. Against a stand-in on loopback, allowed by name."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.ingest.crm.fetch import CrmAccess, Fetcher


@pytest.fixture
def refusing() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A CRM API on loopback that records each request's headers and answers 401."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(401)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


class _Told:
    def __init__(self) -> None:
        self.refused: list[CrmAccess] = []

    async def __call__(self, access: CrmAccess) -> None:
        self.refused.append(access)


async def test_pipedrive_is_sent_the_oauth_access_token_as_a_bearer_token(
        refusing: tuple[str, list[dict[str, str]]]) -> None:
    base, seen = refusing
    fetcher = Fetcher(allowed_hosts=["127.0.0.1"])
    await fetcher.deal(CrmAccess("oauth-access", base, "oauth", "acme", "pipedrive"), "pipedrive", "7")
    await fetcher.deal(CrmAccess("api-token", base), "pipedrive", "7")
    assert seen[0].get("authorization") == "Bearer oauth-access"
    assert "x-api-token" not in seen[0]
    assert seen[1].get("x-api-token") == "api-token"
    assert "authorization" not in seen[1]


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive", "salesforce"])
async def test_a_401_to_an_oauth_access_token_is_reported_once_and_reads_as_not_fetched(
        refusing: tuple[str, list[dict[str, str]]], crm: str) -> None:
    base, _ = refusing
    told = _Told()
    access = CrmAccess("expired", base, "oauth", "acme", crm)
    fetcher = Fetcher(allowed_hosts=["127.0.0.1"], on_unauthorized=told)
    assert await fetcher.deal(access, crm, "7") is None
    assert told.refused == [access]


async def test_a_401_to_an_api_token_is_not_reported(refusing: tuple[str, list[dict[str, str]]]) -> None:
    base, _ = refusing
    told = _Told()
    fetcher = Fetcher(allowed_hosts=["127.0.0.1"], on_unauthorized=told)
    assert await fetcher.deal(CrmAccess("api-token", base, "api_token", "acme", "hubspot"), "hubspot", "7") is None
    assert told.refused == []


def test_an_access_token_is_never_in_the_repr() -> None:
    assert "s3cr3t" not in repr(CrmAccess("s3cr3t", "https://api.hubapi.com", "oauth", "acme", "hubspot"))
