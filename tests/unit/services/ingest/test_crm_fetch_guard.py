"""The CRM API fetcher reaches public addresses only, over https, with each id as exactly one path segment
(services/ingest/crm/fetch.py). The last tests talk to a stand-in on loopback, allowed by name."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from services.ingest.crm.fetch import CrmAccess, Fetcher, FetchRefused, is_public, segment
from services.ingest.crm.model import ActivityChange

INTERNAL = ["127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.0.1", "169.254.169.254", "100.64.0.1",
            "0.0.0.0", "224.0.0.251", "239.255.255.250", "240.0.0.1", "255.255.255.255",
            "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1",
            "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:7f00:1",
            "2002:7f00:1::1", "2002:a00:1::1", "64:ff9b::a00:1"]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_not_public_in_any_spelling(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "104.16.0.1", "2606:4700::1111", "2a00:1450:4001::200e"])
def test_global_unicast_addresses_are_public(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize(("raw", "encoded"), [
    ("4711", "4711"), ("../../admin", "..%2F..%2Fadmin"), ("a/b", "a%2Fb"), ("a?b=c", "a%3Fb%3Dc"),
    ("a#b", "a%23b"), ("%2e%2e", "%252e%252e"), ("a b", "a%20b")])
def test_an_id_becomes_exactly_one_path_segment(raw: str, encoded: str) -> None:
    assert segment(raw) == encoded


@pytest.mark.parametrize("raw", ["", ".", ".."])
def test_an_id_that_a_url_would_resolve_away_is_refused(raw: str) -> None:
    with pytest.raises(FetchRefused):
        segment(raw)


class _Recording(Fetcher):
    """A Fetcher whose connections are recorded instead of made."""

    def __init__(self, addresses: list[str], **kw: Any) -> None:
        async def resolver(host: str, port: int) -> list[str]:
            self.resolved.append((host, port))
            return addresses

        super().__init__(resolver=resolver, **kw)
        self.resolved: list[tuple[str, int]] = []
        self.connected: list[str] = []

    async def _read_from(self, address: str, url: httpx.URL, headers: dict[str, str]) -> bytes:
        self.connected.append(address)
        return b'{"data": {}}'


@pytest.mark.parametrize("addresses", [["10.0.0.5"], ["93.184.216.34", "169.254.169.254"], ["::ffff:127.0.0.1"], []])
async def test_a_host_that_resolves_to_any_internal_address_is_never_connected_to(addresses: list[str]) -> None:
    fetcher = _Recording(addresses)
    assert await fetcher.deal(CrmAccess("t", "https://crm.example.com"), "pipedrive", "1") is None
    assert fetcher.resolved == [("crm.example.com", 443)]
    assert fetcher.connected == []


async def test_plain_http_is_refused_unless_the_host_is_allowed() -> None:
    plain = _Recording(["93.184.216.34"])
    assert await plain.deal(CrmAccess("t", "http://crm.example.com"), "pipedrive", "1") is None
    assert plain.connected == []
    allowed = _Recording(["127.0.0.1"], allowed_hosts=["crm.example.com"])
    await allowed.deal(CrmAccess("t", "http://crm.example.com:8080"), "pipedrive", "1")
    assert allowed.connected == ["127.0.0.1"]


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    fetcher = _Recording(["93.184.216.34", "104.16.0.1"])
    await fetcher.deal(CrmAccess("t", "https://crm.example.com"), "pipedrive", "1")
    assert fetcher.connected == ["93.184.216.34"]


@pytest.fixture
def stand_in() -> Iterator[tuple[str, list[str]]]:
    """A CRM API on loopback that records each request's raw path and answers 404."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", paths
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("deal_id", ["../../admin", "x/../../../admin?all=1#frag", "a%2F..%2Fb"])
async def test_an_id_cannot_change_the_path_the_crm_is_asked(stand_in: tuple[str, list[str]], deal_id: str) -> None:
    base, paths = stand_in
    fetcher = Fetcher(allowed_hosts=["127.0.0.1"])
    for crm in ("hubspot", "pipedrive", "salesforce"):
        await fetcher.deal(CrmAccess("t", base), crm, deal_id)
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    change = ActivityChange(crm="hubspot", event_id="e", activity_id=deal_id, changed_at=at, kind="call", owner=None,
                            occurred_at=at)
    await fetcher.activity(CrmAccess("t", base), "hubspot", change)
    prefixes = ["/crm/v3/objects/deals/", "/api/v2/deals/", "/services/data/v61.0/sobjects/Opportunity/",
                "/crm/v3/objects/calls/"]
    assert len(paths) == 4
    for path, prefix in zip(paths, prefixes, strict=True):
        assert path.startswith(prefix), path
        assert path.split("?")[0][len(prefix):] == segment(deal_id)
