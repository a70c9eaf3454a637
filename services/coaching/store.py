"""What coaching's handlers need of its state: the protocol the PostgreSQL repository
(`repository.PgStore`) and the handler tests' in-memory fake both honour.

Every method takes or returns plain data (events, `RepView`s, the small records below), never a
database row, and writes a whole batch at once: the handlers never loop over statements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from pydantic import BaseModel

from services.coaching.config import TenantConfig
from services.coaching.effect import FollowUp
from services.coaching.intake import Calendar
from services.coaching.model import RepView
from services.coaching.rules import LiveTask
from shared import topics
from shared.events import (
    ActivityLogged,
    AttainmentUpdated,
    DealDeleted,
    DealUpserted,
    RepUpserted,
    TaskClosed,
    TaskCreated,
    TenantUpserted,
    TimeOffSet,
)


@dataclass(frozen=True, slots=True)
class NewActivity:
    """An activity stored for the first time."""

    activity_id: str
    rep_id: str
    deal_id: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Gate:
    """A finding knocking at the cool-down gate of its (rep, rule)."""

    rep_id: str
    rule: str
    severity: str
    cooldown_days: int


@dataclass(frozen=True, slots=True)
class Close:
    task_id: str
    reason: str  # recovered, superseded, completed
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event for the outbox, keyed by `key_id` (a rep, or a team)."""

    key_id: str
    type: str
    event_id: str
    data: BaseModel
    topic: topics.Topic = topics.TASKS


class Store(Protocol):
    """One tenant's part of a batch, or one evaluation, inside the caller's transaction."""

    # the sales topics, kept
    async def upsert_tenants(self, entries: Sequence[TenantUpserted]) -> None: ...
    async def remember_calendar(self, tenant: str, calendar: Calendar) -> None: ...
    async def upsert_reps(self, tenant: str, reps: Sequence[tuple[RepUpserted, datetime]]) -> None: ...
    async def seen_reps(self, tenant: str, seen: Mapping[str, datetime]) -> None: ...
    async def insert_activities(self, tenant: str, activities: Sequence[ActivityLogged]) -> list[NewActivity]: ...
    async def touch_deals(self, tenant: str, touches: Sequence[tuple[str, datetime]]) -> None: ...
    async def store_deals(self, tenant: str, deals: Sequence[tuple[DealUpserted, str]]) -> None: ...
    async def tombstone_deals(self, tenant: str, deals: Sequence[tuple[DealDeleted, str]]) -> None: ...
    # a figure's forecast goes with it: a newer figure without one clears it, and `rep_views` hands it to the rules
    async def save_attainments(self, tenant: str, figures: Sequence[AttainmentUpdated], now: datetime) -> set[str]: ...
    async def store_time_off(self, tenant: str, leaves: Sequence[tuple[TimeOffSet, datetime, str]]) -> None: ...
    async def owe_evaluation(self, tenant: str, rep_ids: Sequence[str], now: datetime) -> None: ...

    # evaluation
    async def config_version(self, tenant: str) -> UUID | None: ...
    async def load_config(self, tenant: str, version: UUID | None) -> TenantConfig: ...
    async def rep_views(self, config: TenantConfig, rep_ids: Sequence[str], now: datetime,
                        activity_days: int) -> dict[str, RepView]: ...
    async def live_tasks(self, tenant: str, rep_ids: Sequence[str]) -> dict[str, list[LiveTask]]: ...
    async def pass_gates(self, tenant: str, gates: Sequence[Gate], now: datetime) -> set[tuple[str, str]]: ...
    async def insert_tasks(self, tenant: str, tasks: Sequence[TaskCreated], now: datetime) -> set[str]: ...
    async def close_tasks(self, tenant: str, closes: Sequence[Close], now: datetime) -> list[TaskClosed]: ...
    async def publish(self, tenant: str, events: Sequence[Outgoing], now: datetime) -> None: ...
    async def open_follow_ups(self, tenant: str, rep_ids: Sequence[str],
                              now: datetime) -> dict[str, list[FollowUp]]: ...
    async def record_follow_ups(self, tenant: str, rows: Sequence[FollowUp], dropped: Sequence[str] = ()) -> None: ...
    async def advance_follow_ups(self, tenant: str, rows: Sequence[FollowUp]) -> None: ...
