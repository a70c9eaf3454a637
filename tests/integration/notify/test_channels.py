"""notify's team channels, preferences, quiet hours, retries and unsubscribe links, against the real broker, a
database of its own, a real SMTP server (aiosmtpd) and real HTTP receivers that check every Slack body against
the Block Kit schema and every Teams card against the Adaptive Card schema (receivers.py).

- an admin sets the team's Slack and Teams webhooks through the API (never read back); a rep who opted out of
  public celebrations hears her win by e-mail, but the team channels do not; a teammate's win reaches both,
  valid against the published schemas, each once, the Slack one after a 429 honouring its Retry-After;
- a Berlin rep's check-in at 23:00 her time waits until 08:00 the next morning;
- a Teams webhook that answers 404 leaves the delivery dead with its reason; fixed and retried, it goes;
- the e-mail's one-click unsubscribe token switches that kind of e-mail off for that person, and only that.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet

from services.notify.app import SPEC
from services.notify.settings import NotifySettings
from shared import topics
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, end_offsets, fresh_database
from tests.integration.notify.receivers import Receivers
from tests.integration.notify.test_notify import CONSUMED, Inbox, caught_up, check_in, publish, rep, wait_for
from tests.ports import free_ports

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)  # a Monday, 10:30 in Berlin
BASE = "https://attain.example"


def win(tenant: str, rep_id: str, name: str) -> CloudEvent:
    return CloudEvent(str(uuid.uuid4()), "recognition.milestone.reached", "attain/recognition", NOW, tenant, {
        "celebration_id": str(uuid.uuid4()), "scope": "rep", "scope_id": rep_id, "milestone": "quota",
        "period": "2026-Q4", "value": "1", "headline": f"{name} just hit 100% of the 2026-Q4 target!",
        "occurred_at": NOW.isoformat(), "name": name})


class Notify:
    """One in-process notify with its database, SMTP server, receivers and a tenant (its token an admin's)."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.inbox = Inbox()
        self.receivers = Receivers()
        self.tenant, self.token = f"notify-{uuid.uuid4().hex[:10]}", f"atn_{uuid.uuid4().hex}"
        self.auth = {"Authorization": f"Bearer {self.token}"}

    async def __aenter__(self) -> Notify:
        self.db = await fresh_database(f"notify_{uuid.uuid4().hex[:8]}")
        prefix = f"attain-notify-{uuid.uuid4().hex[:8]}"
        self.group = f"{prefix}-notify"
        await inprocess.start_group_at_end(self.group, CONSUMED)
        self.since = await end_offsets(CONSUMED)
        (port,) = free_ports(1)
        self.smtpd = Controller(self.inbox, hostname="127.0.0.1", port=port)
        self.smtpd.start()
        self.receivers.start()
        self.settings = NotifySettings(
            database_url=self.db, kafka_bootstrap_servers=BOOTSTRAP, kafka_consumer_group_prefix=prefix,
            outbox_poll_interval_s=0.2, log_format="text", notify_interval_s=0.2, notify_backoff_s=0.5,
            notify_paced_s=0.2, smtp_url=f"smtp://127.0.0.1:{port}?starttls=no", dashboard_base_url=BASE,
            notify_secret_keys=Fernet.generate_key().decode())
        self.notify = await inprocess.Replica(SPEC, self.settings, self.clock).start()
        self.producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
        await self.producer.start()
        await inprocess.register_tenant(self.producer, self.tenant, self.token, "Europe/Berlin", NOW, locale="en")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()
        await self.notify.stop()
        await self.notify.http.aclose()
        self.smtpd.stop()
        self.receivers.stop()

    async def roster(self, *people: tuple[str, str, str | None]) -> None:
        for rep_id, name, manager in people:
            event = rep(self.tenant, rep_id, name, manager)
            await publish(self.producer, topics.ROSTER.name, self.tenant, rep_id, event)
        await caught_up(self.db, self.group, self.since)

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None, status: int = 200) -> Any:
        answer = await self.notify.http.request(method, path, json=body, headers=self.auth)
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else None

    def wins(self) -> list[tuple[list[str], Any]]:
        """The e-mails about a win (a coaching service running beside the test may send its tenant reviews)."""
        return [(r, m) for r, m in self.inbox.received if str(m["Subject"]).startswith("Well done")]

    def check_ins(self) -> list[tuple[list[str], Any]]:
        return [(r, m) for r, m in self.inbox.received if str(m["Subject"]).startswith("Check-in")]

    async def states(self) -> dict[tuple[str, str, str], tuple[str, str | None]]:
        conn = await asyncpg.connect(self.db)
        try:
            rows = await conn.fetch("SELECT event_id, recipient, channel, status, last_error FROM notify.deliveries"
                                    " WHERE tenant = $1", self.tenant)
        finally:
            await conn.close()
        return {(r["event_id"], r["recipient"], r["channel"]): (r["status"], r["last_error"]) for r in rows}


async def test_team_channels_honour_an_opt_out_the_schemas_and_a_rate_limit() -> None:
    async with Notify(FixedClock(NOW)) as n:
        await n.roster(("max", "Max Roth", None), ("ana", "Ana Berg", "max"), ("bo", "Bo Lind", "max"))
        slack, teams = n.receivers.url("/slack/north"), n.receivers.url("/teams/north")
        team = await n.call("PUT", "/v1/notify/teams/north", {"slack_webhook": slack, "teams_webhook": teams})
        assert team == {"team_id": "north", "slack_webhook": "(set)", "slack_channel": None, "teams_webhook": "(set)"}
        listed = await n.notify.http.get("/v1/notify/teams", headers=n.auth)
        assert slack not in listed.text and teams not in listed.text
        await n.call("PUT", "/v1/notify/teams/north", {"slack_webhook": "http://hooks.example/x"}, status=422)
        prefs = await n.call("PUT", "/v1/notify/preferences/ana", {"public_celebrations": False})
        assert prefs["public_celebrations"] is False
        await n.call("PUT", "/v1/notify/preferences/ana", {"channels": {"celebration": ["teams"]}}, status=422)

        n.receivers.rate_limited("/slack/", 1, retry_after=1)
        ana_win, bo_win = win(n.tenant, "ana", "Ana Berg"), win(n.tenant, "bo", "Bo Lind")
        await publish(n.producer, topics.CELEBRATIONS.name, n.tenant, "ana", ana_win)
        await publish(n.producer, topics.CELEBRATIONS.name, n.tenant, "bo", bo_win)
        await wait_for(lambda: len(n.wins()) >= 2, what="the two winners' e-mails")
        await n.receivers.until(1, "/teams/")
        deadline = time.monotonic() + 30
        while (await n.states())[(bo_win.id, "team:north", "slack")][0] != "failed":
            assert time.monotonic() < deadline, await n.states()
            await asyncio.sleep(0.2)
        n.clock.advance(timedelta(seconds=1))  # the receiver's Retry-After
        await n.receivers.until(2, "/slack/")

        assert sorted(r[0] for r, _ in n.wins()) == ["ana@example.com", "bo@example.com"]
        posts = n.receivers.posts("/slack/") + n.receivers.posts("/teams/")
        assert n.receivers.invalid() == []
        taken = [p for p in posts if p.status < 300]
        assert len(taken) == 2 and all("Bo Lind" in p.raw.decode() for p in taken)
        assert not any("Ana Berg" in p.raw.decode() for p in posts)  # her opt-out: not in the team channels
        keys = {p.headers["idempotency-key"] for p in n.receivers.posts("/slack/")}
        assert len(keys) == 1  # the 429 and the retry: the same delivery, the same key
        states = await n.states()
        assert states[(bo_win.id, "team:north", "slack")] == ("sent", None)
        assert (ana_win.id, "team:north", "slack") not in states


async def test_quiet_hours_hold_a_berlin_check_in_at_23_00_until_08_00() -> None:
    clock = FixedClock(datetime(2026, 12, 7, 22, 0, tzinfo=UTC))  # Monday 23:00 in Berlin
    async with Notify(clock) as n:
        await n.roster(("max", "Max Roth", None), ("ana", "Ana Berg", "max"))
        event = check_in(n.tenant, str(uuid.uuid4()))
        await publish(n.producer, topics.TASKS.name, n.tenant, "ana", event)
        await caught_up(n.db, n.group, n.since)
        await asyncio.sleep(1.5)  # several worker passes
        assert n.check_ins() == []
        conn = await asyncpg.connect(n.db)
        try:
            due = await conn.fetch("SELECT DISTINCT deliver_at FROM notify.deliveries WHERE tenant = $1", n.tenant)
        finally:
            await conn.close()
        assert [r["deliver_at"] for r in due] == [datetime(2026, 12, 8, 7, 0, tzinfo=UTC)]  # 08:00 in Berlin
        clock.set(datetime(2026, 12, 8, 6, 59, tzinfo=UTC))
        await asyncio.sleep(1)
        assert n.check_ins() == []
        clock.set(datetime(2026, 12, 8, 7, 0, tzinfo=UTC))
        await wait_for(lambda: len(n.check_ins()) >= 2, what="the morning's e-mails")
        assert sorted(r[0] for r, _ in n.check_ins()) == ["ana@example.com", "max@example.com"]


async def test_a_dead_delivery_is_kept_with_its_reason_and_goes_once_fixed_and_retried() -> None:
    async with Notify(FixedClock(NOW)) as n:
        await n.roster(("max", "Max Roth", None), ("bo", "Bo Lind", "max"))
        await n.call("PUT", "/v1/notify/teams/north", {"teams_webhook": n.receivers.url("/gone/north")})
        n.receivers.answer("/gone/", (404, {}, b"Not Found"))
        event = win(n.tenant, "bo", "Bo Lind")
        await publish(n.producer, topics.CELEBRATIONS.name, n.tenant, "bo", event)
        deadline = time.monotonic() + 30
        while (await n.states()).get((event.id, "team:north", "teams"), ("",))[0] != "dead":
            assert time.monotonic() < deadline, await n.states()
            await asyncio.sleep(0.2)
        dead = (await n.call("GET", "/v1/notify/deliveries?status=dead"))["deliveries"]
        assert [(d["recipient"], d["channel"]) for d in dead] == [("team:north", "teams")]
        assert dead[0]["last_error"].startswith("HTTP 404")
        await n.call("PUT", "/v1/notify/teams/north", {"teams_webhook": n.receivers.url("/teams/north")})
        assert await n.call("POST", "/v1/notify/deliveries/retry", {"keys": [dead[0]["idempotency_key"]]}) == {
            "requeued": 1}
        (card,) = await n.receivers.until(1, "/teams/")
        assert card.valid and card.headers["idempotency-key"] == dead[0]["idempotency_key"]
        while (await n.states())[(event.id, "team:north", "teams")] != ("sent", None):  # recorded after the post
            assert time.monotonic() < deadline + 30, await n.states()
            await asyncio.sleep(0.2)
        assert await n.call("POST", "/v1/notify/deliveries/retry", {"all_dead": True}) == {"requeued": 0}


async def test_the_unsubscribe_link_switches_that_kind_of_email_off_for_that_person_only() -> None:
    async with Notify(FixedClock(NOW)) as n:
        await n.roster(("max", "Max Roth", None), ("ana", "Ana Berg", "max"))
        await publish(n.producer, topics.TASKS.name, n.tenant, "ana", check_in(n.tenant, str(uuid.uuid4())))
        await wait_for(lambda: len(n.check_ins()) == 2, what="two e-mails")
        message = next(m for rcpts, m in n.check_ins() if rcpts == ["ana@example.com"])
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = str(message["List-Unsubscribe"]).strip("<>")
        assert link.startswith(f"{BASE}/unsubscribe?t=")
        token = parse_qs(urlsplit(link).query)["t"][0]
        answer = await n.notify.http.post("/v1/notify/unsubscribe", json={"token": token})  # no bearer: public
        assert answer.json() == {"person_id": "ana", "kind": "check_in", "channels": []}
        assert (await n.call("GET", "/v1/notify/preferences/ana"))["channels"] == {"check_in": []}
        assert (await n.call("GET", "/v1/notify/preferences/max"))["channels"] == {}
        forged = await n.notify.http.post("/v1/notify/unsubscribe", json={"token": token[:-6] + "AAAAAA"})
        assert forged.status_code == 400
        await publish(n.producer, topics.TASKS.name, n.tenant, "ana", check_in(n.tenant, str(uuid.uuid4())))
        await wait_for(lambda: len(n.check_ins()) == 3, what="the manager's second e-mail")
        await asyncio.sleep(1)
        assert [r for r, _ in n.check_ins()].count(["ana@example.com"]) == 1
