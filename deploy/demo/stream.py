"""Plays the schedule through ingest: every event as soon as its simulated time has come.

Simulated time is `start + real elapsed x rate`, the same rule as the services' `ScaledClock`
(`ATTAIN_CLOCK=scaled:<start>@<rate>`), so ingest sees each event about when it "happened".
Events go out in order, in `POST /v1/events` batches of up to 50, one request at a time, so
a re-send or a late version really does reach ingest after what it repeats or supersedes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from deploy.demo.book import DealBook
from deploy.demo.org import Quarter
from deploy.demo.simulator import ScheduledEvent

__all__ = ["BATCH_SIZE", "EventStream", "PostStats", "SimClock", "clock_spec"]

BATCH_SIZE = 50
RETRIES = 3  # 503 (Kafka did not acknowledge) and transport errors are retried; ids make it safe
RETRY_BACKOFF_S = 0.5
IDLE_SLEEP_S = 0.25


def clock_spec(start: datetime, rate: float, until: datetime | None = None) -> str:
    """The services' `ATTAIN_CLOCK` for a quarter from `start` running `rate` times real time (and stopping at
    `until`, where the story ends)."""
    rate_text = f"{rate:.6f}".rstrip("0").rstrip(".")
    end = "" if until is None else f"/{until.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    return f"scaled:{start.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}{end}@{rate_text}"


@dataclass(frozen=True, slots=True)
class SimClock:
    """Simulated time: `start` at the real monotonic instant `anchor`, then `rate` x faster, up to `until`."""

    start: datetime
    rate: float
    anchor: float
    until: datetime | None = None

    def now(self, monotonic: float | None = None) -> datetime:
        real = (time.monotonic() if monotonic is None else monotonic) - self.anchor
        moment = self.start + timedelta(seconds=real * self.rate)
        return moment if self.until is None else min(moment, self.until)

    @property
    def stopped(self) -> bool:
        """Has the clock reached where the story ends?"""
        return self.until is not None and self.now() >= self.until

    def real_seconds(self, simulated: timedelta) -> float:
        """How many real seconds `simulated` takes."""
        return simulated.total_seconds() / self.rate


@dataclass(slots=True)
class PostStats:
    """What ingest answered, event by event."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    failed: int = 0  # no per-event answer: the request itself failed (after retries)
    requests: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def posted(self) -> int:
        return self.accepted + self.duplicate + self.rejected + self.failed


class EventStream:
    """Sends each scheduled event once its offset (share of the quarter) has passed."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        token: str,
        schedule: Sequence[ScheduledEvent],
        clock: SimClock,
        quarter: Quarter,
        book: DealBook,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._client, self._token = client, token
        self._schedule, self._clock, self._quarter, self._book = schedule, clock, quarter, book
        self._batch_size = batch_size
        self._next = 0
        self.stats = PostStats()

    @property
    def sent(self) -> int:
        return self._next

    @property
    def total(self) -> int:
        return len(self._schedule)

    @property
    def done(self) -> bool:
        return self._next >= len(self._schedule)

    def due(self, fraction: float) -> list[ScheduledEvent]:
        """The next batch of events whose offset is at or before `fraction` (advances)."""
        batch: list[ScheduledEvent] = []
        while (
            self._next < len(self._schedule)
            and self._schedule[self._next].offset <= fraction
            and len(batch) < self._batch_size
        ):
            batch.append(self._schedule[self._next])
            self._next += 1
        return batch

    async def run(self) -> None:
        """Send everything, on time; returns when the last event has been answered."""
        while not self.done:
            fraction = self._quarter.fraction(self._clock.now())
            batch = self.due(fraction)
            if batch:
                await self.post([item.event for item in batch])
                continue
            ahead = (self._schedule[self._next].offset - fraction) * self._quarter.seconds
            await asyncio.sleep(min(max(ahead / self._clock.rate, 0.01), IDLE_SLEEP_S))

    async def post(self, events: list[dict[str, Any]]) -> None:
        """POST one batch and count ingest's verdict on each event."""
        self.stats.requests += 1
        problem = "no answer"
        for attempt in range(RETRIES):
            if attempt:
                await asyncio.sleep(RETRY_BACKOFF_S * 2**attempt)
            try:
                response = await self._client.post(
                    "/v1/events", json=events, headers={"Authorization": f"Bearer {self._token}"}
                )
            except httpx.TransportError as err:
                problem = f"ingest unreachable: {type(err).__name__}"
                continue
            if response.status_code in (200, 422):
                self._count(events, response)
                return
            problem = f"HTTP {response.status_code}: {_detail(response)}"
            if response.status_code != 503:
                break
        self.stats.failed += len(events)
        self.stats.reasons[problem] += len(events)

    def _count(self, events: list[dict[str, Any]], response: httpx.Response) -> None:
        try:
            results = response.json()["results"]
        except (ValueError, KeyError, TypeError):
            self.stats.failed += len(events)
            self.stats.reasons[f"HTTP {response.status_code} without a results list"] += len(events)
            return
        if missing := len(events) - len(results):
            self.stats.failed += max(missing, 0)
            self.stats.reasons["ingest answered for fewer events than were sent"] += max(missing, 0)
        by_id = {event["id"]: event for event in events}
        for result in results:
            status = result.get("status")
            event = by_id.get(result.get("id"))
            if status in ("accepted", "duplicate") and event is not None:
                # A retried request reports what the first attempt stored as duplicate: the
                # book is idempotent, so apply both.
                self._book.apply(event)
            if status == "accepted":
                self.stats.accepted += 1
            elif status == "duplicate":
                self.stats.duplicate += 1
            else:
                self.stats.rejected += 1
                kind = event["type"] if event is not None else "event"
                self.stats.reasons[f"{kind}: {result.get('reason') or status}"] += 1


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", body))[:200] if isinstance(body, dict) else str(body)[:200]
