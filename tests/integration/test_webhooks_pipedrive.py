"""Pipedrive webhooks (v1 and v2 bodies, HTTP basic auth as Pipedrive sends it), end to end."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from shared import topics
from tests.integration.conftest import tenant_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "crm" / "pipedrive"
PASSWORD = "pipedrive-basic-auth-password"


def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"attain:{password}".encode()).decode()}


async def _deliver(url: str, body: dict[str, Any], password: str = PASSWORD) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url, json=body, headers=_basic(password))


async def test_pipedrive_v2_won_deal_and_v1_activity_arrive_as_canonical_events(services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "pipedrive", input=PASSWORD)
    async with httpx.AsyncClient() as client:
        mapped = await client.put(f"{services['ingest']}/v1/crm/pipedrive/users", json={"*": "="},
                                  headers=tenant.auth)
    assert mapped.status_code == 200
    url = f"{services['ingest']}/v1/webhooks/pipedrive/{tenant.slug}"
    w = await watch(tenant.slug, topics.DEALS.name, topics.ACTIVITIES.name)

    won = _fixture("v2_deal_won.json")
    won["meta"]["id"] = str(uuid.uuid4())
    response = await _deliver(url, won)
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
    deal = await w.wait_for(lambda m: m["type"] == "deal.upserted")
    assert deal["key"] == f"{tenant.slug}:4343".encode()
    assert {k: deal["data"][k] for k in ("deal_id", "rep_id", "amount", "currency", "stage", "closed_at")} == {
        "deal_id": "315", "rep_id": "4343", "amount": "98765.43", "currency": "USD", "stage": "won",
        "closed_at": "2026-11-25T15:00:00Z"}

    retry = dict(won, meta=dict(won["meta"], attempt=2))
    assert (await _deliver(url, retry)).json()["accepted"] == 0

    activity = _fixture("v1_activity_added.json")
    assert (await _deliver(url, activity)).status_code == 200
    logged = await w.wait_for(lambda m: m["type"] == "activity.logged")
    assert logged["data"]["kind"] == "call" and logged["topic"] == topics.ACTIVITIES.name
    await w.poll(1)
    assert len([m for m in w.seen if m["type"] == "deal.upserted"]) == 1


async def test_pipedrive_with_a_wrong_password_or_a_broken_body_is_refused_and_publishes_nothing(
        services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "pipedrive", input=PASSWORD)
    url = f"{services['ingest']}/v1/webhooks/pipedrive/{tenant.slug}"
    w = await watch(tenant.slug, topics.DEALS.name)
    wrong = await _deliver(url, _fixture("v2_deal_won.json"), password="guess")
    async with httpx.AsyncClient() as client:
        truncated = await client.post(url, content=json.dumps(_fixture("v2_deal_won.json")).encode()[:200],
                                      headers={**_basic(PASSWORD), "content-type": "application/json"})
    assert wrong.status_code == 401 and "wrong" in wrong.text.lower()
    assert truncated.status_code == 400 and "not a valid pipedrive webhook body" in truncated.text
    await w.poll(1.5)
    assert w.seen == []


async def test_a_rotated_secret_keeps_working_during_its_grace_period(services, tenant):
    tenant_cli("set-secret", tenant.slug, "pipedrive", input=PASSWORD)
    tenant_cli("set-secret", tenant.slug, "pipedrive", "--grace-hours", "1", input="the-new-password")
    url = f"{services['ingest']}/v1/webhooks/pipedrive/{tenant.slug}"
    body = _fixture("v2_organization_create.json")  # authenticated, then ignored: publishes nothing
    assert (await _deliver(url, body, password=PASSWORD)).status_code == 200
    assert (await _deliver(url, body, password="the-new-password")).status_code == 200
    tenant_cli("set-secret", tenant.slug, "pipedrive", "--grace-hours", "0", input="third-password")
    assert (await _deliver(url, body, password="the-new-password")).status_code == 401
    assert (await _deliver(url, body, password=PASSWORD)).status_code == 401


async def test_pipedrive_deals_carry_the_fields_the_tenant_chose_custom_ones_by_key(services, tenant, watch):
    tenant_cli("set-secret", tenant.slug, "pipedrive", input=PASSWORD)
    segment, budget = "dcf558aac1ae4e8c4f849ba5e668430d8df9be12", "d4de1c1518b4531717c676029a45911c340390a6"
    async with httpx.AsyncClient() as client:
        crm = f"{services['ingest']}/v1/crm/pipedrive"
        assert (await client.put(f"{crm}/users", json={"*": "="}, headers=tenant.auth)).status_code == 200
        chosen = await client.put(f"{crm}/properties", json={"properties": [segment, budget, "origin"]},
                                  headers=tenant.auth)
        assert chosen.status_code == 200, chosen.text
    url = f"{services['ingest']}/v1/webhooks/pipedrive/{tenant.slug}"
    w = await watch(tenant.slug, topics.DEALS.name)

    won = _fixture("v2_deal_won.json")
    won["meta"]["id"] = str(uuid.uuid4())
    won["data"]["custom_fields"] = {segment: "SMB", budget: {"value": 2300, "currency": "EUR"}, "unchosen": "x"}
    response = await _deliver(url, won)
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
    deal = await w.wait_for(lambda m: m["type"] == "deal.upserted")
    assert deal["data"]["properties"] == {segment: "SMB", budget: "2300", "origin": "ManuallyCreated"}
