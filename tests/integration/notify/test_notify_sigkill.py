"""A SIGKILL of notify in the middle of a burst: nothing is lost, every (event, recipient, channel) reaches the
SMTP server, and a message that went out twice (the one in flight at the kill, sent again once its lease ended)
carries the same idempotency key and Message-ID both times (services/notify/worker.py, "The choice").

notify runs as a subprocess (`python -m services.notify`) on a database of its own, its clock real-paced from a
Monday morning in Berlin (no quiet hours), its lease short, the SMTP server slow enough to kill it mid-burst."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller

from deploy.local import registry_keys
from services.notify.channels.smtp import IDEMPOTENCY_HEADER
from shared import topics
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, LOGS, ROOT, end_offsets, fresh_database
from tests.integration.notify.test_notify import CONSUMED, NOW, check_in, publish, rep
from tests.ports import free_ports

REPS = 15  # each with the one manager: 30 e-mails


class SlowInbox:
    def __init__(self) -> None:
        self.received: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.15)
        self.received.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@contextmanager
def notify_process(env: dict[str, str], log_name: str) -> Iterator[subprocess.Popen[bytes]]:
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / log_name).open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.notify"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient() as client:
        while True:
            assert proc.poll() is None, f"notify exited; see {LOGS}"
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "notify not ready"
            await asyncio.sleep(0.3)


async def test_a_sigkill_mid_burst_loses_nothing_and_a_repeat_carries_the_same_key() -> None:
    db = await fresh_database(f"notify_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-notify-{uuid.uuid4().hex[:8]}"
    await inprocess.start_group_at_end(f"{prefix}-notify", CONSUMED)
    await end_offsets(CONSUMED)
    inbox = SlowInbox()
    smtp_port, http_port = free_ports(2)
    smtpd = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtpd.start()
    env = {**os.environ, **registry_keys.env(), "DATABASE_URL": db, "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
           "KAFKA_CONSUMER_GROUP_PREFIX": prefix, "HTTP_PORT": str(http_port), "LOG_FORMAT": "text",
           "ATTAIN_CLOCK": f"scaled:{NOW.isoformat()}@1", "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}?starttls=no",
           "NOTIFY_INTERVAL_S": "0.2", "NOTIFY_LEASE_S": "3", "OUTBOX_POLL_INTERVAL_S": "0.2",
           "DASHBOARD_BASE_URL": "https://attain.example"}
    tenant = f"notify-{uuid.uuid4().hex[:10]}"
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        with notify_process(env, f"notify-sigkill-{tenant}.log") as first:
            await ready(http_port, first)
            await inprocess.register_tenant(producer, tenant, f"atn_{uuid.uuid4().hex}", "Europe/Berlin", NOW)
            await publish(producer, topics.ROSTER.name, tenant, "max", rep(tenant, "max", "Max Roth", None))
            for i in range(REPS):
                await publish(producer, topics.ROSTER.name, tenant, f"r{i}", rep(tenant, f"r{i}", f"Rep {i}", "max"))
            await asyncio.sleep(2)  # the roster in first
            for i in range(REPS):
                event = check_in(tenant, str(uuid.uuid4()))
                event.data["rep_id"] = f"r{i}"  # type: ignore[index]
                await publish(producer, topics.TASKS.name, tenant, f"r{i}", event)
            deadline = time.monotonic() + 60
            while len(inbox.received) < 5:
                assert time.monotonic() < deadline, "the burst did not start"
                await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait()
        killed_at = len(inbox.received)
        with notify_process(env, f"notify-sigkill-{tenant}-restarted.log") as second:
            await ready(http_port, second)
            conn = await asyncpg.connect(db)
            try:
                deadline = time.monotonic() + 90
                while (sent := await conn.fetchval("SELECT count(*) FROM notify.deliveries WHERE tenant = $1"
                                                   " AND status = 'sent'", tenant)) < 2 * REPS:
                    assert time.monotonic() < deadline, f"{sent} of {2 * REPS} sent"
                    await asyncio.sleep(0.3)
                keys = {r["idempotency_key"] for r in await conn.fetch(
                    "SELECT idempotency_key FROM notify.deliveries WHERE tenant = $1", tenant)}
            finally:
                await conn.close()
    finally:
        await producer.stop()
        smtpd.stop()
    assert killed_at < 2 * REPS, "the kill came after the burst"
    received = Counter(str(m[IDEMPOTENCY_HEADER]).strip() for m in inbox.received)  # folded: a long value
    assert len(keys) == 2 * REPS and set(received) == keys  # nothing lost, nothing foreign
    repeated = {k: n for k, n in received.items() if n > 1}
    assert sum(n - 1 for n in repeated.values()) <= 1, repeated  # at most the one in flight at the kill
    for key in repeated:
        assert len({m["Message-ID"] for m in inbox.received if str(m[IDEMPOTENCY_HEADER]).strip() == key}) == 1
