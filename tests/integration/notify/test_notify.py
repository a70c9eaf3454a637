"""notify against the real broker, a database of its own and a real SMTP server (aiosmtpd on a free port): a
check-in on coaching.tasks.v1 for a rep whose manager is on the roster reaches both by e-mail, each once,
and the same event published again reaches nobody a second time.

Run before the shared services start (this folder is collected before the `test_*.py` beside it); notify is
in-process here (`tests/integration/inprocess.py`), its consumer group starting at the topics' end."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller

from services.notify.app import SPEC
from services.notify.channels.smtp import IDEMPOTENCY_HEADER
from services.notify.settings import NotifySettings
from shared import topics
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent, encode, message_key
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, _reached, end_offsets, fresh_database
from tests.ports import free_ports

CONSUMED = [topics.TASKS.name, topics.REVIEWS.name, topics.PLANS.name, topics.CELEBRATIONS.name, topics.ROSTER.name,
            topics.TENANTS.name]
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)  # a Monday, 10:30 in Berlin: nobody's quiet hours
BASE = "https://attain.example"


class Inbox:
    """aiosmtpd's handler: every message it takes, parsed, with the envelope's recipients; with `busy`, the
    first `busy` messages are refused with a 451 (a transient failure: try again later)."""

    def __init__(self, busy: int = 0) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []
        self.busy = busy

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.busy > 0:
            self.busy -= 1
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


async def publish(producer: AIOKafkaProducer, topic: str, tenant: str, key: str, event: CloudEvent) -> None:
    value, headers = encode(event)
    await producer.send_and_wait(topic, value, key=message_key(tenant, key), headers=headers)


def check_in(tenant: str, event_id: str) -> CloudEvent:
    return CloudEvent(event_id, "coaching.task.created", "attain/coaching", NOW, tenant, {
        "task_id": "task-1", "rep_id": "ana", "manager_id": None, "rule": "behind_pace", "severity": "warning",
        "summary": "Ana is at 61% of the expected won revenue for 2026-Q4.",
        "evidence": {"metric": "won_revenue", "actual": "1234.5", "expected": "2024", "period": "2026-Q4"},
        "suggested_actions": ["Review the three largest open deals"], "training": [],
        "due_at": "2026-12-09T16:00:00+00:00", "rep_name": "Ana Berg", "team_id": "north"})


def rep(tenant: str, rep_id: str, name: str, manager: str | None, *, email: bool = True) -> CloudEvent:
    return CloudEvent(str(uuid.uuid4()), "rep.upserted", "api", NOW, tenant, {
        "rep_id": rep_id, "name": name, "team_id": "north", "manager_id": manager,
        "email": f"{rep_id}@example.com" if email else None, "timezone": "Europe/Berlin", "active": True})


async def wait_for(condition: Any, timeout: float = 60, what: str = "") -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_a_check_in_reaches_rep_and_manager_by_email_once_each_even_when_published_again() -> None:
    db = await fresh_database(f"notify_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-notify-{uuid.uuid4().hex[:8]}"
    group = f"{prefix}-notify"
    await inprocess.start_group_at_end(group, CONSUMED)
    since = await end_offsets(CONSUMED)
    inbox = Inbox()
    (port,) = free_ports(1)
    smtpd = Controller(inbox, hostname="127.0.0.1", port=port)
    smtpd.start()
    settings = NotifySettings(database_url=db, kafka_bootstrap_servers=BOOTSTRAP, kafka_consumer_group_prefix=prefix,
                              outbox_poll_interval_s=0.2, log_format="text", notify_interval_s=0.2,
                              smtp_url=f"smtp://127.0.0.1:{port}?starttls=no", notify_from="notify@attain.example",
                              dashboard_base_url=BASE)
    notify = await inprocess.Replica(SPEC, settings, FixedClock(NOW)).start()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    tenant, token = f"notify-{uuid.uuid4().hex[:10]}", f"atn_{uuid.uuid4().hex}"
    try:
        await inprocess.register_tenant(producer, tenant, token, "Europe/Berlin", NOW, locale="en")
        await publish(producer, topics.ROSTER.name, tenant, "max", rep(tenant, "max", "Max Roth", None))
        await publish(producer, topics.ROSTER.name, tenant, "ana", rep(tenant, "ana", "Ana Berg", "max"))
        await caught_up(db, group, since)  # the roster in before the check-in (another partition)
        event_id = str(uuid.uuid4())
        await publish(producer, topics.TASKS.name, tenant, "ana", check_in(tenant, event_id))
        await wait_for(lambda: len(inbox.received) >= 2, what="two e-mails")

        by_rcpt = {rcpts[0]: message for rcpts, message in inbox.received}
        assert sorted(by_rcpt) == ["ana@example.com", "max@example.com"]
        assert all(len(rcpts) == 1 for rcpts, _ in inbox.received)
        keys = set()
        for address, message in by_rcpt.items():
            assert message["To"] == address
            assert message["From"].addresses[0].addr_spec == "notify@attain.example"
            assert message["Subject"] == "Check-in with Ana Berg"
            assert message.get_content_type() == "multipart/alternative"
            plain, html = message.get_body(("plain",)), message.get_body(("html",))
            assert plain is not None and html is not None
            assert f"{BASE}/reps/ana?period=2026-Q4" in plain.get_content()
            assert f'href="{BASE}/reps/ana?period=2026-Q4"' in html.get_content()
            assert message["List-Unsubscribe"] == f"<{BASE}/me/notifications>"
            keys.add(str(message[IDEMPOTENCY_HEADER]).strip())  # a long value comes folded
        assert len(keys) == 2  # one key per (event, recipient, channel)

        await publish(producer, topics.TASKS.name, tenant, "ana", check_in(tenant, event_id))  # the same again
        await caught_up(db, group, since)
        await asyncio.sleep(2)  # ten worker passes
        assert len(inbox.received) == 2
        conn = await asyncpg.connect(db)
        try:
            rows = await conn.fetch("SELECT recipient, status, attempts FROM notify.deliveries WHERE tenant = $1"
                                    " ORDER BY recipient", tenant)
        finally:
            await conn.close()
        assert [(r["recipient"], r["status"], r["attempts"]) for r in rows] == [("ana", "sent", 1), ("max", "sent", 1)]

        auth = {"Authorization": f"Bearer {token}"}
        assert (await notify.http.get("/v1/notify/deliveries?status=dead")).status_code == 401
        listed = await notify.http.get("/v1/notify/deliveries?status=sent", headers=auth)
        assert listed.status_code == 200, listed.text
        assert len(listed.json()["deliveries"]) == 2
        assert (await notify.http.get("/v1/notify/deliveries?status=dead", headers=auth)).json() == {"deliveries": []}
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert (await notify.http.get(probe)).status_code == 200
    finally:
        await producer.stop()
        await notify.stop()
        await notify.http.aclose()
        smtpd.stop()


async def caught_up(db: str, group: str, since: dict[Any, int], timeout: float = 60) -> None:  # noqa: ASYNC109
    """notify's group has applied everything written to its topics after `since` (their ends when it started)."""
    end = {tp: o for tp, o in (await end_offsets(CONSUMED)).items() if o > since.get(tp, 0)}
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(db)
    try:
        while not await _reached(conn, "notify", group, end):
            assert time.monotonic() < deadline, "notify did not catch up"
            await asyncio.sleep(0.3)
    finally:
        await conn.close()




async def test_a_busy_server_is_retried_after_backoff_and_an_address_missing_is_kept_as_dead() -> None:
    db = await fresh_database(f"notify_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-notify-{uuid.uuid4().hex[:8]}"
    group = f"{prefix}-notify"
    await inprocess.start_group_at_end(group, CONSUMED)
    since = await end_offsets(CONSUMED)
    inbox = Inbox(busy=1)
    (port,) = free_ports(1)
    smtpd = Controller(inbox, hostname="127.0.0.1", port=port)
    smtpd.start()
    clock = FixedClock(NOW)
    settings = NotifySettings(database_url=db, kafka_bootstrap_servers=BOOTSTRAP, kafka_consumer_group_prefix=prefix,
                              outbox_poll_interval_s=0.2, log_format="text", notify_interval_s=0.2,
                              smtp_url=f"smtp://127.0.0.1:{port}?starttls=no", dashboard_base_url=BASE)
    notify = await inprocess.Replica(SPEC, settings, clock).start()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    tenant, token = f"notify-{uuid.uuid4().hex[:10]}", f"atn_{uuid.uuid4().hex}"
    try:
        await inprocess.register_tenant(producer, tenant, token, "Europe/Berlin", NOW, locale="de_DE")
        await publish(producer, topics.ROSTER.name, tenant, "max", rep(tenant, "max", "Max Roth", None, email=False))
        await publish(producer, topics.ROSTER.name, tenant, "ana", rep(tenant, "ana", "Ana Berg", "max"))
        await caught_up(db, group, since)
        await publish(producer, topics.TASKS.name, tenant, "ana", check_in(tenant, str(uuid.uuid4())))
        conn = await asyncpg.connect(db)
        try:
            async def states() -> dict[str, tuple[str, int, str | None]]:
                rows = await conn.fetch("SELECT recipient, status, attempts, last_error FROM notify.deliveries"
                                        " WHERE tenant = $1", tenant)
                return {r["recipient"]: (r["status"], r["attempts"], r["last_error"]) for r in rows}

            deadline = time.monotonic() + 60
            while (found := await states()).get("ana", ("",))[0] != "failed" or found["max"][0] != "dead":
                assert time.monotonic() < deadline, found
                await asyncio.sleep(0.2)
            assert found["ana"][1] == 1 and "451" in (found["ana"][2] or "")
            assert "no e-mail address" in (found["max"][2] or "")
            await asyncio.sleep(1)  # the retry waits for its backoff: nothing sent meanwhile
            assert inbox.received == [] and (await states())["ana"][:2] == ("failed", 1)
            clock.advance(timedelta(seconds=settings.notify_backoff_s))
            await wait_for(lambda: len(inbox.received) == 1, what="the retried e-mail")
            while (await states())["ana"][0] != "sent":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            assert (await states())["ana"][:2] == ("sent", 2)
        finally:
            await conn.close()
        (rcpts, message), = inbox.received
        assert rcpts == ["ana@example.com"] and message["Subject"] == "Check-in mit Ana Berg"  # the tenant's locale
        dead = (await notify.http.get("/v1/notify/deliveries?status=dead",
                                      headers={"Authorization": f"Bearer {token}"})).json()["deliveries"]
        assert [(d["recipient"], d["channel"], d["status"]) for d in dead] == [("max", "email", "dead")]
        assert "no e-mail address" in dead[0]["last_error"]
    finally:
        await producer.stop()
        await notify.stop()
        await notify.http.aclose()
        smtpd.stop()
