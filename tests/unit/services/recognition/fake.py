"""An in-memory `Repository`: recognition's state in dicts, with the same guards as the SQL (newest version
wins, the inbox and the ledger keep the first of each key, a correction is made once), so the handlers run
without PostgreSQL. `tests/integration/recognition/test_fake_repository.py` feeds the same stream to it and to
`PgRepository` and compares what both hold."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.recognition.batch import FigureKey
from services.recognition.model import (
    Bundle,
    Calendar,
    Contest,
    Corrected,
    Drop,
    Entry,
    Figure,
    Moment,
    Profile,
    Settings,
    StoredDeal,
    TenantConfig,
    WonDeal,
)
from services.recognition.repository import Outgoing, Repository, Version, calendar_of
from services.recognition.rules import celebration_id
from shared.cloudevents import CloudEvent
from shared.events import AttainmentUpdated, RepUpserted, TenantUpserted, TimeOffSet, supersedes

_versions = itertools.count(1)


@dataclass
class Row:
    """A ledger row."""

    celebration_id: str
    entry: Entry
    corrected_at: datetime | None = None


@dataclass
class FakeRepository(Repository):
    """Every tenant's state; `calls` counts the reads and writes made, by method."""

    settings: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    tenants: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    reps: dict[tuple[str, str], tuple[Profile, datetime]] = field(default_factory=dict)
    inbox: set[tuple[str, str, str]] = field(default_factory=set)
    attainment: dict[tuple[str, FigureKey], AttainmentUpdated] = field(default_factory=dict)
    deal_rows: dict[tuple[str, str], StoredDeal] = field(default_factory=dict)
    activities: dict[tuple[str, str], Moment] = field(default_factory=dict)
    ledger: dict[tuple[str, str, str, str, str, str], Row] = field(default_factory=dict)  # ... period, occasion
    outbox: list[Outgoing] = field(default_factory=list)
    closes: set[tuple[str, str]] = field(default_factory=set)
    contest_rows: dict[tuple[str, str], Contest] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    leaves: dict[tuple[str, str], tuple[TimeOffSet, datetime, str]] = field(default_factory=dict)
    # settings every tenant of the test has set before it began (as if through the API), under its own
    defaults: dict[str, Any] = field(default_factory=dict)

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    # --- tenant configuration ---------------------------------------------------------------------------

    async def config_version(self, tenant: str) -> Version:
        self._count("config_version")
        s, t = self.settings.get(tenant), self.tenants.get(tenant)
        return (s[1] if s else None), (t[1] if t else None)

    async def tenant_config(self, tenant: str) -> TenantConfig:
        self._count("tenant_config")
        s, t = self.settings.get(tenant), self.tenants.get(tenant)
        settings = Settings.model_validate({**self.defaults, **(s[0] if s else {})})
        calendar = calendar_of(t[0]) if t else Calendar()
        return TenantConfig(settings, calendar, ((s[1] if s else None), (t[1] if t else None)))

    async def upsert_tenants(self, entries: Sequence[TenantUpserted]) -> None:
        self._count("upsert_tenants")
        for e in entries:
            rates = json.dumps([[r.currency, r.valid_from.isoformat(), format(r.rate, "f")] for r in e.rates])
            self.tenants[e.tenant] = ({"timezone": e.timezone, "fiscal_start_month": e.fiscal_start_month,
                                       "currency": e.currency, "rates": rates, "active": e.active,
                                       "holidays": e.holidays.model_dump_json() if e.holidays else None},
                                      next(_versions))

    async def remember_calendar(self, tenant: str, extensions: Mapping[str, str]) -> None:
        self._count("remember_calendar")
        self.tenants.setdefault(tenant, ({
            "timezone": extensions["tenanttimezone"], "fiscal_start_month": int(extensions.get("tenantfiscalstart")
                                                                                or 1),
            "currency": extensions.get("tenantcurrency") or None, "rates": "[]", "active": True}, next(_versions)))

    async def overrides(self, tenant: str) -> dict[str, Any]:
        return dict(self.settings[tenant][0]) if tenant in self.settings else {}

    async def set_overrides(self, tenant: str, values: dict[str, Any]) -> None:
        self._count("set_overrides")
        self.settings[tenant] = (json.loads(json.dumps(values, default=str)), next(_versions))

    # --- roster -----------------------------------------------------------------------------------------

    async def store_time_off(self, tenant: str, leaves: Sequence[tuple[TimeOffSet, datetime, str]]) -> None:
        self._count("store_time_off")
        for leave, at, event_id in leaves:
            held = self.leaves.get((tenant, leave.time_off_id))
            if held is None or (held[1], held[2]) < (at, event_id):
                self.leaves[(tenant, leave.time_off_id)] = (leave, at, event_id)

    async def time_off(self, tenant: str, rep_ids: Sequence[str]) -> dict[str, list[tuple[date, date]]]:
        self._count("time_off")
        out: dict[str, list[tuple[date, date]]] = {}
        for (t, _), (leave, _, _) in self.leaves.items():
            if t == tenant and leave.rep_id in rep_ids and not leave.cancelled:
                out.setdefault(leave.rep_id, []).append((leave.first_day, leave.last_day))
        return out

    async def upsert_reps(self, tenant: str, reps: Sequence[tuple[RepUpserted, datetime]]) -> None:
        self._count("upsert_reps")
        for rep, version in reps:
            stored = self.reps.get((tenant, rep.rep_id))
            if stored is None or stored[1] <= version:
                self.reps[(tenant, rep.rep_id)] = (Profile(rep.name, rep.team_id, rep.timezone), version)

    async def profiles(self, tenant: str, rep_ids: Sequence[str] | None = None) -> dict[str, Profile]:
        self._count("profiles")
        return {rep: p for (t, rep), (p, _) in self.reps.items() if t == tenant and (rep_ids is None or rep in rep_ids)}

    # --- figures, deals, activities ---------------------------------------------------------------------

    async def claim(self, events: Sequence[CloudEvent]) -> list[bool]:
        self._count("claim")
        out = []
        for e in events:
            key = (e.tenant, e.source, e.id)
            out.append(key not in self.inbox)
            self.inbox.add(key)
        return out

    async def figures(self, tenant: str, keys: Sequence[FigureKey]) -> dict[FigureKey, Figure]:
        self._count("figures")
        return {k: Figure(f.attainment, f.as_of, f.revision) for k in keys
                if (f := self.attainment.get((tenant, k))) is not None}

    async def save_figures(self, tenant: str, figures: Sequence[AttainmentUpdated]) -> None:
        self._count("save_figures")
        for f in figures:
            key = (tenant, (f.scope.value, f.scope_id, f.period, str(f.metric)))
            held = self.attainment.get(key)
            if held is None or supersedes(held.revision, held.as_of, f.revision, f.as_of):
                self.attainment[key] = f

    async def targeted_figures(self, tenant: str) -> list[AttainmentUpdated]:
        return [f for (t, _), f in self.attainment.items() if t == tenant and f.target]

    async def deals(self, tenant: str, deal_ids: Sequence[str], rep_ids: Sequence[str]) -> dict[str, StoredDeal]:
        self._count("deals")
        return {d.deal_id: d for (t, _), d in self.deal_rows.items()
                if t == tenant and (d.deal_id in deal_ids or (d.rep_id in rep_ids and d.won))}

    async def save_deals(self, tenant: str, deals: Sequence[StoredDeal]) -> None:
        self._count("save_deals")
        for d in deals:
            stored = self.deal_rows.get((tenant, d.deal_id))
            if stored is None or (stored.updated_at, stored.tiebreak) < (d.updated_at, d.tiebreak):
                self.deal_rows[(tenant, d.deal_id)] = d

    async def won_deals(self, tenant: str, rep_ids: Sequence[str], start: datetime, end: datetime) -> list[WonDeal]:
        return [WonDeal(d.deal_id, d.rep_id, d.amount, d.currency.strip(), d.closed_at)
                for (t, _), d in self.deal_rows.items() if t == tenant and d.won and d.rep_id in rep_ids
                and d.closed_at is not None and start <= d.closed_at < end]

    async def period_deals(self, tenant: str, start: datetime, end: datetime) -> list[StoredDeal]:
        return [d for (t, _), d in self.deal_rows.items() if t == tenant and not d.deleted and (
            (d.closed_at is not None and start <= d.closed_at < end)
            or (d.created_at is not None and start <= d.created_at < end))]

    async def add_activities(self, tenant: str, activities: Sequence[tuple[str, Moment]]) -> set[str]:
        self._count("add_activities")
        new = set()
        for activity_id, moment in activities:
            if (tenant, activity_id) not in self.activities:
                self.activities[(tenant, activity_id)] = moment
                new.add(activity_id)
        return new

    async def activity_moments(self, tenant: str,
                               windows: Mapping[str, tuple[datetime, datetime]]) -> dict[str, list[datetime]]:
        self._count("activity_moments")
        out: dict[str, list[datetime]] = {}
        for (t, _), m in self.activities.items():
            if t == tenant and m.rep_id in windows and windows[m.rep_id][0] <= m.occurred_at < windows[m.rep_id][1]:
                out.setdefault(m.rep_id, []).append(m.occurred_at)
        return out

    async def activity_counts(self, tenant: str, start: datetime, end: datetime) -> dict[tuple[str, str | None], int]:
        out: dict[tuple[str, str | None], int] = {}
        for (t, _), m in self.activities.items():
            if t == tenant and start <= m.occurred_at < end:
                out[(m.rep_id, m.kind)] = out.get((m.rep_id, m.kind), 0) + 1
        return out

    # --- the ledger and the outbox ----------------------------------------------------------------------

    async def record(self, tenant: str, entries: Sequence[Entry]) -> list[str | None]:
        self._count("record")
        out: list[str | None] = []
        for e in entries:
            f = e.found
            key = (tenant, str(f.scope), f.scope_id, f.milestone, f.period, f.occasion)
            cid = str(celebration_id(tenant, str(f.scope), f.scope_id, f.milestone, f.period, f.occasion))
            if key in self.ledger:
                out.append(None)
            else:
                self.ledger[key] = Row(cid, e)
                out.append(cid)
        return out

    async def bundle(self, tenant: str, bundles: Sequence[Bundle]) -> None:
        self._count("bundle")
        by_cid = {row.celebration_id: key for key, row in self.ledger.items() if key[0] == tenant}
        for b in bundles:
            lead_key = by_cid[b.celebration_id]
            self.ledger[lead_key] = replace(self.ledger[lead_key], entry=b.lead)
            for member in b.members:
                key = by_cid[member]
                self.ledger[key] = replace(self.ledger[key], entry=replace(self.ledger[key].entry, status="bundled"))

    async def mark_corrected(self, tenant: str, drops: Sequence[Drop], at: datetime) -> list[Corrected]:
        self._count("mark_corrected")
        out = []
        for d in drops:
            row = self.ledger.get((tenant, d.scope.value, d.scope_id, d.milestone, d.period, ""))
            if row is not None and row.entry.status == "celebrated" and row.corrected_at is None:
                self.ledger[(tenant, d.scope.value, d.scope_id, d.milestone, d.period, "")] = replace(
                    row, corrected_at=at)
                out.append(Corrected(row.celebration_id, d.scope, d.scope_id, d.milestone, d.period))
        return out

    async def celebrations(self, tenant: str, *, scope_id: str | None, period: str | None, limit: int,
                           before: datetime | None = None) -> list[dict[str, Any]]:
        rows = [r for (t, _, s, _, p, _), r in self.ledger.items() if t == tenant and r.entry.status == "celebrated"
                and scope_id in (None, s) and period in (None, p)
                and (before is None or r.entry.found.occurred_at < before)]
        rows.sort(key=lambda r: (r.entry.found.occurred_at, r.celebration_id), reverse=True)
        return [{"celebration_id": r.celebration_id, "milestone": r.entry.found.milestone,
                 "value": Decimal(r.entry.found.value)} for r in rows[:limit]]

    async def enqueue(self, items: Sequence[Outgoing]) -> None:
        self._count("enqueue")
        self.outbox += items

    # --- period closes ----------------------------------------------------------------------------------

    async def active_tenants(self) -> list[str]:
        return sorted(t for t, (row, _) in self.tenants.items() if row["active"])

    async def claim_period_close(self, tenant: str, period: str, at: datetime) -> bool:
        if (tenant, period) in self.closes:
            return False
        self.closes.add((tenant, period))
        return True

    # --- contests ---------------------------------------------------------------------------------------

    async def contests(self, tenant: str, contest_ids: Sequence[str]) -> dict[str, Contest]:
        self._count("contests")
        return {c: self.contest_rows[(tenant, c)] for c in contest_ids if (tenant, c) in self.contest_rows}

    async def save_contests(self, tenant: str, contests: Sequence[Contest]) -> None:
        self._count("save_contests")
        for c in contests:
            held = self.contest_rows.get((tenant, c.contest_id))
            if held is None or held.latest.revision <= c.latest.revision:
                self.contest_rows[(tenant, c.contest_id)] = c

    async def leading(self, tenant: str) -> list[Contest]:
        return [c for (t, _), c in sorted(self.contest_rows.items()) if t == tenant and c.latest.status == "running"
                and c.candidate is not None and c.candidate != c.celebrated]

    async def leading_tenants(self, at: datetime) -> list[str]:
        return sorted({t for (t, _), c in self.contest_rows.items() if c.latest.status == "running"
                       and c.candidate is not None and c.candidate != c.celebrated and c.latest.ends_at > at})
