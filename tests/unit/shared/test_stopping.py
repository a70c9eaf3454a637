"""A service's stop ends every background task even when a library swallows a cancellation (shared/service.py,
`stop_tasks`), and the outbox relay neither outlives `close()` nor leaks a half-started producer
(shared/outbox.py). CI once hung 300 s in a replica's stop: the relay's task stayed "cancelling" for good."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from prometheus_client import REGISTRY

from shared.outbox import OutboxRelay
from shared.service import stop_tasks


async def _slow_to_cancel() -> None:
    """A background task that takes a moment to wind down when cancelled (aiokafka's metadata task)."""
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.shield(asyncio.sleep(0.2))


async def _swallows_one_cancellation(ended: list[str], closing: asyncio.Event) -> None:
    """aiokafka's `AIOKafkaClient.close()`: it cancels its metadata task and awaits it under
    `contextlib.suppress(CancelledError)`, so a cancellation of the caller that arrives meanwhile is lost."""
    inner = asyncio.create_task(_slow_to_cancel())
    await asyncio.sleep(0)
    inner.cancel()
    closing.set()
    with contextlib.suppress(asyncio.CancelledError):
        await inner  # the caller's cancellation lands here, and is suppressed with the inner one's
    try:
        await asyncio.sleep(3600)  # the relay's wait for more rows: only a second cancellation ends it
    finally:
        ended.append("ended")


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again_until_it_ends() -> None:
    ended: list[str] = []
    closing = asyncio.Event()
    task = asyncio.create_task(_swallows_one_cancellation(ended, closing))
    await closing.wait()  # it is now awaiting its inner task
    async with asyncio.timeout(5):
        await stop_tasks([task], recancel_s=0.05, give_up_s=5)
    assert task.done() and ended == ["ended"]


async def test_a_single_cancellation_would_have_left_it_running() -> None:
    """The same task under what the stop did before: cancel once and wait (the CI hang)."""
    ended: list[str] = []
    closing = asyncio.Event()
    task = asyncio.create_task(_swallows_one_cancellation(ended, closing))
    await closing.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.6)
    assert not done and task.cancelling() == 1  # "Task cancelling", as the CI log showed the relay
    task.cancel()
    await asyncio.wait([task], timeout=1)
    assert ended == ["ended"]


async def test_a_task_that_never_ends_is_given_up_on_and_counted() -> None:
    async def stubborn() -> None:
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    before = REGISTRY.get_sample_value("attain_stop_abandoned_tasks_total") or 0
    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await stop_tasks([task], recancel_s=0.05, give_up_s=0.3)
    assert not task.done()
    assert REGISTRY.get_sample_value("attain_stop_abandoned_tasks_total") == before + 1
    task.get_coro().close()  # type: ignore[union-attr]


class StartsForever:
    """A transactional producer whose start never completes (the broker does not answer yet)."""

    def __init__(self) -> None:
        self.stopped = False

    async def start(self) -> None:
        await asyncio.sleep(3600)

    async def stop(self) -> None:
        self.stopped = True


def _relay(factory: Any, lead: Any = None) -> OutboxRelay:
    async def no_position() -> str | None:
        return None

    relay = OutboxRelay(None, factory, "box", 0.1, "box-test", no_position)  # type: ignore[arg-type]
    if lead is not None:
        relay._lead = lead  # type: ignore[method-assign]
    return relay


async def test_a_producer_cancelled_while_starting_is_stopped_not_leaked() -> None:
    producer = StartsForever()
    relay = _relay(lambda: producer)
    task = asyncio.create_task(relay._renew_producer())
    await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled() and producer.stopped  # before: "Unclosed AIOKafkaProducer" at exit


async def test_a_closed_relay_ends_even_if_its_cancellation_was_swallowed() -> None:
    leads = 0

    async def lead_that_swallows() -> bool:
        nonlocal leads
        leads += 1
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        return False  # "another replica leads": the relay would stand by and try again, for ever

    relay = _relay(lambda: None, lead_that_swallows)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.01)
    relay.close()
    task.cancel()
    async with asyncio.timeout(2):
        await task
    assert leads == 1
