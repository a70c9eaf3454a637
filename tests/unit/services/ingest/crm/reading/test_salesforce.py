"""Salesforce's reader against the stand-in: users and Opportunities changed since a time through queryAll, paged by
nextRecordsUrl, resumed from a saved cursor also after its locator expired, throttled
(services/ingest/crm/reading/salesforce.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.ingest.crm.fetch import CrmAccess
from services.ingest.crm.reading.model import RateLimited
from services.ingest.crm.reading.salesforce import SalesforceReader
from services.ingest.crm.reading.transport import GuardedTransport
from tests.unit.services.ingest.crm.reading.standin import (
    SALESFORCE_403,
    StandIn,
    at,
    salesforce_opportunity,
    salesforce_user,
)
from tests.unit.services.ingest.crm.reading.support import FakeTime, drain

YEAR = datetime(2025, 1, 1, tzinfo=UTC)


def reader(transport: GuardedTransport, fake_time: FakeTime) -> SalesforceReader:
    return SalesforceReader(transport, sleep=fake_time.sleep, clock=fake_time.clock, batch_size=100)


def opportunities(api: StandIn, count: int) -> list[str]:
    api.salesforce_records["Opportunity"] = [salesforce_opportunity(i, at(YEAR, 7 * (i // 2)))
                                             for i in range(count, 0, -1)]
    return [f"006{i:015d}" for i in range(1, count + 1)]


async def test_paging_through_260_opportunities_yields_each_once_in_modification_order_deletions_included(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    ids = opportunities(api, 260)
    api.salesforce_records["Opportunity"][0]["IsDeleted"] = True  # the latest: in the recycle bin
    records, cursor, pages = await drain(reader(transport, fake_time).changed_deals, access, YEAR)
    assert [r.deal_id for r in records] == ids
    assert records[-1].deleted and not records[0].deleted
    assert cursor is None and len(pages) == 3 and pages[-1].high_water == at(YEAR, 7 * 130)
    query = next(p for m, p, b in api.requests)
    assert query.endswith("/queryAll")


async def test_a_saved_cursor_resumes_exactly_also_after_its_query_locator_expired(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    ids = opportunities(api, 260)
    first, cursor, _ = await drain(reader(transport, fake_time).changed_deals, access, YEAR, pages=1)
    api.expire_locators()
    rest, _, _ = await drain(reader(transport, FakeTime()).changed_deals, access, YEAR, cursor)
    assert [r.deal_id for r in first + rest] == ids


async def test_high_api_usage_slows_the_calls_and_the_limit_ends_the_reading(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    opportunities(api, 250)
    api.salesforce_usage = (4500, 5000)
    salesforce = reader(transport, fake_time)
    records, _, _ = await drain(salesforce.changed_deals, access, YEAR)
    assert len(records) == 250 and fake_time.sleeps == [pytest.approx(17.28)] * 2
    api.throttle("/services/data/v61.0/queryAll", SALESFORCE_403)
    with pytest.raises(RateLimited):
        await salesforce.changed_deals(access, YEAR, None)


async def test_an_opportunity_the_converter_refuses_is_reported_and_the_reading_goes_on(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    ids = opportunities(api, 150)
    api.salesforce_records["Opportunity"][-3]["CreatedDate"] = "yesterday"
    records, _, pages = await drain(reader(transport, fake_time).changed_deals, access, YEAR)
    assert len(records) == 149
    assert [r.record_id for p in pages for r in p.refused] == [ids[2]]


async def test_users_are_listed_with_email_and_time_zone(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.salesforce_records["User"] = [salesforce_user(i, f"Rep {i}", f"rep{i}@example.com", "Europe/Paris")
                                      for i in range(1, 251)]
    api.salesforce_records["User"][0]["IsActive"] = False
    users = await reader(transport, fake_time).list_users(access)
    assert len(users) == 250
    assert (users[0].name, users[0].email, users[0].time_zone, users[0].active) == (
        "Rep 1", "rep1@example.com", "Europe/Paris", False)
