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
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from math import inf
from typing import Protocol

import asyncpg
import httpx

from services.notify.channels import DeliveryFailed, PermanentFailure, TransientFailure, smtp, webhooks
from services.notify.messages import Notification, dashboard_link, render
from services.notify.model import TEAM_PREFIX, Person, TeamChannels
from services.notify.repository import Claimed, PgRepository, TenantFacts
from services.notify.routing import DATA
from services.notify.settings import NotifySettings
from shared.db import sweep_tx, tenant_tx
from shared.events import TaskEscalated
from shared.service import Runtime, every

log = logging.getLogger(__name__)

__all__ = ["Channels", "Outcome", "Sender", "attempt", "backoff", "deliver_due", "delivery_worker"]


class Sender(Protocol):
    """One attempt per call on each channel; raises `DeliveryFailed` (transient or permanent)."""

    async def email(self, message: EmailMessage) -> None: ...
    async def slack(self, url: str, body: dict[str, object], key: str) -> None: ...
    async def teams(self, url: str, body: dict[str, object], key: str) -> None: ...


class Channels:
    """The real channels: SMTP_URL's server, and one HTTP client for the webhooks, at most one post per
    `min_interval_s` to each webhook URL (Slack: about one message per second per channel) in this process."""

    def __init__(self, smtp_url: str | None, client: httpx.AsyncClient, min_interval_s: float = 1.0) -> None:
        self.server = smtp.SmtpServer.from_url(smtp_url) if smtp_url else None
        self.client = client
        self.min_interval_s = min_interval_s
        self._last: dict[str, float] = {}

    async def _pace(self, url: str) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last.get(url, -inf) + self.min_interval_s - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last[url] = loop.time()

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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one attempt: ``sent``, ``retry`` at `retry_at`, or ``dead``; `error` the reason."""

    status: str
    error: str | None = None
    retry_at: datetime | None = None


def backoff(attempts: int, settings: NotifySettings, retry_after: float | None) -> float:
    """Seconds to the next attempt after `attempts` failed ones: doubling from NOTIFY_BACKOFF_S, capped, and
    never sooner than the receiver's Retry-After."""
    wait = min(settings.notify_backoff_max_s, settings.notify_backoff_s * 2 ** max(attempts - 1, 0))
    return float(max(wait, retry_after or 0.0))


async def attempt(c: Claimed, tenant: TenantFacts, people: Mapping[str, Person], teams: Mapping[str, TeamChannels],
                  settings: NotifySettings, sender: Sender, now: datetime) -> Outcome:
    """Render delivery `c` for its recipient and hand it to its channel once."""
    try:
        await _send(c, tenant, people, teams, settings, sender, now)
    except PermanentFailure as err:
        return Outcome("dead", err.reason)
    except TransientFailure as err:
        if c.attempts >= settings.notify_max_attempts:
            return Outcome("dead", f"gave up after {c.attempts} attempts: {err.reason}")
        return Outcome("retry", err.reason, now + timedelta(seconds=backoff(c.attempts, settings, err.retry_after)))
    return Outcome("sent")


async def _send(c: Claimed, tenant: TenantFacts, people: Mapping[str, Person], teams: Mapping[str, TeamChannels],
                settings: NotifySettings, sender: Sender, now: datetime) -> None:
    model = DATA.get(c.event_type)
    if model is None:
        raise PermanentFailure(f"notify does not render {c.event_type}")
    data = model.model_validate(c.data)
    base = settings.dashboard_base_url
    if c.recipient.startswith(TEAM_PREFIX):
        team = teams.get(c.recipient.removeprefix(TEAM_PREFIX))
        n = Notification(c.kind, data, recipient=team.team_id if team else c.recipient,  # type: ignore[arg-type]
                         locale=tenant.locale, currency=tenant.currency, timezone=tenant.timezone,
                         link=dashboard_link(base, data))  # type: ignore[arg-type]
        rendered = render(n)
        if c.channel == "slack" and team is not None and team.slack_webhook:
            await sender.slack(team.slack_webhook, rendered.slack, c.idempotency_key)
        elif c.channel == "teams" and team is not None and team.teams_webhook:
            await sender.teams(team.teams_webhook, rendered.teams, c.idempotency_key)
        else:
            raise PermanentFailure(f"team channel {c.recipient} has no {c.channel} webhook set")
        return
    person = people.get(c.recipient)
    if person is None:
        raise PermanentFailure(f"{c.recipient} is no longer on the roster")
    subject = None
    if isinstance(data, TaskEscalated) and data.rep_id in people:
        subject = people[data.rep_id].name
    n = Notification(c.kind, data, recipient=person.name, locale=person.locale or tenant.locale,  # type: ignore[arg-type]
                     currency=tenant.currency, timezone=person.timezone, link=dashboard_link(base, data),  # type: ignore[arg-type]
                     unsubscribe_url=f"{base.rstrip('/')}/me/notifications", subject_name=subject)
    if c.channel != "email":
        raise PermanentFailure(f"{c.channel} to a person is not supported yet (direct messages): choose e-mail")
    if not person.email:
        raise PermanentFailure(f"{c.recipient} has no e-mail address on the roster")
    message = smtp.build_message(render(n).email, sender=settings.notify_from, recipient=person.email,
                                 idempotency_key=c.idempotency_key, unsubscribe_url=n.unsubscribe_url, now=now,
                                 sender_name="Attain")
    await sender.email(message)


async def deliver_due(pool: asyncpg.Pool, settings: NotifySettings, sender: Sender, now: datetime) -> dict[str, int]:
    """One pass over every tenant with due deliveries; counts by outcome."""
    async with sweep_tx(pool) as conn:
        tenants = [r["tenant"] for r in await conn.fetch("SELECT tenant FROM sweep_due_deliveries($1)", now)]
    counts: dict[str, int] = {}
    for tenant in tenants:
        async with tenant_tx(pool, tenant) as conn:
            repo = PgRepository(conn)
            claimed = await repo.claim(tenant, now, now + timedelta(seconds=settings.notify_lease_s),
                                       settings.notify_batch)
            if not claimed:
                continue
            facts, people, teams = await repo.tenant_facts(tenant), await repo.people(tenant), await repo.teams(tenant)
        started = asyncio.get_running_loop().time()
        for n, c in enumerate(claimed):
            if asyncio.get_running_loop().time() - started > settings.notify_lease_s / 2:
                # slow receivers: hand the rest back before their lease ends and another replica takes them
                async with tenant_tx(pool, tenant) as conn:
                    await PgRepository(conn).release(tenant, [r.idempotency_key for r in claimed[n:]], now)
                break
            try:
                outcome = await attempt(c, facts, people, teams, settings, sender, now)
            except DeliveryFailed as err:  # pragma: no cover - attempt classifies every one
                outcome = Outcome("dead", err.reason)
            except Exception as err:  # a message that cannot be rendered: kept with the reason, never retried blind
                log.exception("delivery failed to render", extra={"tenant": tenant, "key": c.idempotency_key})
                outcome = Outcome("dead", f"{type(err).__name__}: {err}")
            async with tenant_tx(pool, tenant) as conn:
                await record(PgRepository(conn), tenant, c, outcome, now)
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


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
        channels = Channels(settings.smtp_url, client)

        async def work() -> None:
            if counts := await deliver_due(rt.pool, settings, channels, rt.clock.now()):
                log.info("deliveries attempted", extra={f"deliveries_{k}": n for k, n in counts.items()})

        await every(settings.notify_interval_s, work, "notify-deliveries")
