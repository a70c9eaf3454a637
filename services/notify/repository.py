"""notify's PostgreSQL state: the registry's and the roster's copies, team channels, preferences, deliveries.

Every SQL statement of the service is here, behind `Repository`, the protocol the handler, the worker and the
API depend on (the handler tier of tests runs them on an in-memory fake). One `PgRepository` works on one
connection inside the caller's transaction, scoped to the tenant the caller set; writes are set-based
(arrays with `unnest`), one statement each, whatever the batch's size.

The deliveries' UNIQUE idempotency key is the "once per (event, recipient, channel)" guarantee: `add`
inserts with ON CONFLICT DO NOTHING, so a replayed or repeated event adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from services.notify.model import Channel, Delivery, Kind, Person, Preferences, TeamChannels
from shared import token_store
from shared.events import RepUpserted, TenantUpserted

__all__ = ["Claimed", "OpenCheckIn", "PgRepository", "Repository", "TenantConnection", "TenantFacts"]

Status = str  # pending, sent, failed, dead


@dataclass(frozen=True, slots=True)
class TenantFacts:
    """What a message needs of its tenant: its zone, currency and locale (the registry's)."""

    timezone: str = "UTC"
    currency: str = "EUR"
    locale: str = "en"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A due delivery the worker holds (its lease): what to render, to whom, the attempt it is."""

    idempotency_key: str
    event_id: str
    event_type: str
    data: dict[str, Any]
    recipient: str
    channel: Channel
    kind: Kind
    attempts: int  # this attempt's number (1 for the first)


@dataclass(frozen=True, slots=True)
class TenantConnection:
    """A tenant's own connections (sealed as stored): a Slack app's bot token, a signed webhook receiver."""

    slack_bot_token: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None


@dataclass(frozen=True, slots=True)
class OpenCheckIn:
    """A check-in not yet closed, for its manager's digest."""

    task_id: str
    rep_id: str
    manager_id: str | None
    summary: str
    severity: str
    due_at: datetime | None
    opened_at: datetime


class Repository(Protocol):
    """What notify reads and writes, inside the caller's transaction (its tenant already set)."""

    async def upsert_tenants(self, entries: Sequence[TenantUpserted]) -> None: ...
    async def tenant_facts(self, tenant: str) -> TenantFacts: ...
    async def upsert_people(self, tenant: str, reps: Sequence[tuple[RepUpserted, datetime]]) -> None: ...
    async def people(self, tenant: str) -> dict[str, Person]: ...
    async def teams(self, tenant: str) -> dict[str, TeamChannels]: ...
    async def preferences(self, tenant: str) -> dict[str, Preferences]: ...
    async def add(self, tenant: str, deliveries: Sequence[tuple[Delivery, str, dict[str, Any]]]) -> int: ...
    async def claim(self, tenant: str, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]: ...
    async def release(self, tenant: str, keys: Sequence[str], at: datetime) -> None: ...
    async def mark_sent(self, tenant: str, key: str, at: datetime) -> None: ...
    async def mark_retry(self, tenant: str, key: str, at: datetime, error: str) -> None: ...
    async def mark_dead(self, tenant: str, key: str, error: str) -> None: ...
    async def deliveries(self, tenant: str, status: str | None, limit: int) -> list[dict[str, Any]]: ...
    async def connection(self, tenant: str) -> TenantConnection: ...
    async def open_check_ins(self, tenant: str, opened: Sequence[OpenCheckIn], closed: Sequence[str]) -> None: ...
    async def events_on_day(self, tenant: str, recipients: Sequence[str],
                            windows: Sequence[tuple[datetime, datetime]]) -> dict[tuple[str, datetime], set[str]]: ...
    async def fold(self, tenant: str, keys: Sequence[str], digest_key: str) -> None: ...


def preferences_of(row: Any) -> Preferences:
    raw = row["channels"]
    channels = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    return Preferences(channels={k: tuple(v) for k, v in channels.items()},
                       public_celebrations=row["public_celebrations"], quiet_start=row["quiet_start"],
                       quiet_end=row["quiet_end"], weekends_quiet=row["weekends_quiet"], daily_cap=row["daily_cap"])


class PgRepository:
    """`Repository` on one asyncpg connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # --- registry and roster --------------------------------------------------------------------------

    async def upsert_tenants(self, entries: Sequence[TenantUpserted]) -> None:
        """The registry's word on tenants (the last entry per tenant): zone, currency, locale, tokens."""
        last = {e.tenant: e for e in entries}
        await self.conn.execute(
            "INSERT INTO tenants (tenant, timezone, currency, locale, token_sha256, active)"
            " SELECT t, z, c, l, decode(h, 'hex'), a FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::text[], $6::bool[]) AS u(t, z, c, l, h, a)"
            " ON CONFLICT (tenant) DO UPDATE SET timezone = EXCLUDED.timezone, currency = EXCLUDED.currency,"
            " locale = EXCLUDED.locale, token_sha256 = EXCLUDED.token_sha256, active = EXCLUDED.active",
            list(last), [e.timezone for e in last.values()], [e.currency for e in last.values()],
            [e.locale for e in last.values()], [e.token_sha256 for e in last.values()],
            [e.active for e in last.values()])
        await token_store.replace(self.conn, list(last.values()))

    async def tenant_facts(self, tenant: str) -> TenantFacts:
        row = await self.conn.fetchrow("SELECT timezone, currency, locale FROM tenants WHERE tenant = $1", tenant)
        if row is None:
            return TenantFacts()
        return TenantFacts(row["timezone"], row["currency"] or "EUR", row["locale"] or "en")

    async def upsert_people(self, tenant: str, reps: Sequence[tuple[RepUpserted, datetime]]) -> None:
        """Keep each person's newest version (the event's time; on a tie the later one)."""
        newest: dict[str, tuple[RepUpserted, datetime]] = {}
        for rep, version in reps:
            if rep.rep_id not in newest or newest[rep.rep_id][1] <= version:
                newest[rep.rep_id] = (rep, version)
        rows = [r for r, _ in newest.values()]
        await self.conn.execute(
            "INSERT INTO people (tenant, person_id, name, email, timezone, manager_id, team_id, active, version)"
            " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
            " $8::bool[], $9::timestamptz[]) ORDER BY 2"
            " ON CONFLICT (tenant, person_id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email,"
            " timezone = EXCLUDED.timezone, manager_id = EXCLUDED.manager_id, team_id = EXCLUDED.team_id,"
            " active = EXCLUDED.active, version = EXCLUDED.version WHERE people.version <= EXCLUDED.version",
            tenant, list(newest), [r.name for r in rows], [r.email for r in rows], [r.timezone for r in rows],
            [r.manager_id for r in rows], [r.team_id for r in rows], [r.active for r in rows],
            [v for _, v in newest.values()])

    async def people(self, tenant: str) -> dict[str, Person]:
        """The tenant's active people."""
        rows = await self.conn.fetch("SELECT person_id, name, email, timezone, manager_id, team_id FROM people"
                                     " WHERE tenant = $1 AND active", tenant)
        return {r["person_id"]: Person(r["person_id"], r["name"], r["email"], r["timezone"], r["manager_id"],
                                       r["team_id"]) for r in rows}

    async def teams(self, tenant: str) -> dict[str, TeamChannels]:
        rows = await self.conn.fetch("SELECT team_id, slack_webhook, slack_channel, teams_webhook FROM team_channels"
                                     " WHERE tenant = $1", tenant)
        return {r["team_id"]: TeamChannels(r["team_id"], r["slack_webhook"], r["slack_channel"], r["teams_webhook"])
                for r in rows}

    async def preferences(self, tenant: str) -> dict[str, Preferences]:
        rows = await self.conn.fetch("SELECT * FROM preferences WHERE tenant = $1", tenant)
        return {r["person_id"]: preferences_of(r) for r in rows}

    # --- deliveries -----------------------------------------------------------------------------------

    async def add(self, tenant: str, deliveries: Sequence[tuple[Delivery, str, dict[str, Any]]]) -> int:
        """Each (delivery, event type, event data) once: a key already there adds nothing. Returns how many
        rows were created now."""
        if not deliveries:
            return 0
        ds = [d for d, _, _ in deliveries]
        created = await self.conn.fetch(
            "INSERT INTO deliveries (tenant, idempotency_key, event_id, event_type, data, recipient, channel, kind,"
            " deliver_at, next_attempt_at) SELECT $1, k, e, t, d::jsonb, r, c, n, a, a FROM unnest($2::text[],"
            " $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])"
            " AS u(k, e, t, d, r, c, n, a) ORDER BY k ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1",
            tenant, [d.idempotency_key for d in ds], [d.event_id for d in ds], [t for _, t, _ in deliveries],
            [json.dumps(data, default=str) for _, _, data in deliveries], [d.recipient for d in ds],
            [d.channel for d in ds], [d.kind for d in ds], [d.deliver_at for d in ds])
        return len(created)

    async def claim(self, tenant: str, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
        """Up to `limit` due deliveries, locked past other workers (SKIP LOCKED), leased until `lease_until`:
        their next attempt moves there and their attempts count up, so a crash before the outcome is written
        makes them due again once the lease ends (the same idempotency key goes out again)."""
        rows = await self.conn.fetch(
            "WITH due AS (SELECT idempotency_key FROM deliveries WHERE tenant = $1 AND status IN ('pending', 'failed')"
            " AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
            " UPDATE deliveries d SET attempts = d.attempts + 1, next_attempt_at = $3 FROM due"
            " WHERE d.tenant = $1 AND d.idempotency_key = due.idempotency_key"
            " RETURNING d.idempotency_key, d.event_id, d.event_type, d.data, d.recipient, d.channel, d.kind,"
            " d.attempts", tenant, now, lease_until, limit)
        return [Claimed(r["idempotency_key"], r["event_id"], r["event_type"], json.loads(r["data"]), r["recipient"],
                        r["channel"], r["kind"], r["attempts"]) for r in rows]

    async def release(self, tenant: str, keys: Sequence[str], at: datetime) -> None:
        """Claimed deliveries not attempted after all: due again at `at`, their attempt not counted."""
        await self.conn.execute("UPDATE deliveries SET attempts = attempts - 1, next_attempt_at = $3"
                                " WHERE tenant = $1 AND idempotency_key = ANY($2::text[]) AND status <> 'sent'",
                                tenant, list(keys), at)

    async def mark_sent(self, tenant: str, key: str, at: datetime) -> None:
        await self.conn.execute("UPDATE deliveries SET status = 'sent', sent_at = $3, last_error = NULL"
                                " WHERE tenant = $1 AND idempotency_key = $2", tenant, key, at)

    async def mark_retry(self, tenant: str, key: str, at: datetime, error: str) -> None:
        await self.conn.execute("UPDATE deliveries SET status = 'failed', next_attempt_at = $3, last_error = $4"
                                " WHERE tenant = $1 AND idempotency_key = $2 AND status <> 'sent'",
                                tenant, key, at, error)

    async def mark_dead(self, tenant: str, key: str, error: str) -> None:
        await self.conn.execute("UPDATE deliveries SET status = 'dead', last_error = $3"
                                " WHERE tenant = $1 AND idempotency_key = $2 AND status <> 'sent'", tenant, key, error)

    async def deliveries(self, tenant: str, status: str | None, limit: int) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT idempotency_key, event_id, event_type, recipient, channel, kind, status, attempts, deliver_at,"
            " next_attempt_at, last_error, created_at, sent_at FROM deliveries WHERE tenant = $1"
            " AND ($2::text IS NULL OR status = $2) ORDER BY created_at DESC, idempotency_key LIMIT $3",
            tenant, status, limit)
        return [dict(r) for r in rows]

    # --- a day's deliveries (the daily cap) and digests -------------------------------------------------

    async def events_on_day(self, tenant: str, recipients: Sequence[str],
                            windows: Sequence[tuple[datetime, datetime]]) -> dict[tuple[str, datetime], set[str]]:
        """For each (recipient, window) pair, by (recipient, window start), the events (not digests, not folded)
        already scheduled to them inside it (their local day, `[start, end)`): what counts against their cap."""
        if not recipients:
            return {}
        rows = await self.conn.fetch(
            "SELECT w.r, w.a, d.event_id FROM deliveries d JOIN unnest($2::text[], $3::timestamptz[],"
            " $4::timestamptz[]) AS w(r, a, b) ON d.recipient = w.r AND d.deliver_at >= w.a AND d.deliver_at < w.b"
            " WHERE d.tenant = $1 AND d.kind <> 'digest' AND d.status <> 'folded'",
            tenant, list(recipients), [a for a, _ in windows], [b for _, b in windows])
        out: dict[tuple[str, datetime], set[str]] = {}
        for r in rows:
            out.setdefault((r["r"], r["a"]), set()).add(r["event_id"])
        return out

    async def fold(self, tenant: str, keys: Sequence[str], digest_key: str) -> None:
        """Deliveries past their recipient's daily cap: kept, folded into the digest `digest_key`."""
        await self.conn.execute("UPDATE deliveries SET status = 'folded', digest_key = $3 WHERE tenant = $1"
                                " AND idempotency_key = ANY($2::text[]) AND status = 'pending'", tenant, list(keys),
                                digest_key)

    async def folded_into(self, tenant: str, digest_key: str) -> list[dict[str, Any]]:
        """What a digest carries: the events folded into it, oldest first (one row per event)."""
        rows = await self.conn.fetch(
            "SELECT DISTINCT ON (event_id) event_id, event_type, data, kind, deliver_at FROM deliveries"
            " WHERE tenant = $1 AND digest_key = $2 ORDER BY event_id, deliver_at", tenant, digest_key)
        return sorted(({"event_id": r["event_id"], "event_type": r["event_type"], "data": json.loads(r["data"]),
                        "kind": r["kind"], "at": r["deliver_at"]} for r in rows), key=lambda x: x["at"])

    async def open_check_ins(self, tenant: str, opened: Sequence[OpenCheckIn], closed: Sequence[str]) -> None:
        """Check-ins opened (kept) and closed (removed) in one batch; a closed one never reopens here."""
        if opened:
            await self.conn.execute(
                "INSERT INTO open_check_ins (tenant, task_id, rep_id, manager_id, summary, severity, due_at,"
                " opened_at) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
                " $7::timestamptz[], $8::timestamptz[]) ON CONFLICT (tenant, task_id) DO NOTHING",
                tenant, [o.task_id for o in opened], [o.rep_id for o in opened], [o.manager_id for o in opened],
                [o.summary for o in opened], [o.severity for o in opened], [o.due_at for o in opened],
                [o.opened_at for o in opened])
        if closed:
            await self.conn.execute("DELETE FROM open_check_ins WHERE tenant = $1 AND task_id = ANY($2::text[])",
                                    tenant, list(closed))

    async def open_check_ins_of(self, tenant: str) -> list[OpenCheckIn]:
        rows = await self.conn.fetch("SELECT task_id, rep_id, manager_id, summary, severity, due_at, opened_at"
                                     " FROM open_check_ins WHERE tenant = $1 ORDER BY opened_at, task_id", tenant)
        return [OpenCheckIn(**dict(r)) for r in rows]

    # --- the control room: team channels, the tenant's connection, preferences, retries -----------------

    async def connection(self, tenant: str) -> TenantConnection:
        row = await self.conn.fetchrow("SELECT slack_bot_token, webhook_url, webhook_secret FROM tenant_channels"
                                       " WHERE tenant = $1", tenant)
        return TenantConnection(**dict(row)) if row else TenantConnection()

    async def set_connection(self, tenant: str, conn: TenantConnection) -> None:
        await self.conn.execute(
            "INSERT INTO tenant_channels (tenant, slack_bot_token, webhook_url, webhook_secret) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (tenant) DO UPDATE SET slack_bot_token = EXCLUDED.slack_bot_token,"
            " webhook_url = EXCLUDED.webhook_url, webhook_secret = EXCLUDED.webhook_secret",
            tenant, conn.slack_bot_token, conn.webhook_url, conn.webhook_secret)

    async def set_team(self, tenant: str, team: TeamChannels) -> None:
        await self.conn.execute(
            "INSERT INTO team_channels (tenant, team_id, slack_webhook, slack_channel, teams_webhook)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, team_id) DO UPDATE SET"
            " slack_webhook = EXCLUDED.slack_webhook, slack_channel = EXCLUDED.slack_channel,"
            " teams_webhook = EXCLUDED.teams_webhook",
            tenant, team.team_id, team.slack_webhook, team.slack_channel, team.teams_webhook)

    async def delete_team(self, tenant: str, team_id: str) -> bool:
        return await self.conn.fetchval("DELETE FROM team_channels WHERE tenant = $1 AND team_id = $2 RETURNING 1",
                                        tenant, team_id) is not None

    async def roster_teams(self, tenant: str) -> list[str]:
        """The teams of the tenant's active people (those a channel can be set for, besides any set already)."""
        rows = await self.conn.fetch("SELECT DISTINCT team_id FROM people WHERE tenant = $1 AND active"
                                     " AND team_id IS NOT NULL ORDER BY 1", tenant)
        return [r["team_id"] for r in rows]

    async def preferences_of(self, tenant: str, person_id: str) -> Preferences | None:
        row = await self.conn.fetchrow("SELECT * FROM preferences WHERE tenant = $1 AND person_id = $2",
                                       tenant, person_id)
        return preferences_of(row) if row else None

    async def set_preferences(self, tenant: str, person_id: str, p: Preferences) -> None:
        await self.conn.execute(
            "INSERT INTO preferences (tenant, person_id, channels, public_celebrations, quiet_start, quiet_end,"
            " weekends_quiet, daily_cap) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8)"
            " ON CONFLICT (tenant, person_id) DO UPDATE SET channels = EXCLUDED.channels,"
            " public_celebrations = EXCLUDED.public_celebrations, quiet_start = EXCLUDED.quiet_start,"
            " quiet_end = EXCLUDED.quiet_end, weekends_quiet = EXCLUDED.weekends_quiet,"
            " daily_cap = EXCLUDED.daily_cap",
            tenant, person_id, json.dumps({k: list(v) for k, v in p.channels.items()}), p.public_celebrations,
            p.quiet_start, p.quiet_end, p.weekends_quiet, p.daily_cap)

    async def person_exists(self, tenant: str, person_id: str) -> bool:
        return await self.conn.fetchval("SELECT 1 FROM people WHERE tenant = $1 AND person_id = $2",
                                        tenant, person_id) is not None

    async def requeue(self, tenant: str, keys: Sequence[str] | None, now: datetime) -> int:
        """Dead deliveries (those of `keys`, or every one) due again now, their attempts from zero: after the
        address, the URL or the setting that failed them was fixed."""
        rows = await self.conn.fetch(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3 WHERE tenant = $1"
            " AND status = 'dead' AND ($2::text[] IS NULL OR idempotency_key = ANY($2::text[])) RETURNING 1",
            tenant, None if keys is None else list(keys), now)
        return len(rows)

