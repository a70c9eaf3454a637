"""recognition's PostgreSQL state: what it keeps of the topics, its settings, and the ledger.

Every SQL statement of the service is here, behind `Repository`, the protocol the handlers, the timer and
the API depend on (the handler tier of tests runs them on an in-memory fake of it). One `PgRepository`
works on one connection inside the caller's transaction, scoped to the tenant the caller set; a batch's
reads and writes are set-based (arrays with `unnest`), one statement each, whatever the batch's size.

The ledger's unique key (tenant, scope, scope id, milestone, period, occasion) and its primary key (the stable
celebration id) are the "once, ever" guarantee: a milestone is announced only by the transaction whose
insert created its row (`record` says which). The contests' statements: `contest_repository.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import asyncpg

from services.recognition.batch import FigureKey
from services.recognition.contest_repository import ContestRepository, PgContestRepository
from services.recognition.model import (
    Bundle,
    Calendar,
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
from services.recognition.rules import celebration_id
from shared import leaves, token_store
from shared.cloudevents import CloudEvent
from shared.events import SUPERSEDES_SQL, AttainmentUpdated, RepUpserted, Scope, TenantUpserted, TimeOffSet
from shared.inbox import claim_many
from shared.outbox import enqueue_many
from shared.workdays import HolidayCalendar

__all__ = ["CELEBRATION_COLUMNS", "Outgoing", "PgRepository", "Repository", "calendar_of", "config_of"]

CELEBRATION_COLUMNS = ("celebration_id, scope, scope_id, milestone, period, value, headline, occurred_at, facts,"
                       " status, corrected_at")
DEAL_COLUMNS = "deal_id, rep_id, stage, amount, currency, created_at, closed_at, updated_at, tiebreak, deleted"
Outgoing = tuple[str, bytes, CloudEvent]  # topic, key, event: a row for the outbox
Version = tuple[int | None, int | None]  # the settings row's and the registry row's


class Repository(ContestRepository, Protocol):
    """What recognition reads and writes, inside the caller's transaction (its tenant already set)."""

    # tenant configuration
    async def config_version(self, tenant: str) -> Version: ...
    async def tenant_config(self, tenant: str) -> TenantConfig: ...
    async def upsert_tenants(self, entries: Sequence[TenantUpserted]) -> None: ...
    async def remember_calendar(self, tenant: str, extensions: Mapping[str, str]) -> None: ...
    async def overrides(self, tenant: str) -> dict[str, Any]: ...
    async def set_overrides(self, tenant: str, values: dict[str, Any]) -> None: ...
    # roster
    async def upsert_reps(self, tenant: str, reps: Sequence[tuple[RepUpserted, datetime]]) -> None: ...
    async def store_time_off(self, tenant: str, leaves: Sequence[tuple[TimeOffSet, datetime, str]]) -> None: ...
    async def time_off(self, tenant: str, rep_ids: Sequence[str]) -> dict[str, list[tuple[date, date]]]: ...
    async def profiles(self, tenant: str, rep_ids: Sequence[str] | None = None) -> dict[str, Profile]: ...
    # figures, deals, activities
    async def claim(self, events: Sequence[CloudEvent]) -> list[bool]: ...
    async def figures(self, tenant: str, keys: Sequence[FigureKey]) -> dict[FigureKey, Figure]: ...
    async def save_figures(self, tenant: str, figures: Sequence[AttainmentUpdated]) -> None: ...
    async def targeted_figures(self, tenant: str) -> list[AttainmentUpdated]: ...
    async def deals(self, tenant: str, deal_ids: Sequence[str], rep_ids: Sequence[str]) -> dict[str, StoredDeal]: ...
    async def save_deals(self, tenant: str, deals: Sequence[StoredDeal]) -> None: ...
    async def won_deals(self, tenant: str, rep_ids: Sequence[str], start: datetime,
                        end: datetime) -> list[WonDeal]: ...
    async def period_deals(self, tenant: str, start: datetime, end: datetime) -> list[StoredDeal]: ...
    async def add_activities(self, tenant: str, activities: Sequence[tuple[str, Moment]]) -> set[str]: ...
    async def activity_moments(self, tenant: str,
                               windows: Mapping[str, tuple[datetime, datetime]]) -> dict[str, list[datetime]]: ...
    async def activity_counts(self, tenant: str, start: datetime,
                              end: datetime) -> dict[tuple[str, str | None], int]: ...
    # the ledger and the outbox
    async def record(self, tenant: str, entries: Sequence[Entry]) -> list[str | None]: ...
    async def bundle(self, tenant: str, bundles: Sequence[Bundle]) -> None: ...
    async def mark_corrected(self, tenant: str, drops: Sequence[Drop], at: datetime) -> list[Corrected]: ...
    async def celebrations(self, tenant: str, *, scope_id: str | None, period: str | None, limit: int,
                           before: datetime | None = None) -> list[dict[str, Any]]: ...
    async def enqueue(self, items: Sequence[Outgoing]) -> None: ...
    # period closes
    async def active_tenants(self) -> list[str]: ...
    async def claim_period_close(self, tenant: str, period: str, at: datetime) -> bool: ...


def calendar_of(row: Mapping[str, Any] | None) -> Calendar:
    """A registry row as a `Calendar` (UTC, January, no currency without one)."""
    if row is None or row["timezone"] is None:
        return Calendar()
    rates: dict[str, list[tuple[date, Decimal]]] = {}
    for currency, valid_from, rate in json.loads(row["rates"] or "[]"):
        rates.setdefault(currency, []).append((date.fromisoformat(valid_from), Decimal(rate)))
    return Calendar(ZoneInfo(row["timezone"]), row["fiscal_start_month"], row["currency"],
                    {c: tuple(sorted(r)) for c, r in rates.items()},
                    HolidayCalendar.of(row.get("holidays")))


def config_of(row: Mapping[str, Any]) -> TenantConfig:
    raw = row["overrides"]
    settings = Settings.model_validate(json.loads(raw)) if raw else Settings()
    return TenantConfig(settings, calendar_of(row), (row["settings_version"], row["tenant_version"]))


def _facts(entry: Entry) -> str:
    return json.dumps({k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in entry.found.facts.items()},
                      default=str)


def _deal(r: Mapping[str, Any]) -> StoredDeal:
    return StoredDeal(r["deal_id"], r["rep_id"], r["stage"], r["amount"], r["currency"], r["created_at"],
                      r["closed_at"], r["updated_at"], r["tiebreak"], r["deleted"])


class PgRepository(PgContestRepository):
    """`Repository` on one asyncpg connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # --- tenant configuration ---------------------------------------------------------------------------

    async def config_version(self, tenant: str) -> Version:
        """The versions of the tenant's settings and registry rows: one cheap read per batch."""
        row = await self.conn.fetchrow("SELECT (SELECT version FROM settings WHERE tenant = $1) AS s,"
                                       " (SELECT version FROM tenants WHERE tenant = $1) AS t", tenant)
        return row["s"], row["t"]

    async def tenant_config(self, tenant: str) -> TenantConfig:
        row = await self.conn.fetchrow(
            "SELECT s.overrides, s.version AS settings_version, t.timezone, t.fiscal_start_month, t.currency,"
            " t.rates, t.holidays, t.version AS tenant_version FROM (SELECT $1::text AS tenant) k"
            " LEFT JOIN settings s ON s.tenant = k.tenant LEFT JOIN tenants t ON t.tenant = k.tenant", tenant)
        return config_of(row)

    async def upsert_tenants(self, entries: Sequence[TenantUpserted]) -> None:
        """The registry's word on tenants (the last entry per tenant): calendar, currency, rates, token, active."""
        last = {e.tenant: e for e in entries}
        rates = [json.dumps([[r.currency, r.valid_from.isoformat(), format(r.rate, "f")] for r in e.rates])
                 for e in last.values()]
        await self.conn.execute(
            "INSERT INTO tenants (tenant, timezone, fiscal_start_month, currency, token_sha256, active, rates,"
            " holidays) SELECT t, z, f, c, decode(h, 'hex'), a, r::jsonb, d::jsonb FROM unnest($1::text[],"
            " $2::text[], $3::int[], $4::text[], $5::text[], $6::bool[], $7::text[], $8::text[])"
            " AS u(t, z, f, c, h, a, r, d)"
            " ON CONFLICT (tenant) DO UPDATE SET timezone = EXCLUDED.timezone,"
            " fiscal_start_month = EXCLUDED.fiscal_start_month, currency = EXCLUDED.currency,"
            " token_sha256 = EXCLUDED.token_sha256, active = EXCLUDED.active, rates = EXCLUDED.rates,"
            " holidays = EXCLUDED.holidays",
            list(last), [e.timezone for e in last.values()], [e.fiscal_start_month for e in last.values()],
            [e.currency for e in last.values()], [e.token_sha256 for e in last.values()],
            [e.active for e in last.values()], rates,
            [e.holidays.model_dump_json() if e.holidays is not None else None for e in last.values()])
        await token_store.replace(self.conn, list(last.values()))

    async def store_time_off(self, tenant: str, items: Sequence[tuple[TimeOffSet, datetime, str]]) -> None:
        """Each `time_off.set` (`shared.leaves.store`)."""
        await leaves.store(self.conn, tenant, items)

    async def time_off(self, tenant: str, rep_ids: Sequence[str]) -> dict[str, list[tuple[date, date]]]:
        """Each rep's time off in force, as (first day, last day) ranges (`shared.leaves.ranges`)."""
        return await leaves.ranges(self.conn, tenant, rep_ids)

    async def remember_calendar(self, tenant: str, extensions: Mapping[str, str]) -> None:
        """A tenant seen on a sales event before its registry entry: keep its zone and currency from the event."""
        await self.conn.execute(
            "INSERT INTO tenants (tenant, timezone, fiscal_start_month, currency) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (tenant) DO NOTHING", tenant, extensions["tenanttimezone"],
            int(extensions.get("tenantfiscalstart") or 1), extensions.get("tenantcurrency") or None)

    async def overrides(self, tenant: str) -> dict[str, Any]:
        raw = await self.conn.fetchval("SELECT overrides FROM settings WHERE tenant = $1", tenant)
        return json.loads(raw) if raw else {}

    async def set_overrides(self, tenant: str, values: dict[str, Any]) -> None:
        await self.conn.execute(
            "INSERT INTO settings (tenant, overrides) VALUES ($1, $2::jsonb) ON CONFLICT (tenant)"
            " DO UPDATE SET overrides = EXCLUDED.overrides", tenant, json.dumps(values, default=str))

    # --- roster -----------------------------------------------------------------------------------------

    async def upsert_reps(self, tenant: str, reps: Sequence[tuple[RepUpserted, datetime]]) -> None:
        """Keep each rep's newest version (the event's time; on a tie the later one)."""
        newest: dict[str, tuple[RepUpserted, datetime]] = {}
        for rep, version in reps:
            if rep.rep_id not in newest or newest[rep.rep_id][1] <= version:
                newest[rep.rep_id] = (rep, version)
        await self.conn.execute(
            "INSERT INTO reps (tenant, rep_id, name, team_id, timezone, version) SELECT $1, * FROM unnest($2::text[],"
            " $3::text[], $4::text[], $5::text[], $6::timestamptz[]) ORDER BY 2"
            " ON CONFLICT (tenant, rep_id) DO UPDATE SET name = EXCLUDED.name, team_id = EXCLUDED.team_id,"
            " timezone = EXCLUDED.timezone,"
            " version = EXCLUDED.version WHERE reps.version <= EXCLUDED.version",
            tenant, list(newest), [r.name for r, _ in newest.values()], [r.team_id for r, _ in newest.values()],
            [r.timezone for r, _ in newest.values()], [v for _, v in newest.values()])

    async def profiles(self, tenant: str, rep_ids: Sequence[str] | None = None) -> dict[str, Profile]:
        """The roster's reps (``rep_ids``: only those)."""
        rows = await self.conn.fetch("SELECT rep_id, name, team_id, timezone FROM reps WHERE tenant = $1"
                                     " AND ($2::text[] IS NULL OR rep_id = ANY($2::text[]))",
                                     tenant, None if rep_ids is None else list(rep_ids))
        return {r["rep_id"]: Profile(r["name"], r["team_id"], r["timezone"]) for r in rows}

    # --- figures ----------------------------------------------------------------------------------------

    async def claim(self, events: Sequence[CloudEvent]) -> list[bool]:
        return await claim_many(self.conn, events)

    async def figures(self, tenant: str, keys: Sequence[FigureKey]) -> dict[FigureKey, Figure]:
        """The stored figures of ``keys``, locked (in key order, so two replicas cannot deadlock on them)."""
        if not keys:
            return {}
        rows = await self.conn.fetch(
            "SELECT scope, scope_id, period, metric, attainment, as_of, revision FROM attainment WHERE tenant = $1"
            " AND (scope, scope_id, period, metric) IN (SELECT * FROM unnest($2::text[], $3::text[], $4::text[],"
            " $5::text[])) ORDER BY scope, scope_id, period, metric FOR UPDATE",
            tenant, *(list(column) for column in zip(*keys, strict=True)))
        return {(r["scope"], r["scope_id"], r["period"], r["metric"]): Figure(r["attainment"], r["as_of"],
                                                                              r["revision"]) for r in rows}

    async def save_figures(self, tenant: str, figures: Sequence[AttainmentUpdated]) -> None:
        """Store figures (one per key); an older one than the stored figure (`supersedes`) changes nothing."""
        await self.conn.execute(
            "INSERT INTO attainment (tenant, scope, scope_id, period, metric, actual, target, attainment, name, as_of,"
            " revision)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[], $7::numeric[],"
            " $8::numeric[], $9::text[], $10::timestamptz[], $11::bigint[]) ORDER BY 2, 3, 4, 5"
            " ON CONFLICT (tenant, scope, scope_id, period, metric)"
            " DO UPDATE SET actual = EXCLUDED.actual, target = EXCLUDED.target, attainment = EXCLUDED.attainment,"
            " name = EXCLUDED.name, as_of = EXCLUDED.as_of, revision = EXCLUDED.revision"
            f" WHERE {SUPERSEDES_SQL.format(held='attainment')}",
            tenant, [f.scope.value for f in figures], [f.scope_id for f in figures], [f.period for f in figures],
            [str(f.metric) for f in figures], [f.actual for f in figures], [f.target for f in figures],
            [f.attainment for f in figures], [f.name for f in figures], [f.as_of for f in figures],
            [f.revision for f in figures])

    async def targeted_figures(self, tenant: str) -> list[AttainmentUpdated]:
        """Every stored figure with a target (what a settings change catches up on)."""
        rows = await self.conn.fetch("SELECT scope, scope_id, period, metric, actual, target, attainment, name, as_of,"
                                     " revision FROM attainment WHERE tenant = $1 AND target > 0", tenant)
        return [AttainmentUpdated.model_validate(dict(r)) for r in rows]

    # --- deals ------------------------------------------------------------------------------------------

    async def deals(self, tenant: str, deal_ids: Sequence[str], rep_ids: Sequence[str]) -> dict[str, StoredDeal]:
        """The stored versions of ``deal_ids`` and every won deal of ``rep_ids``, in one read.

        Not locked (the old code locked the deal, one statement more per record): should two batches race on
        one deal (its owner changed, its deletion came on another partition), `save_deals` still keeps the
        newest version (its guard is evaluated against the row as committed) and the ledger keeps each
        milestone once, whichever batch found it."""
        rows = await self.conn.fetch(
            f"SELECT {DEAL_COLUMNS} FROM deals WHERE tenant = $1 AND (deal_id = ANY($2::text[])"
            " OR (rep_id = ANY($3::text[]) AND stage = 'won' AND NOT deleted AND closed_at IS NOT NULL))",
            tenant, list(deal_ids), list(rep_ids))
        return {r["deal_id"]: _deal(r) for r in rows}

    async def save_deals(self, tenant: str, deals: Sequence[StoredDeal]) -> None:
        """Store deal versions (one per deal); an older one than the stored version changes nothing."""
        await self.conn.execute(
            "INSERT INTO deals (tenant, deal_id, rep_id, stage, amount, currency, created_at, closed_at, updated_at,"
            " tiebreak, deleted) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::numeric[],"
            " $6::text[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::bool[])"
            " ORDER BY 2 ON CONFLICT (tenant, deal_id) DO UPDATE SET rep_id = EXCLUDED.rep_id, stage = EXCLUDED.stage,"
            " amount = EXCLUDED.amount, currency = EXCLUDED.currency, created_at = EXCLUDED.created_at,"
            " closed_at = EXCLUDED.closed_at, updated_at = EXCLUDED.updated_at, tiebreak = EXCLUDED.tiebreak,"
            " deleted = EXCLUDED.deleted"
            " WHERE (deals.updated_at, deals.tiebreak) < (EXCLUDED.updated_at, EXCLUDED.tiebreak COLLATE \"C\")",
            tenant, [d.deal_id for d in deals], [d.rep_id for d in deals], [d.stage for d in deals],
            [d.amount for d in deals], [d.currency for d in deals], [d.created_at for d in deals],
            [d.closed_at for d in deals], [d.updated_at for d in deals], [d.tiebreak for d in deals],
            [d.deleted for d in deals])

    async def won_deals(self, tenant: str, rep_ids: Sequence[str], start: datetime, end: datetime) -> list[WonDeal]:
        rows = await self.conn.fetch(
            "SELECT deal_id, rep_id, amount, currency, closed_at FROM deals WHERE tenant = $1"
            " AND rep_id = ANY($2::text[]) AND stage = 'won' AND NOT deleted AND closed_at >= $3 AND closed_at < $4",
            tenant, list(rep_ids), start, end)
        return [WonDeal(r["deal_id"], r["rep_id"], r["amount"], r["currency"].strip(), r["closed_at"]) for r in rows]

    async def period_deals(self, tenant: str, start: datetime, end: datetime) -> list[StoredDeal]:
        """The live deals created or closed in ``[start, end)``."""
        rows = await self.conn.fetch(
            f"SELECT {DEAL_COLUMNS} FROM deals WHERE tenant = $1 AND NOT deleted AND"
            " ((closed_at >= $2 AND closed_at < $3) OR (created_at >= $2 AND created_at < $3))", tenant, start, end)
        return [_deal(r) for r in rows]

    # --- activities -------------------------------------------------------------------------------------

    async def add_activities(self, tenant: str, activities: Sequence[tuple[str, Moment]]) -> set[str]:
        """Store activities by id; the ids that were new."""
        rows = await self.conn.fetch(
            "INSERT INTO activities (tenant, activity_id, rep_id, occurred_at, kind) SELECT $1, * FROM"
            " unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[]) ORDER BY 2 ON CONFLICT DO NOTHING"
            " RETURNING activity_id", tenant, [i for i, _ in activities], [m.rep_id for _, m in activities],
            [m.occurred_at for _, m in activities], [m.kind for _, m in activities])
        return {r[0] for r in rows}

    async def activity_moments(self, tenant: str,
                               windows: Mapping[str, tuple[datetime, datetime]]) -> dict[str, list[datetime]]:
        """Per rep, the moments of its stored activities in its ``[since, until)`` window."""
        rows = await self.conn.fetch(
            "SELECT a.rep_id, a.occurred_at FROM activities a JOIN unnest($2::text[], $3::timestamptz[],"
            " $4::timestamptz[]) AS w(rep_id, since, until) ON a.rep_id = w.rep_id AND a.occurred_at >= w.since"
            " AND a.occurred_at < w.until WHERE a.tenant = $1", tenant, list(windows),
            [s for s, _ in windows.values()], [u for _, u in windows.values()])
        moments: dict[str, list[datetime]] = {}
        for r in rows:
            moments.setdefault(r[0], []).append(r[1])
        return moments

    async def activity_counts(self, tenant: str, start: datetime, end: datetime) -> dict[tuple[str, str | None], int]:
        rows = await self.conn.fetch("SELECT rep_id, kind, count(*) FROM activities WHERE tenant = $1"
                                     " AND occurred_at >= $2 AND occurred_at < $3 GROUP BY rep_id, kind",
                                     tenant, start, end)
        return {(r[0], r[1]): r[2] for r in rows}

    # --- the ledger and the outbox ----------------------------------------------------------------------

    async def record(self, tenant: str, entries: Sequence[Entry]) -> list[str | None]:
        """Put milestones in the ledger; per entry its celebration id when THIS insert created its row."""
        if not entries:
            return []
        cids = [celebration_id(tenant, str(e.found.scope), e.found.scope_id, e.found.milestone, e.found.period,
                               e.found.occasion) for e in entries]
        rows = await self.conn.fetch(
            "INSERT INTO celebrations (celebration_id, tenant, scope, scope_id, milestone, period, value, headline,"
            " occurred_at, facts, status, metric, occasion) SELECT u.c, $1, u.s, u.i, u.m, u.p, u.v, u.h, u.o,"
            " u.f::jsonb, u.st, u.me, u.oc FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],"
            " $7::numeric[], $8::text[], $9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::text[])"
            " WITH ORDINALITY AS u(c, s, i, m, p, v, h, o, f, st, me, oc, n) ORDER BY u.c ON CONFLICT DO NOTHING"
            " RETURNING celebration_id",
            tenant, cids, [str(e.found.scope) for e in entries], [e.found.scope_id for e in entries],
            [e.found.milestone for e in entries], [e.found.period for e in entries],
            [e.found.value for e in entries], [e.headline for e in entries], [e.found.occurred_at for e in entries],
            [_facts(e) for e in entries], [e.status for e in entries], [e.metric for e in entries],
            [e.found.occasion for e in entries])
        created = {r[0] for r in rows}
        return [str(cid) if cid in created else None for cid in cids]

    async def bundle(self, tenant: str, bundles: Sequence[Bundle]) -> None:
        """Each lead row gets the headline and facts naming everything it carries; its members become 'bundled'
        into it (two statements for the whole batch)."""
        await self.conn.execute(
            "UPDATE celebrations c SET headline = u.h, facts = u.f::jsonb FROM unnest($2::uuid[], $3::text[],"
            " $4::text[]) AS u(c, h, f) WHERE c.tenant = $1 AND c.celebration_id = u.c",
            tenant, [b.celebration_id for b in bundles], [b.lead.headline for b in bundles],
            [_facts(b.lead) for b in bundles])
        members = [(m, b.celebration_id) for b in bundles for m in b.members]
        await self.conn.execute(
            "UPDATE celebrations c SET status = 'bundled', bundled_into = u.l FROM unnest($2::uuid[], $3::uuid[])"
            " AS u(m, l) WHERE c.tenant = $1 AND c.celebration_id = u.m",
            tenant, [m for m, _ in members], [lead for _, lead in members])

    async def mark_corrected(self, tenant: str, drops: Sequence[Drop], at: datetime) -> list[Corrected]:
        """The celebrated, not yet corrected milestones of ``drops``, now marked corrected."""
        rows = await self.conn.fetch(
            "UPDATE celebrations c SET corrected_at = $2 FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])"
            " AS d(scope, scope_id, milestone, period) WHERE c.tenant = $1 AND c.scope = d.scope"
            " AND c.scope_id = d.scope_id AND c.milestone = d.milestone AND c.period = d.period"
            " AND c.status = 'celebrated' AND c.corrected_at IS NULL"
            " RETURNING c.celebration_id, c.scope, c.scope_id, c.milestone, c.period",
            tenant, at, [d.scope.value for d in drops], [d.scope_id for d in drops], [d.milestone for d in drops],
            [d.period for d in drops])
        return [Corrected(str(r[0]), Scope(r[1]), r[2], r[3], r[4]) for r in rows]

    async def celebrations(self, tenant: str, *, scope_id: str | None, period: str | None, limit: int,
                           before: datetime | None = None) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.conn.fetch(
            f"SELECT {CELEBRATION_COLUMNS} FROM celebrations WHERE tenant = $1 AND status = 'celebrated'"
            " AND ($2::text IS NULL OR scope_id = $2) AND ($3::text IS NULL OR period = $3)"
            " AND ($5::timestamptz IS NULL OR occurred_at < $5) ORDER BY occurred_at DESC, celebration_id LIMIT $4",
            tenant, scope_id, period, limit, before)]

    async def enqueue(self, items: Sequence[Outgoing]) -> None:
        await enqueue_many(self.conn, list(items))

    # --- period closes ----------------------------------------------------------------------------------

    async def active_tenants(self) -> list[str]:
        """Every active tenant of the registry (readable in every scope)."""
        return [r[0] for r in await self.conn.fetch("SELECT tenant FROM tenants WHERE active ORDER BY tenant")]

    async def claim_period_close(self, tenant: str, period: str, at: datetime) -> bool:
        """True for the one transaction that settles this tenant's closed period."""
        return bool(await self.conn.fetchval("INSERT INTO period_closes (tenant, period, settled_at)"
                                             " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
                                             tenant, period, at))
