"""A webhook that lacks fields is completed from the CRM's API when the tenant gave a token
(here a local stand-in answering in HubSpot's documented CRM v3 format); without one it waits."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from shared import topics
from tests.integration.conftest import tenant_cli
from tests.integration.test_webhooks_hubspot import SECRET, _deliver, _event

API_TOKEN = "pat-na1-standin-token"


class _HubSpotStandIn(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        _HubSpotStandIn.seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
        if not self.path.startswith("/crm/v3/objects/deals/4711"):
            self.send_response(404)
            self.end_headers()
            return
        body = {"id": "4711", "properties": {
            "amount": "7777.70", "dealstage": "closedwon", "hubspot_owner_id": "301", "deal_currency_code": "EUR",
            "closedate": "2026-11-20T10:00:00.000Z", "createdate": "2026-10-02T08:00:00.000Z", "dealname": "Initech",
            "hs_object_id": "4711"}, "createdAt": "2026-10-02T08:00:00.000Z",
            "updatedAt": "2026-11-20T10:00:01.000Z", "archived": False}
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hubspot_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubSpotStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def _map_everyone(url: str, tenant: Any) -> None:
    async with httpx.AsyncClient() as client:
        await client.put(f"{url}/v1/crm/hubspot/users", json={"*": "="}, headers=tenant.auth)


async def test_a_stage_only_win_is_completed_from_the_crm_api(services, tenant, watch, hubspot_api):
    tenant_cli("set-secret", tenant.slug, "hubspot", input=SECRET)
    tenant_cli("set-api-token", tenant.slug, "hubspot", "--base-url", hubspot_api, input=API_TOKEN)
    await _map_everyone(services["ingest"], tenant)
    w = await watch(tenant.slug, topics.DEALS.name)
    url = f"{services['ingest']}/v1/webhooks/hubspot/{tenant.slug}"
    now = int(time.time() * 1000)
    response = await _deliver(url, [_event(4711, "deal.propertyChange", now, "dealstage", "closedwon")])
    assert response.json()["accepted"] == 1, response.text
    deal = await w.wait_for(lambda m: m["data"]["deal_id"] == "4711")
    assert (deal["data"]["amount"], deal["data"]["rep_id"], deal["data"]["stage"]) == ("7777.70", "301", "won")
    assert deal["data"]["closed_at"] == "2026-11-20T10:00:00Z"
    call = _HubSpotStandIn.seen[-1]
    assert call["auth"] == f"Bearer {API_TOKEN}" and "properties=amount" in call["path"]


async def test_without_a_token_the_deal_waits_and_the_dead_letter_says_what_is_missing(services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "hubspot", input=SECRET)
    await _map_everyone(services["ingest"], tenant)
    w = await watch(tenant.slug, topics.DEALS.name)
    url = f"{services['ingest']}/v1/webhooks/hubspot/{tenant.slug}"
    now = int(time.time() * 1000)
    response = await _deliver(url, [_event(4712, "deal.propertyChange", now, "dealstage", "closedwon")])
    assert response.json() == {"accepted": 0, "duplicate": 0, "dead_lettered": 1, "changes": 1}
    async with httpx.AsyncClient() as client:
        letters = (await client.get(f"{services['ingest']}/v1/crm/dead-letters", headers=tenant.auth)).json()
    assert [d["reason"] for d in letters] == ["amount: not received yet; owner: not received yet"]
    later = await _deliver(url, [_event(4712, "deal.propertyChange", now + 1, "amount", "10", event_id=2),
                                 _event(4712, "deal.propertyChange", now + 1, "hubspot_owner_id", "9", event_id=3)])
    assert later.json()["accepted"] == 1
    deal = await w.wait_for(lambda m: m["data"]["deal_id"] == "4712")
    assert (deal["data"]["stage"], deal["data"]["amount"], deal["data"]["rep_id"]) == ("won", "10", "9")
