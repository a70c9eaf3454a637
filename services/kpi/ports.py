"""What kpi's handler needs of its state, as a protocol: the PostgreSQL repository honours it, and so does
the in-memory fake of the handler tests (tests/unit/services/kpi/fake.py).

The connection is hidden: the handler gets a `Repository` for the batch's connection from a factory
(`PgRepository` by default), so every call it makes runs in the batch's one transaction. The SQL stays in
`repository.py`; `PgRepository` only binds its functions to a connection. Every method takes the tenant
whose records are being applied (a batch holds several).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import asyncpg

from services.kpi import repository as repo
from services.kpi.contests import Contest
from services.kpi.contributions import START_OF_TIME, Activity, Books, CustomKey, Deal, Key, Vector
from services.kpi.custom import Kpi
from services.kpi.roster import Span, Version
from services.kpi.tally import Tally
from shared.cloudevents import CloudEvent
from shared.events import (
    ActivityLogged,
    DealDeleted,
    DealUpserted,
    RepUpserted,
    TargetSet,
    TeamUpserted,
    TenantUpserted,
    TimeOffSet,
)
from shared.outbox import enqueue_many

# scope, scope id, period, metric, actual, target, forecast digest (`outlook.digest`: won_revenue ahead only)
Figure = tuple[str, str, str, str, Decimal, Decimal | None, str | None]
FigureKey = tuple[str, str, str, str]  # scope, scope id, period, metric
Outgoing = tuple[str, bytes, CloudEvent]  # topic, record key, event
Tracked = repo.Tracked  # a key's new tally and its targets by metric


class Repository(Protocol):
    """kpi's state as its handler sees it (see `repository.py` for what each transition means)."""

    # the tenant's calendar, registry entry and roster
    async def lock_tenant(self, tenant: str, *, exclusive: bool) -> None: ...
    async def take_rebuild(self, tenant: str) -> bool: ...
    async def remember_tenant(self, event: CloudEvent) -> bool: ...
    async def register_tenant(self, entry: TenantUpserted) -> bool: ...
    async def books(self, tenant: str) -> Books: ...
    async def load_memberships(self, tenant: str, into: Books, rep_ids: Iterable[str]) -> None: ...
    async def upsert_reps(self, tenant: str, reps: list[tuple[RepUpserted, datetime]]) -> None: ...
    async def record_roster(self, tenant: str,
                            versions: list[tuple[str, datetime, str, str]]) -> dict[str, list[Version]]: ...
    async def set_memberships(self, tenant: str, spans: Mapping[str, list[Span]]) -> None: ...
    async def upsert_team(self, tenant: str, team: TeamUpserted, version: datetime) -> bool: ...
    async def profiles_of(self, tenant: str, rep_ids: list[str]) -> Mapping[str, Mapping[str, Any]]: ...

    # the reps' time off: days off of their pace (the tenant's holidays come with `books`)
    async def upsert_time_off(self, tenant: str, items: list[tuple[TimeOffSet, datetime, str]]) -> None: ...
    async def time_off(self, tenant: str, rep_ids: Iterable[str], first: date,
                       last: date) -> dict[str, list[tuple[date, date]]]: ...

    # deals and activities: newest version wins
    async def apply_deals(self, tenant: str,
                          deals: list[tuple[DealUpserted, str]]) -> list[tuple[Deal | None, Deal | None]]: ...
    async def delete_deal(self, tenant: str, deal: DealDeleted, tiebreak: str) -> Deal | None: ...
    async def add_activities(self, tenant: str, activities: list[ActivityLogged]) -> list[Activity]: ...
    async def histories(self, tenant: str, rep_ids: list[str],
                        since: datetime = ...) -> tuple[list[Deal], list[Activity]]: ...

    # targets, running tallies and published figures
    async def set_targets(self, tenant: str, targets: list[tuple[TargetSet, datetime]]) -> set[Key]: ...
    async def targets_of(self, tenant: str, owners: list[tuple[str, str]]) -> dict[FigureKey, Decimal]: ...
    async def move_tallies(self, tenant: str, deltas: dict[Key, Vector], *,
                           every: bool = False) -> dict[Key, Tracked]: ...
    async def rebuild_tallies(self, tenant: str) -> set[Key]: ...
    async def ensure_tallies(self, tenant: str, keys: Iterable[Key]) -> None: ...
    async def read_tallies(self, tenant: str, keys: Iterable[Key]) -> dict[Key, Tally]: ...
    async def save_published(self, tenant: str, figures: list[Figure], at: datetime) -> dict[FigureKey, int]: ...
    async def announce_figures(self, tenant: str, periods: list[str]) -> None: ...

    # forecasts: open deals and closed-deal history (`outlook.py`)
    async def open_deals(self, tenant: str, rep_ids: Iterable[str], team_ids: Iterable[str], start: datetime,
                         end: datetime) -> list[Mapping[str, Any]]: ...
    async def win_history(self, tenant: str, since: datetime, until: datetime) -> list[Mapping[str, Any]]: ...

    # KPIs the tenant defined (`custom.py`)
    async def kpis(self, tenant: str) -> list[Kpi]: ...
    async def move_custom(self, tenant: str, deltas: Mapping[CustomKey, list[int | Decimal]],
                          deals: Mapping[tuple[str, str, str, str, str], int]) -> None: ...
    async def custom_figures(self, tenant: str, keys: Iterable[Key],
                             every: bool) -> list[tuple[str, str, str, str, Decimal, Decimal | None]]: ...

    # contests (`contesting.py`)
    async def open_contests(self, tenant: str) -> list[repo.StoredContest]: ...
    async def lock_contests(self, tenant: str, contest_ids: Iterable[str]) -> list[repo.StoredContest]: ...
    async def contest_records(self, tenant: str, contest: Contest) -> tuple[list[Deal], list[Activity]]: ...
    async def names_of(self, tenant: str, kind: str, ids: list[str]) -> dict[str, str | None]: ...
    async def save_contest(self, tenant: str, contest_id: str, status: str, standings: list[dict[str, object]],
                           digest: str, at: datetime) -> int: ...

    # outgoing events, in the same transaction (the outbox)
    async def enqueue(self, items: list[Outgoing]) -> None: ...


RepositoryFactory = Callable[[asyncpg.Connection], Repository]


class PgRepository:
    """`Repository` on one PostgreSQL connection (inside the batch's transaction): each method is the
    `repository.py` function of the same name."""

    __slots__ = ("conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def lock_tenant(self, tenant: str, *, exclusive: bool) -> None:
        await repo.lock_tenant(self.conn, tenant, exclusive=exclusive)

    async def take_rebuild(self, tenant: str) -> bool:
        return await repo.take_rebuild(self.conn, tenant)

    async def remember_tenant(self, event: CloudEvent) -> bool:
        return await repo.remember_tenant(self.conn, event)

    async def register_tenant(self, entry: TenantUpserted) -> bool:
        return await repo.register_tenant(self.conn, entry)

    async def books(self, tenant: str) -> Books:
        return await repo.books(self.conn, tenant)

    async def load_memberships(self, tenant: str, into: Books, rep_ids: Iterable[str]) -> None:
        await repo.load_memberships(self.conn, tenant, into, rep_ids)

    async def upsert_reps(self, tenant: str, reps: list[tuple[RepUpserted, datetime]]) -> None:
        await repo.upsert_reps(self.conn, tenant, reps)

    async def record_roster(self, tenant: str,
                            versions: list[tuple[str, datetime, str, str]]) -> dict[str, list[Version]]:
        return await repo.record_roster(self.conn, tenant, versions)

    async def set_memberships(self, tenant: str, spans: Mapping[str, list[Span]]) -> None:
        await repo.set_memberships(self.conn, tenant, spans)

    async def upsert_team(self, tenant: str, team: TeamUpserted, version: datetime) -> bool:
        return await repo.upsert_team(self.conn, tenant, team, version)

    async def profiles_of(self, tenant: str, rep_ids: list[str]) -> Mapping[str, Mapping[str, Any]]:
        return await repo.profiles_of(self.conn, tenant, rep_ids)

    async def upsert_time_off(self, tenant: str, items: list[tuple[TimeOffSet, datetime, str]]) -> None:
        await repo.upsert_time_off(self.conn, tenant, items)

    async def time_off(self, tenant: str, rep_ids: Iterable[str], first: date,
                       last: date) -> dict[str, list[tuple[date, date]]]:
        return await repo.time_off(self.conn, tenant, rep_ids, first, last)

    async def apply_deals(self, tenant: str,
                          deals: list[tuple[DealUpserted, str]]) -> list[tuple[Deal | None, Deal | None]]:
        return await repo.apply_deals(self.conn, tenant, deals)

    async def delete_deal(self, tenant: str, deal: DealDeleted, tiebreak: str) -> Deal | None:
        return await repo.delete_deal(self.conn, tenant, deal, tiebreak)

    async def add_activities(self, tenant: str, activities: list[ActivityLogged]) -> list[Activity]:
        return await repo.add_activities(self.conn, tenant, activities)

    async def histories(self, tenant: str, rep_ids: list[str],
                        since: datetime = START_OF_TIME) -> tuple[list[Deal], list[Activity]]:
        return await repo.histories(self.conn, tenant, rep_ids, since)

    async def set_targets(self, tenant: str, targets: list[tuple[TargetSet, datetime]]) -> set[Key]:
        return await repo.set_targets(self.conn, tenant, targets)

    async def targets_of(self, tenant: str, owners: list[tuple[str, str]]) -> dict[FigureKey, Decimal]:
        return await repo.targets_of(self.conn, tenant, owners)

    async def move_tallies(self, tenant: str, deltas: dict[Key, Vector], *,
                           every: bool = False) -> dict[Key, Tracked]:
        return await repo.move_tallies(self.conn, tenant, deltas, every=every)

    async def rebuild_tallies(self, tenant: str) -> set[Key]:
        return await repo.rebuild_tallies(self.conn, tenant)

    async def ensure_tallies(self, tenant: str, keys: Iterable[Key]) -> None:
        await repo.ensure_tallies(self.conn, tenant, keys)

    async def read_tallies(self, tenant: str, keys: Iterable[Key]) -> dict[Key, Tally]:
        return await repo.read_tallies(self.conn, tenant, keys)

    async def save_published(self, tenant: str, figures: list[Figure], at: datetime) -> dict[FigureKey, int]:
        return await repo.save_published(self.conn, tenant, figures, at)

    async def announce_figures(self, tenant: str, periods: list[str]) -> None:
        await repo.announce_figures(self.conn, tenant, periods)

    async def open_deals(self, tenant: str, rep_ids: Iterable[str], team_ids: Iterable[str], start: datetime,
                         end: datetime) -> list[Mapping[str, Any]]:
        return await repo.open_deals(self.conn, tenant, rep_ids, team_ids, start, end)

    async def win_history(self, tenant: str, since: datetime, until: datetime) -> list[Mapping[str, Any]]:
        return await repo.win_history(self.conn, tenant, since, until)

    async def kpis(self, tenant: str) -> list[Kpi]:
        return await repo.kpis_of(self.conn, tenant)

    async def move_custom(self, tenant: str, deltas: Mapping[CustomKey, list[int | Decimal]],
                          deals: Mapping[tuple[str, str, str, str, str], int]) -> None:
        await repo.move_custom(self.conn, tenant, deltas, deals)

    async def custom_figures(self, tenant: str, keys: Iterable[Key],
                             every: bool) -> list[tuple[str, str, str, str, Decimal, Decimal | None]]:
        return await repo.custom_figures(self.conn, tenant, keys, every)

    async def open_contests(self, tenant: str) -> list[repo.StoredContest]:
        return await repo.open_contests(self.conn, tenant)

    async def lock_contests(self, tenant: str, contest_ids: Iterable[str]) -> list[repo.StoredContest]:
        return await repo.lock_contests(self.conn, tenant, contest_ids)

    async def contest_records(self, tenant: str, contest: Contest) -> tuple[list[Deal], list[Activity]]:
        return await repo.contest_records(self.conn, tenant, contest)

    async def names_of(self, tenant: str, kind: str, ids: list[str]) -> dict[str, str | None]:
        return await repo.names_of(self.conn, tenant, kind, ids)

    async def save_contest(self, tenant: str, contest_id: str, status: str, standings: list[dict[str, object]],
                           digest: str, at: datetime) -> int:
        return await repo.save_contest(self.conn, tenant, contest_id, status, standings, digest, at)

    async def enqueue(self, items: list[Outgoing]) -> None:
        await enqueue_many(self.conn, items)
