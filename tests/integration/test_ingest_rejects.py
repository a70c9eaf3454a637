"""Bad input gets a 4xx that names the problem, and nothing of it reaches Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from shared import topics
from tests.factories import deal, rep
from tests.integration.conftest import post

NOW = datetime.now(UTC)


def _missing_rep() -> dict:
    event = deal("d-x", "cy", "10", updated_at=NOW)
    del event["data"]["rep_id"]
    return event


def _unknown_type() -> dict:
    return {**rep("cy"), "type": "deal.exploded"}


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        (b'{"type": "rep.upserted", "id": ', 400, "malformed JSON"),
        (_unknown_type(), 422, "unknown event type 'deal.exploded'"),
        (_missing_rep(), 422, "data.rep_id: Field required"),
        (deal("d-neg", "cy", "-1.00", updated_at=NOW), 422, "data.amount: Input should be greater than or equal to 0"),
    ],
    ids=["malformed-json", "unknown-type", "missing-field", "negative-amount"],
)
async def test_bad_events_are_refused_by_name_and_never_published(services, tenant, watch, body, status, names):
    w = await watch(tenant.slug, *(t.name for t in (topics.DEALS, topics.ACTIVITIES, topics.ROSTER, topics.TARGETS)))
    if isinstance(body, bytes):
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{services['ingest']}/v1/events", content=body,
                                         headers={**tenant.auth, "content-type": "application/json"})
    else:
        response = await post(services["ingest"], tenant, body)
    assert response.status_code == status
    assert names in response.text

    sentinel = rep("sentinel")
    assert (await post(services["ingest"], tenant, sentinel)).status_code == 200
    await w.wait_for(lambda m: m["id"] == sentinel["id"])
    await w.poll(1)
    assert [m["id"] for m in w.seen] == [sentinel["id"]]


async def test_a_bad_token_is_refused_and_publishes_nothing(services, tenant, watch):
    w = await watch(tenant.slug, topics.ROSTER.name)
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{services['ingest']}/v1/events", json=rep("cy"),
                                     headers={"Authorization": "Bearer not-a-real-token"})
        anonymous = await client.post(f"{services['ingest']}/v1/events", json=rep("cy"))
    assert response.status_code == 401 and "invalid, expired or revoked bearer token" in response.text
    assert anonymous.status_code == 401 and "missing bearer token" in anonymous.text
    await w.poll(2)
    assert w.seen == []
