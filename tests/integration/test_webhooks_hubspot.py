"""HubSpot webhooks, as HubSpot sends them (v3 signatures, one property per event), end to end."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from shared import topics
from tests.integration.conftest import tenant_cli

SECRET = "hubspot-client-secret-1"


def _sign(secret: str, url: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 scheme: base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    signed = b"POST" + url.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def _event(deal: int, kind: str, occurred_ms: int, prop: str | None = None, value: str | None = None,
           attempt: int = 0, event_id: int = 1) -> dict[str, Any]:
    event: dict[str, Any] = {"eventId": event_id, "subscriptionId": 25, "portalId": 33, "appId": 1160452,
                             "occurredAt": occurred_ms, "subscriptionType": kind, "attemptNumber": attempt,
                             "objectId": deal, "changeSource": "CRM"}
    if prop is not None:
        event |= {"propertyName": prop, "propertyValue": value}
    return event


async def _deliver(url: str, events: list[dict[str, Any]], secret: str = SECRET,
                   timestamp: str | None = None, body: bytes | None = None) -> httpx.Response:
    raw = json.dumps(events).encode()
    timestamp = timestamp or str(int(time.time() * 1000))
    headers = {"content-type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
               "X-HubSpot-Signature-v3": _sign(secret, url, raw, timestamp)}
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body if body is not None else raw, headers=headers)


async def test_hubspot_changes_become_complete_deals_keyed_by_rep_and_retries_publish_nothing(
        services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "hubspot", input=SECRET)
    async with httpx.AsyncClient() as client:
        mapped = await client.put(f"{services['ingest']}/v1/crm/hubspot/users", json={"101": "ana"},
                                  headers=tenant.auth)
    assert mapped.status_code == 200, mapped.text
    url = f"{services['ingest']}/v1/webhooks/hubspot/{tenant.slug}"
    w = await watch(tenant.slug, topics.DEALS.name)
    t0 = int(time.time() * 1000) - 60_000

    first = await _deliver(url, [
        _event(9001, "deal.creation", t0, event_id=1),
        _event(9001, "deal.propertyChange", t0 + 1, "amount", "5000.50", event_id=2),
        _event(9001, "deal.propertyChange", t0 + 1, "dealstage", "appointmentscheduled", event_id=3),
        _event(9001, "deal.propertyChange", t0 + 1, "hubspot_owner_id", "101", event_id=4),
        _event(9001, "deal.propertyChange", t0 + 1, "closedate", "1798675200000", event_id=5),  # 2026-12-31
        _event(9001, "deal.propertyChange", t0 + 1, "hs_deal_stage_probability", "0.2", event_id=6),
        _event(9001, "deal.propertyChange", t0 + 1, "hs_forecast_category", "BEST_CASE", event_id=7),
        _event(9001, "deal.propertyChange", t0 + 1, "hs_forecast_category", "NOT_OURS", event_id=8),  # left out
    ])
    assert first.status_code == 200, first.text
    opened = await w.wait_for(lambda m: m["data"]["deal_id"] == "9001")
    assert opened["key"] == f"{tenant.slug}:ana".encode()
    assert opened["data"] | {"updated_at": None, "created_at": None} == {
        "deal_id": "9001", "rep_id": "ana", "amount": "5000.50", "currency": "EUR", "stage": "open",
        "stage_label": "appointmentscheduled", "created_at": None, "closed_at": None, "updated_at": None,
        "expected_close_at": "2026-12-31T00:00:00Z", "probability": "0.2", "forecast_category": "best_case",
        "properties": None}  # the tenant chose no CRM properties to carry

    won = [_event(9001, "deal.propertyChange", t0 + 5000, "dealstage", "closedwon", event_id=9)]
    assert (await _deliver(url, won)).json()["accepted"] == 1
    closed = await w.wait_for(lambda m: m["data"]["stage"] == "won")
    assert closed["data"]["amount"] == "5000.50" and closed["data"]["rep_id"] == "ana"
    assert closed["data"]["closed_at"] == "2026-12-31T00:00:00Z"  # the close date, now the actual one
    assert [closed["data"][k] for k in ("expected_close_at", "probability", "forecast_category")] == [None] * 3

    retried = [dict(won[0], attemptNumber=1)]
    again = await _deliver(url, retried)
    assert again.status_code == 200 and again.json()["accepted"] == 0
    late = await _deliver(url, [_event(9001, "deal.propertyChange", t0 - 10_000, "amount", "1.00", event_id=10)])
    assert late.json()["accepted"] == 0
    await w.poll(2)
    assert len([m for m in w.seen if m["data"]["deal_id"] == "9001"]) == 2


async def test_hubspot_requests_that_cannot_prove_themselves_are_refused_and_publish_nothing(
        services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "hubspot", input=SECRET)
    url = f"{services['ingest']}/v1/webhooks/hubspot/{tenant.slug}"
    w = await watch(tenant.slug, topics.DEALS.name, topics.ACTIVITIES.name)
    now = int(time.time() * 1000)
    events = [_event(42, "deal.propertyChange", now, "amount", "10", event_id=7)]
    stale = str(now - 6 * 60 * 1000)
    refusals = [
        await _deliver(url, events, secret="not-the-secret"),
        await _deliver(url, events, timestamp=stale),
        await _deliver(url, events, body=json.dumps(events).encode()[:-5]),  # truncated after signing
        await _deliver(f"{services['ingest']}/v1/webhooks/hubspot/no-such-tenant", events),
    ]
    assert [r.status_code for r in refusals] == [401, 401, 401, 401]
    assert "does not match" in refusals[0].text and "older than 5 minutes" in refusals[1].text
    await w.poll(1.5)
    assert w.seen == []


async def test_an_unmapped_hubspot_owner_is_dead_lettered_then_published_once_mapped(services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "hubspot", input=SECRET)
    url = f"{services['ingest']}/v1/webhooks/hubspot/{tenant.slug}"
    w = await watch(tenant.slug, topics.DEALS.name)
    t0 = int(time.time() * 1000) - 1000
    response = await _deliver(url, [
        _event(77, "deal.propertyChange", t0, "amount", "300", event_id=1),
        _event(77, "deal.propertyChange", t0, "dealstage", "closedwon", event_id=2),
        _event(77, "deal.propertyChange", t0, "hubspot_owner_id", "555", event_id=3),
    ])
    assert response.json()["dead_lettered"] == 1
    async with httpx.AsyncClient() as client:
        letters = (await client.get(f"{services['ingest']}/v1/crm/dead-letters", headers=tenant.auth)).json()
        assert [(d["object_id"], d["reason"]) for d in letters] == [
            ("77", "owner: hubspot user '555' is not mapped to a rep")]
        mapped = await client.put(f"{services['ingest']}/v1/crm/hubspot/users", json={"555": "bo"},
                                  headers=tenant.auth)
        assert mapped.json()["reprocessed"] == {"accepted": 1, "duplicate": 0, "still_dead_lettered": 0}
        assert (await client.get(f"{services['ingest']}/v1/crm/dead-letters", headers=tenant.auth)).json() == []
    published = await w.wait_for(lambda m: m["data"]["deal_id"] == "77")
    assert published["data"]["rep_id"] == "bo" and published["data"]["stage"] == "won"


async def test_hubspot_deals_carry_the_properties_the_tenant_chose_and_a_change_of_one_keeps_the_others(
        services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "hubspot", input=SECRET)
    crm = f"{services['ingest']}/v1/crm/hubspot"
    async with httpx.AsyncClient() as client:
        assert (await client.put(f"{crm}/users", json={"101": "ana"}, headers=tenant.auth)).status_code == 200
        refused = await client.put(f"{crm}/properties", json={"properties": ["hs_lead_source", "lead source"]},
                                   headers=tenant.auth)
        assert refused.status_code == 422 and "'lead source': not a property name" in refused.text
        chosen = await client.put(f"{crm}/properties", json={"properties": ["hs_lead_source", "segment"]},
                                  headers=tenant.auth)
        assert chosen.status_code == 200 and chosen.json() == {"properties": ["hs_lead_source", "segment"]}
        assert (await client.get(f"{crm}/properties", headers=tenant.auth)).json() == chosen.json()
        assert (await client.get(f"{services['ingest']}/v1/crm/pipedrive/properties", headers=tenant.auth)).json() \
            == {"properties": []}
    url = f"{services['ingest']}/v1/webhooks/hubspot/{tenant.slug}"
    w = await watch(tenant.slug, topics.DEALS.name)
    t0 = int(time.time() * 1000) - 60_000

    first = await _deliver(url, [
        _event(9101, "deal.propertyChange", t0, "amount", "100", event_id=1),
        _event(9101, "deal.propertyChange", t0, "dealstage", "appointmentscheduled", event_id=2),
        _event(9101, "deal.propertyChange", t0, "hubspot_owner_id", "101", event_id=3),
        _event(9101, "deal.propertyChange", t0, "hs_lead_source", "ORGANIC_SEARCH", event_id=4),
        _event(9101, "deal.propertyChange", t0, "segment", "SMB", event_id=5),
        _event(9101, "deal.propertyChange", t0, "description", "not chosen", event_id=6),
    ])
    assert first.status_code == 200 and first.json()["accepted"] == 1, first.text
    opened = await w.wait_for(lambda m: m["data"]["deal_id"] == "9101")
    assert opened["data"]["properties"] == {"hs_lead_source": "ORGANIC_SEARCH", "segment": "SMB"}

    later = [_event(9101, "deal.propertyChange", t0 + 5000, "segment", "Enterprise", event_id=7)]
    assert (await _deliver(url, later)).json()["accepted"] == 1
    changed = await w.wait_for(lambda m: (m["data"]["properties"] or {}).get("segment") == "Enterprise")
    assert changed["data"]["properties"] == {"hs_lead_source": "ORGANIC_SEARCH", "segment": "Enterprise"}
    assert changed["data"]["amount"] == "100" and changed["data"]["rep_id"] == "ana"
