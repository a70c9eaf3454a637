"""The delivery worker (a `ServiceSpec` timer): due deliveries claimed, rendered, sent, their outcome kept.

Each pass, per tenant with something due (`sweep_due_deliveries`, the one cross-tenant read):

1. **claim** (one short transaction): up to NOTIFY_BATCH due rows, ``FOR UPDATE SKIP LOCKED`` (another replica
   takes others), each leased: ``attempts + 1`` and ``next_attempt_at = now + NOTIFY_LEASE_S``; committed;
2. **send**, outside any transaction and any lock: e-mail over SMTP, Slack and Teams through the team's
   webhooks; every attempt carries the delivery's idempotency key (``Message-ID`` and
   ``X-Attain-Idempotency-Key`` of the e-mail, ``Idempotency-Key`` of a webhook POST);
3. **record** (one short transaction per delivery, right after its send): ``sent``; on a `TransientFailure`
   ``failed`` with ``next_attempt_at`` after exponential backoff (NOTIFY_BACKOFF_S doubled per attempt, capped
   at NOTIFY_BACKOFF_MAX_S, never before the receiver's ``Retry-After``), ``dead`` once NOTIFY_MAX_ATTEMPTS
   attempts failed; on a `PermanentFailure` (or nothing to send it to) ``dead`` with the reason.

The choice (issue 19, "a SIGKILL mid-delivery loses nothing"): the send is not held under the row lock, so
no connection is held across an SMTP or HTTP round trip. A SIGKILL between claim and record leaves the row
leased: once the lease ends it is due again, and the repeat carries the same idempotency key (the same
``Message-ID``), so the receiver can recognise it. Nothing is lost; at most the deliveries in flight at the
kill (one per tenant and worker, as outcomes are recorded one by one) may reach their receiver twice, each
time with the same key. Holding the lock across the send would not do better: a kill after the receiver
took the message and before the commit repeats it just the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from math import inf
from typing import Any, Protocol
from urllib.parse import urlencode

import asyncpg
import httpx
from prometheus_client import Counter

from services.notify.channels import DeliveryFailed, PermanentFailure, TransientFailure, smtp, webhooks
from services.notify.channels.slack_api import SlackApi
from services.notify.digests import CAP_DIGEST, OPEN_DIGEST, manager_digests
from services.notify.messages import DigestItem, EventData, Notification, OpenCheckIns, content, dashboard_link, render
from services.notify.model import TEAM_PREFIX, Person, TeamChannels
from services.notify.repository import Claimed, PgRepository, TenantConnection, TenantFacts
from services.notify.routing import DATA
from services.notify.settings import NotifySettings
from shared.db import sweep_tx, tenant_tx
from shared.events import TaskEscalated
from shared.secret_box import PREFIX, SecretBox, SecretBoxError
from shared.service import Runtime, every

log = logging.getLogger(__name__)

__all__ = ["Channels", "Context", "Outcome", "Sender", "attempt", "backoff", "deliver_due", "delivery_worker",
           "digest_worker", "make_digests", "unsubscribe_link", "unsubscribe_token"]

DELIVERIES = Counter("attain_notify_deliveries_total", "Delivery attempts by channel and outcome (sent, retry, dead)",
                     ["channel", "outcome"])


class Sender(Protocol):
    """One attempt per call on each channel; raises `DeliveryFailed` (transient or permanent)."""

    async def email(self, message: EmailMessage) -> None: ...
    async def slack(self, url: str, body: dict[str, object], key: str) -> None: ...
    async def teams(self, url: str, body: dict[str, object], key: str) -> None: ...
    async def slack_post(self, token: str, channel: str, body: dict[str, object]) -> None: ...
    async def slack_dm(self, token: str, email: str, body: dict[str, object]) -> None: ...
    async def webhook(self, url: str, payload: dict[str, object], key: str, secret: str | None) -> None: ...


class Channels:
    """The real channels: SMTP_URL's server, Slack's Web API, and one HTTP client for the webhooks; at most one
    post per `min_interval_s` to each Slack or Teams channel (Slack: about one message per second per channel)
    in this process."""

    def __init__(self, smtp_url: str | None, client: httpx.AsyncClient, min_interval_s: float = 1.0,
                 slack_api_url: str = "https://slack.com/api/") -> None:
        self.server = smtp.SmtpServer.from_url(smtp_url) if smtp_url else None
        self.client = client
        self.min_interval_s = min_interval_s
        self.slack_api_url = slack_api_url
        self._last: dict[str, float] = {}

    async def _pace(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last.get(channel, -inf) + self.min_interval_s - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last[channel] = loop.time()

    async def email(self, message: EmailMessage) -> None:
        if self.server is None:
            raise TransientFailure("SMTP_URL is not set: e-mail waits until it is")
        await smtp.send(self.server, message)

    async def slack(self, url: str, body: dict[str, object], key: str) -> None:
        await self._pace(url)
        await webhooks.post_slack(self.client, url, body, key)

    async def teams(self, url: str, body: dict[str, object], key: str) -> None:
        await self._pace(url)
        await webhooks.post_teams(self.client, url, body, key)

    async def slack_post(self, token: str, channel: str, body: dict[str, object]) -> None:
        await self._pace(f"slack-channel:{channel}")
        await SlackApi(token, self.slack_api_url).post(channel, body)

    async def slack_dm(self, token: str, email: str, body: dict[str, object]) -> None:
        await SlackApi(token, self.slack_api_url).direct_message(email, body)

    async def webhook(self, url: str, payload: dict[str, object], key: str, secret: str | None) -> None:
        await webhooks.post_signed(self.client, url, payload, key, secret)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one attempt: ``sent``, ``retry`` at `retry_at`, or ``dead``; `error` the reason."""

    status: str
    error: str | None = None
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What a tenant's deliveries are rendered and sent with: its facts, roster, team channels and own
    connection (secrets sealed as stored, opened with `box` only when a message goes out), the settings,
    and the events each cap digest folded (by digest id)."""

    tenant: TenantFacts
    people: Mapping[str, Person]
    teams: Mapping[str, TeamChannels]
    settings: NotifySettings
    connection: TenantConnection = field(default_factory=TenantConnection)
    box: SecretBox | None = None
    folded: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    tenant_id: str = ""

    def open(self, sealed: str | None, what: str) -> str:
        """A stored secret in the clear, for one send; `PermanentFailure` when it cannot be opened."""
        if not sealed:
            raise PermanentFailure(f"{what} is not set")
        if self.box is None:
            raise PermanentFailure(f"{what} cannot be read: NOTIFY_SECRET_KEYS is not set")
        try:
            return self.box.unseal(sealed)
        except SecretBoxError as err:
            raise PermanentFailure(f"{what}: {err}") from None


def backoff(attempts: int, settings: NotifySettings, retry_after: float | None) -> float:
    """Seconds to the next attempt after `attempts` failed ones: doubling from NOTIFY_BACKOFF_S, capped, and
    never sooner than the receiver's Retry-After."""
    wait = min(settings.notify_backoff_max_s, settings.notify_backoff_s * 2 ** max(attempts - 1, 0))
    return float(max(wait, retry_after or 0.0))


async def attempt(c: Claimed, ctx: Context, sender: Sender, now: datetime) -> Outcome:
    """Render delivery `c` for its recipient and hand it to its channel once."""
    try:
        await _send(c, ctx, sender, now)
    except PermanentFailure as err:
        return Outcome("dead", err.reason)
    except TransientFailure as err:
        if c.attempts >= ctx.settings.notify_max_attempts:
            return Outcome("dead", f"gave up after {c.attempts} attempts: {err.reason}")
        return Outcome("retry", err.reason,
                       now + timedelta(seconds=backoff(c.attempts, ctx.settings, err.retry_after)))
    return Outcome("sent")


def _data(c: Claimed, ctx: Context, people: Mapping[str, Person]) -> EventData:
    """The event's data as a message renders it: a routed event's model, or a digest's items."""
    if c.event_type == OPEN_DIGEST:
        return OpenCheckIns(tuple(DigestItem(i["rep_name"], i["summary"], datetime.fromisoformat(i["due_at"]))
                                  for i in c.data["items"]))
    if c.event_type == CAP_DIGEST:
        return OpenCheckIns(tuple(_folded_item(f, ctx, people) for f in ctx.folded.get(c.event_id, [])),
                            folded=True)
    model = DATA.get(c.event_type)
    if model is None:
        raise PermanentFailure(f"notify does not render {c.event_type}")
    return model.model_validate(c.data)  # type: ignore[return-value]


def _folded_item(f: dict[str, Any], ctx: Context, people: Mapping[str, Person]) -> DigestItem:
    """One event a cap folded, as a line of the digest: the message's own title."""
    data: EventData = DATA[f["event_type"]].model_validate(f["data"])  # type: ignore[assignment]
    n = Notification(f["kind"], data, recipient="", locale=ctx.tenant.locale,
                     currency=ctx.tenant.currency, timezone=ctx.tenant.timezone,
                     link=dashboard_link(ctx.settings.dashboard_base_url, data))
    return DigestItem("", content(n).title, f["at"])


def _payload(c: Claimed, data: EventData, person: Person, n: Notification) -> dict[str, object]:
    """What a tenant's own receiver gets (the generic webhook): who, what, the words, and the event."""
    words = content(n)
    event = None if isinstance(data, OpenCheckIns) else {"id": c.event_id, "type": c.event_type, "data": c.data}
    return {"type": "attain.notification", "idempotency_key": c.idempotency_key, "kind": c.kind,
            "recipient": {"person_id": person.person_id, "name": person.name, "email": person.email},
            "title": words.title, "text": words.text, "link": n.link, "event": event}


async def _send(c: Claimed, ctx: Context, sender: Sender, now: datetime) -> None:
    data = _data(c, ctx, ctx.people)
    if c.recipient.startswith(TEAM_PREFIX):
        await _send_to_team(c, ctx, data, sender)
    else:
        await _send_to_person(c, ctx, data, sender, now)


async def _send_to_team(c: Claimed, ctx: Context, data: EventData, sender: Sender) -> None:
    team = ctx.teams.get(c.recipient.removeprefix(TEAM_PREFIX))
    n = Notification(c.kind, data, recipient=team.team_id if team else c.recipient,
                     locale=ctx.tenant.locale, currency=ctx.tenant.currency, timezone=ctx.tenant.timezone,
                     link=dashboard_link(ctx.settings.dashboard_base_url, data))
    rendered = render(n)
    if c.channel == "slack" and team is not None and team.slack_webhook:
        await sender.slack(ctx.open(team.slack_webhook, f"{c.recipient}'s Slack webhook"), rendered.slack,
                           c.idempotency_key)
    elif c.channel == "slack" and team is not None and team.slack_channel:
        token = ctx.open(ctx.connection.slack_bot_token, "the tenant's Slack bot token")
        await sender.slack_post(token, team.slack_channel, rendered.slack)
    elif c.channel == "teams" and team is not None and team.teams_webhook:
        await sender.teams(ctx.open(team.teams_webhook, f"{c.recipient}'s Teams webhook"), rendered.teams,
                           c.idempotency_key)
    else:
        raise PermanentFailure(f"team channel {c.recipient} has no {c.channel} webhook set")


async def _send_to_person(c: Claimed, ctx: Context, data: EventData, sender: Sender, now: datetime) -> None:
    people, settings, base = ctx.people, ctx.settings, ctx.settings.dashboard_base_url
    person = people.get(c.recipient)
    if person is None:
        raise PermanentFailure(f"{c.recipient} is no longer on the roster")
    subject = None
    if isinstance(data, TaskEscalated) and data.rep_id in people:
        subject = people[data.rep_id].name
    unsubscribe, one_click = f"{base.rstrip('/')}/me/notifications", False
    if ctx.box is not None and ctx.tenant_id:
        unsubscribe, one_click = unsubscribe_link(base, ctx.box, ctx.tenant_id, person.person_id, c.kind), True
    n = Notification(c.kind, data, recipient=person.name, locale=person.locale or ctx.tenant.locale,
                     currency=ctx.tenant.currency, timezone=person.timezone, link=dashboard_link(base, data),
                     unsubscribe_url=unsubscribe, subject_name=subject)
    if c.channel == "webhook":
        if not ctx.connection.webhook_url:
            raise PermanentFailure("the tenant has no webhook receiver set")
        secret = ctx.open(ctx.connection.webhook_secret, "the webhook signing secret") \
            if ctx.connection.webhook_secret else None
        await sender.webhook(ctx.connection.webhook_url, _payload(c, data, person, n), c.idempotency_key, secret)
        return
    if c.channel not in ("email", "slack"):
        raise PermanentFailure(f"{c.channel} reaches team channels only: choose e-mail, Slack or the webhook")
    if not person.email:
        raise PermanentFailure(f"{c.recipient} has no e-mail address on the roster")
    if c.channel == "slack":
        token = ctx.open(ctx.connection.slack_bot_token, "the tenant's Slack bot token (direct messages)")
        await sender.slack_dm(token, person.email, render(n).slack)
        return
    message = smtp.build_message(render(n).email, sender=settings.notify_from, recipient=person.email,
                                 idempotency_key=c.idempotency_key, unsubscribe_url=n.unsubscribe_url, now=now,
                                 sender_name="Attain", one_click=one_click)
    await sender.email(message)


def unsubscribe_link(base: str, box: SecretBox, tenant: str, person_id: str, kind: str) -> str:
    """The dashboard's one-click unsubscribe URL for `person_id` and `kind`: its token is sealed (`box`), so it
    names the tenant and the person without anyone being able to forge or read it (`unsubscribe_token`)."""
    sealed = box.seal(json.dumps([tenant, person_id, kind], separators=(",", ":")))
    return f"{base.rstrip('/')}/unsubscribe?{urlencode({'t': sealed.removeprefix(PREFIX)})}"


def unsubscribe_token(box: SecretBox, token: str) -> tuple[str, str, str]:
    """(tenant, person, kind) of an unsubscribe link's token; ValueError when it is not one notify sealed."""
    try:
        tenant, person_id, kind = json.loads(box.unseal(PREFIX + token))
    except (SecretBoxError, ValueError, TypeError) as err:
        raise ValueError("not an unsubscribe token of this service (damaged, or sealed under another key)") from err
    return str(tenant), str(person_id), str(kind)


async def deliver_due(pool: asyncpg.Pool, settings: NotifySettings, sender: Sender, now: datetime) -> dict[str, int]:
    """One pass over every tenant with due deliveries; counts by outcome."""
    async with sweep_tx(pool) as conn:
        tenants = [r["tenant"] for r in await conn.fetch("SELECT tenant FROM sweep_due_deliveries($1)", now)]
    counts: dict[str, int] = {}
    box = settings.box()
    for tenant in tenants:
        async with tenant_tx(pool, tenant) as conn:
            repo = PgRepository(conn)
            claimed = await repo.claim(tenant, now, now + timedelta(seconds=settings.notify_lease_s),
                                       settings.notify_batch)
            if not claimed:
                continue
            folded = {c.event_id: await repo.folded_into(tenant, c.event_id)
                      for c in claimed if c.event_type == CAP_DIGEST}
            ctx = Context(await repo.tenant_facts(tenant), await repo.people(tenant), await repo.teams(tenant),
                          settings, await repo.connection(tenant), box, folded, tenant)
        started = asyncio.get_running_loop().time()
        for n, c in enumerate(claimed):
            if asyncio.get_running_loop().time() - started > settings.notify_lease_s / 2:
                # slow receivers: hand the rest back before their lease ends and another replica takes them
                async with tenant_tx(pool, tenant) as conn:
                    await PgRepository(conn).release(tenant, [r.idempotency_key for r in claimed[n:]], now)
                break
            try:
                outcome = await attempt(c, ctx, sender, now)
            except DeliveryFailed as err:  # pragma: no cover - attempt classifies every one
                outcome = Outcome("dead", err.reason)
            except Exception as err:  # a message that cannot be rendered: kept with the reason, never retried blind
                log.exception("delivery failed to render", extra={"tenant": tenant, "key": c.idempotency_key})
                outcome = Outcome("dead", f"{type(err).__name__}: {err}")
            async with tenant_tx(pool, tenant) as conn:
                await record(PgRepository(conn), tenant, c, outcome, now)
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            DELIVERIES.labels(c.channel, outcome.status).inc()
    return counts


async def make_digests(pool: asyncpg.Pool, now: datetime) -> int:
    """Today's managers' digests of open check-ins, for every tenant with one open (`digests.manager_digests`):
    each made once per manager and day (its idempotency key), however often this runs."""
    async with sweep_tx(pool) as conn:
        tenants = [r["tenant"] for r in await conn.fetch("SELECT tenant FROM sweep_open_check_ins()")]
    made = 0
    for tenant in tenants:
        async with tenant_tx(pool, tenant) as conn:
            repo = PgRepository(conn)
            rows = manager_digests(tenant, now, await repo.open_check_ins_of(tenant), await repo.people(tenant),
                                   await repo.preferences(tenant), await repo.teams(tenant))
            made += await repo.add(tenant, rows)
    return made


async def record(repo: PgRepository, tenant: str, c: Claimed, outcome: Outcome, now: datetime) -> None:
    if outcome.status == "sent":
        await repo.mark_sent(tenant, c.idempotency_key, now)
    elif outcome.status == "retry":
        assert outcome.retry_at is not None
        await repo.mark_retry(tenant, c.idempotency_key, outcome.retry_at, outcome.error or "")
    else:
        await repo.mark_dead(tenant, c.idempotency_key, outcome.error or "")


async def delivery_worker(rt: Runtime) -> None:
    """The timer: every NOTIFY_INTERVAL_S, send what is due."""
    settings = rt.settings
    assert isinstance(settings, NotifySettings)
    async with httpx.AsyncClient() as client:
        channels = Channels(settings.smtp(), client, settings.notify_paced_s, settings.slack_api_url)

        async def work() -> None:
            if counts := await deliver_due(rt.pool, settings, channels, rt.clock.now()):
                log.info("deliveries attempted", extra={f"deliveries_{k}": n for k, n in counts.items()})

        await every(settings.notify_interval_s, work, "notify-deliveries")


async def digest_worker(rt: Runtime) -> None:
    """The timer: every NOTIFY_DIGEST_INTERVAL_S, make the managers' digests that are due today."""
    settings = rt.settings
    assert isinstance(settings, NotifySettings)

    async def work() -> None:
        if made := await make_digests(rt.pool, rt.clock.now()):
            log.info("digests made", extra={"digests": made})

    await every(settings.notify_digest_interval_s, work, "notify-digests")
