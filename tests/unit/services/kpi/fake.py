"""An in-memory `Repository` (services/kpi/ports.py) for kpi's handler tests: no PostgreSQL, same transitions.

Each method does in dicts what the function of the same name in `services/kpi/repository.py` does in SQL:
deals are stored newest version wins, "newer" being (updated_at, tiebreak = event id) with a tombstone for
a deletion; activities are inserted once by id; memberships are dated; targets, reps and teams keep the
newest version; a time off keeps its newest version by (event time, event id); tallies are vectors of
`contributions.FIELDS`; published figures carry a revision that moves only when (actual, target) does; the
outbox is a list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from services.kpi.contests import Contest
from services.kpi.contributions import (
    EXACT,
    MONEY,
    Activity,
    Books,
    CustomKey,
    Deal,
    Key,
    Ledger,
    Vector,
    tally_of,
    zero,
)
from services.kpi.custom import Kpi
from services.kpi.custom import value as kpi_value
from services.kpi.outlook import band
from services.kpi.pace import calendar_of
from services.kpi.ports import Figure, FigureKey, Outgoing, Tracked
from services.kpi.repository import UNKNOWN_CALENDAR, StoredContest
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
from shared.workdays import NO_CALENDAR, HolidayCalendar

START = datetime.min.replace(tzinfo=UTC)


@dataclass
class StoredDeal:
    updated_at: datetime
    tiebreak: str
    deal: Deal | None  # None: a tombstone
    source: DealUpserted | None = None  # the version stored (its forecast fields)


@dataclass
class TenantState:
    calendar: tuple[str, int, str | None] | None = None  # (timezone, fiscal start month, currency)
    rates: list[tuple[str, date, Decimal]] = field(default_factory=list)
    holidays: HolidayCalendar = NO_CALENDAR
    time_off: dict[str, tuple[datetime, str, TimeOffSet]] = field(default_factory=dict)  # id -> time, event id, it
    deals: dict[str, StoredDeal] = field(default_factory=dict)
    activities: dict[str, Activity] = field(default_factory=dict)
    memberships: dict[str, dict[datetime, str]] = field(default_factory=dict)  # rep -> valid_from -> team
    roster: dict[str, set[Version]] = field(default_factory=dict)  # rep -> (time, event id, team)
    reps: dict[str, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)  # version, profile
    teams: dict[str, tuple[datetime, str | None]] = field(default_factory=dict)  # version, parent
    targets: dict[FigureKey, tuple[datetime, Decimal]] = field(default_factory=dict)  # version, value
    tallies: dict[Key, Vector] = field(default_factory=dict)
    published: dict[FigureKey, tuple[Decimal, Decimal | None, int, str | None]] = field(
        default_factory=dict)  # actual, target, revision, forecast digest
    stages: set[tuple[str, str]] = field(default_factory=set)  # (deal id, stage label) every version stood in
    contests: dict[str, StoredContest] = field(default_factory=dict)
    kpis: dict[str, Kpi] = field(default_factory=dict)
    custom: dict[CustomKey, list[Any]] = field(default_factory=dict)  # (kpi, scope, id, period) -> n, total, unconv.
    custom_deals: dict[tuple[str, str, str, str, str], int] = field(default_factory=dict)
    rebuild_owed: bool = False


class FakeRepository:
    """kpi's state in memory; `outbox` and `announced` are what a batch sent out."""

    def __init__(self) -> None:
        self.tenants: dict[str, TenantState] = {}
        self.outbox: list[Outgoing] = []
        self.announced: list[tuple[str, list[str]]] = []
        self.locks: list[tuple[str, bool]] = []  # (tenant, exclusive) per batch of the tenant

    def of(self, tenant: str) -> TenantState:
        return self.tenants.setdefault(tenant, TenantState())

    def tally(self, tenant: str, scope: str, scope_id: str, period: str) -> Tally:
        vector = self.of(tenant).tallies.get((scope, scope_id, period))
        return tally_of(vector) if vector is not None else Tally()

    # the tenant's calendar, registry entry and roster

    async def lock_tenant(self, tenant: str, *, exclusive: bool) -> None:
        self.locks.append((tenant, exclusive))

    async def take_rebuild(self, tenant: str) -> bool:
        state = self.of(tenant)
        owed, state.rebuild_owed = state.rebuild_owed, False
        return owed

    async def remember_tenant(self, event: CloudEvent) -> bool:
        tz = event.tenant_timezone
        if not tz:
            return False
        calendar = (tz, int(event.extensions.get("tenantfiscalstart", "1") or 1),
                    event.extensions.get("tenantcurrency") or None)
        state = self.of(event.tenant)
        if (state.calendar or UNKNOWN_CALENDAR) == calendar:
            return False
        state.calendar = calendar
        return True

    async def register_tenant(self, entry: TenantUpserted) -> bool:
        state = self.of(entry.tenant)
        before = state.calendar or UNKNOWN_CALENDAR
        state.calendar = (entry.timezone, entry.fiscal_start_month, entry.currency)
        state.holidays = calendar_of(entry.holidays, entry.tenant)  # stored as its JSON, read back the same
        rates = sorted((r.currency, r.valid_from, r.rate) for r in entry.rates)
        stored, state.rates = sorted(state.rates), rates
        return before != state.calendar or stored != rates

    async def books(self, tenant: str) -> Books:
        state = self.of(tenant)
        rates: dict[str, list[tuple[date, Decimal]]] = {}
        for currency, valid_from, rate in sorted(state.rates):
            rates.setdefault(currency, []).append((valid_from, rate))
        parents = {team: parent for team, (_, parent) in state.teams.items() if parent is not None}
        if state.calendar is None:
            return Books(ZoneInfo("UTC"), rates=rates, parents=parents, holidays=state.holidays)
        tz, fiscal, base = state.calendar
        return Books(ZoneInfo(tz), fiscal, base, rates, parents=parents, holidays=state.holidays)

    async def load_memberships(self, tenant: str, into: Books, rep_ids: Iterable[str]) -> None:
        spans = self.of(tenant).memberships
        for rep in sorted(set(rep_ids) - into.memberships.keys()):
            into.memberships[rep] = sorted(spans.get(rep, {}).items())

    async def upsert_reps(self, tenant: str, reps: list[tuple[RepUpserted, datetime]]) -> None:
        stored = self.of(tenant).reps
        for rep, version in reps:  # in order, as one statement of the newest versions leaves them
            if rep.rep_id not in stored or stored[rep.rep_id][0] <= version:
                stored[rep.rep_id] = (version, {"rep_id": rep.rep_id, "name": rep.name, "team_id": rep.team_id,
                                                "manager_id": rep.manager_id})

    async def record_roster(self, tenant: str,
                            versions: list[tuple[str, datetime, str, str]]) -> dict[str, list[Version]]:
        stored = self.of(tenant).roster
        for rep_id, at, event_id, team_id in versions:
            stored.setdefault(rep_id, set()).add((at, event_id, team_id))
        return {rep_id: sorted(stored[rep_id]) for rep_id, *_ in versions}

    async def set_memberships(self, tenant: str, spans: Mapping[str, list[Span]]) -> None:
        for rep_id, theirs in spans.items():
            self.of(tenant).memberships[rep_id] = dict(theirs)

    async def upsert_team(self, tenant: str, team: TeamUpserted, version: datetime) -> bool:
        teams = self.of(tenant).teams
        before = teams.get(team.team_id)
        if before is not None and before[0] > version:
            return False
        teams[team.team_id] = (version, team.parent_team_id)
        return (before[1] if before else None) != team.parent_team_id

    async def profiles_of(self, tenant: str, rep_ids: list[str]) -> Mapping[str, Mapping[str, Any]]:
        reps = self.of(tenant).reps
        return {rep: reps[rep][1] for rep in rep_ids if rep in reps}

    # the reps' time off

    async def upsert_time_off(self, tenant: str, items: list[tuple[TimeOffSet, datetime, str]]) -> None:
        stored = self.of(tenant).time_off
        for item, at, event_id in items:
            before = stored.get(item.time_off_id)
            if before is None or (before[0], before[1]) < (at, event_id):
                stored[item.time_off_id] = (at, event_id, item)

    async def time_off(self, tenant: str, rep_ids: Iterable[str], first: date,
                       last: date) -> dict[str, list[tuple[date, date]]]:
        wanted = set(rep_ids)
        out: dict[str, list[tuple[date, date]]] = {}
        for _, _, item in self.of(tenant).time_off.values():
            if item.rep_id in wanted and not item.cancelled and item.last_day >= first and item.first_day <= last:
                out.setdefault(item.rep_id, []).append((item.first_day, item.last_day))
        return {rep: sorted(ranges) for rep, ranges in sorted(out.items())}

    # deals and activities: newest version wins

    async def apply_deals(self, tenant: str,
                          deals: list[tuple[DealUpserted, str]]) -> list[tuple[Deal | None, Deal | None]]:
        newest: dict[str, tuple[DealUpserted, str]] = {}
        self.of(tenant).stages.update((d.deal_id, d.stage_label) for d, _ in deals if d.stage_label is not None)
        for deal, tiebreak in deals:
            seen = newest.get(deal.deal_id)
            if seen is None or (deal.updated_at, tiebreak) > (seen[0].updated_at, seen[1]):
                newest[deal.deal_id] = (deal, tiebreak)
        stored = self.of(tenant).deals
        changed: list[tuple[Deal | None, Deal | None]] = []
        for deal_id, (deal, tiebreak) in sorted(newest.items()):
            old = stored.get(deal_id)
            if old is not None and (old.updated_at, old.tiebreak) >= (deal.updated_at, tiebreak):
                continue
            new = Deal(deal.rep_id, deal.stage.value, deal.amount, deal.currency, deal.created_at, deal.closed_at,
                       deal.expected_close_at, deal_id, deal.stage_label,
                       None if deal.properties is None else json.dumps(deal.properties))
            stored[deal_id] = StoredDeal(deal.updated_at, tiebreak, new, deal)
            changed.append((old.deal if old else None, new))
        return changed

    async def delete_deal(self, tenant: str, deal: DealDeleted, tiebreak: str) -> Deal | None:
        stored = self.of(tenant).deals
        old = stored.get(deal.deal_id)
        if old is not None and (old.updated_at, old.tiebreak) >= (deal.updated_at, tiebreak):
            return None
        stored[deal.deal_id] = StoredDeal(deal.updated_at, tiebreak, None)
        return old.deal if old else None

    async def add_activities(self, tenant: str, activities: list[ActivityLogged]) -> list[Activity]:
        stored = self.of(tenant).activities
        added = []
        for a in activities:
            if a.activity_id not in stored:
                stored[a.activity_id] = Activity(a.rep_id, a.kind.value, a.occurred_at, a.deal_id, a.duration_s,
                                                 None if a.properties is None else json.dumps(a.properties))
                added.append(stored[a.activity_id])
        return added

    async def histories(self, tenant: str, rep_ids: list[str],
                        since: datetime = START) -> tuple[list[Deal], list[Activity]]:
        state, reps = self.of(tenant), set(rep_ids)
        deals = [s.deal for s in state.deals.values() if s.deal is not None and s.deal.rep_id in reps
                 and any(moment is not None and moment >= since for moment in (s.deal.created_at,
                                                                                 s.deal.closed_at))]
        acts = [a for a in state.activities.values() if a.rep_id in reps and a.occurred_at >= since]
        return deals, acts

    # targets, running tallies and published figures

    async def set_targets(self, tenant: str, targets: list[tuple[TargetSet, datetime]]) -> set[Key]:
        stored = self.of(tenant).targets
        written: set[Key] = set()
        for target, version in targets:
            key = (target.scope.value, target.scope_id, target.period, str(target.metric))
            if key not in stored or stored[key][0] <= version:
                stored[key] = (version, target.value)
                written.add(key[:3])
        return written

    async def targets_of(self, tenant: str, owners: list[tuple[str, str]]) -> dict[FigureKey, Decimal]:
        wanted = set(owners)
        return {key: value for key, (_, value) in self.of(tenant).targets.items() if key[:2] in wanted}

    async def add_to_tallies(self, tenant: str, deltas: dict[Key, Vector]) -> set[Key]:
        tallies = self.of(tenant).tallies
        for key, delta in deltas.items():
            vector = tallies.setdefault(key, zero())
            for i, value in enumerate(delta):
                vector[i] = EXACT.add(vector[i], value) if i in MONEY else vector[i] + value
        return set(deltas)

    async def move_tallies(self, tenant: str, deltas: dict[Key, Vector], *,
                           every: bool = False) -> dict[Key, Tracked]:
        await self.add_to_tallies(tenant, deltas)
        targets: dict[Key, dict[str, Decimal]] = {}
        for (scope, scope_id, period, metric), (_, value) in self.of(tenant).targets.items():
            if (scope, scope_id, period) in deltas:
                targets.setdefault((scope, scope_id, period), {})[metric] = value
        return {key: (self.tally(tenant, *key), targets.get(key, {})) for key in sorted(deltas)
                if every or key in targets}

    async def rebuild_tallies(self, tenant: str) -> set[Key]:
        state = self.of(tenant)
        into = await self.books(tenant)
        await self.load_memberships(tenant, into, state.memberships)
        ledger = Ledger(into)
        for stored in state.deals.values():
            if stored.deal is not None:
                ledger.deal(stored.deal, 1)
        for activity in state.activities.values():
            ledger.activity(activity, 1)
        before = set(state.tallies)
        state.tallies.clear()
        fresh = await self.add_to_tallies(tenant, ledger.changed())
        await self.ensure_tallies(tenant, {key[:3] for key in state.targets})
        return before | fresh

    async def ensure_tallies(self, tenant: str, keys: Iterable[Key]) -> None:
        tallies = self.of(tenant).tallies
        for key in keys:
            tallies.setdefault(key, zero())

    async def read_tallies(self, tenant: str, keys: Iterable[Key]) -> dict[Key, Tally]:
        return {key: self.tally(tenant, *key) for key in sorted(set(keys))}

    async def save_published(self, tenant: str, figures: list[Figure], at: datetime) -> dict[FigureKey, int]:
        keys = [f[:4] for f in figures]
        assert len(set(keys)) == len(keys), "one statement cannot update a row twice (ON CONFLICT)"
        published = self.of(tenant).published
        revisions: dict[FigureKey, int] = {}
        for scope, scope_id, period, metric, actual, target, forecast in figures:
            key = (scope, scope_id, period, metric)
            before = published.get(key)
            if before is not None and (before[0], before[1], before[3]) == (actual, target, forecast):
                continue
            revisions[key] = before[2] + 1 if before else 1
            published[key] = (actual, target, revisions[key], forecast)
        return revisions

    async def open_deals(self, tenant: str, rep_ids: Iterable[str], team_ids: Iterable[str], start: datetime,
                         end: datetime) -> list[Mapping[str, Any]]:
        state, reps, teams = self.of(tenant), set(rep_ids), set(team_ids)
        rows = []
        for deal_id, stored in sorted(state.deals.items()):
            d = stored.source
            if stored.deal is None or d is None or d.stage.value != "open":
                continue
            if d.rep_id not in reps and not teams.intersection(state.memberships.get(d.rep_id, {}).values()):
                continue
            if d.expected_close_at is not None and not start <= d.expected_close_at < end:
                continue
            rows.append({"deal_id": deal_id, "rep_id": d.rep_id, "amount": d.amount, "currency": d.currency,
                         "expected_close_at": d.expected_close_at, "probability": d.probability,
                         "forecast_category": d.forecast_category.value if d.forecast_category else None,
                         "stage_label": d.stage_label})
        return rows

    async def kpis(self, tenant: str) -> list[Kpi]:
        return [k for _, k in sorted(self.of(tenant).kpis.items())]

    async def move_custom(self, tenant: str, deltas: Mapping[CustomKey, list[int | Decimal]],
                          deals: Mapping[tuple[str, str, str, str, str], int]) -> None:
        state = self.of(tenant)
        for key, delta in deltas.items():
            held = state.custom.setdefault(key, [0, Decimal(0), 0])
            state.custom[key] = [held[0] + delta[0], held[1] + delta[1], held[2] + delta[2]]
        for key, n in deals.items():
            state.custom_deals[key] = state.custom_deals.get(key, 0) + n

    async def custom_figures(self, tenant: str, keys: Iterable[Key],
                             every: bool) -> list[tuple[str, str, str, str, Decimal, Decimal | None]]:
        state, out = self.of(tenant), []
        for scope, scope_id, period in sorted(set(keys)):
            for kpi_id, kpi in sorted(state.kpis.items()):
                key = (kpi_id, scope, scope_id, period)
                target = state.targets.get((scope, scope_id, period, kpi_id))
                if key not in state.custom and target is None:
                    continue
                n, total, unconverted = state.custom.get(key, [0, Decimal(0), 0])
                distinct = sum(1 for k, c in state.custom_deals.items() if k[:4] == key and c > 0)
                aggregation = kpi.definition.aggregation
                actual = kpi_value(aggregation, n, total, unconverted, distinct)
                if every or target is not None:
                    out.append((scope, scope_id, period, kpi_id, actual, target[1] if target else None))
        return out

    async def open_contests(self, tenant: str) -> list[StoredContest]:
        return [c for _, c in sorted(self.of(tenant).contests.items()) if c.contest.status in ("scheduled", "running")]

    async def lock_contests(self, tenant: str, contest_ids: Iterable[str]) -> list[StoredContest]:
        stored = self.of(tenant).contests
        return [stored[i] for i in sorted(set(contest_ids)) if i in stored]

    async def contest_records(self, tenant: str, contest: Contest) -> tuple[list[Deal], list[Activity]]:
        state = self.of(tenant)
        deals = [s.deal for s in state.deals.values() if s.deal is not None and any(
            contest.inside(m) for m in (s.deal.created_at, s.deal.closed_at))]
        return deals, [a for a in state.activities.values() if contest.inside(a.occurred_at)]

    async def names_of(self, tenant: str, kind: str, ids: list[str]) -> dict[str, str | None]:
        state = self.of(tenant)
        if kind == "reps":
            return {i: state.reps[i][1].get("name") for i in ids if i in state.reps}
        return {i: None for i in ids if i in state.teams}

    async def save_contest(self, tenant: str, contest_id: str, status: str, standings: list[dict[str, object]],
                           digest: str, at: datetime) -> int:
        old = self.of(tenant).contests[contest_id]
        new = StoredContest(replace(old.contest, status=status), digest, old.revision + 1, standings)  # type: ignore[arg-type]
        self.of(tenant).contests[contest_id] = new
        return new.revision

    async def win_history(self, tenant: str, since: datetime, until: datetime) -> list[Mapping[str, Any]]:
        state = self.of(tenant)
        counts: dict[tuple[str, str | None, str | None, str], list[int]] = {}
        for deal_id, stored in state.deals.items():
            d = stored.deal
            if d is None or d.stage not in ("won", "lost") or d.closed_at is None or not since <= d.closed_at < until:
                continue
            size = band(d.amount)
            labels = sorted(label for i, label in state.stages if i == deal_id)
            keys = [("band", rep, None, size) for rep in (d.rep_id, None)]
            keys += [("stage", rep, label, size) for rep in (d.rep_id, None) for label in labels]
            for key in keys:
                tally = counts.setdefault(key, [0, 0])
                tally[0] += d.stage == "won"
                tally[1] += 1
        return [{"kind": k, "rep_id": r, "stage_label": s, "band": b, "won": w, "closed": c}
                for (k, r, s, b), (w, c) in counts.items()]

    async def announce_figures(self, tenant: str, periods: list[str]) -> None:
        self.announced.append((tenant, periods[:50]))

    # outgoing events

    async def enqueue(self, items: list[Outgoing]) -> None:
        self.outbox.extend(items)
