"""A tenant over its request rate gets 429 with Retry-After; other tenants are not affected."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import create_tenant, running
from tests.ports import free_ports


@pytest.fixture(scope="module")
def strict_ingest(services: dict[str, str]) -> Iterator[str]:
    """A second ingest with a tight limit: 5 requests/s, bursts of 10."""
    limits = {"RATE_LIMIT_REQUESTS_PER_S": "5", "RATE_LIMIT_REQUEST_BURST": "10"}
    with running({"ingest": free_ports(1)[0]}, limits, log_suffix="-strict") as urls:
        yield urls["ingest"]


async def test_a_tenant_over_its_rate_gets_429_with_retry_after_and_others_do_not(strict_ingest, tenant):
    url = f"{strict_ingest}/v1/events"
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(*[client.post(url, content=b"[]", headers=tenant.auth) for _ in range(30)])
        other = create_tenant()
        unaffected = await client.post(url, content=b"[]", headers=other.auth)
        await asyncio.sleep(1.2)
        recovered = await client.post(url, content=b"[]", headers=tenant.auth)
    statuses = [r.status_code for r in responses]
    assert statuses.count(400) >= 10 and statuses.count(429) >= 15, statuses  # 400: an empty array is refused
    throttled = next(r for r in responses if r.status_code == 429)
    assert int(throttled.headers["Retry-After"]) >= 1
    assert f"rate limit exceeded for tenant {tenant.slug}" in throttled.text
    assert unaffected.status_code == 400 and recovered.status_code == 400
