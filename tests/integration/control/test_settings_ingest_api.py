"""ingest's API for the control room's settings sections, against the real stack: a CRM webhook secret set through
`PUT /v1/crm/{crm}/secret` is stored encrypted exactly as the CLI stores it, never comes back in any answer, and
verifies webhooks; the tenant calendar changed through `/v1/calendar` is the one every service counts; both are for
admins only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from deploy.local import crm_keys
from tests.integration.conftest import DATABASE_URL, Tenant, token_cli
from tests.integration.test_secrets_at_rest import _decrypted, _stored, _values
from tests.integration.test_webhooks_hubspot import _deliver, _event

SECRET = "hubspot-secret-set-in-the-browser-5d1e"


async def _tokens(tenant: Tenant, *roles: str) -> dict[str, dict[str, str]]:
    made = {}
    for role in roles:
        token = (await asyncio.to_thread(token_cli, "create", tenant.slug, "--role", role))["token"]
        made[role] = {"Authorization": f"Bearer {token}"}
    return made


async def test_a_secret_set_through_the_api_is_encrypted_at_rest_never_returned_and_verifies_webhooks(
        services: dict[str, str], tenant: Tenant) -> None:
    ingest = services["ingest"]
    others = await _tokens(tenant, "integration", "viewer")
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        before = (await client.get(f"{ingest}/v1/crm/hubspot/connection")).json()
        assert before["secret_set"] is False
        assert before["webhook_url"] == f"{ingest}/v1/webhooks/hubspot/{tenant.slug}"
        answers.append(put := await client.put(f"{ingest}/v1/crm/hubspot/secret", json={"secret": SECRET}))
        assert put.status_code == 200 and put.json() == {"crm": "hubspot", "set": True}
        answers.append(after := await client.get(f"{ingest}/v1/crm/hubspot/connection"))
        assert after.json()["secret_set"] is True and after.json()["org_id"] is None
        answers.append(bad := await client.put(f"{ingest}/v1/crm/hubspot/secret", json={"secret": f"{SECRET}\nx"}))
        assert bad.status_code == 422 and "one line" in bad.text
        answers.append(await client.put(f"{ingest}/v1/crm/hubspot/secret", json={SECRET: SECRET}))
        answers.append(await client.put(f"{ingest}/v1/crm/hubspot/secret", content=SECRET,
                                        headers={"content-type": "application/json"}))
        answers.append(sf := await client.put(f"{ingest}/v1/crm/salesforce/secret",
                                              json={"secret": SECRET, "org_id": "00D5g000001AbCd"}))
        assert sf.status_code == 200
        answers.append(sf_state := await client.get(f"{ingest}/v1/crm/salesforce/connection"))
        assert sf_state.json()["org_id"] == "00D5g000001AbCd"
        for role, headers in others.items():
            refused = await client.put(f"{ingest}/v1/crm/hubspot/secret", json={"secret": "not mine"}, headers=headers)
            assert refused.status_code == 403, (role, refused.text)
        readable = await client.get(f"{ingest}/v1/crm/hubspot/connection", headers=others["integration"])
        assert readable.status_code == 200 and readable.json()["secret_set"] is True
        assert (await client.get(f"{ingest}/v1/crm/hubspot/connection",
                                 headers=others["viewer"])).status_code == 403
    for answer in answers:
        assert SECRET not in answer.text, answer.text
    # at rest: sealed with CRM_SECRET_KEYS, as the CLI seals it; no column of any row holds it
    keys = crm_keys.env()["CRM_SECRET_KEYS"].split(",")
    assert _decrypted((await _values(DATABASE_URL, tenant.slug))["secret"], *keys) == SECRET
    assert all(SECRET not in row for row in await _stored(DATABASE_URL, tenant.slug))
    # and a webhook signed with it is verified (the 401 of a wrong secret otherwise)
    url = f"{ingest}/v1/webhooks/hubspot/{tenant.slug}"
    signed = await _deliver(url, [_event(9100, "deal.creation", int(time.time() * 1000) - 1000)], secret=SECRET)
    assert signed.status_code == 200, signed.text
    wrong = await _deliver(url, [_event(9101, "deal.creation", int(time.time() * 1000) - 1000)], secret="wrong")
    assert wrong.status_code == 401


async def _coaching_days(coaching: str, tenant: Tenant, year: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        answer = await client.get(f"{coaching}/v1/holidays", params={"year": year})
    assert answer.status_code == 200, answer.text
    return {h["day"]: h for h in answer.json()["holidays"]}


async def _until(check: Any, timeout: float = 30) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.3)


async def test_a_day_off_added_through_the_api_is_the_one_calendar_every_service_counts(
        services: dict[str, str], tenant: Tenant) -> None:
    ingest, coaching = services["ingest"], services["coaching"]
    others = await _tokens(tenant, "integration", "viewer")
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        added = await client.post(f"{ingest}/v1/calendar/days", json={"day": "2031-03-14", "name": "Company day"})
        assert added.status_code == 200, added.text
        assert added.json()["year"] == 2031  # the day's year, when none is asked for

    async def in_coaching() -> bool:
        return bool((await _coaching_days(coaching, tenant, 2031)).get("2031-03-14", {}).get("name") == "Company day")
    await _until(in_coaching)
    async with httpx.AsyncClient(timeout=10, headers=tenant.auth) as client:
        listed = (await client.get(f"{ingest}/v1/calendar", params={"year": 2031})).json()
        assert {"day": "2031-03-14", "name": "Company day", "source": "added"} in listed["holidays"]
        assert listed["added"] == [{"day": "2031-03-14", "name": "Company day"}]
        for role, headers in others.items():
            refused = await client.post(f"{ingest}/v1/calendar/days", json={"day": "2031-03-15", "name": "x"},
                                        headers=headers)
            assert refused.status_code == 403, (role, refused.text)
        assert (await client.delete(f"{ingest}/v1/calendar/days/2031-03-14",
                                    headers=others["integration"])).status_code == 403
        removed = await client.delete(f"{ingest}/v1/calendar/days/2031-03-14", params={"year": 2031})
        assert removed.status_code == 200 and removed.json()["holidays"] == []

    async def gone_from_coaching() -> bool:
        return "2031-03-14" not in await _coaching_days(coaching, tenant, 2031)
    await _until(gone_from_coaching)
