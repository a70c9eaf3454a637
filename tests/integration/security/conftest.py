"""One run of the four services for the security checks from outside (see `outside.py`): tenants A and B with
the same kinds of data under different ids, settled before the first test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.security.outside import Org, Outside, start, stop
from tests.integration.security.records import Records


@pytest.fixture(scope="package")
async def outside(stack: None) -> AsyncIterator[Outside]:
    world = await start()
    try:
        a, b = await world.org(), await world.org()
        for org in (a, b):
            await world.seed(org)
        await world.settle()
        yield world
    finally:
        await stop(world)


@pytest.fixture(scope="package")
def tenant_a(outside: Outside) -> Org:
    """The caller of the cross-tenant checks."""
    return outside.orgs[0]


@pytest.fixture(scope="package")
def tenant_b(outside: Outside) -> Org:
    """The tenant whose data tenant A must never reach."""
    return outside.orgs[1]


@pytest.fixture(scope="package")
async def kafka(outside: Outside) -> AsyncIterator[Records]:
    records = await Records.open(lambda: {o.slug for o in outside.orgs})
    yield records
    await records.close()


@pytest.fixture
async def records(kafka: Records) -> Records:
    """The run's tenants' records on the watched topics, from the start of the test on."""
    await kafka.new()
    return kafka
