"""Pipedrive's reader against the stand-in: users, deals (live, then deleted) and activities changed since a time,
paged by v2 cursors, resumed from a saved cursor, throttled (services/ingest/crm/reading/pipedrive.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.ingest.crm.fetch import CrmAccess
from services.ingest.crm.reading.pipedrive import PipedriveReader
from services.ingest.crm.reading.transport import GuardedTransport
from tests.unit.services.ingest.crm.reading.standin import (
    PIPEDRIVE_429,
    StandIn,
    at,
    pipedrive_activity,
    pipedrive_deal,
    pipedrive_user,
)
from tests.unit.services.ingest.crm.reading.support import FakeTime, drain

YEAR = datetime(2025, 1, 1, tzinfo=UTC)


def reader(transport: GuardedTransport, fake_time: FakeTime) -> PipedriveReader:
    return PipedriveReader(transport, sleep=fake_time.sleep, clock=fake_time.clock, page_size=100)


async def test_paging_through_270_deals_yields_each_once_in_modification_order_then_the_deleted(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.pipedrive_records["deals"] = [pipedrive_deal(i, at(YEAR, 60 * (300 - i))) for i in range(1, 271)]
    api.pipedrive_records["deals"] += [pipedrive_deal(9001, at(YEAR, 30), deleted=True)]
    records, cursor, pages = await drain(reader(transport, fake_time).changed_deals, access, YEAR)
    assert [r.deal_id for r in records] == [str(i) for i in range(270, 0, -1)] + ["9001"]
    assert records[-1].deleted and not records[0].deleted
    assert cursor is None and pages[-1].high_water == at(YEAR, 60 * 299)
    assert all(r.fields.currency == "USD" for r in records[:-1])


async def test_a_saved_cursor_resumes_exactly_where_the_reading_stopped(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.pipedrive_records["deals"] = [pipedrive_deal(i, at(YEAR, 60 * i)) for i in range(1, 261)]
    first, cursor, _ = await drain(reader(transport, fake_time).changed_deals, access, YEAR, pages=2)
    rest, _, _ = await drain(reader(transport, FakeTime()).changed_deals, access, YEAR, cursor)
    assert [r.deal_id for r in first + rest] == [str(i) for i in range(1, 261)]


async def test_a_429_is_waited_out_for_the_burst_window_reset(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.pipedrive_records["deals"] = [pipedrive_deal(i, at(YEAR, 60 * i)) for i in range(1, 251)]
    api.throttle("/api/v2/deals", PIPEDRIVE_429)
    records, _, _ = await drain(reader(transport, fake_time).changed_deals, access, YEAR)
    assert len(records) == 250
    assert fake_time.sleeps == [2.0]


async def test_done_activities_are_read_and_planned_ones_passed_over(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.pipedrive_records["activities"] = [pipedrive_activity(i, at(YEAR, 60 * i), done=i % 10 != 0)
                                           for i in range(1, 251)]
    records, _, pages = await drain(reader(transport, fake_time).changed_activities, access, YEAR)
    assert len(records) == 225 and not any(p.refused for p in pages)
    first = records[0]
    assert (first.kind, first.owner, first.deal_id, first.duration_s) == ("call", "4343", "7", 900)
    assert first.occurred_at == datetime(2025, 2, 3, 10, 30, tzinfo=UTC)


async def test_a_deal_the_converter_refuses_is_reported_and_the_reading_goes_on(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.pipedrive_records["deals"] = [pipedrive_deal(i, at(YEAR, 60 * i)) for i in range(1, 121)]
    api.pipedrive_records["deals"][9]["add_time"] = "last Tuesday"
    records, _, pages = await drain(reader(transport, fake_time).changed_deals, access, YEAR)
    assert len(records) == 119
    assert [r.record_id for p in pages for r in p.refused] == ["10"]


async def test_users_are_listed_with_email_and_time_zone(
        api: StandIn, access: CrmAccess, transport: GuardedTransport, fake_time: FakeTime) -> None:
    api.pipedrive_users = [pipedrive_user(4343, "Ann Rep", "ann@example.com", "Europe/Tallinn"),
                           pipedrive_user(4344, "Old Rep", "old@example.com", "America/New_York", active=False)]
    users = await reader(transport, fake_time).list_users(access)
    assert [(u.id, u.name, u.email, u.time_zone, u.active) for u in users] == [
        ("4343", "Ann Rep", "ann@example.com", "Europe/Tallinn", True),
        ("4344", "Old Rep", "old@example.com", "America/New_York", False)]
