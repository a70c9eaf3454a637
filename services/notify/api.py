"""notify's API: team channels, the tenant's own connection, people's preferences, what could not be delivered.

- admins: ``GET /v1/notify/deliveries`` (``status=dead``: kept with their reason) and
  ``POST /v1/notify/deliveries/retry`` (after the address, URL or token was fixed); ``GET /v1/notify/teams``,
  ``PUT|DELETE /v1/notify/teams/{team_id}`` (Slack and Teams webhooks, a Slack channel id);
  ``GET|PUT /v1/notify/connection`` (a Slack app's bot token, the tenant's signed webhook receiver);
  ``GET|PUT /v1/notify/preferences/{person_id}``;
- a rep or a manager: ``GET|PUT /v1/notify/preferences/me`` (their own);
- anyone holding an e-mail's unsubscribe token: ``POST /v1/notify/unsubscribe`` (RFC 8058 one-click, through
  the dashboard's ``/unsubscribe``): that kind of message no longer by e-mail.

Webhook URLs (whoever holds one may post to the channel), the bot token and the signing secret are secrets:
written, sealed with NOTIFY_SECRET_KEYS, never read back ("(set)"). Every change is written to the audit
log in its own transaction (shared/audit.py).
"""

from __future__ import annotations

import ipaddress
from datetime import time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.notify.model import CHANNELS, KINDS, Kind, Preferences, TeamChannels
from services.notify.repository import PgRepository, TenantConnection
from services.notify.settings import SECRET_KEYS_SETTING, NotifySettings
from services.notify.worker import unsubscribe_token
from shared import audit
from shared.auth import Admin, People
from shared.authz import Principal, public
from shared.db import tenant_tx
from shared.secret_box import SecretBox
from shared.service import Runtime, runtime_of

router = APIRouter(prefix="/v1/notify", tags=["notify"])
Rt = Annotated[Runtime, Depends(runtime_of)]
Status = Literal["pending", "sent", "failed", "dead", "folded"]
PersonChannel = Literal["email", "slack", "webhook"]  # "teams" reaches team channels only (Workflows webhooks)
SET = "(set)"
Id = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
LOOPBACK_NAMES = frozenset({"localhost"})


def _box(rt: Runtime) -> SecretBox:
    settings = rt.settings
    assert isinstance(settings, NotifySettings)
    box = settings.box()
    if box is None:
        raise HTTPException(409, f"{SECRET_KEYS_SETTING} is not set: notify keeps webhook URLs and tokens sealed"
                                 " with it; ask your operator to set it")
    return box


def _url(value: str | None, field: str) -> str | None:
    """An https URL (http only to this machine, for a local receiver); ValueError naming `field`."""
    if value is None:
        return None
    parts = urlsplit(value)
    host = parts.hostname or ""
    try:
        loopback = host in LOOPBACK_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"{field} must be an https:// URL (http:// only to this machine)")
    if not host:
        raise ValueError(f"{field} has no host")
    return value


class TeamIn(BaseModel):
    """A team's channels: a field left out keeps its value, null clears it."""

    model_config = ConfigDict(extra="forbid")
    slack_webhook: str | None = Field(default=None, max_length=2048)
    slack_channel: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9_#-]+$")
    teams_webhook: str | None = Field(default=None, max_length=2048)

    @field_validator("slack_webhook", "teams_webhook")
    @classmethod
    def _https(cls, value: str | None, info: Any) -> str | None:
        return _url(value, info.field_name)


class ConnectionIn(BaseModel):
    """The tenant's own connection: a field left out keeps its value, null clears it."""

    model_config = ConfigDict(extra="forbid")
    slack_bot_token: str | None = Field(default=None, max_length=500, pattern=r"^xox[a-z]-[A-Za-z0-9-]+$")
    webhook_url: str | None = Field(default=None, max_length=2048)
    webhook_secret: str | None = Field(default=None, max_length=200, pattern=r"^whsec_[A-Za-z0-9+/=]+$")

    @field_validator("webhook_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        return _url(value, "webhook_url")


class PreferencesIn(BaseModel):
    """One person's choices (`services.notify.model.Preferences`)."""

    model_config = ConfigDict(extra="forbid")
    channels: dict[Kind, list[PersonChannel]] = Field(default_factory=dict)
    public_celebrations: bool = True
    quiet_start: time = time(20, 0)
    quiet_end: time = time(8, 0)
    weekends_quiet: bool = True
    daily_cap: int = Field(default=20, ge=1, le=1000)

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _local(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("quiet hours are local wall times (HH:MM), without a zone")
        return value

    def preferences(self) -> Preferences:
        return Preferences(channels={k: tuple(dict.fromkeys(v)) for k, v in self.channels.items()},
                           public_celebrations=self.public_celebrations, quiet_start=self.quiet_start,
                           quiet_end=self.quiet_end, weekends_quiet=self.weekends_quiet, daily_cap=self.daily_cap)


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(default=None, max_length=500)
    all_dead: bool = False


class UnsubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=2000)


def _team_view(team: TeamChannels) -> dict[str, Any]:
    return {"team_id": team.team_id, "slack_webhook": SET if team.slack_webhook else None,
            "slack_channel": team.slack_channel, "teams_webhook": SET if team.teams_webhook else None}


def _connection_view(c: TenantConnection) -> dict[str, Any]:
    return {"slack_bot_token": SET if c.slack_bot_token else None, "webhook_url": c.webhook_url,
            "webhook_secret": SET if c.webhook_secret else None}


def _preferences_view(person_id: str, p: Preferences) -> dict[str, Any]:
    return {"person_id": person_id, "channels": {k: list(v) for k, v in p.channels.items()},
            "public_celebrations": p.public_celebrations, "quiet_start": p.quiet_start.strftime("%H:%M"),
            "quiet_end": p.quiet_end.strftime("%H:%M"), "weekends_quiet": p.weekends_quiet,
            "daily_cap": p.daily_cap, "kinds": list(KINDS),
            "channels_available": [c for c in CHANNELS if c != "teams"]}


def _audit_prefs(p: Preferences | None) -> dict[str, Any] | None:
    return None if p is None else {k: v for k, v in _preferences_view("", p).items()
                                   if k not in ("person_id", "kinds", "channels_available")}


@router.get("/deliveries")
async def list_deliveries(rt: Rt, who: Admin, status: Status | None = None,
                          limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """The tenant's deliveries, newest first (``status=dead``: those kept with the reason they failed)."""
    async with tenant_tx(rt.pool, who.tenant) as conn:
        rows = await PgRepository(conn).deliveries(who.tenant, status, limit)
    return {"deliveries": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                           for r in rows]}


@router.post("/deliveries/retry")
async def retry_deliveries(rt: Rt, who: Admin, body: RetryIn) -> dict[str, int]:
    """Dead deliveries due again now (``keys``, or every one with ``all_dead``), attempts from zero: for after
    the address, the webhook or the token that failed them was fixed."""
    if body.keys is None and not body.all_dead:
        raise HTTPException(422, "name the deliveries to retry (keys) or ask for every dead one (all_dead: true)")
    now = rt.clock.now()
    async with tenant_tx(rt.pool, who.tenant) as conn:
        n = await PgRepository(conn).requeue(who.tenant, None if body.all_dead else body.keys, now)
        if n:
            await audit.record(conn, tenant=who.tenant, who=who, action="notify.deliveries.retried",
                               subject="deliveries", before=None, after={"requeued": n, "keys": body.keys},
                               at=now, service="notify")
    return {"requeued": n}


@router.get("/teams")
async def list_teams(rt: Rt, who: Admin) -> dict[str, Any]:
    """Every team of the roster and every team with channels set; webhook URLs only as "(set)"."""
    async with tenant_tx(rt.pool, who.tenant) as conn:
        repo = PgRepository(conn)
        teams, roster = await repo.teams(who.tenant), await repo.roster_teams(who.tenant)
    every = {t: teams.get(t, TeamChannels(t)) for t in sorted({*roster, *teams})}
    return {"teams": [_team_view(t) for t in every.values()]}


@router.put("/teams/{team_id}")
async def set_team(rt: Rt, who: Admin, team_id: Id, body: Annotated[TeamIn, Body()]) -> dict[str, Any]:
    """Set, replace (or with null clear) a team's Slack webhook, Slack channel id and Teams webhook."""
    given = body.model_fields_set
    box = _box(rt) if any(getattr(body, f) for f in ("slack_webhook", "teams_webhook") if f in given) else None
    async with tenant_tx(rt.pool, who.tenant) as conn:
        repo = PgRepository(conn)
        old = (await repo.teams(who.tenant)).get(team_id, TeamChannels(team_id))
        values = {f: getattr(old, f) for f in ("slack_webhook", "slack_channel", "teams_webhook")}
        for f in given:
            value = getattr(body, f)
            values[f] = box.seal(value) if value and f != "slack_channel" and box is not None else value
        new = TeamChannels(team_id, **values)
        await repo.set_team(who.tenant, new)
        await audit.record(conn, tenant=who.tenant, who=who, action="notify.team_channels.set",
                           subject=f"team:{team_id}", before=_audit_team(old), after=_audit_team(new),
                           at=rt.clock.now(), service="notify")
    return _team_view(new)


def _audit_team(t: TeamChannels) -> dict[str, Any] | None:
    if not (t.slack_webhook or t.slack_channel or t.teams_webhook):
        return None
    # sealed values compared whole: a replaced webhook is an entry, shown as "(set)" (its name ends in _webhook)
    return {"slack_webhook": t.slack_webhook, "slack_channel": t.slack_channel, "teams_webhook": t.teams_webhook}


@router.delete("/teams/{team_id}", status_code=204)
async def delete_team(rt: Rt, who: Admin, team_id: Id) -> Response:
    """Forget a team's channels (its celebrations then reach only the reps)."""
    async with tenant_tx(rt.pool, who.tenant) as conn:
        repo = PgRepository(conn)
        old = (await repo.teams(who.tenant)).get(team_id)
        if old is None or not await repo.delete_team(who.tenant, team_id):
            raise HTTPException(404, f"team {team_id!r} has no channels set")
        await audit.record(conn, tenant=who.tenant, who=who, action="notify.team_channels.deleted",
                           subject=f"team:{team_id}", before=_audit_team(old), after=None, at=rt.clock.now(),
                           service="notify")
    return Response(status_code=204)


@router.get("/connection")
async def get_connection(rt: Rt, who: Admin) -> dict[str, Any]:
    async with tenant_tx(rt.pool, who.tenant) as conn:
        return _connection_view(await PgRepository(conn).connection(who.tenant))


@router.put("/connection")
async def set_connection(rt: Rt, who: Admin, body: ConnectionIn) -> dict[str, Any]:
    """The tenant's Slack app bot token (direct messages found by e-mail; team channels by id) and its own
    webhook receiver (URL, and the ``whsec_`` secret its payloads are signed with)."""
    given = body.model_fields_set
    box = _box(rt) if (body.slack_bot_token and "slack_bot_token" in given) or (
        body.webhook_secret and "webhook_secret" in given) else None
    async with tenant_tx(rt.pool, who.tenant) as conn:
        repo = PgRepository(conn)
        old = await repo.connection(who.tenant)
        values = {"slack_bot_token": old.slack_bot_token, "webhook_url": old.webhook_url,
                  "webhook_secret": old.webhook_secret}
        for f in given:
            value = getattr(body, f)
            values[f] = box.seal(value) if value and f != "webhook_url" and box is not None else value
        new = TenantConnection(**values)
        await repo.set_connection(who.tenant, new)
        await audit.record(conn, tenant=who.tenant, who=who, action="notify.connection.set", subject="connection",
                           before=vars_of(old), after=vars_of(new), at=rt.clock.now(), service="notify")
    return _connection_view(new)


def vars_of(c: TenantConnection) -> dict[str, Any] | None:
    values = {"slack_bot_token": c.slack_bot_token, "webhook_url": c.webhook_url, "webhook_secret": c.webhook_secret}
    return values if any(values.values()) else None


def _me(who: Principal) -> str:
    person = who.rep_id or who.manager_id
    if person is None:
        raise HTTPException(404, "this token speaks for no person: preferences belong to a rep or a manager")
    return person


async def _get_preferences(rt: Runtime, tenant: str, person_id: str) -> dict[str, Any]:
    async with tenant_tx(rt.pool, tenant) as conn:
        repo = PgRepository(conn)
        stored = await repo.preferences_of(tenant, person_id)
        if stored is None and not await repo.person_exists(tenant, person_id):
            raise HTTPException(404, f"person {person_id!r} not found")
    return _preferences_view(person_id, stored or Preferences())


async def _put_preferences(rt: Runtime, who: Principal, person_id: str, body: PreferencesIn) -> dict[str, Any]:
    try:
        new = body.preferences()
    except ValueError as err:
        raise HTTPException(422, str(err)) from None
    async with tenant_tx(rt.pool, who.tenant) as conn:
        repo = PgRepository(conn)
        old = await repo.preferences_of(who.tenant, person_id)
        if old is None and not await repo.person_exists(who.tenant, person_id):
            raise HTTPException(404, f"person {person_id!r} not found")
        await repo.set_preferences(who.tenant, person_id, new)
        await audit.record(conn, tenant=who.tenant, who=who, action="notify.preferences.set",
                           subject=f"person:{person_id}", before=_audit_prefs(old), after=_audit_prefs(new),
                           at=rt.clock.now(), service="notify")
    return _preferences_view(person_id, new)


@router.get("/preferences/me")
async def my_preferences(rt: Rt, who: People) -> dict[str, Any]:
    """Your own choices: channels per kind of message, public celebrations, quiet hours, weekends, daily cap."""
    return await _get_preferences(rt, who.tenant, _me(who))


@router.put("/preferences/me")
async def set_my_preferences(rt: Rt, who: People, body: PreferencesIn) -> dict[str, Any]:
    return await _put_preferences(rt, who, _me(who), body)


@router.get("/preferences/{person_id}")
async def person_preferences(rt: Rt, who: Admin, person_id: Id) -> dict[str, Any]:
    return await _get_preferences(rt, who.tenant, person_id)


@router.put("/preferences/{person_id}")
async def set_person_preferences(rt: Rt, who: Admin, person_id: Id, body: PreferencesIn) -> dict[str, Any]:
    return await _put_preferences(rt, who, person_id, body)


@router.post("/unsubscribe", dependencies=[public(
    "RFC 8058 one-click unsubscribe from an e-mail: the mail provider posts without a session; the sealed token"
    " it carries names the tenant, the person and the kind, and cannot be forged")])
async def unsubscribe(rt: Rt, body: UnsubscribeIn) -> dict[str, Any]:
    """That kind of message no longer by e-mail for the person the token names (their other channels stay)."""
    try:
        tenant, person_id, kind = unsubscribe_token(_box(rt), body.token)
    except ValueError as err:
        raise HTTPException(400, str(err)) from None
    if kind not in KINDS:
        raise HTTPException(400, "not an unsubscribe token of this service")
    async with tenant_tx(rt.pool, tenant) as conn:
        repo = PgRepository(conn)
        if not await repo.person_exists(tenant, person_id):
            raise HTTPException(404, "the person this link was for is no longer on the roster")
        old = await repo.preferences_of(tenant, person_id) or Preferences()
        channels = dict(old.channels)
        current = channels.get(kind, ("email",))
        channels[kind] = tuple(c for c in current if c != "email")
        new = Preferences(channels=channels, public_celebrations=old.public_celebrations,
                          quiet_start=old.quiet_start, quiet_end=old.quiet_end, weekends_quiet=old.weekends_quiet,
                          daily_cap=old.daily_cap)
        await repo.set_preferences(tenant, person_id, new)
        await audit.record(conn, tenant=tenant, who=None, action="notify.preferences.unsubscribed",
                           subject=f"person:{person_id}", before=_audit_prefs(old), after=_audit_prefs(new),
                           at=rt.clock.now(), service="notify",
                           actor=audit.actor_of(None, name=f"unsubscribe link of {person_id}"))
    return {"person_id": person_id, "kind": kind, "channels": list(new.channels[kind])}
