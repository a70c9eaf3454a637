"""Playing the schedule through ingest: on time, in order, in batches, every verdict counted."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from deploy.demo import stream as stream_module
from deploy.demo.book import DealBook
from deploy.demo.org import Quarter
from deploy.demo.simulator import ScheduledEvent, build_scenario
from deploy.demo.stream import EventStream, SimClock, clock_spec
from shared.clock import ScaledClock, clock_from_spec

QUARTER = Quarter.containing(datetime(2026, 11, 26, tzinfo=UTC))


def _deal(n: int, offset: float) -> ScheduledEvent:
    data = {"deal_id": f"d{n}", "rep_id": "r1", "amount": "100.00", "currency": "EUR", "stage": "won",
            "closed_at": "2026-11-02T10:00:00+01:00", "updated_at": f"2026-11-02T10:{n:02d}:00+01:00"}  # fmt: skip
    return ScheduledEvent(offset, {"type": "deal.upserted", "id": f"e{n}", "source": "api",
                                   "time": data["updated_at"], "data": data})  # fmt: skip


def _stream(handler: Any, schedule: list[ScheduledEvent], clock: SimClock | None = None,
            book: DealBook | None = None) -> EventStream:  # fmt: skip
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://ingest")
    clock = clock or SimClock(QUARTER.start, 1.0, 0.0)
    return EventStream(client, "tok", schedule, clock, QUARTER, book or DealBook())


def _answer(statuses: dict[str, str]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer tok"
        events = json.loads(request.content)
        results = [{"index": i, "id": e["id"], "status": statuses.get(e["id"], "accepted"),
                    "reason": "data.amount: bad" if statuses.get(e["id"]) == "rejected" else None}
                   for i, e in enumerate(events)]  # fmt: skip
        rejected = any(r["status"] == "rejected" for r in results)
        return httpx.Response(422 if rejected else 200, json={"results": results})

    return handler


def test_the_clock_spec_is_what_the_services_parse() -> None:
    assert clock_spec(QUARTER.start, 79488.0) == "scaled:2026-09-30T22:00:00Z@79488"
    assert clock_spec(QUARTER.start, 0.5) == "scaled:2026-09-30T22:00:00Z@0.5"
    parsed = clock_from_spec(clock_spec(QUARTER.start, QUARTER.seconds / 100))
    assert parsed.now() >= QUARTER.start


def test_the_clock_stops_where_the_story_ends_for_the_services_and_the_demo_alike() -> None:
    until = QUARTER.start + timedelta(days=80)
    spec = clock_spec(QUARTER.start, 79488.0, until)
    assert spec == "scaled:2026-09-30T22:00:00Z/2026-12-19T22:00:00Z@79488"
    parsed = clock_from_spec(spec)
    assert isinstance(parsed, ScaledClock) and parsed.until == until
    clock = SimClock(QUARTER.start, 86400.0, anchor=0.0, until=until)
    assert clock.now(79.0) == QUARTER.start + timedelta(days=79)
    assert clock.now(81.0) == clock.now(10_000.0) == until


def test_simulated_time_runs_rate_times_as_fast_from_the_anchor() -> None:
    clock = SimClock(QUARTER.start, 3600.0, anchor=50.0)
    assert clock.now(50.0) == QUARTER.start
    assert clock.now(52.0) == QUARTER.start + timedelta(hours=2)
    assert clock.real_seconds(timedelta(hours=1)) == 1.0


def test_due_hands_out_what_has_come_in_order_and_in_batches() -> None:
    schedule = [_deal(n, offset) for n, offset in enumerate([0.0, 0.0, 0.1, 0.1, 0.1, 0.5])]
    stream = _stream(_answer({}), schedule)
    stream._batch_size = 2
    assert [e.event["id"] for e in stream.due(0.1)] == ["e0", "e1"]
    assert [e.event["id"] for e in stream.due(0.1)] == ["e2", "e3"]
    assert [e.event["id"] for e in stream.due(0.1)] == ["e4"]
    assert stream.due(0.1) == [] and not stream.done
    assert [e.event["id"] for e in stream.due(0.6)] == ["e5"] and stream.done


async def test_verdicts_are_counted_and_taken_events_reach_the_book() -> None:
    book = DealBook()
    stream = _stream(_answer({"e1": "duplicate", "e2": "rejected"}), [_deal(n, 0.0) for n in range(3)], book=book)
    await stream.post([item.event for item in stream.due(1.0)])
    stats = stream.stats
    assert (stats.accepted, stats.duplicate, stats.rejected, stats.failed) == (1, 1, 1, 0)
    assert stats.reasons == {"deal.upserted: data.amount: bad": 1}
    assert book.deals_won(QUARTER.start, QUARTER.end) == 2  # the rejected one is not counted


async def test_a_503_is_retried_and_a_401_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "RETRY_BACKOFF_S", 0.0)
    calls: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(503, json={"detail": "retry"})
        return _answer({})(request)

    stream = _stream(flaky, [_deal(0, 0.0)])
    await stream.post([stream.due(1.0)[0].event])
    assert (len(calls), stream.stats.accepted) == (2, 1)

    refused = _stream(lambda request: httpx.Response(401, json={"detail": "invalid token"}), [_deal(0, 0.0)])
    await refused.post([refused.due(1.0)[0].event])
    assert (refused.stats.failed, refused.stats.requests) == (1, 1)
    assert refused.stats.reasons == {"HTTP 401: invalid token": 1}


async def test_an_unreachable_ingest_fails_the_batch_after_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "RETRY_BACKOFF_S", 0.0)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    stream = _stream(down, [_deal(0, 0.0), _deal(1, 0.0)])
    await stream.post([item.event for item in stream.due(1.0)])
    assert stream.stats.failed == 2 and stream.stats.reasons == {"ingest unreachable: ConnectError": 2}


async def test_run_sends_the_whole_quarter_in_schedule_order() -> None:
    scenario = build_scenario(5, QUARTER)
    received: list[str] = []
    sizes: list[int] = []

    def record(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)
        sizes.append(len(events))
        received.extend(e["id"] for e in events)
        return _answer({})(request)

    # anchored a whole quarter ago: everything is due at once
    clock = SimClock(QUARTER.start, 1.0, anchor=-QUARTER.seconds)
    stream = _stream(record, list(scenario.schedule), clock)
    await stream.run()
    assert received == [item.event["id"] for item in scenario.schedule]
    assert max(sizes) == 50 and stream.done and stream.stats.posted == len(scenario.schedule)
