"""Fixtures of the reader tests: a started stand-in, a transport allowed to reach it, and a clock that never waits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.ingest.crm.fetch import CrmAccess
from services.ingest.crm.reading.transport import GuardedTransport
from tests.unit.services.ingest.crm.reading.standin import StandIn
from tests.unit.services.ingest.crm.reading.support import FakeTime


@pytest.fixture
def api() -> Iterator[StandIn]:
    with StandIn() as stand_in:
        yield stand_in


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def transport() -> GuardedTransport:
    return GuardedTransport(timeout_s=10, allowed_hosts=["127.0.0.1"])


@pytest.fixture
def access(api: StandIn) -> CrmAccess:
    return CrmAccess("token-1", api.base_url)
