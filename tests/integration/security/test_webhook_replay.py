"""Native CRM webhooks replayed and tampered with, against the real ingest: refused with 401, or, for a
delivery ingest has already applied, answered as a success that publishes and writes nothing new.

What each CRM's scheme can prove differs, and so do the checks:
- HubSpot signs method, URL, body and a millisecond timestamp (X-HubSpot-Signature-v3): a changed body, another
  tenant's secret and a timestamp outside five minutes are refused.
- Pipedrive sends HTTP basic auth: it proves the sender, not the body, and carries no timestamp, so "changed
  after signing" and "stale" have nothing to check; a wrong or another tenant's password is refused, and a
  replayed delivery, even an older one arriving after a newer, changes nothing.
- Salesforce Outbound Messages carry the URL's token and, when configured, the OrganizationId: another
  tenant's token and a message claiming another organisation are refused; a resent message changes nothing.

The replay rules are ingest's own: a CRM resends until it is answered 2xx, so the same delivery twice must be
answered 200 (Salesforce: acknowledged) and be a no-op, never an error that makes the CRM retry for a day.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.ingest import tenants
from shared import topics
from shared.db import tenant_tx
from tests.integration.security.outside import Org, Outside
from tests.integration.security.records import Record, Records

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "crm"
ORG_ID = "00D5g000004ZaQbEAK"  # the OrganizationId of the Outbound Message fixture


@pytest.fixture
async def settled(outside: Outside) -> AsyncIterator[None]:
    """The test publishes: its events are applied everywhere before the next test looks."""
    yield
    await outside.settle()


def hubspot_deal(deal_id: int, owner: str) -> list[dict[str, Any]]:
    """A new HubSpot deal, as four events of one delivery (one property each), owned by CRM user `owner`."""
    at = int(time.time() * 1000) - 60_000
    base = {"subscriptionId": 25, "portalId": 33, "appId": 1160452, "occurredAt": at, "attemptNumber": 0,
            "objectId": deal_id, "changeSource": "CRM"}
    return [base | {"eventId": 1, "subscriptionType": "deal.creation"}] + [
        base | {"eventId": n, "subscriptionType": "deal.propertyChange", "propertyName": name, "propertyValue": value}
        for n, (name, value) in enumerate([("amount", "5000.50"), ("dealstage", "appointmentscheduled"),
                                           ("hubspot_owner_id", owner)], start=2)]


def deals(published: list[Record], deal_id: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in published
            if r.topic == topics.DEALS.name and json.loads(r.value).get("deal_id") == deal_id]


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"attain:{password}".encode()).decode()}


async def test_a_hubspot_body_changed_after_signing_is_refused(outside: Outside, tenant_a: Org,
                                                               records: Records) -> None:
    """The amount raised in a correctly signed delivery: 401, nothing stored, nothing published."""
    events = hubspot_deal(int(uuid.uuid4().int % 10**9), f"u-{tenant_a.secret}")
    changed = json.dumps([e | {"propertyValue": "9999999"} if e.get("propertyName") == "amount" else e
                          for e in events]).encode()
    before = await outside.snapshot(schemas=("ingest",))
    refused = await outside.hubspot(tenant_a.slug, tenant_a.hubspot_secret, events, body=changed)
    assert (refused.status_code, refused.json()["detail"]) == (401, "X-HubSpot-Signature-v3 does not match the request")
    assert await outside.snapshot(schemas=("ingest",)) == before
    assert await records.new() == []


async def test_a_hubspot_delivery_signed_with_another_tenants_secret_is_refused(
        outside: Outside, tenant_a: Org, tenant_b: Org, records: Records) -> None:
    """B's secret on A's path, and A's on B's: 401 both ways, nothing stored, nothing published."""
    events = hubspot_deal(int(uuid.uuid4().int % 10**9), f"u-{tenant_a.secret}")
    before = await outside.snapshot(schemas=("ingest",))
    for path_tenant, signer in ((tenant_a, tenant_b), (tenant_b, tenant_a)):
        refused = await outside.hubspot(path_tenant.slug, signer.hubspot_secret, events)
        assert refused.status_code == 401 and "does not match" in refused.text
    assert await outside.snapshot(schemas=("ingest",)) == before
    assert await records.new() == []


@pytest.mark.parametrize(("shift_ms", "reason"), [(-6 * 60_000, "older than 5 minutes"),
                                                  (6 * 60_000, "more than 5 minutes in the future")])
async def test_a_hubspot_delivery_outside_the_five_minute_window_is_refused(
        outside: Outside, tenant_a: Org, records: Records, shift_ms: int, reason: str) -> None:
    """A delivery correctly signed with a timestamp six minutes old (a replay) or ahead: 401 naming the window."""
    events = hubspot_deal(int(uuid.uuid4().int % 10**9), f"u-{tenant_a.secret}")
    before = await outside.snapshot(schemas=("ingest",))
    refused = await outside.hubspot(tenant_a.slug, tenant_a.hubspot_secret, events,
                                    timestamp=str(int(time.time() * 1000) + shift_ms))
    assert refused.status_code == 401 and reason in refused.text
    assert await outside.snapshot(schemas=("ingest",)) == before
    assert await records.new() == []


async def test_the_same_signed_hubspot_delivery_twice_publishes_once(
        outside: Outside, tenant_a: Org, records: Records, settled: None) -> None:
    """The exact same request sent twice inside the window: both 200, the second accepts nothing, writes no row
    and publishes nothing; Kafka holds exactly one record of the deal."""
    deal_id = int(uuid.uuid4().int % 10**9)
    events = hubspot_deal(deal_id, f"u-{tenant_a.secret}")
    timestamp = str(int(time.time() * 1000))
    first = await outside.hubspot(tenant_a.slug, tenant_a.hubspot_secret, events, timestamp=timestamp)
    assert (first.status_code, first.json()["accepted"]) == (200, 1), first.text
    after_first = await outside.snapshot(schemas=("ingest",))
    second = await outside.hubspot(tenant_a.slug, tenant_a.hubspot_secret, events, timestamp=timestamp)
    assert (second.status_code, second.json()) == (200, {"accepted": 0, "duplicate": 0, "dead_lettered": 0,
                                                         "changes": 4})
    assert await outside.snapshot(schemas=("ingest",)) == after_first
    published = deals(await records.new(), str(deal_id))
    assert [(d["rep_id"], d["amount"], d["stage"]) for d in published] == [(tenant_a.rep, "5000.50", "open")]


async def test_pipedrive_with_a_wrong_or_another_tenants_password_is_refused(
        outside: Outside, tenant_a: Org, tenant_b: Org, records: Records) -> None:
    """Basic auth with B's password on A's path, A's on B's, or a guess: 401, nothing stored or published."""
    body = json.loads((FIXTURES / "pipedrive" / "v2_deal_won.json").read_text())
    before = await outside.snapshot(schemas=("ingest",))
    async with httpx.AsyncClient(base_url=outside.services["ingest"].url) as client:
        for path_tenant, password in ((tenant_a, tenant_b.pipedrive_secret), (tenant_b, tenant_a.pipedrive_secret),
                                      (tenant_a, "guess")):
            refused = await client.post(f"/v1/webhooks/pipedrive/{path_tenant.slug}", json=body,
                                        headers=basic(password))
            assert (refused.status_code, refused.json()) == (401, {"detail": "wrong HTTP Basic auth password"})
    assert await outside.snapshot(schemas=("ingest",)) == before
    assert await records.new() == []


async def test_a_replayed_pipedrive_delivery_changes_nothing_even_an_older_one(
        outside: Outside, tenant_a: Org, records: Records, settled: None) -> None:
    """A won deal delivered, the same delivery again, then an older delivery of the deal still open (a replay
    from before the win): both replays are answered 200 with nothing accepted, nothing stored, nothing
    published; Kafka holds the won deal once."""
    deal_id = str(uuid.uuid4().int % 10**9)
    won = json.loads((FIXTURES / "pipedrive" / "v2_deal_won.json").read_text())
    won["meta"] |= {"entity_id": deal_id, "id": str(uuid.uuid4())}
    won["data"] |= {"id": int(deal_id), "owner_id": tenant_a.rep}
    older = json.loads(json.dumps(won))
    older["meta"] |= {"id": str(uuid.uuid4()), "timestamp": "2026-11-20T09:00:00.000Z"}
    older["data"] |= {"status": "open", "won_time": None, "close_time": None, "update_time": "2026-11-20T09:00:00Z",
                      "value": 1}
    url = f"/v1/webhooks/pipedrive/{tenant_a.slug}"
    async with httpx.AsyncClient(base_url=outside.services["ingest"].url, headers=basic(tenant_a.pipedrive_secret),
                                 timeout=30) as client:
        assert (await client.put("/v1/crm/pipedrive/users", json={"*": "="}, headers=tenant_a.auth)).status_code == 200
        first = await client.post(url, json=won)
        assert (first.status_code, first.json()["accepted"]) == (200, 1), first.text
        before = await outside.snapshot(schemas=("ingest",))
        for replay in (won, older):
            again = await client.post(url, json=replay)
            assert (again.status_code, again.json()["accepted"], again.json()["dead_lettered"]) == (200, 0, 0)
    assert await outside.snapshot(schemas=("ingest",)) == before
    published = deals(await records.new(), deal_id)
    assert [(d["rep_id"], d["stage"], d["amount"]) for d in published] == [(tenant_a.rep, "won", "98765.43")]


async def test_salesforce_with_another_tenants_token_or_another_organisation_is_refused(
        outside: Outside, tenant_a: Org, tenant_b: Org, records: Records) -> None:
    """B's URL token on A's path, A's on B's, and A's token with the message's OrganizationId changed to another
    org: a SOAP fault with 401, nothing stored or published."""
    async with tenant_tx(outside.services["ingest"].pool, tenant_a.slug) as conn:
        await tenants.set_secret(conn, tenant_a.slug, "salesforce", tenant_a.salesforce_secret, ORG_ID,
                                 box=outside.services["ingest"].app.state.context.box)
    await outside.settle()  # the secret's audit entry published: only the refused deliveries may change anything
    message = (FIXTURES / "salesforce" / "outbound_opportunities.xml").read_bytes()
    other_org = message.replace(ORG_ID.encode(), b"00D5g000004ZaQcEAK")
    before = await outside.snapshot(schemas=("ingest",))
    async with httpx.AsyncClient(base_url=outside.services["ingest"].url,
                                 headers={"content-type": "text/xml; charset=utf-8", "SOAPAction": '""'}) as client:
        for slug, token, body, reason in (
                (tenant_a.slug, tenant_b.salesforce_secret, message, "wrong token"),
                (tenant_b.slug, tenant_a.salesforce_secret, message, "wrong token"),
                (tenant_a.slug, tenant_a.salesforce_secret, other_org, "wrong OrganizationId")):
            refused = await client.post(f"/v1/webhooks/salesforce/{slug}", params={"token": token}, content=body)
            assert refused.status_code == 401 and b"Fault" in refused.content and reason in refused.text
    assert await outside.snapshot(schemas=("ingest",)) == before
    assert await records.new() == []


async def test_a_resent_salesforce_message_is_acknowledged_and_changes_nothing(
        outside: Outside, tenant_a: Org, records: Records, settled: None) -> None:
    """Salesforce resends a message until it is acknowledged: the second copy is acknowledged too, stores and
    publishes nothing; each opportunity reached Kafka once."""
    message = (FIXTURES / "salesforce" / "outbound_opportunities.xml").read_bytes()
    async with httpx.AsyncClient(base_url=outside.services["ingest"].url, timeout=30,
                                 headers={"content-type": "text/xml; charset=utf-8", "SOAPAction": '""'}) as client:
        mapped = await client.put("/v1/crm/salesforce/users", json={"*": "="},
                                  headers=tenant_a.auth | {"content-type": "application/json"})
        assert mapped.status_code == 200
        url = f"/v1/webhooks/salesforce/{tenant_a.slug}"
        first = await client.post(url, params={"token": tenant_a.salesforce_secret}, content=message)
        assert first.status_code == 200 and b"<Ack>true</Ack>" in first.content, first.text
        before = await outside.snapshot(schemas=("ingest",))
        again = await client.post(url, params={"token": tenant_a.salesforce_secret}, content=message)
        assert again.status_code == 200 and b"<Ack>true</Ack>" in again.content
    assert await outside.snapshot(schemas=("ingest",)) == before
    published = [r for r in await records.new() if r.topic == topics.DEALS.name]
    per_deal: dict[str, int] = {}
    for record in published:
        deal_id = json.loads(record.value)["deal_id"]
        per_deal[deal_id] = per_deal.get(deal_id, 0) + 1
    assert per_deal == {"0065g00000Xk1AaAAJ": 1, "0065g00000Xk1AbAAJ": 1, "0065g00000Xk1AcAAJ": 1}
