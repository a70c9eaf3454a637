"""What Attain made of the stream, read back from Kafka: attainment, check-ins, celebrations.

`FeedState` is pure: it takes decoded CloudEvents, keeps only the demo tenant's, drops repeats
by `ce_id` (the contract's dedup key) and keeps the latest `won_revenue` figures of the quarter
per rep and team, the check-ins and the celebrations. `KafkaFeed` fills it: a group-less
consumer assigned every partition of the three derived topics, positioned at their ends before
the first event is sent (the tenant is new, so nothing earlier can be ours).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel, ValidationError

from deploy.demo.simulator import METRIC
from shared import topics
from shared.cloudevents import CloudEvent, decode
from shared.errors import InvalidMessage
from shared.events import AttainmentUpdated, MilestoneReached, TaskCreated

__all__ = ["TOPICS", "FeedError", "FeedItem", "FeedState", "KafkaFeed", "Standing", "log_line", "rep_count"]

TOPICS = (topics.ATTAINMENT.name, topics.TASKS.name, topics.CELEBRATIONS.name)
ATTAINMENT, TASK_CREATED = "kpi.attainment.updated", "coaching.task.created"
TASK_ESCALATED, TASK_CLOSED = "coaching.task.escalated", "coaching.task.closed"
MILESTONE = "recognition.milestone.reached"
MODELS: dict[str, type[BaseModel]] = {
    ATTAINMENT: AttainmentUpdated,
    TASK_CREATED: TaskCreated,
    MILESTONE: MilestoneReached,
}

ItemKind = Literal["check-in", "escalation", "closed", "celebration"]


class FeedError(Exception):
    """The feed cannot read the derived topics."""


@dataclass(frozen=True, slots=True)
class Standing:
    """The latest figures kpi published for one scope's won revenue in the quarter."""

    scope: str
    scope_id: str
    actual: Decimal
    target: Decimal | None
    attainment: Decimal | None
    pace: Decimal | None
    as_of: datetime


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One line of the live feed."""

    kind: ItemKind
    at: datetime  # the simulated time the service stamped it with
    subject: str  # rep_id (or team id for a team's celebration)
    text: str
    severity: str | None = None
    rule: str | None = None  # a check-in's rule
    reason: str | None = None  # why a check-in closed: recovered, superseded, completed
    milestone: str | None = None  # a celebration's milestone

    @property
    def matters(self) -> bool:
        """On the ticker: celebrations, new and escalated check-ins (closings are counted, not shown)."""
        return self.kind != "closed"


@dataclass(slots=True)
class FeedState:
    """Everything the demo has seen of its tenant's derived events."""

    tenant: str
    period: str
    messages: int = 0  # distinct messages of our tenant
    repeats: int = 0  # the same ce_id again
    foreign: int = 0  # other tenants' messages (ignored)
    invalid: int = 0  # ours, but not the contract's shape
    undecodable: int = 0  # not a binary-mode CloudEvent at all (whoever sent it)
    problems: list[str] = field(default_factory=list)
    standings: dict[tuple[str, str], Standing] = field(default_factory=dict)
    items: list[FeedItem] = field(default_factory=list)
    checkin_reps: set[str] = field(default_factory=set)
    escalations: int = 0
    closed: Counter[str] = field(default_factory=Counter)  # check-ins closed, by reason
    last_message_at: float | None = None  # time.monotonic() of the last message of ours
    _seen: set[str] = field(default_factory=set)

    @property
    def checkins(self) -> list[FeedItem]:
        return [item for item in self.items if item.kind == "check-in"]

    @property
    def celebrations(self) -> list[FeedItem]:
        return [item for item in self.items if item.kind == "celebration"]

    @property
    def ticker(self) -> list[FeedItem]:
        """What matters, in arrival order: celebrations, new and escalated check-ins."""
        return [item for item in self.items if item.matters]

    def leaderboard(self, scope: str = "rep") -> list[Standing]:
        """Standings of `scope`, best attainment first (those without a target last)."""
        rows = [s for s in self.standings.values() if s.scope == scope]
        return sorted(rows, key=lambda s: (s.attainment is None, -(s.attainment or 0), -s.actual, s.scope_id))

    def note_undecodable(self, problem: str) -> None:
        self.undecodable += 1
        self._problem(problem)

    def accept(self, event: CloudEvent, now: float | None = None) -> FeedItem | None:
        """Take one decoded message; returns the feed line it made, if any."""
        if event.tenant != self.tenant:
            self.foreign += 1
            return None
        if event.id in self._seen:
            self.repeats += 1
            return None
        self._seen.add(event.id)
        self.messages += 1
        self.last_message_at = time.monotonic() if now is None else now
        data = dict(event.data)
        model = MODELS.get(event.type)
        if model is not None:
            try:
                model.model_validate(data)
            except ValidationError as err:
                self.invalid += 1
                self._problem(f"{event.type} {event.id}: {err.errors()[0]['loc']} {err.errors()[0]['msg']}")
                if event.type == ATTAINMENT:
                    return None  # figures that do not parse cannot be shown; the rest still count
        if event.type == ATTAINMENT:
            self._standing(AttainmentUpdated.model_validate(data))
            return None
        item = _item(event, data)
        if item is None:
            return None
        if item.kind == "check-in":
            self.checkin_reps.add(item.subject)
        elif item.kind == "escalation":
            self.escalations += 1
        elif item.kind == "closed":
            self.closed[item.reason or "closed"] += 1
        self.items.append(item)
        return item

    def quiet_for(self, now: float, since: float) -> float:
        """Seconds without a message of ours, counted from `since` at the earliest."""
        return now - max(self.last_message_at or since, since)

    def _standing(self, update: AttainmentUpdated) -> None:
        if update.period != self.period or update.metric != METRIC:
            return
        key = (update.scope.value, update.scope_id)
        current = self.standings.get(key)
        if current is not None and update.as_of < current.as_of:
            return  # an older figure that arrived late (e.g. from another partition's replica)
        self.standings[key] = Standing(
            update.scope.value, update.scope_id, update.actual, update.target, update.attainment,
            update.pace, update.as_of,
        )  # fmt: skip

    def _problem(self, problem: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(problem)


def _item(event: CloudEvent, data: dict[str, Any]) -> FeedItem | None:
    text = str(data.get("summary") or data.get("headline") or data.get("reason") or "")
    subject = str(data.get("rep_id") or data.get("scope_id") or "?")
    rule = str(data["rule"]) if data.get("rule") else None
    if event.type == TASK_CREATED:
        return FeedItem("check-in", event.time, subject, text or "check-in", data.get("severity"), rule)
    if event.type == TASK_ESCALATED:
        return FeedItem("escalation", event.time, subject, text or "check-in escalated", data.get("severity"), rule)
    if event.type == TASK_CLOSED:
        reason = str(data.get("reason") or "closed")
        return FeedItem("closed", event.time, subject, text or f"check-in closed: {reason}", None, rule, reason)
    if event.type == MILESTONE:
        milestone = str(data.get("milestone", "milestone"))
        return FeedItem("celebration", event.time, subject, text or milestone, milestone=milestone)
    return None


def log_line(event: CloudEvent) -> str:
    """One line of the run's event log for a derived message of the demo's tenant: when (simulated, UTC),
    its type and id, and its data as JSON (every field, as the service sent it)."""
    data = event.data.model_dump(mode="json") if isinstance(event.data, BaseModel) else dict(event.data)
    return f"{event.time.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} {event.type} {event.id} " + json.dumps(
        data, default=str, sort_keys=True, ensure_ascii=False)


class KafkaFeed:
    """Reads the derived topics into a `FeedState` (no consumer group, no commits)."""

    def __init__(self, bootstrap: str, state: FeedState, names: tuple[str, ...] = TOPICS,
                 log: TextIO | None = None) -> None:
        self.state = state
        self.log = log  # every message of the tenant, one line each (`log_line`)
        self._names = names
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id="attain-demo-feed",
            isolation_level="read_committed",  # derived topics are written in Kafka transactions
        )
        self._started = False

    async def start(self, within_s: float = 30.0) -> None:
        """Assign every partition of the topics and fix the read position at their current ends."""
        await self._consumer.start()
        self._started = True
        partitions = await self._partitions(within_s)
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve the positions now, before any event is sent
            await self._consumer.position(partition)

    async def _partitions(self, within_s: float) -> list[TopicPartition]:
        """Every partition of the topics. A group-less subscription is what makes aiokafka fetch
        their metadata; it is dropped again because it would re-seek on any metadata change."""
        self._consumer.subscribe(list(self._names))
        deadline = time.monotonic() + within_s
        try:
            while True:
                found = {name: self._consumer.partitions_for_topic(name) for name in self._names}
                if all(found.values()):
                    return [TopicPartition(name, n) for name, numbers in found.items() for n in sorted(numbers or ())]
                if time.monotonic() > deadline:
                    missing = ", ".join(name for name, numbers in found.items() if not numbers)
                    raise FeedError(f"topic(s) {missing} not found on the broker (is the stack up?)")
                await asyncio.sleep(0.1)
        finally:
            self._consumer.unsubscribe()

    async def run(self) -> None:
        """Feed the state until cancelled."""
        while True:
            batches = await self._consumer.getmany(timeout_ms=250, max_records=1000)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    try:
                        event = decode(record.headers, record.value)
                    except InvalidMessage as err:
                        self.state.note_undecodable(f"{record.topic}@{record.offset}: {err}")
                        continue
                    seen = self.state.messages
                    self.state.accept(event, now)
                    if self.log is not None and self.state.messages > seen:  # ours, and new
                        self.log.write(log_line(event) + "\n")

    async def stop(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._consumer.stop(), 10)


def rep_count(n: int) -> str:
    """A count of reps as said: 1 rep, 2 reps."""
    return f"{n} rep" if n == 1 else f"{n} reps"
