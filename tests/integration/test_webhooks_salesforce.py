"""Salesforce Outbound Messages (SOAP, URL token, OrganizationId) and CDC JSON, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from shared import topics
from tests.integration.conftest import tenant_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "crm" / "salesforce"
TOKEN = "salesforce-url-token-0123456789"
ORG = "00D5g000004ZaQbEAK"


async def _post(url: str, body: bytes, content_type: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body, headers={"content-type": content_type, "SOAPAction": '""'})


async def test_outbound_messages_are_acknowledged_and_each_opportunity_is_published_once(services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "salesforce", "--org-id", ORG, input=TOKEN)
    async with httpx.AsyncClient() as client:
        await client.put(f"{services['ingest']}/v1/crm/salesforce/users", json={"*": "="}, headers=tenant.auth)
    url = f"{services['ingest']}/v1/webhooks/salesforce/{tenant.slug}?token={TOKEN}"
    w = await watch(tenant.slug, topics.DEALS.name)
    message = (FIXTURES / "outbound_opportunities.xml").read_bytes()

    response = await _post(url, message, "text/xml; charset=utf-8")
    assert response.status_code == 200, response.text
    assert b"<Ack>true</Ack>" in response.content and response.headers["content-type"].startswith("text/xml")
    won = await w.wait_for(lambda m: m["data"]["deal_id"] == "0065g00000Xk1AaAAJ")
    assert won["key"] == f"{tenant.slug}:0055g00000Ab1CdAAE".encode()
    assert (won["data"]["stage"], won["data"]["amount"], won["data"]["currency"]) == ("won", "90000.00", "EUR")
    assert won["data"]["closed_at"] == "2026-11-29T23:00:00Z"  # 30 Nov, midnight in the tenant's Berlin
    await w.wait_for(lambda m: m["data"]["deal_id"] == "0065g00000Xk1AbAAJ" and m["data"]["stage"] == "lost")

    resent = await _post(url, message, "text/xml; charset=utf-8")  # Salesforce redelivers until acked
    assert b"<Ack>true</Ack>" in resent.content
    await w.poll(1.5)
    per_deal = {}
    for m in w.seen:
        per_deal[m["data"]["deal_id"]] = per_deal.get(m["data"]["deal_id"], 0) + 1
    assert set(per_deal.values()) == {1}


async def test_a_wrong_token_or_organization_is_refused_with_a_soap_fault(services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "salesforce", "--org-id", "00D000000000001", input=TOKEN)
    w = await watch(tenant.slug, topics.DEALS.name)
    message = (FIXTURES / "outbound_opportunities.xml").read_bytes()
    base = f"{services['ingest']}/v1/webhooks/salesforce/{tenant.slug}"
    wrong_token = await _post(f"{base}?token=guess", message, "text/xml")
    wrong_org = await _post(f"{base}?token={TOKEN}", message, "text/xml")
    bomb = await _post(f"{base}?token={TOKEN}", (FIXTURES / "outbound_billion_laughs.xml").read_bytes(), "text/xml")
    assert [r.status_code for r in (wrong_token, wrong_org, bomb)] == [401, 401, 401]
    assert all(b"Fault" in r.content for r in (wrong_token, wrong_org, bomb))
    await w.poll(1.5)
    assert w.seen == []


async def test_change_data_capture_updates_complete_the_deal_they_change(services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "salesforce", input=TOKEN)
    async with httpx.AsyncClient() as client:
        await client.put(f"{services['ingest']}/v1/crm/salesforce/users", json={"*": "="}, headers=tenant.auth)
    url = f"{services['ingest']}/v1/webhooks/salesforce/{tenant.slug}?token={TOKEN}"
    w = await watch(tenant.slug, topics.DEALS.name)
    create = (FIXTURES / "cdc_opportunity_create.json").read_bytes()
    update = (FIXTURES / "cdc_opportunity_update.json").read_bytes()
    assert (await _post(url, create, "application/json")).status_code == 200
    created = await w.wait_for(lambda m: m["type"] == "deal.upserted")
    assert (await _post(url, update, "application/json")).status_code == 200
    changed_fields = json.loads(update)
    updated = await w.wait_for(lambda m: m["type"] == "deal.upserted" and m["data"] != created["data"])
    assert updated["data"]["deal_id"] == created["data"]["deal_id"]
    assert updated["data"]["rep_id"] == created["data"]["rep_id"]  # kept from the create: CDC sent only changes
    assert changed_fields  # the fixture is the documented shape, not hand-made for this assertion


async def test_salesforce_opportunities_carry_the_fields_the_tenant_chose_and_cdc_updates_keep_the_others(
        services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "salesforce", input=TOKEN)
    async with httpx.AsyncClient() as client:
        crm = f"{services['ingest']}/v1/crm/salesforce"
        await client.put(f"{crm}/users", json={"*": "="}, headers=tenant.auth)
        chosen = await client.put(f"{crm}/properties", json={"properties": ["LeadSource", "Segment__c"]},
                                  headers=tenant.auth)
        assert chosen.status_code == 200, chosen.text
    url = f"{services['ingest']}/v1/webhooks/salesforce/{tenant.slug}?token={TOKEN}"
    w = await watch(tenant.slug, topics.DEALS.name)
    create = json.loads((FIXTURES / "cdc_opportunity_create.json").read_bytes())
    create["data"]["payload"] |= {"LeadSource": "Web", "Segment__c": "SMB", "Description": "not chosen"}
    update = json.loads((FIXTURES / "cdc_opportunity_update.json").read_bytes())
    update["payload"] |= {"StageName": "Qualification", "IsClosed": False, "IsWon": False,
                          "Segment__c": "Enterprise"}  # an UPDATE: only what changed
    assert (await _post(url, json.dumps(create).encode(), "application/json")).status_code == 200
    created = await w.wait_for(lambda m: m["type"] == "deal.upserted")
    assert created["data"]["properties"] == {"LeadSource": "Web", "Segment__c": "SMB"}
    assert (await _post(url, json.dumps(update).encode(), "application/json")).status_code == 200
    updated = await w.wait_for(lambda m: m["type"] == "deal.upserted" and m["data"] != created["data"])
    assert updated["data"]["properties"] == {"LeadSource": "Web", "Segment__c": "Enterprise"}
