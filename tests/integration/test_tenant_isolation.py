"""No endpoint reveals or accepts another tenant's data."""

from __future__ import annotations

import time

import httpx

from shared import topics
from tests.factories import rep
from tests.integration.conftest import create_tenant, post, tenant_cli
from tests.integration.test_webhooks_hubspot import SECRET, _deliver, _event


async def test_mappings_dead_letters_events_and_webhooks_stay_with_their_tenant(services, tenant, watch):
    other = create_tenant()
    api = services["ingest"]
    tenant_cli("set-secret", tenant.slug, "hubspot", input=SECRET)
    tenant_cli("set-secret", other.slug, "hubspot", input="the-other-tenants-secret")
    async with httpx.AsyncClient() as client:
        await client.put(f"{api}/v1/crm/hubspot/users", json={"1": "mine"}, headers=tenant.auth)
        assert (await client.get(f"{api}/v1/crm/hubspot/users", headers=other.auth)).json()["users"] == {}
    now = int(time.time() * 1000)
    lacking = [_event(31, "deal.propertyChange", now, "amount", "5")]
    assert (await _deliver(f"{api}/v1/webhooks/hubspot/{tenant.slug}", lacking)).json()["dead_lettered"] == 1
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{api}/v1/crm/dead-letters", headers=other.auth)).json() == []
        assert len((await client.get(f"{api}/v1/crm/dead-letters", headers=tenant.auth)).json()) == 1

    # A delivery signed with one tenant's secret is refused on the other tenant's path.
    refused = await _deliver(f"{api}/v1/webhooks/hubspot/{other.slug}", lacking)
    assert refused.status_code == 401

    # The tenant comes from the token: a body cannot claim another tenant.
    w = await watch(other.slug, topics.ROSTER.name)
    sneaky = rep("spy") | {"tenant": other.slug}
    assert (await post(api, tenant, sneaky)).status_code == 200
    await w.poll(1.5)
    assert w.seen == []
