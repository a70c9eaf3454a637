"""kpi's PostgreSQL state: idempotent transitions (newest version wins) and the figures they feed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from services.kpi.contests import Contest
from services.kpi.contributions import (
    FIELDS,
    MONEY,
    START_OF_TIME,
    Activity,
    Books,
    CustomKey,
    Deal,
    Key,
    Ledger,
    Vector,
    tally_of,
)
from services.kpi.custom import Kpi, KpiDefinition
from services.kpi.custom import value as kpi_value
from services.kpi.outlook import BAND_SQL
from services.kpi.pace import calendar_of
from services.kpi.roster import Span, Version
from services.kpi.tally import Tally
from shared import leaves, token_store
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

EMPTY = Tally()
_V = TypeVar("_V")


UNKNOWN_CALENDAR = ("UTC", 1, None)  # what kpi counts in for a tenant it has not heard of yet


async def _calendar_before(conn: asyncpg.Connection, tenant: str, *, lock: bool) -> tuple[str, int, str | None]:
    row = await conn.fetchrow("SELECT timezone, fiscal_start_month, currency FROM tenants WHERE tenant = $1"
                              + (" FOR UPDATE" if lock else ""), tenant)
    return (row["timezone"], row["fiscal_start_month"], row["currency"] or None) if row else UNKNOWN_CALENDAR


async def remember_tenant(conn: asyncpg.Connection, event: CloudEvent) -> bool:
    """Take the tenant's calendar from an event's extensions; True when that changes what kpi counted in."""
    tz = event.tenant_timezone
    if not tz:
        return False
    calendar = (tz, int(event.extensions.get("tenantfiscalstart", "1") or 1),
                event.extensions.get("tenantcurrency") or None)
    # every batch asks, and nearly always nothing changed: only a change takes the row's lock, so replicas
    # applying the same tenant's partitions do not queue behind each other on it
    if await _calendar_before(conn, event.tenant, lock=False) == calendar:
        return False
    if await _calendar_before(conn, event.tenant, lock=True) == calendar:
        return False  # another replica got there first
    await conn.execute(
        "INSERT INTO tenants (tenant, timezone, fiscal_start_month, currency) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant) DO UPDATE SET timezone = EXCLUDED.timezone,"
        " fiscal_start_month = EXCLUDED.fiscal_start_month, currency = EXCLUDED.currency",
        event.tenant, *calendar,
    )
    return True


async def register_tenant(conn: asyncpg.Connection, entry: TenantUpserted) -> bool:
    """The registry's word on a tenant: its token digest, whether it is active, its calendar, currency, locale
    and holidays.

    True when that changes the calendar, base currency or exchange rates kpi counted the tenant in (the
    holidays count in no tally: they change the pace of the figures computed from then on, nothing more)."""
    before = await _calendar_before(conn, entry.tenant, lock=True)
    holidays = None if entry.holidays is None else json.dumps(entry.holidays.model_dump(mode="json"))
    await conn.execute(
        "INSERT INTO tenants (tenant, timezone, fiscal_start_month, currency, token_sha256, active, locale, holidays)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) ON CONFLICT (tenant) DO UPDATE SET"
        " timezone = EXCLUDED.timezone, fiscal_start_month = EXCLUDED.fiscal_start_month,"
        " currency = EXCLUDED.currency, token_sha256 = EXCLUDED.token_sha256, active = EXCLUDED.active,"
        " locale = EXCLUDED.locale, holidays = EXCLUDED.holidays",
        entry.tenant, entry.timezone, entry.fiscal_start_month, entry.currency,
        bytes.fromhex(entry.token_sha256), entry.active, entry.locale, holidays)
    await token_store.replace(conn, [entry])
    rates = sorted((r.currency, r.valid_from, r.rate) for r in entry.rates)
    stored = [(r["currency"].strip(), r["valid_from"], r["rate"]) for r in await conn.fetch(
        "DELETE FROM fx_rates WHERE tenant = $1 RETURNING currency, valid_from, rate", entry.tenant)]
    await conn.executemany("INSERT INTO fx_rates (tenant, currency, valid_from, rate) VALUES ($1, $2, $3, $4)",
                           [(entry.tenant, *r) for r in rates])
    return before != (entry.timezone, entry.fiscal_start_month, entry.currency) or sorted(stored) != rates


@dataclass(frozen=True, slots=True)
class TenantCalendar:
    timezone: str
    fiscal_start_month: int
    locale: str = "en"  # Babel identifier the tenant's figures are formatted in (tenant.upserted.locale)
    holidays: HolidayCalendar = NO_CALENDAR  # tenant.upserted.holidays: the pace's days off (`pace.py`)


async def calendar(conn: asyncpg.Connection, tenant: str) -> TenantCalendar:
    row = await conn.fetchrow("SELECT timezone, fiscal_start_month, locale, holidays FROM tenants WHERE tenant = $1",
                              tenant)
    if row is None:
        return TenantCalendar("UTC", 1)
    return TenantCalendar(row["timezone"], row["fiscal_start_month"], row["locale"],
                          calendar_of(row["holidays"], tenant))


async def books(conn: asyncpg.Connection, tenant: str) -> Books:
    """The tenant's calendar, holidays, base currency and exchange rates (memberships are loaded per rep)."""
    row = await conn.fetchrow("SELECT timezone, fiscal_start_month, currency, holidays FROM tenants"
                              " WHERE tenant = $1", tenant)
    rates: dict[str, list[tuple[date, Decimal]]] = {}
    for r in await conn.fetch("SELECT currency, valid_from, rate FROM fx_rates WHERE tenant = $1"
                              " ORDER BY currency, valid_from", tenant):
        rates.setdefault(r["currency"], []).append((r["valid_from"], r["rate"]))
    parents = {r["team_id"]: r["parent_id"] for r in await conn.fetch(
        "SELECT team_id, parent_id FROM teams WHERE tenant = $1 AND parent_id IS NOT NULL", tenant)}
    if row is None:
        return Books(ZoneInfo("UTC"), rates=rates, parents=parents)
    return Books(ZoneInfo(row["timezone"]), row["fiscal_start_month"], row["currency"], rates, parents=parents,
                 holidays=calendar_of(row["holidays"], tenant))


async def load_memberships(conn: asyncpg.Connection, tenant: str, into: Books, rep_ids: Iterable[str]) -> None:
    """Add the dated teams of the reps `into` does not know yet."""
    missing = sorted(set(rep_ids) - into.memberships.keys())
    if not missing:
        return
    for rep in missing:
        into.memberships[rep] = []
    for r in await conn.fetch("SELECT rep_id, valid_from, team_id FROM memberships WHERE tenant = $1"
                              " AND rep_id = ANY($2::text[]) ORDER BY rep_id, valid_from", tenant, missing):
        since = r["valid_from"]  # the start of time comes back as a naive datetime.min
        into.memberships[r["rep_id"]].append((since if since.tzinfo else since.replace(tzinfo=UTC), r["team_id"]))


def _deal(row: asyncpg.Record | None) -> Deal | None:
    """What a stored version counts for; None for no version or a tombstone."""
    if row is None or row["deleted"]:
        return None
    return Deal(row["rep_id"], row["stage"], row["amount"], row["currency"].strip(), row["created_at"],
                row["closed_at"], row["expected_close_at"], row["deal_id"], row["stage_label"], row["properties"])


_DEAL_COLUMNS = ("deal_id, rep_id, stage, amount, currency, created_at, closed_at, deleted, expected_close_at,"
                 " stage_label, properties::text AS properties")
_ACTIVITY_COLUMNS = "rep_id, kind, occurred_at, deal_id, duration_s, properties::text AS properties, activity_id"


def _activity(row: asyncpg.Record) -> Activity:
    return Activity(row["rep_id"], row["kind"], row["occurred_at"], row["deal_id"], row["duration_s"],
                    row["properties"], row["activity_id"])


async def _claim_deals(conn: asyncpg.Connection, tenant: str, deal_ids: list[str]) -> None:
    """Make sure every deal of `deal_ids` has a row, so that `SELECT ... FOR UPDATE` locks it.

    A deal whose owner changes travels on two partitions, so two replicas may apply versions of one deal at
    the same time. Reading "no stored version" of a deal another transaction is inserting, and then
    overwriting that insert once it commits, would take nothing out and put the new version in: the first
    version would stay counted (the `zombie` double count, tests/integration/kpi/test_kpi_concurrent_replicas.py).
    Inserting a placeholder (a tombstone older than any version) first makes this transaction wait for the
    other's insert and then see it; the placeholder never outlives the statement that follows it, since any
    version or deletion is newer. Rows are taken in deal order, so two batches cannot deadlock on them.
    """
    await conn.execute(
        "INSERT INTO deals (tenant, deal_id, rep_id, amount, currency, stage, updated_at, tiebreak, deleted)"
        " SELECT $1, d, '', 0, 'XXX', 'open', '-infinity', '', true FROM unnest($2::text[]) AS d ORDER BY d"
        " ON CONFLICT (tenant, deal_id) DO NOTHING", tenant, sorted(set(deal_ids)))


async def apply_deals(conn: asyncpg.Connection, tenant: str,
                      deals: list[tuple[DealUpserted, str]]) -> list[tuple[Deal | None, Deal | None]]:
    """Store each deal's newest version in one statement, only where newer than what is stored.

    "Newer" is (updated_at, tiebreak): equal `updated_at`s are ordered by the event id, so every
    delivery order ends in the same state. Returns the (old, new) versions of each changed deal.
    """
    if not deals:
        return []
    cols = ([d.deal_id for d, _ in deals], [d.rep_id for d, _ in deals], [d.amount for d, _ in deals],
            [d.currency for d, _ in deals], [d.stage.value for d, _ in deals], [d.created_at for d, _ in deals],
            [d.closed_at for d, _ in deals], [d.updated_at for d, _ in deals], [t for _, t in deals],
            [d.stage_label for d, _ in deals], [d.expected_close_at for d, _ in deals],
            [d.probability for d, _ in deals],
            [d.forecast_category.value if d.forecast_category else None for d, _ in deals],
            [None if d.properties is None else _JSON.encode(d.properties).decode() for d, _ in deals])
    # Lock and read the stored versions first, in a statement of their own: a FOR UPDATE inside the
    # upsert's own WITH would skip rows the same statement updates, and lose their old side.
    await _claim_deals(conn, tenant, cols[0])
    old = {r["deal_id"]: r for r in await conn.fetch(
        f"SELECT {_DEAL_COLUMNS} FROM deals"
        " WHERE tenant = $1 AND deal_id = ANY($2::text[]) ORDER BY deal_id FOR UPDATE", tenant, cols[0])}
    changed = await conn.fetch(
        "WITH raw AS (SELECT * FROM unnest($2::text[], $3::text[], $4::numeric[],"
        "   $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[],"
        "   $11::text[], $12::timestamptz[], $13::numeric[], $14::text[], $15::text[])"
        "   AS i(deal_id, rep_id, amount, currency, stage, created_at, closed_at, updated_at, tiebreak,"
        "   stage_label, expected_close_at, probability, forecast_category, properties)),"
        # every stage label any version stood in (a set: the same in any order of arrival; rows in key order)
        " labels AS (INSERT INTO deal_stages (tenant, deal_id, stage_label) SELECT DISTINCT $1, deal_id,"
        "   stage_label FROM raw WHERE stage_label IS NOT NULL ORDER BY 2, 3 ON CONFLICT DO NOTHING),"
        " incoming AS (SELECT DISTINCT ON (deal_id) * FROM raw"
        "   ORDER BY deal_id, updated_at DESC, tiebreak COLLATE \"C\" DESC)"
        " INSERT INTO deals (tenant, deal_id, rep_id, amount, currency, stage, created_at, closed_at,"
        "   updated_at, tiebreak, deleted, stage_label, expected_close_at, probability, forecast_category,"
        "   properties)"
        " SELECT $1, deal_id, rep_id, amount, currency, stage, created_at, closed_at, updated_at, tiebreak,"
        "   false, stage_label, expected_close_at, probability, forecast_category, properties::jsonb"
        " FROM incoming"
        " ON CONFLICT (tenant, deal_id) DO UPDATE SET rep_id = EXCLUDED.rep_id, amount = EXCLUDED.amount,"
        "   currency = EXCLUDED.currency, stage = EXCLUDED.stage, created_at = EXCLUDED.created_at,"
        "   closed_at = EXCLUDED.closed_at, updated_at = EXCLUDED.updated_at, tiebreak = EXCLUDED.tiebreak,"
        "   deleted = false, stage_label = EXCLUDED.stage_label, expected_close_at = EXCLUDED.expected_close_at,"
        "   probability = EXCLUDED.probability, forecast_category = EXCLUDED.forecast_category,"
        "   properties = EXCLUDED.properties"
        " WHERE (deals.updated_at, deals.tiebreak) < (EXCLUDED.updated_at, EXCLUDED.tiebreak COLLATE \"C\")"
        f" RETURNING {_DEAL_COLUMNS}",
        tenant, *cols,
    )
    return [(_deal(old.get(new["deal_id"])), _deal(new)) for new in changed]


async def add_activities(conn: asyncpg.Connection, tenant: str,
                         activities: list[ActivityLogged]) -> list[Activity]:
    """Insert activities not seen before (by id); return the new ones."""
    if not activities:
        return []
    rows = await conn.fetch(
        "INSERT INTO activities (tenant, activity_id, rep_id, kind, occurred_at, deal_id, duration_s, properties)"
        " SELECT DISTINCT ON (a) $1, a, r, k, o, d, s, p::jsonb FROM unnest($2::text[], $3::text[], $4::text[],"
        "   $5::timestamptz[], $6::text[], $7::int[], $8::text[]) AS u(a, r, k, o, d, s, p)"
        f" ON CONFLICT DO NOTHING RETURNING {_ACTIVITY_COLUMNS}",
        tenant, [a.activity_id for a in activities], [a.rep_id for a in activities],
        [a.kind.value for a in activities], [a.occurred_at for a in activities],
        [a.deal_id for a in activities], [a.duration_s for a in activities],
        [None if a.properties is None else _JSON.encode(a.properties).decode() for a in activities],
    )
    return [_activity(r) for r in rows]


async def delete_deal(conn: asyncpg.Connection, tenant: str, deal: DealDeleted, tiebreak: str) -> Deal | None:
    """Tombstone the deal (even before its first upsert arrives, so a late older upsert stays dead);
    return the version it removed, if that counted for anything."""
    await _claim_deals(conn, tenant, [deal.deal_id])
    old = await conn.fetchrow(
        f"SELECT {_DEAL_COLUMNS}, (updated_at, tiebreak COLLATE \"C\") >= ($3, $4) AS not_older FROM deals"
        " WHERE tenant = $1 AND deal_id = $2 FOR UPDATE", tenant, deal.deal_id, deal.updated_at, tiebreak)
    if old is not None and old["not_older"]:
        return None
    await conn.execute(
        "INSERT INTO deals (tenant, deal_id, rep_id, amount, currency, stage, updated_at, tiebreak, deleted)"
        " VALUES ($1, $2, '', 0, 'XXX', 'open', $3, $4, true)"
        # a tombstone keeps nothing of the deal, so its state does not depend on what arrived before it
        " ON CONFLICT (tenant, deal_id) DO UPDATE SET deleted = true, updated_at = EXCLUDED.updated_at,"
        " tiebreak = EXCLUDED.tiebreak, rep_id = '', amount = 0, currency = 'XXX', stage = 'open',"
        " created_at = NULL, closed_at = NULL, stage_label = NULL, expected_close_at = NULL, probability = NULL,"
        " forecast_category = NULL, properties = NULL",
        tenant, deal.deal_id, deal.updated_at, tiebreak,
    )
    return _deal(old)


async def record_roster(conn: asyncpg.Connection, tenant: str,
                        versions: list[tuple[str, datetime, str, str]]) -> dict[str, list[Version]]:
    """Keep the roster versions (rep id, event time, event id, team id; a redelivery adds nothing) and return
    every version stored of their reps (`roster.py` makes their dated teams of them)."""
    await conn.execute(
        "INSERT INTO roster_versions (tenant, rep_id, at, event_id, team_id)"
        " SELECT $1, * FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::text[]) ORDER BY 1, 2, 3, 4"
        " ON CONFLICT DO NOTHING", tenant, *(list(column) for column in zip(*versions, strict=True)))
    out: dict[str, list[Version]] = {}
    for r in await conn.fetch("SELECT rep_id, at, event_id, team_id FROM roster_versions WHERE tenant = $1"
                              " AND rep_id = ANY($2::text[])", tenant, sorted({v[0] for v in versions})):
        at = r["at"]  # the start of time (migrated histories) comes back as a naive datetime.min
        out.setdefault(r["rep_id"], []).append((at if at.tzinfo else at.replace(tzinfo=UTC), r["event_id"],
                                                r["team_id"]))
    return out


async def set_memberships(conn: asyncpg.Connection, tenant: str, spans: Mapping[str, list[Span]]) -> None:
    """Replace the dated teams of the reps of `spans` with theirs (two statements for all of them: a row's
    delete and its insert under the same key cannot share one)."""
    reps = sorted(spans)
    rows = [(rep, since, team) for rep in reps for since, team in spans[rep]]
    await conn.execute("DELETE FROM memberships WHERE tenant = $1 AND rep_id = ANY($2::text[])", tenant, reps)
    await conn.execute("INSERT INTO memberships (tenant, rep_id, valid_from, team_id)"
                       " SELECT $1, * FROM unnest($2::text[], $3::timestamptz[], $4::text[])",
                       tenant, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


async def histories(conn: asyncpg.Connection, tenant: str, rep_ids: list[str],
                    since: datetime = START_OF_TIME) -> tuple[list[Deal], list[Activity]]:
    """The reps' live deals and activities with a moment from `since` on: what a roster change re-attributes
    (a move, from its time; a newcomer's first team, from the start of time)."""
    if not rep_ids:
        return [], []
    deals = await conn.fetch(
        f"SELECT {_DEAL_COLUMNS} FROM deals WHERE tenant = $1 AND rep_id = ANY($2::text[]) AND NOT deleted"
        " AND (created_at >= $3 OR closed_at >= $3)", tenant, rep_ids, since)
    acts = await conn.fetch(f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE tenant = $1"
                            " AND rep_id = ANY($2::text[]) AND occurred_at >= $3", tenant, rep_ids, since)
    return [d for r in deals if (d := _deal(r)) is not None], [_activity(r) for r in acts]


async def upsert_time_off(conn: asyncpg.Connection, tenant: str,
                          items: list[tuple[TimeOffSet, datetime, str]]) -> None:
    """Each time off of `items` (the event, its time, its id) into `leaves` (`shared.leaves.store`)."""
    await leaves.store(conn, tenant, items)


async def time_off(conn: asyncpg.Connection, tenant: str, rep_ids: Iterable[str], first: date,
                   last: date) -> dict[str, list[tuple[date, date]]]:
    """The time off of each of `rep_ids` overlapping the local days `first` to `last` (`shared.leaves.ranges`)."""
    return await leaves.ranges(conn, tenant, rep_ids, first, last)


async def upsert_team(conn: asyncpg.Connection, tenant: str, team: TeamUpserted, version: datetime) -> bool:
    """Store the team's name and parent (newest event wins); True when its parent changed."""
    before = await conn.fetchrow("SELECT parent_id, version FROM teams WHERE tenant = $1 AND team_id = $2 FOR UPDATE",
                                 tenant, team.team_id)
    if before is not None and before["version"] > version:
        return False
    await conn.execute(
        "INSERT INTO teams (tenant, team_id, name, parent_id, version) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (tenant, team_id) DO UPDATE SET name = EXCLUDED.name, parent_id = EXCLUDED.parent_id,"
        " version = EXCLUDED.version", tenant, team.team_id, team.name, team.parent_team_id, version)
    return (before["parent_id"] if before else None) != team.parent_team_id


def _newest(items: list[tuple[_V, datetime]], key: Callable[[_V], tuple[str, ...]]) -> list[tuple[_V, datetime]]:
    """Of several versions of one row, the one that applying them in order would leave: the newest, the last
    of equals (each applies when the stored version is not newer), in the rows' key order."""
    newest: dict[tuple[str, ...], tuple[_V, datetime]] = {}
    for item, version in items:
        k = key(item)
        if k not in newest or newest[k][1] <= version:
            newest[k] = (item, version)
    return [newest[k] for k in sorted(newest)]


async def upsert_reps(conn: asyncpg.Connection, tenant: str, reps: list[tuple[RepUpserted, datetime]]) -> None:
    """Each rep's row (name, team, manager, zone, active), the newest version winning, in one statement."""
    rows = _newest(reps, lambda r: (r.rep_id,))
    if rows:
        await conn.execute(
            "INSERT INTO reps (tenant, rep_id, name, team_id, manager_id, timezone, active, version)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[],"
            " $8::timestamptz[])"
            " ON CONFLICT (tenant, rep_id) DO UPDATE SET name = EXCLUDED.name, team_id = EXCLUDED.team_id,"
            " manager_id = EXCLUDED.manager_id, timezone = EXCLUDED.timezone, active = EXCLUDED.active,"
            " version = EXCLUDED.version WHERE reps.version <= EXCLUDED.version",
            tenant, [r.rep_id for r, _ in rows], [r.name for r, _ in rows], [r.team_id for r, _ in rows],
            [r.manager_id for r, _ in rows], [r.timezone for r, _ in rows], [r.active for r, _ in rows],
            [v for _, v in rows])


async def set_targets(conn: asyncpg.Connection, tenant: str,
                      targets: list[tuple[TargetSet, datetime]]) -> set[Key]:
    """Each target, the newest version winning, in one statement; the (scope, scope id, period)s whose
    target it wrote."""
    rows = _newest(targets, lambda t: (t.scope.value, t.scope_id, str(t.metric), t.period))
    if not rows:
        return set()
    written = await conn.fetch(
        "INSERT INTO targets (tenant, scope, scope_id, metric, period, value, version)"
        " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[], $7::timestamptz[])"
        " ON CONFLICT (tenant, scope, scope_id, metric, period) DO UPDATE SET value = EXCLUDED.value,"
        " version = EXCLUDED.version WHERE targets.version <= EXCLUDED.version RETURNING scope, scope_id, period",
        tenant, [t.scope.value for t, _ in rows], [t.scope_id for t, _ in rows], [str(t.metric) for t, _ in rows],
        [t.period for t, _ in rows], [t.value for t, _ in rows], [v for _, v in rows])
    return {(r[0], r[1], r[2]) for r in written}


async def targets_of(conn: asyncpg.Connection, tenant: str,
                     owners: list[tuple[str, str]]) -> dict[tuple[str, str, str, str], Decimal]:
    """Targets of the given (scope, scope id)s, by (scope, scope id, period, metric)."""
    if not owners:
        return {}
    rows = await conn.fetch(  # a lookup per owner (LATERAL), however little the planner knows of the table
        "SELECT o.scope, o.scope_id, t.period, t.metric, t.value"
        " FROM unnest($2::text[], $3::text[]) AS o(scope, scope_id) CROSS JOIN LATERAL"
        " (SELECT period, metric, value FROM targets WHERE tenant = $1 AND scope = o.scope"
        "   AND scope_id = o.scope_id) t",
        tenant, [o[0] for o in owners], [o[1] for o in owners])
    return {(r[0], r[1], r[2], r[3]): r[4] for r in rows}


_TALLY_COLUMNS = ", ".join(FIELDS)
_JSON = msgspec.json.Encoder()  # Decimal as its exact string


async def add_to_tallies(conn: asyncpg.Connection, tenant: str, deltas: dict[Key, Vector]) -> set[Key]:
    """Move each key's running tally by its delta in one statement; return the keys it moved.

    Rows are written in key order, so two replicas moving the same team's tallies lock them in the
    same order and cannot deadlock."""
    if not deltas:
        return set()
    keys = sorted(deltas)
    # One JSON parameter rather than an array per column: asyncpg encodes arrays element by element (about
    # 6 µs of this process's CPU per row here), msgspec writes the JSON in C (0.6 µs); PostgreSQL casts each
    # field back exactly (money as a decimal string).
    payload = _JSON.encode([[*key, *deltas[key]] for key in keys]).decode()
    fields = ", ".join(f"(x->>{i + 3})::{'numeric' if i in MONEY else 'bigint'}" for i in range(len(FIELDS)))
    await conn.execute(
        f"INSERT INTO period_tallies (tenant, scope, scope_id, period, {_TALLY_COLUMNS})"
        f" SELECT $1, x->>0, x->>1, x->>2, {fields} FROM json_array_elements($2::json) AS x ORDER BY 2, 3, 4"
        " ON CONFLICT (tenant, scope, scope_id, period) DO UPDATE SET "
        + ", ".join(f"{f} = period_tallies.{f} + EXCLUDED.{f}" for f in FIELDS),
        tenant, payload)
    return set(keys)


Tracked = tuple[Tally, dict[str, Decimal]]  # a key's new tally and its targets by metric


def _delta_columns(keys: list[Key], deltas: dict[Key, Vector]) -> list[str]:
    """The deltas as one comma-separated text per field, in key order: PostgreSQL splits each into an array
    (`string_to_array`) far more cheaply than it takes apart a JSON document field by field, and a number's
    text never holds a comma. Ids go as text arrays (an id may hold anything)."""
    return [",".join(map(str, (deltas[key][i] for key in keys))) for i in range(len(FIELDS))]


_MOVE = (
    "WITH d AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[], "
    + ", ".join(f"string_to_array(${i + 6}, ',')::{'numeric' if i in MONEY else 'bigint'}[]"
                for i in range(len(FIELDS)))
    + f") AS d(scope, scope_id, period, {_TALLY_COLUMNS})),"
    f" up AS (INSERT INTO period_tallies (tenant, scope, scope_id, period, {_TALLY_COLUMNS})"
    "   SELECT $1, * FROM d ORDER BY 1, 2, 3"
    "   ON CONFLICT (tenant, scope, scope_id, period) DO UPDATE SET "
    + ", ".join(f"{f} = period_tallies.{f} + EXCLUDED.{f}" for f in FIELDS)
    + f"   RETURNING scope, scope_id, period, {_TALLY_COLUMNS})"
    " SELECT up.*, g.metrics, g.targets FROM up CROSS JOIN LATERAL ("
    "   SELECT array_agg(g.metric) AS metrics, array_agg(g.value) AS targets FROM targets g"
    "   WHERE g.tenant = $1 AND g.scope = up.scope AND g.scope_id = up.scope_id AND g.period = up.period) g"
    " WHERE $5 OR g.metrics IS NOT NULL"
)


async def move_tallies(conn: asyncpg.Connection, tenant: str, deltas: dict[Key, Vector],
                       *, every: bool = False) -> dict[Key, Tracked]:
    """`add_to_tallies`, and in the same statement (one round trip, the rows already locked by the update)
    the new tally and the targets of each moved key that has a target (of every moved key with `every`):
    what the figures to publish are computed from."""
    if not deltas:
        return {}
    keys = sorted(deltas)
    rows = await conn.fetch(_MOVE, tenant, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                            every, *_delta_columns(keys, deltas))
    return {(r[0], r[1], r[2]): (tally_of(list(r)[3:3 + len(FIELDS)]), dict(zip(r[-2] or (), r[-1] or (), strict=True)))
            for r in rows}


async def read_tallies(conn: asyncpg.Connection, tenant: str, keys: Iterable[Key]) -> dict[Key, Tally]:
    """The running tallies of `keys`, locked (in key order) until the transaction ends, so the figures
    computed from them cannot be overtaken by a concurrent writer's older view (a key nothing ever
    counted for has the empty tally)."""
    wanted = sorted(set(keys))
    found = {(r[0], r[1], r[2]): tally_of(list(r)[3:]) for r in await conn.fetch(
        f"SELECT t.scope, t.scope_id, t.period, {_TALLY_COLUMNS} FROM period_tallies t"
        " JOIN unnest($2::text[], $3::text[], $4::text[]) AS k(scope, scope_id, period)"
        " USING (scope, scope_id, period) WHERE t.tenant = $1 ORDER BY 1, 2, 3 FOR UPDATE OF t",
        tenant, [k[0] for k in wanted], [k[1] for k in wanted], [k[2] for k in wanted])}
    return {k: found.get(k, EMPTY) for k in wanted}


FIGURES_CHANNEL = "attain_kpi_figures"  # NOTIFY payload: {"tenant": ..., "periods": [...]}


async def announce_figures(conn: asyncpg.Connection, tenant: str, periods: list[str]) -> None:
    """Tell every kpi replica's dashboard feed, at commit, which of a tenant's periods have new figures
    (targeted or not: the dashboard shows both; the topic carries only targeted ones)."""
    await conn.execute("SELECT pg_notify($1, $2)", FIGURES_CHANNEL,
                       json.dumps({"tenant": tenant, "periods": periods[:50]}, separators=(",", ":")))


# The advisory-lock space of kpi's per-tenant lock (two int4 keys: apart from the outbox relay's bigint keys).
TENANT_LOCK_SPACE = 0x6B7069  # "kpi"


async def lock_tenant(conn: asyncpg.Connection, tenant: str, *, exclusive: bool) -> None:
    """Hold the tenant's kpi lock until the transaction ends: shared for a batch of deals and activities (such
    batches run side by side on several replicas), exclusive for one that changes who is in which team, or
    recounts the tenant. A roster change reads the reps' histories and re-attributes them; a deal applied at
    the same time on another replica, with the memberships it read before that change committed, would stay
    counted for the old team (found by `make chaos` zombie: team figures short by a deal and an activity)."""
    await conn.execute(f"SELECT pg_advisory_xact_lock{'' if exclusive else '_shared'}($1, hashtext($2))",
                       TENANT_LOCK_SPACE, tenant)


async def take_rebuild(conn: asyncpg.Connection, tenant: str) -> bool:
    """Whether the tenant's tallies are owed a full recount (migrations ask for it), taking the request."""
    return bool(await conn.fetchval("DELETE FROM tally_rebuilds WHERE tenant = $1 RETURNING true", tenant))


async def rebuild_tallies(conn: asyncpg.Connection, tenant: str) -> set[Key]:
    """Recompute every running tally of the tenant from its stored deals and activities.

    For a change that moves everything (a new time zone, fiscal year start, base currency or
    exchange rate) and for tenants tallied before running tallies existed. Returns every key that
    had or has a tally."""
    into = await books(conn, tenant)
    await load_memberships(conn, tenant, into, [r[0] for r in await conn.fetch(
        "SELECT DISTINCT rep_id FROM memberships WHERE tenant = $1", tenant)])
    ledger = Ledger(into)
    async for row in conn.cursor(f"SELECT {_DEAL_COLUMNS} FROM deals WHERE tenant = $1 AND NOT deleted",
                                 tenant, prefetch=10_000):
        if (deal := _deal(row)) is not None:
            ledger.deal(deal, 1)
    async for row in conn.cursor(f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE tenant = $1",
                                 tenant, prefetch=10_000):
        ledger.activity(_activity(row), 1)
    before = [(r[0], r[1], r[2]) for r in await conn.fetch(
        "DELETE FROM period_tallies WHERE tenant = $1 RETURNING scope, scope_id, period", tenant)]
    fresh = await add_to_tallies(conn, tenant, ledger.changed())
    await conn.execute(  # a key with a target keeps its row, zeros and all (the attainment view shows it)
        "INSERT INTO period_tallies (tenant, scope, scope_id, period) SELECT DISTINCT tenant, scope, scope_id,"
        " period FROM targets WHERE tenant = $1 ON CONFLICT DO NOTHING", tenant)
    moved = set(before) | fresh
    for kpi in await kpis_of(conn, tenant):  # and the KPIs the tenant defined, each from the same state
        moved |= await recount_kpi(conn, tenant, kpi)
    return moved


async def profiles_of(conn: asyncpg.Connection, tenant: str, rep_ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch("SELECT rep_id, name, team_id, manager_id FROM reps WHERE tenant = $1"
                            " AND rep_id = ANY($2::text[])", tenant, rep_ids)
    return {r["rep_id"]: r for r in rows}


async def save_published(conn: asyncpg.Connection, tenant: str, figures: list[tuple[str, str, str, str,
                         Decimal, Decimal | None, str | None]], at: datetime) -> dict[tuple[str, str, str, str], int]:
    """Remember the figures about to be published; the new revision of each key whose (actual, target,
    forecast digest) differ from what was last published (the others are left out: nothing new to say).
    Revisions come from one sequence (migration 010): per key they grow in commit order, whichever replica
    publishes."""
    if not figures:
        return {}
    rows = await conn.fetch(
        "INSERT INTO published_figures (tenant, scope, scope_id, period, metric, actual, target, forecast_digest,"
        " updated_at)"
        " SELECT $1, * , $9::timestamptz FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],"
        "   $6::numeric[], $7::numeric[], $8::text[]) ORDER BY 1, 2, 3, 4, 5"
        " ON CONFLICT (tenant, scope, scope_id, period, metric) DO UPDATE SET actual = EXCLUDED.actual,"
        " target = EXCLUDED.target, forecast_digest = EXCLUDED.forecast_digest, updated_at = EXCLUDED.updated_at,"
        " revision = nextval('figure_revisions')"
        " WHERE (published_figures.actual, published_figures.target, published_figures.forecast_digest)"
        "   IS DISTINCT FROM (EXCLUDED.actual, EXCLUDED.target, EXCLUDED.forecast_digest)"
        " RETURNING scope, scope_id, period, metric, revision",
        tenant, *([f[i] for f in figures] for i in range(7)), at,
    )
    return {(r["scope"], r["scope_id"], r["period"], r["metric"]): r["revision"] for r in rows}


async def ensure_tallies(conn: asyncpg.Connection, tenant: str, keys: Iterable[Key]) -> None:
    """A tally row for each key (zeros where nothing counted yet), so a key with a target shows its figures."""
    wanted = sorted(set(keys))
    if wanted:
        await conn.execute(
            "INSERT INTO period_tallies (tenant, scope, scope_id, period)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[]) ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING",
            tenant, [k[0] for k in wanted], [k[1] for k in wanted], [k[2] for k in wanted])


# --- forecasts (issue 22: `outlook.py`) -------------------------------------------------------------------

_OPEN_COLUMNS = "deal_id, rep_id, amount, currency, expected_close_at, probability, forecast_category, stage_label"


async def open_deals(conn: asyncpg.Connection, tenant: str, rep_ids: Iterable[str], team_ids: Iterable[str],
                     start: datetime, end: datetime) -> list[asyncpg.Record]:
    """The open deals of `rep_ids`, and of every rep ever in one of `team_ids`, expected to close from `start`
    to before `end`, and those with no expected close (in no period: a forecast counts them as `undated`).

    Reps first, by the partial index `deals_open_by_rep`; the teams' members in a second statement only when a
    team's forecast is asked for (one statement with an OR of both was planned as a scan of the tenant's deals,
    a membership lookup per deal: most of what forecasts cost PostgreSQL in the benchmark)."""
    reps, teams = sorted(set(rep_ids)), sorted(set(team_ids))
    if teams:
        reps = sorted(set(reps) | {r[0] for r in await conn.fetch(
            "SELECT DISTINCT rep_id FROM memberships WHERE tenant = $1 AND team_id = ANY($2::text[])", tenant, teams)})
    if not reps:
        return []
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_OPEN_COLUMNS} FROM deals WHERE tenant = $1 AND stage = 'open' AND NOT deleted"
        " AND rep_id = ANY($2::text[])"
        " AND (expected_close_at IS NULL OR (expected_close_at >= $3 AND expected_close_at < $4))"
        " ORDER BY deal_id", tenant, reps, start, end)
    return rows


async def win_history(conn: asyncpg.Connection, tenant: str, since: datetime,
                      until: datetime) -> list[asyncpg.Record]:
    """The tenant's deals closed from `since` to before `until`, counted (won, closed) by rep (NULL: the whole
    tenant) and size band (`outlook.BAND_SQL`), and again by the stage labels they stood in (`kind` 'stage';
    'band' without)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"WITH closed AS (SELECT deal_id, rep_id, stage = 'won' AS won, {BAND_SQL} AS band FROM deals"
        "   WHERE tenant = $1 AND NOT deleted AND stage IN ('won', 'lost') AND closed_at >= $2 AND closed_at < $3)"
        " SELECT 'band' AS kind, CASE WHEN grouping(rep_id) = 0 THEN rep_id END AS rep_id, NULL AS stage_label,"
        "   band, count(*) FILTER (WHERE won) AS won, count(*) AS closed FROM closed"
        "   GROUP BY GROUPING SETS ((rep_id, band), (band))"
        " UNION ALL"
        " SELECT 'stage', CASE WHEN grouping(c.rep_id) = 0 THEN c.rep_id END, s.stage_label, c.band,"
        "   count(*) FILTER (WHERE c.won), count(*) FROM closed c"
        "   JOIN deal_stages s ON s.tenant = $1 AND s.deal_id = c.deal_id"
        "   GROUP BY GROUPING SETS ((c.rep_id, s.stage_label, c.band), (s.stage_label, c.band))", tenant, since, until)
    return rows


# --- contests (issue 22: `contests.py`, `contesting.py`) ------------------------------------------------

_CONTEST_COLUMNS = ("contest_id, name, metric, participants, participant_ids, starts_at, ends_at, rank_by, target,"
                    " targets, prizes, settle_s, status, digest, revision, standings")


@dataclass(frozen=True, slots=True)
class StoredContest:
    contest: Contest
    digest: str | None
    revision: int
    standings: list[dict[str, object]]


def _contest(row: asyncpg.Record) -> StoredContest:
    targets = json.loads(row["targets"]) if isinstance(row["targets"], str) else row["targets"]
    standings = json.loads(row["standings"]) if isinstance(row["standings"], str) else row["standings"]
    return StoredContest(Contest(
        row["contest_id"], row["name"], row["metric"], row["participants"], tuple(row["participant_ids"]),
        row["starts_at"], row["ends_at"], row["rank_by"], row["target"],
        {k: Decimal(v) for k, v in (targets or {}).items()}, tuple(row["prizes"]), timedelta(seconds=row["settle_s"]),
        row["status"]), row["digest"], row["revision"], standings or [])


async def open_contests(conn: asyncpg.Connection, tenant: str) -> list[StoredContest]:
    """The tenant's contests not yet final or cancelled (no lock: a batch first asks whether it touches one)."""
    return [_contest(r) for r in await conn.fetch(
        f"SELECT {_CONTEST_COLUMNS} FROM contests WHERE tenant = $1 AND status IN ('scheduled', 'running')"
        " ORDER BY contest_id", tenant)]


async def lock_contests(conn: asyncpg.Connection, tenant: str, contest_ids: Iterable[str]) -> list[StoredContest]:
    """The contests of `contest_ids`, locked in id order until the transaction ends: their standings are then
    recounted from records that include every batch committed before (a replica applying the same tenant's
    records at the same time waits here, and recounts after)."""
    return [_contest(r) for r in await conn.fetch(
        f"SELECT {_CONTEST_COLUMNS} FROM contests WHERE tenant = $1 AND contest_id = ANY($2::text[])"
        " ORDER BY contest_id FOR UPDATE", tenant, sorted(set(contest_ids)))]


async def contest_records(conn: asyncpg.Connection, tenant: str, contest: Contest) -> tuple[list[Deal], list[Activity]]:
    """The live deals and activities that may count in the contest's window: of its reps, or of every rep ever
    in one of its teams or a team under them (`contests.tallies` attributes them)."""
    if contest.participants == "reps":
        reps, teams = list(contest.participant_ids), []
    else:
        reps, teams = [], list(contest.participant_ids)
        parents = {r["team_id"]: r["parent_id"] for r in await conn.fetch(
            "SELECT team_id, parent_id FROM teams WHERE tenant = $1", tenant)}
        below = set(teams)
        while grown := {t for t, p in parents.items() if p in below and t not in below}:
            below |= grown
        teams = sorted(below)
    who = ("(rep_id = ANY($2::text[]) OR rep_id IN (SELECT rep_id FROM memberships WHERE tenant = $1"
           " AND team_id = ANY($3::text[])))")
    deals = await conn.fetch(
        f"SELECT {_DEAL_COLUMNS} FROM deals WHERE tenant = $1 AND NOT deleted AND {who}"
        " AND ((created_at >= $4 AND created_at < $5) OR (closed_at >= $4 AND closed_at < $5))",
        tenant, reps, teams, contest.starts_at, contest.ends_at)
    acts = await conn.fetch(
        f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE tenant = $1 AND {who}"
        " AND occurred_at >= $4 AND occurred_at < $5", tenant, reps, teams, contest.starts_at, contest.ends_at)
    return [d for r in deals if (d := _deal(r)) is not None], [_activity(r) for r in acts]


async def names_of(conn: asyncpg.Connection, tenant: str, kind: str, ids: list[str]) -> dict[str, str | None]:
    """The names of reps (`kind` "reps") or teams."""
    table, column = ("reps", "rep_id") if kind == "reps" else ("teams", "team_id")
    return {r[0]: r[1] for r in await conn.fetch(
        f"SELECT {column}, name FROM {table} WHERE tenant = $1 AND {column} = ANY($2::text[])", tenant, ids)}


async def put_contest(conn: asyncpg.Connection, tenant: str, contest: Contest, at: datetime) -> bool:
    """Define or change a contest (not one that is final or cancelled: False then, nothing changed)."""
    row = await conn.fetchrow(
        "INSERT INTO contests (tenant, contest_id, name, metric, participants, participant_ids, starts_at, ends_at,"
        " rank_by, target, targets, prizes, settle_s, defined_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14, $14)"
        " ON CONFLICT (tenant, contest_id) DO UPDATE SET name = EXCLUDED.name, metric = EXCLUDED.metric,"
        " participants = EXCLUDED.participants, participant_ids = EXCLUDED.participant_ids,"
        " starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, rank_by = EXCLUDED.rank_by,"
        " target = EXCLUDED.target, targets = EXCLUDED.targets, prizes = EXCLUDED.prizes,"
        " settle_s = EXCLUDED.settle_s, updated_at = EXCLUDED.updated_at,"
        " status = CASE WHEN contests.status = 'running' AND EXCLUDED.starts_at > $14 THEN 'scheduled'"
        "   ELSE contests.status END"
        " WHERE contests.status IN ('scheduled', 'running') RETURNING 1",
        tenant, contest.contest_id, contest.name, contest.metric, contest.participants,
        list(contest.participant_ids), contest.starts_at, contest.ends_at, contest.rank_by, contest.target,
        json.dumps({k: str(v) for k, v in contest.targets.items()}), list(contest.prizes),
        int(contest.settle.total_seconds()), at)
    return row is not None


async def cancel_contest(conn: asyncpg.Connection, tenant: str, contest_id: str, at: datetime) -> bool:
    """Cancel a contest that is not final; False when there is none to cancel."""
    row = await conn.fetchrow("UPDATE contests SET status = 'cancelled', updated_at = $3 WHERE tenant = $1"
                              " AND contest_id = $2 AND status IN ('scheduled', 'running') RETURNING 1",
                              tenant, contest_id, at)
    return row is not None


async def save_contest(conn: asyncpg.Connection, tenant: str, contest_id: str, status: str,
                       standings: list[dict[str, object]], digest: str, at: datetime) -> int:
    """Store a contest's newly published state; its new revision."""
    revision: int = await conn.fetchval(
        "UPDATE contests SET status = $3, standings = $4::jsonb, digest = $5, revision = revision + 1,"
        " updated_at = $6 WHERE tenant = $1 AND contest_id = $2 RETURNING revision",
        tenant, contest_id, status, json.dumps(standings), digest, at)
    return revision


async def contests_of(conn: asyncpg.Connection, tenant: str, contest_id: str | None = None) -> list[StoredContest]:
    """The tenant's contests (or one), newest start first."""
    return [_contest(r) for r in await conn.fetch(
        f"SELECT {_CONTEST_COLUMNS} FROM contests WHERE tenant = $1 AND ($2::text IS NULL OR contest_id = $2)"
        " ORDER BY starts_at DESC, contest_id", tenant, contest_id)]


async def due_contests(conn: asyncpg.Connection, now: datetime) -> list[tuple[str, str]]:
    """(tenant, contest id) of every contest whose start or end (plus its settling time) has come, every tenant
    (through `sweep_due_contests`, migration 016: the working role sees one tenant at a time; `db.sweep_tx`)."""
    return [(r[0], r[1]) for r in await conn.fetch("SELECT tenant, contest_id FROM sweep_due_contests($1)", now)]


# --- KPIs a tenant defines (issue 22: `custom.py`) ----------------------------------------------------------


async def kpis_of(conn: asyncpg.Connection, tenant: str) -> list[Kpi]:
    """The tenant's KPIs (read once per batch)."""
    return [Kpi.of(r["kpi_id"], KpiDefinition.model_validate_json(r["definition"])) for r in await conn.fetch(
        "SELECT kpi_id, definition::text AS definition FROM custom_kpis WHERE tenant = $1 ORDER BY kpi_id", tenant)]


async def move_custom(conn: asyncpg.Connection, tenant: str, deltas: Mapping[CustomKey, list[int | Decimal]],
                      deals: Mapping[tuple[str, str, str, str, str], int]) -> None:
    """Move the KPI tallies (and the per-deal counts of `distinct_deals`) by their deltas, in key order."""
    if deltas:  # rows in the primary key's order (scope, id, period, KPI): as every writer of them, no deadlock
        keys = sorted(deltas, key=lambda k: (k[1], k[2], k[3], k[0]))
        await conn.execute(
            "INSERT INTO custom_tallies (tenant, scope, scope_id, period, kpi_id, n, total, unconverted)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::numeric[],"
            "   $8::bigint[]) ORDER BY 1, 2, 3, 4"
            " ON CONFLICT (tenant, scope, scope_id, period, kpi_id) DO UPDATE SET n = custom_tallies.n + EXCLUDED.n,"
            " total = custom_tallies.total + EXCLUDED.total,"
            " unconverted = custom_tallies.unconverted + EXCLUDED.unconverted",
            tenant, *([k[i] for k in keys] for i in (1, 2, 3, 0)), *([deltas[k][i] for k in keys] for i in range(3)))
    moved = sorted(k for k, n in deals.items() if n)
    if moved:
        await conn.execute(
            "INSERT INTO custom_deals (tenant, kpi_id, scope, scope_id, period, deal_id, n)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])"
            " ORDER BY 1, 2, 3, 4, 5"
            " ON CONFLICT (tenant, kpi_id, scope, scope_id, period, deal_id)"
            " DO UPDATE SET n = custom_deals.n + EXCLUDED.n",
            tenant, *([k[i] for k in moved] for i in range(5)), [deals[k] for k in moved])


async def custom_figures(conn: asyncpg.Connection, tenant: str, keys: Iterable[Key],
                         every: bool) -> list[tuple[str, str, str, str, Decimal, Decimal | None]]:
    """The figures of the tenant's KPIs on `keys` that have a target (all of them with `every`), as the
    `attainment` view computes them (`custom.value`, `attain_kpi_value`); a targeted key without a tally yet gets
    its row, zeros.

    Each key is read by its primary key (LATERAL: a lookup per key, whatever the planner thinks of the table).
    A join of the key list with the tallies, or with the view, was planned as a scan of the tenant's rows per
    key when a fresh tenant's tables had no statistics yet: seconds per batch in the benchmark."""
    wanted = sorted(set(keys))
    kpis = {r[0]: r[1] for r in await conn.fetch(
        "SELECT kpi_id, definition->>'aggregation' FROM custom_kpis WHERE tenant = $1", tenant)}
    if not wanted or not kpis:
        return []
    owners, among = sorted({(k[0], k[1]) for k in wanted}), set(wanted)
    targets = {key: value for key, value in (await targets_of(conn, tenant, owners)).items()
               if key[3] in kpis and key[:3] in among}
    if not every:  # only figures with a target are published: read those keys' tallies alone
        wanted = sorted({key[:3] for key in targets})
        if not wanted:
            return []
    columns = [k[0] for k in wanted], [k[1] for k in wanted], [k[2] for k in wanted]
    tallies = {(r[0], r[1], r[2], r[3]): (r[4], r[5], r[6]) for r in await conn.fetch(
        "SELECT w.scope, w.scope_id, w.period, c.kpi_id, c.n, c.total, c.unconverted"
        " FROM unnest($2::text[], $3::text[], $4::text[]) AS w(scope, scope_id, period)"
        " CROSS JOIN LATERAL (SELECT kpi_id, n, total, unconverted FROM custom_tallies WHERE tenant = $1"
        "   AND scope = w.scope AND scope_id = w.scope_id AND period = w.period) c", tenant, *columns)}
    distinct = [k for k in tallies if kpis.get(k[3]) == "distinct_deals"]
    deals = {(r[0], r[1], r[2], r[3]): r[4] for r in await conn.fetch(
        "SELECT w.*, (SELECT count(*) FROM custom_deals d WHERE d.tenant = $1 AND d.kpi_id = w.kpi_id"
        "   AND d.scope = w.scope AND d.scope_id = w.scope_id AND d.period = w.period AND d.n > 0)"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS w(scope, scope_id, period, kpi_id)",
        tenant, *([k[i] for k in distinct] for i in range(4)))} if distinct else {}
    if missing := sorted(k for k in targets if k not in tallies):
        await conn.execute(
            "INSERT INTO custom_tallies (tenant, scope, scope_id, period, kpi_id)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) ON CONFLICT DO NOTHING",
            tenant, *([m[i] for m in missing] for i in range(4)))
        tallies |= dict.fromkeys(missing, (0, Decimal(0), 0))
    return [(*key, kpi_value(kpis[key[3]], n, total, unconverted, deals.get(key, 0)),
             targets.get(key)) for key, (n, total, unconverted) in sorted(tallies.items())
            if key[3] in kpis and (every or key in targets)]


async def recount_kpi(conn: asyncpg.Connection, tenant: str, kpi: Kpi) -> set[Key]:
    """Count one KPI again from the stored deals and activities (a definition, new or changed, counts the past
    at once); the keys it had or has a tally for, and those with a target for it."""
    into = await books(conn, tenant)
    await load_memberships(conn, tenant, into, [r[0] for r in await conn.fetch(
        "SELECT DISTINCT rep_id FROM memberships WHERE tenant = $1", tenant)])
    ledger = Ledger(into, kpis=[kpi])
    if kpi.source == "deals":
        async for row in conn.cursor(f"SELECT {_DEAL_COLUMNS} FROM deals WHERE tenant = $1 AND NOT deleted",
                                     tenant, prefetch=10_000):
            if (deal := _deal(row)) is not None:
                ledger.deal(deal, 1)
    else:
        async for row in conn.cursor(f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE tenant = $1",
                                     tenant, prefetch=10_000):
            ledger.activity(_activity(row), 1)
    before = {(r[0], r[1], r[2]) for r in await conn.fetch(
        "DELETE FROM custom_tallies WHERE tenant = $1 AND kpi_id = $2 RETURNING scope, scope_id, period",
        tenant, kpi.kpi_id)}
    await conn.execute("DELETE FROM custom_deals WHERE tenant = $1 AND kpi_id = $2", tenant, kpi.kpi_id)
    fresh = ledger.custom_changed()
    await move_custom(conn, tenant, fresh, ledger.custom_deals)
    targeted = {(r[0], r[1], r[2]) for r in await conn.fetch(
        "SELECT scope, scope_id, period FROM targets WHERE tenant = $1 AND metric = $2", tenant, kpi.kpi_id)}
    return before | {(k[1], k[2], k[3]) for k in fresh} | targeted


async def put_kpi(conn: asyncpg.Connection, tenant: str, kpi_id: str, definition: KpiDefinition, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO custom_kpis (tenant, kpi_id, definition, defined_at, updated_at)"
        " VALUES ($1, $2, $3::jsonb, $4, $4) ON CONFLICT (tenant, kpi_id)"
        " DO UPDATE SET definition = EXCLUDED.definition, updated_at = EXCLUDED.updated_at",
        tenant, kpi_id, definition.model_dump_json(), at)


async def delete_kpi(conn: asyncpg.Connection, tenant: str, kpi_id: str) -> bool:
    """Forget a KPI and its tallies (its targets stay: defined again, it counts for them again)."""
    gone = await conn.fetchval("DELETE FROM custom_kpis WHERE tenant = $1 AND kpi_id = $2 RETURNING true",
                               tenant, kpi_id)
    await conn.execute("DELETE FROM custom_tallies WHERE tenant = $1 AND kpi_id = $2", tenant, kpi_id)
    await conn.execute("DELETE FROM custom_deals WHERE tenant = $1 AND kpi_id = $2", tenant, kpi_id)
    return bool(gone)


async def kpi_definitions(conn: asyncpg.Connection, tenant: str) -> list[tuple[str, KpiDefinition, datetime]]:
    """The tenant's KPIs with their definitions and when they were last (re)defined."""
    rows = await conn.fetch("SELECT kpi_id, definition::text AS definition, updated_at FROM custom_kpis"
                            " WHERE tenant = $1 ORDER BY kpi_id", tenant)
    return [(r["kpi_id"], KpiDefinition.model_validate_json(r["definition"]), r["updated_at"]) for r in rows]
