"""An in-memory `services.coaching.store.Store`: the same guards as the SQL (newest version wins,
insert-if-absent, the cool-down gate, close-once), and a log of the calls, so handler tests can count
round trips."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from services.coaching.config import TenantConfig
from services.coaching.effect import FOLLOW_UP_DAYS, FollowUp
from services.coaching.intake import Calendar
from services.coaching.model import SEVERITY_RANK, ActivityLog, ClosedDeal, Figure, OpenDeal, RepView
from services.coaching.rules import LiveTask
from services.coaching.store import Close, Gate, NewActivity, Outgoing
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
    supersedes,
)
from shared.workdays import HolidayCalendar, days_off

NEVER = datetime.min.replace(tzinfo=ZoneInfo("UTC"))


@dataclass
class Rep:
    rep_id: str
    version: datetime
    known_since: datetime
    name: str | None = None
    team_id: str | None = None
    manager_id: str | None = None
    timezone: str | None = None


@dataclass
class Deal:
    deal: DealUpserted | None
    version: tuple[datetime, str]
    deleted: bool
    last_activity_at: datetime | None = None


@dataclass
class FakeStore:
    """One tenant's world (the handlers never mix tenants in one call)."""

    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)
    reps: dict[str, Rep] = field(default_factory=dict)
    activities: dict[str, ActivityLogged] = field(default_factory=dict)
    deals: dict[str, Deal] = field(default_factory=dict)
    figures: dict[tuple[str, str, str, str], tuple[AttainmentUpdated, datetime]] = field(default_factory=dict)
    owed: dict[str, datetime] = field(default_factory=dict)
    cooldowns: dict[tuple[str, str], tuple[datetime, str]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[Outgoing] = field(default_factory=list)
    versions: dict[str, UUID] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # layers, catalogue, holidays for load_config
    leaves: dict[str, tuple[TimeOffSet, datetime, str]] = field(default_factory=dict)  # by time_off_id
    follow_ups: dict[str, FollowUp] = field(default_factory=dict)  # by subject id
    calls: Counter[str] = field(default_factory=Counter)

    def bump(self, tenant: str) -> None:
        """What migration 004's triggers do on any configuration write."""
        self.versions[tenant] = uuid4()

    # --- the sales topics
    async def upsert_tenants(self, entries: Sequence[TenantUpserted]) -> None:
        self.calls["upsert_tenants"] += 1
        for e in entries:
            self.tenants[e.tenant] = {"timezone": e.timezone, "currency": e.currency,
                                      "fiscal_start_month": e.fiscal_start_month, "holidays": e.holidays}
            self.bump(e.tenant)

    async def store_time_off(self, tenant: str, leaves: Sequence[tuple[TimeOffSet, datetime, str]]) -> None:
        self.calls["store_time_off"] += 1
        for leave, at, event_id in leaves:
            held = self.leaves.get(leave.time_off_id)
            if held is None or (held[1], held[2]) < (at, event_id):
                self.leaves[leave.time_off_id] = (leave, at, event_id)

    async def remember_calendar(self, tenant: str, calendar: Calendar) -> None:
        self.calls["remember_calendar"] += 1
        if tenant not in self.tenants:
            self.tenants[tenant] = {"timezone": calendar.timezone, "currency": calendar.currency,
                                    "fiscal_start_month": calendar.fiscal_start_month}
            self.bump(tenant)

    async def upsert_reps(self, tenant: str, reps: Sequence[tuple[RepUpserted, datetime]]) -> None:
        self.calls["upsert_reps"] += 1
        assert len({r.rep_id for r, _ in reps}) == len(reps), "one row per rep and statement"
        for rep, version in reps:
            old = self.reps.get(rep.rep_id)
            if old is None or old.version <= version:
                since = version if old is None else min(old.known_since, version)
                self.reps[rep.rep_id] = Rep(rep.rep_id, version, since, rep.name, rep.team_id, rep.manager_id,
                                            rep.timezone)

    async def seen_reps(self, tenant: str, seen: Mapping[str, datetime]) -> None:
        self.calls["seen_reps"] += 1
        for rep_id, at in seen.items():
            old = self.reps.get(rep_id)
            since = at if old is None else min(old.known_since, at)
            self.reps[rep_id] = Rep(rep_id, NEVER, at) if old is None else replace(old, known_since=since)

    async def insert_activities(self, tenant: str, activities: Sequence[ActivityLogged]) -> list[NewActivity]:
        self.calls["insert_activities"] += 1
        new = []
        for a in activities:
            if a.activity_id not in self.activities:
                self.activities[a.activity_id] = a
                new.append(NewActivity(a.activity_id, a.rep_id, a.deal_id, a.occurred_at))
        return new

    async def touch_deals(self, tenant: str, touches: Sequence[tuple[str, datetime]]) -> None:
        self.calls["touch_deals"] += 1
        for deal_id, at in touches:
            if (deal := self.deals.get(deal_id)) is not None:
                deal.last_activity_at = max(filter(None, (deal.last_activity_at, at)))

    async def store_deals(self, tenant: str, deals: Sequence[tuple[DealUpserted, str]]) -> None:
        self.calls["store_deals"] += 1
        for deal, tiebreak in deals:
            old = self.deals.get(deal.deal_id)
            if old is None or old.version < (deal.updated_at, tiebreak):
                self.deals[deal.deal_id] = Deal(deal, (deal.updated_at, tiebreak), False,
                                                old.last_activity_at if old else None)

    async def tombstone_deals(self, tenant: str, deals: Sequence[tuple[DealDeleted, str]]) -> None:
        self.calls["tombstone_deals"] += 1
        for deal, tiebreak in deals:
            old = self.deals.get(deal.deal_id)
            if old is None:
                self.deals[deal.deal_id] = Deal(None, (deal.updated_at, tiebreak), True)
            elif old.version < (deal.updated_at, tiebreak):
                old.version, old.deleted = (deal.updated_at, tiebreak), True

    async def save_attainments(self, tenant: str, figures: Sequence[AttainmentUpdated], now: datetime) -> set[str]:
        """As the SQL: the newest figure of a key replaces the held one whole, its forecast (or none) with it."""
        self.calls["save_attainments"] += 1
        written = set()
        for f in figures:
            key = (f.scope.value, f.scope_id, f.period, f.metric)
            old = self.figures.get(key)
            if old is None or supersedes(old[0].revision, old[0].as_of, f.revision, f.as_of):
                self.figures[key] = (f, old[1] if old else now)
                if f.scope.value == "rep":
                    written.add(f.scope_id)
        return written

    async def owe_evaluation(self, tenant: str, rep_ids: Sequence[str], now: datetime) -> None:
        self.calls["owe_evaluation"] += 1
        for rep in rep_ids:
            self.owed.setdefault(rep, now)

    # --- evaluation
    async def config_version(self, tenant: str) -> UUID | None:
        self.calls["config_version"] += 1
        return self.versions.get(tenant)

    async def load_config(self, tenant: str, version: UUID | None) -> TenantConfig:
        self.calls["load_config"] += 1
        row = self.tenants.get(tenant, {})
        return TenantConfig(tenant=tenant, version=version, timezone=ZoneInfo(row.get("timezone") or "UTC"),
                            currency=row.get("currency"), layers=self.config.get("layers", {}),
                            catalogue=self.config.get("catalogue", {}),
                            holidays=frozenset(self.config.get("holidays", ())),
                            calendar=HolidayCalendar.of(row.get("holidays")))

    async def rep_views(self, config: TenantConfig, rep_ids: Sequence[str], now: datetime,
                        activity_days: int) -> dict[str, RepView]:
        self.calls["rep_views"] += 1
        views = {}
        for rep_id in sorted(set(rep_ids) & set(self.reps)):
            rep = self.reps[rep_id]
            mine = [a for a in self.activities.values() if a.rep_id == rep_id and a.occurred_at <= now]
            deals = [d for d in self.deals.values() if d.deal and not d.deleted and d.deal.rep_id == rep_id]
            views[rep_id] = RepView(
                tenant=config.tenant, rep_id=rep_id, name=rep.name, manager_id=rep.manager_id, team_id=rep.team_id,
                timezone=ZoneInfo(rep.timezone) if rep.timezone else config.timezone,
                tenant_timezone=config.timezone, known_since=rep.known_since,
                figures=tuple(Figure(f.period, f.metric, f.actual, f.target, f.period_start, f.period_end, seen,
                                     f.forecast)
                              for (scope, scope_id, _, _), (f, seen) in self.figures.items()
                              if scope == "rep" and scope_id == rep_id and f.period_start and f.period_end
                              and f.period_start <= now < f.period_end),
                activities=ActivityLog.of(((a.occurred_at, a.kind.value) for a in mine), config.timezone),
                open_deals=tuple(OpenDeal(d.deal.deal_id, d.deal.amount, d.deal.currency,
                                          max(filter(None, (d.deal.updated_at, d.last_activity_at))))
                                 for d in deals if d.deal and d.deal.stage.value == "open"),
                closed_deals=tuple(ClosedDeal(d.deal.stage.value == "won", d.deal.closed_at) for d in deals
                                   if d.deal and d.deal.stage.value != "open" and d.deal.closed_at
                                   and d.deal.closed_at >= now - timedelta(days=180)),
                days_off=self._days_off(config, rep_id, now), base_currency=config.currency)
        return views

    async def open_follow_ups(self, tenant: str, rep_ids: Sequence[str], now: datetime) -> dict[str, list[FollowUp]]:
        self.calls["open_follow_ups"] += 1
        out: dict[str, list[FollowUp]] = {}
        for f in self.follow_ups.values():
            if (f.rep_id in rep_ids and (f.measured < 30 or f.recovered_at is None)
                    and f.opened_at > now - timedelta(days=FOLLOW_UP_DAYS)):
                out.setdefault(f.rep_id, []).append(f)
        return out

    async def record_follow_ups(self, tenant: str, rows: Sequence[FollowUp], dropped: Sequence[str] = ()) -> None:
        self.calls["record_follow_ups"] += 1
        for subject in dropped:
            self.follow_ups.pop(subject, None)
        for r in rows:
            self.follow_ups.setdefault(r.subject_id, r)

    async def advance_follow_ups(self, tenant: str, rows: Sequence[FollowUp]) -> None:
        self.calls["advance_follow_ups"] += 1
        for r in rows:
            held = self.follow_ups[r.subject_id]
            pace = {n: held.pace.get(n) if held.pace.get(n) is not None else r.pace.get(n) for n in (0, 7, 14, 30)}
            self.follow_ups[r.subject_id] = replace(
                held, pace=pace, measured=max(held.measured, r.measured),
                recovered_at=held.recovered_at or r.recovered_at,
                recovered_days=held.recovered_days if held.recovered_days is not None else r.recovered_days)

    def _days_off(self, config: TenantConfig, rep_id: str, now: datetime) -> frozenset[date]:
        """As `repository.rep_views`: the calendar's and the older holidays, and the rep's time off in force."""
        first, last = (now - timedelta(days=400)).date(), (now + timedelta(days=400)).date()
        leave = [(t.first_day, t.last_day) for t, _, _ in self.leaves.values()
                 if t.rep_id == rep_id and not t.cancelled]
        return config.holidays | days_off(config.calendar, first, last, leave)

    async def live_tasks(self, tenant: str, rep_ids: Sequence[str]) -> dict[str, list[LiveTask]]:
        self.calls["live_tasks"] += 1
        out: dict[str, list[LiveTask]] = {}
        for t in sorted(self.tasks.values(), key=lambda t: t["created_at"]):
            if t["rep_id"] in rep_ids and t["status"] in ("open", "acknowledged"):
                out.setdefault(t["rep_id"], []).append(LiveTask(t["task_id"], t["rule"], t["severity"]))
        return out

    async def pass_gates(self, tenant: str, gates: Sequence[Gate], now: datetime) -> set[tuple[str, str]]:
        self.calls["pass_gates"] += 1
        passed = set()
        for g in gates:
            old = self.cooldowns.get((g.rep_id, g.rule))
            if (old is None or old[0] <= now - timedelta(days=g.cooldown_days)
                    or SEVERITY_RANK[old[1]] < SEVERITY_RANK[g.severity]):
                self.cooldowns[(g.rep_id, g.rule)] = (now, g.severity)
                passed.add((g.rep_id, g.rule))
        return passed

    async def insert_tasks(self, tenant: str, tasks: Sequence[TaskCreated], now: datetime) -> set[str]:
        self.calls["insert_tasks"] += 1
        new = set()
        for t in tasks:
            if t.task_id not in self.tasks:
                self.tasks[t.task_id] = t.model_dump() | {"status": "open", "created_at": now}
                new.add(t.task_id)
        return new

    async def close_tasks(self, tenant: str, closes: Sequence[Close], now: datetime) -> list[TaskClosed]:
        self.calls["close_tasks"] += 1
        out = []
        for c in closes:
            t = self.tasks.get(c.task_id)
            if t is not None and t["status"] in ("open", "acknowledged"):
                t |= {"status": "completed" if c.reason == "completed" else "closed", "close_reason": c.reason}
                out.append(TaskClosed(task_id=c.task_id, rep_id=t["rep_id"], manager_id=t["manager_id"],
                                      rule=t["rule"], reason=c.reason, outcome=c.outcome, closed_at=now))
        return out

    async def publish(self, tenant: str, events: Sequence[Outgoing], now: datetime) -> None:
        self.calls["publish"] += 1
        self.outbox += events
