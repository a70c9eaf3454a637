"""HubSpot's reader against the stand-in: owners, deals and calls changed since a time, paged through the search,
restarted at the search's result cap, resumed from a saved cursor, throttled
(services/ingest/crm/reading/hubspot.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.ingest.crm.fetch import CrmAccess
from services.ingest.crm.reading.hubspot import HubSpotReader
from services.ingest.crm.reading.model import RateLimited
from services.ingest.crm.reading.transport import GuardedTransport
from tests.unit.services.ingest.crm.reading.standin import (
    HUBSPOT_429,
    StandIn,
    at,
    hubspot_call,
    hubspot_deal,
    hubspot_owner,
)
from tests.unit.services.ingest.crm.reading.support import FakeTime, drain

YEAR = datetime(2025, 1, 1, tzinfo=UTC)


def reader(transport: GuardedTransport, fake_time: FakeTime, **kw: int) -> HubSpotReader:
    return HubSpotReader(transport, sleep=fake_time.sleep, clock=fake_time.clock, **kw)


def deals(api: StandIn, count: int, same_second_every: int = 1) -> None:
    api.hubspot_records["deals"] = [hubspot_deal(i, at(YEAR, 3600 * (i // same_second_every)))
                                    for i in range(1, count + 1)]


async def test_paging_through_260_deals_yields_each_once_in_modification_order(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    deals(api, 260)
    api.hubspot_records["deals"].reverse()  # stored out of order: the search sorts
    records, cursor, pages = await drain(reader(transport, fake_time).changed_deals, access, YEAR)
    assert [r.deal_id for r in records] == [str(i) for i in range(1, 261)]
    assert cursor is None and len(pages) == 3
    assert pages[-1].high_water == at(YEAR, 3600 * 260)
    assert records[0].fields.owner == "910901" and records[0].event_id.startswith("fetch:1:")


async def test_only_deals_modified_since_the_time_are_read(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    deals(api, 30)
    records, _, _ = await drain(reader(transport, fake_time).changed_deals, access, at(YEAR, 3600 * 25))
    assert [r.deal_id for r in records] == ["25", "26", "27", "28", "29", "30"]


async def test_the_search_cap_restarts_the_search_from_the_last_time_read_without_repeating_a_deal(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.hubspot_search_cap = 50
    deals(api, 260, same_second_every=3)  # three deals share each modification time, across restarts too
    records, _, _ = await drain(reader(transport, fake_time, page_size=20, search_cap=50).changed_deals, access, YEAR)
    assert [r.deal_id for r in records] == [str(i) for i in range(1, 261)]
    searches = [body for method, path, body in api.requests if path.endswith("/search")]
    assert max(int(b.get("after") or 0) for b in searches if b) + 20 <= 50
    assert len({b["filterGroups"][0]["filters"][0]["value"] for b in searches if b}) > 5  # restarted windows


async def test_a_saved_cursor_resumes_exactly_where_the_reading_stopped(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.hubspot_search_cap = 50
    deals(api, 130, same_second_every=2)
    before = reader(transport, fake_time, page_size=20, search_cap=50)
    first, cursor, _ = await drain(before.changed_deals, access, YEAR, pages=4)
    assert cursor is not None
    after = reader(transport, FakeTime(), page_size=20, search_cap=50)  # a new process, after a crash
    rest, _, _ = await drain(after.changed_deals, access, YEAR, cursor)
    assert [r.deal_id for r in first + rest] == [str(i) for i in range(1, 131)]


async def test_a_429_is_waited_out_as_retry_after_says_and_searches_are_spaced(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    deals(api, 250)
    api.throttle("/crm/v3/objects/deals/search", HUBSPOT_429, times=2)
    records, _, _ = await drain(reader(transport, fake_time).changed_deals, access, YEAR)
    assert len(records) == 250
    assert fake_time.sleeps[:2] == [2.0, 2.0]
    assert all(s == pytest.approx(0.25) for s in fake_time.sleeps[2:])  # four searches a second at most


async def test_a_daily_limit_ends_the_reading_with_the_wait_and_the_cursor_stays_valid(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    deals(api, 250)
    hubspot = reader(transport, fake_time)
    first = await hubspot.changed_deals(access, YEAR, None)
    api.throttle("/crm/v3/objects/deals/search", (429, {}, {"errorType": "RATE_LIMIT", "policyName": "DAILY"}))
    with pytest.raises(RateLimited) as limited:
        await drain(hubspot.changed_deals, access, YEAR, first.cursor)
    assert limited.value.wait_s == 3600
    rest, _, _ = await drain(reader(transport, FakeTime()).changed_deals, access, YEAR, first.cursor)
    assert len(first.records) + len(rest) == 250


async def test_a_deal_the_converter_refuses_is_reported_and_the_reading_goes_on(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    deals(api, 120)
    api.hubspot_records["deals"][4]["properties"]["createdate"] = "the fifth of January"
    records, _, pages = await drain(reader(transport, fake_time).changed_deals, access, YEAR)
    assert len(records) == 119
    assert [(r.record_id, "createdate" in r.problem) for p in pages for r in p.refused] == [("5", True)]


async def test_owners_are_listed_active_and_archived_with_email_and_no_time_zone(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.hubspot_owners = [hubspot_owner(i, f"rep{i}@example.com", "Rep", str(i)) for i in range(1, 151)]
    api.hubspot_owners.append(hubspot_owner(999, "gone@example.com", "Gone", "Rep", archived=True))
    users = await reader(transport, fake_time).list_users(access)
    assert len(users) == 151
    assert (users[0].id, users[0].name, users[0].email, users[0].time_zone, users[0].active) == (
        "1", "Rep 1", "rep1@example.com", None, True)
    assert (users[-1].id, users[-1].active) == ("999", False)


async def test_calls_changed_since_a_time_come_with_their_deal_owner_and_duration(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.hubspot_records["calls"] = [hubspot_call(i, at(YEAR, 60 * i)) for i in range(1, 121)]
    api.hubspot_associations = {"7": [4711]}
    records, cursor, _ = await drain(reader(transport, fake_time).changed_activities, access, YEAR)
    assert cursor is None
    assert [r.activity_id for r in records] == [str(i) for i in range(1, 121)]
    seventh = records[6]
    assert (seventh.kind, seventh.owner, seventh.deal_id, seventh.duration_s) == ("call", "910901", "4711", 95)
    assert seventh.occurred_at == at(YEAR, 420)
