"""The Streaming API (CometD) client against the local Bayeux stand-in: delivery in order, resumption from the
stored replay id, rehandshakes, expired replay ids, expired tokens, and the events read as deal changes.

No Kafka, no PostgreSQL: the stand-in runs on 127.0.0.1 in a thread; its long-poll is a tenth of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.ingest.crm import salesforce_stream
from services.ingest.crm.model import DealChange, DealFields
from services.ingest.crm.salesforce_stream import (
    ALL_RETAINED,
    NEW_ONLY,
    OPPORTUNITY_CHANGES,
    Gap,
    Preset,
    SalesforceStream,
    StreamAuthError,
    StreamClosed,
    StreamConfig,
    StreamEvent,
)
from tests.unit.services.ingest.crm.cometd_standin import CometdStandin

# Salesforce's CDC bodies, written from the Change Data Capture Developer Guide (tests/fixtures/.../README.md)
FIXTURES = Path(__file__).parents[4] / "fixtures" / "crm" / "salesforce"
WAIT_S = 5.0


def cdc_payload(name: str) -> dict[str, Any]:
    """The `payload` of a fixture, bare or in its CometD envelope."""
    body = json.loads((FIXTURES / name).read_text())
    payload: dict[str, Any] = body.get("data", body)["payload"]
    return payload


def opportunity_update(n: int) -> dict[str, Any]:
    """A documented UPDATE event (StageName changed), numbered by its transaction key."""
    payload = cdc_payload("cdc_opportunity_update.json")
    return payload | {"ChangeEventHeader": payload["ChangeEventHeader"] | {"transactionKey": f"tx-{n:04d}"}}


class Subscriber:
    """The caller's side: stores events and their replay id together, as one transaction would."""

    def __init__(self, stored: int | None = None, tokens: tuple[str, ...] = ()) -> None:
        self.stored: dict[str, int] = {} if stored is None else {OPPORTUNITY_CHANGES: stored}
        self.received: list[StreamEvent] = []
        self.batches = 0
        self.gaps: list[Gap] = []
        self.errors: list[str] = []
        self.tokens = list(tokens)
        self.refreshes = 0

    async def load_replay(self, channel: str) -> int | None:
        return self.stored.get(channel)

    async def on_events(self, events: list[StreamEvent]) -> None:
        self.batches += 1
        self.received.extend(events)
        for event in events:
            self.stored[event.channel] = event.replay_id

    async def on_gap(self, gap: Gap) -> None:
        self.gaps.append(gap)

    async def refresh_token(self) -> str:
        self.refreshes += 1
        return self.tokens.pop(0)

    async def on_error(self, message: str) -> None:
        self.errors.append(message)

    def replay_ids(self) -> list[int]:
        return [event.replay_id for event in self.received]

    def stream(self, salesforce: CometdStandin, token: str = "token-1", *,
               on_expired: Preset = ALL_RETAINED, first_replay: Preset = ALL_RETAINED) -> SalesforceStream:  # fmt: skip
        config = StreamConfig(instance_url=salesforce.url, first_replay=first_replay, on_expired=on_expired,
                              poll_margin_s=2.0, request_timeout_s=2.0, backoff_s=(0.01, 0.05))  # fmt: skip
        return SalesforceStream(config, token, load_replay=self.load_replay, on_events=self.on_events,
                                on_gap=self.on_gap, refresh_token=self.refresh_token, on_error=self.on_error)


@pytest.fixture
def salesforce() -> Iterator[CometdStandin]:
    with CometdStandin(poll_s=0.1) as standin:
        yield standin


@contextlib.asynccontextmanager
async def running(stream: SalesforceStream) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - polling a server in another thread
            await asyncio.sleep(0.01)
    assert condition(), what


async def subscribed(salesforce: CometdStandin, count: int = 1) -> None:
    await until(lambda: len(salesforce.subscriptions) >= count, "the client subscribed")


# --- delivery ---------------------------------------------------------------------------------------------------


async def test_events_reach_on_events_in_order_with_their_replay_ids(salesforce: CometdStandin) -> None:
    subscriber = Subscriber()
    before = [salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(n)) for n in range(3)]
    async with running(subscriber.stream(salesforce)):
        await until(lambda: len(subscriber.received) == 3, "the retained events arrived")
        after = [salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(n)) for n in range(3, 6)]
        await until(lambda: len(subscriber.received) == 6, "the new events arrived")
    assert subscriber.replay_ids() == before + after
    assert [event.payload["ChangeEventHeader"]["transactionKey"] for event in subscriber.received] == [  # type: ignore[index]
        f"tx-{n:04d}" for n in range(6)]
    assert {event.channel for event in subscriber.received} == {OPPORTUNITY_CHANGES}
    assert salesforce.subscriptions == [(OPPORTUNITY_CHANGES, ALL_RETAINED)]  # nothing stored: every retained event


async def test_a_client_started_without_a_stored_replay_id_and_new_only_skips_the_retained_events(
        salesforce: CometdStandin) -> None:  # fmt: skip
    subscriber = Subscriber()
    salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(0))
    async with running(subscriber.stream(salesforce, first_replay=NEW_ONLY)):
        await subscribed(salesforce)
        fresh = salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(1))
        await until(lambda: len(subscriber.received) == 1, "the new event arrived")
    assert subscriber.replay_ids() == [fresh]


async def test_a_restarted_client_gets_exactly_the_events_after_its_stored_replay_id(salesforce: CometdStandin) -> None:
    subscriber = Subscriber()
    first = [salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(n)) for n in range(3)]
    async with running(subscriber.stream(salesforce)):
        await until(lambda: len(subscriber.received) == 3, "the first events arrived")
    assert subscriber.stored[OPPORTUNITY_CHANGES] == first[-1]
    while_stopped = [salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(n)) for n in range(3, 5)]

    async with running(subscriber.stream(salesforce)):
        await until(lambda: len(subscriber.received) == 5, "the events published while stopped arrived")
        later = salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(5))
        await until(lambda: len(subscriber.received) == 6, "a later event arrived")

    assert subscriber.replay_ids() == [*first, *while_stopped, later]  # none twice, none missed
    assert salesforce.subscriptions[-1] == (OPPORTUNITY_CHANGES, first[-1])


async def test_cancelling_the_client_disconnects_and_ends_cleanly(salesforce: CometdStandin) -> None:
    subscriber = Subscriber()
    task = asyncio.create_task(subscriber.stream(salesforce).run())
    await subscribed(salesforce)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert (salesforce.disconnects, salesforce.clients) == (1, 0)


# --- sessions and positions -------------------------------------------------------------------------------------


async def test_an_unknown_client_rehandshakes_and_resumes_from_the_stored_replay_id(salesforce: CometdStandin) -> None:
    subscriber = Subscriber()
    first = [salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(n)) for n in range(2)]
    async with running(subscriber.stream(salesforce)):
        await until(lambda: len(subscriber.received) == 2, "the first events arrived")
        salesforce.drop_clients()
        await until(lambda: salesforce.handshakes == 2, "the client handshook again")
        more = [salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(n)) for n in range(2, 4)]
        await until(lambda: len(subscriber.received) == 4, "the events after the rehandshake arrived")
    assert salesforce.subscriptions == [(OPPORTUNITY_CHANGES, ALL_RETAINED), (OPPORTUNITY_CHANGES, first[-1])]
    assert subscriber.replay_ids() == first + more
    assert not subscriber.gaps


async def test_sessions_forgotten_before_their_first_connect_are_handshaken_again_with_backoff(
        salesforce: CometdStandin) -> None:  # fmt: skip
    subscriber = Subscriber()
    salesforce.forget_connects = 3
    started = asyncio.get_running_loop().time()
    async with running(subscriber.stream(salesforce)):
        await until(lambda: salesforce.handshakes == 4, "the fourth session held")
        published = salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(0))
        await until(lambda: len(subscriber.received) == 1, "the event arrived")
    assert asyncio.get_running_loop().time() - started >= 0.01 + 0.02 + 0.04  # backoff_s=(0.01, 0.05), doubling
    assert subscriber.replay_ids() == [published]


async def test_an_expired_replay_id_falls_back_to_all_retained_and_reports_the_gap() -> None:
    with CometdStandin(poll_s=0.1, retention=3) as salesforce:
        published = [salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(n)) for n in range(10)]
        subscriber = Subscriber(stored=published[1])  # events 3 to 7 fell out of retention while it was away
        async with running(subscriber.stream(salesforce, on_expired=ALL_RETAINED)):
            await until(lambda: len(subscriber.received) == 3, "the retained events arrived")
    assert subscriber.replay_ids() == published[-3:]
    [gap] = subscriber.gaps
    assert (gap.channel, gap.refused, gap.resumed_from) == (OPPORTUNITY_CHANGES, published[1], ALL_RETAINED)
    assert f"The replayId {{{published[1]}}} you provided was invalid" in gap.error
    assert salesforce.subscriptions == [(OPPORTUNITY_CHANGES, published[1]), (OPPORTUNITY_CHANGES, ALL_RETAINED)]
    assert subscriber.stored[OPPORTUNITY_CHANGES] == published[-1]


async def test_an_expired_replay_id_can_fall_back_to_new_events_only() -> None:
    with CometdStandin(poll_s=0.1, retention=2) as salesforce:
        published = [salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(n)) for n in range(5)]
        subscriber = Subscriber(stored=published[0])
        async with running(subscriber.stream(salesforce, on_expired=NEW_ONLY)):
            await subscribed(salesforce, count=2)
            fresh = salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(5))
            await until(lambda: len(subscriber.received) == 1, "the new event arrived")
    assert subscriber.replay_ids() == [fresh]
    assert [(gap.refused, gap.resumed_from) for gap in subscriber.gaps] == [(published[0], NEW_ONLY)]


async def test_a_stored_replay_id_still_retained_is_no_gap() -> None:
    with CometdStandin(poll_s=0.1, retention=3) as salesforce:
        published = [salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(n)) for n in range(5)]
        subscriber = Subscriber(stored=published[1])  # the oldest held is published[2]: nothing after it is lost
        async with running(subscriber.stream(salesforce)):
            await until(lambda: len(subscriber.received) == 3, "the events after the stored id arrived")
    assert subscriber.replay_ids() == published[2:]
    assert not subscriber.gaps


# --- tokens -----------------------------------------------------------------------------------------------------


async def test_an_expired_token_is_refreshed_and_the_stream_carries_on(salesforce: CometdStandin) -> None:
    subscriber = Subscriber(tokens=("token-2",))
    first = salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(0))
    async with running(subscriber.stream(salesforce)) as task:
        await until(lambda: len(subscriber.received) == 1, "the first event arrived")
        salesforce.token = "token-2"  # the first one expired
        await until(lambda: salesforce.handshakes == 2, "the client handshook with the new token")
        second = salesforce.publish(OPPORTUNITY_CHANGES, opportunity_update(1))
        await until(lambda: len(subscriber.received) == 2, "the event after the refresh arrived")
        assert not task.done()
    assert subscriber.refreshes == 1
    assert subscriber.replay_ids() == [first, second]
    assert salesforce.subscriptions[-1] == (OPPORTUNITY_CHANGES, first)


async def test_a_refreshed_token_that_is_refused_too_ends_the_stream(salesforce: CometdStandin) -> None:
    subscriber = Subscriber(tokens=("still-wrong",))
    with pytest.raises(StreamAuthError, match="refreshed access token"):
        async with asyncio.timeout(WAIT_S):
            await subscriber.stream(salesforce, token="wrong").run()
    assert (subscriber.refreshes, salesforce.handshakes) == (1, 0)


async def test_a_channel_that_does_not_exist_ends_the_stream() -> None:
    with CometdStandin(poll_s=0.1) as salesforce:
        subscriber = Subscriber()
        config = StreamConfig(instance_url=salesforce.url, channels=("NoLeadingSlash",), request_timeout_s=2.0)
        stream = SalesforceStream(config, "token-1", load_replay=subscriber.load_replay,
                                  on_events=subscriber.on_events, on_gap=subscriber.on_gap,
                                  refresh_token=subscriber.refresh_token)  # fmt: skip
        with pytest.raises(StreamClosed, match="does not exist"):
            async with asyncio.timeout(WAIT_S):
                await stream.run()


async def test_a_server_that_went_away_is_retried_with_backoff_and_reported() -> None:
    with CometdStandin(poll_s=0.1) as salesforce:
        pass  # closed: nothing answers on its port now
    subscriber = Subscriber()
    async with running(subscriber.stream(salesforce)) as task:
        await until(lambda: len(subscriber.errors) >= 2, "two failures were reported")
        assert not task.done()
    assert "/meta/handshake" in subscriber.errors[0]


# --- the events as deal changes ---------------------------------------------------------------------------------


async def test_delivered_events_read_as_deal_changes_with_salesforce_cdc(salesforce: CometdStandin) -> None:
    subscriber = Subscriber()
    salesforce.publish(OPPORTUNITY_CHANGES, cdc_payload("cdc_opportunity_create.json"))
    salesforce.publish(OPPORTUNITY_CHANGES, cdc_payload("cdc_opportunity_update.json"))
    async with running(subscriber.stream(salesforce)):
        await until(lambda: len(subscriber.received) == 2, "both events arrived")
    created, won = (change for event in subscriber.received for change in salesforce_stream.changes(event))
    assert created == DealChange(
        crm="salesforce",
        event_id="0002f6c4-8b2f-1e6e-7d9b-5fd3a1c9e001:1:0065g00000Xk1AdAAJ",
        deal_id="0065g00000Xk1AdAAJ",
        changed_at=datetime(2026, 11, 5, 9, 0, tzinfo=UTC),
        fields=DealFields(amount=Decimal("42000.5"), currency="EUR", stage="Prospecting", stage_label="Prospecting",
                          status="open", owner="0055g00000Ab1CdAAE", close_date=date(2026, 12, 15),
                          created_at=datetime(2026, 11, 5, 9, 0, tzinfo=UTC), name="Umbrella - pilot"),
    )  # fmt: skip
    assert isinstance(won, DealChange)
    assert (won.deal_id, won.fields.status, won.changed_at) == ("0065g00000Xk1AdAAJ", "won",
                                                                datetime(2026, 11, 20, 15, 42, 10, tzinfo=UTC))


def test_amounts_keep_every_digit_salesforce_sent() -> None:
    body = (b'[{"channel": "/data/OpportunityChangeEvent", "data": {"event": {"replayId": 7}, "payload": '
            b'{"Amount": 12345678901234567.89}}}, {"channel": "/meta/connect", "successful": true}]')  # fmt: skip
    [(event, raw), (reply, _)] = salesforce_stream.bayeux_messages(body)
    assert event["data"]["payload"]["Amount"] == Decimal("12345678901234567.89")  # type: ignore[index]
    assert raw.startswith(b'{"channel": "/data/') and raw.endswith(b"}}}")
    assert reply == {"channel": "/meta/connect", "successful": True}


@pytest.mark.parametrize("body", [b"", b"<html>", b"[{}", b'[{"a": 1} {"b": 2}]', b"[1]", b"[NaN]"])
def test_an_answer_that_is_not_bayeux_messages_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):  # json's errors and ours alike
        salesforce_stream.bayeux_messages(body)
