"""The reference webhook subscriber (examples/webhook_subscriber) against the real broker.

A local HTTP receiver verifies every Standard Webhooks signature and fails some first attempts (503,
and one 429 with `Retry-After: 1`); two events are "down" (503) for the whole first run. The subscriber
runs as `python -m examples.webhook_subscriber`, is stopped with SIGTERM while it waits to retry them,
and started again; duplicate records (same `ce_id`) are published too. Every event must reach the
receiver with a 2xx exactly once, each key's events in the order they were published.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from standardwebhooks import Webhook, WebhookVerificationError

from shared import topics
from shared.cloudevents import CloudEvent, encode, message_key
from shared.events import Evidence, MilestoneReached, TaskCreated
from tests.integration.conftest import BOOTSTRAP, LOGS, PORTS, ROOT, end_offsets

SECRET = "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()
RESERVED_PORTS = {*PORTS.values(), 9092, 5432}  # the suite's services and stack


@dataclass
class Published:
    id: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    text: str


@dataclass
class Receiver:
    """What the webhook endpoint saw; it answers by the rules below, decided per `webhook-id`."""

    tenant: str
    down: set[str] = field(default_factory=set)  # 503 while listed
    fail_first: set[str] = field(default_factory=set)  # 503 on the first attempt
    throttle_first: set[str] = field(default_factory=set)  # 429 + Retry-After: 1 on the first attempt
    attempts: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    delivered: list[dict[str, Any]] = field(default_factory=list)  # `attain` of each 2xx, in order
    texts: dict[str, str] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)
    other_tenants: list[str] = field(default_factory=list)  # the tenant of each other tenant's event that arrived
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        try:
            payload = Webhook(SECRET).verify(body, headers)
        except WebhookVerificationError as err:
            self.bad.append(f"{headers.get('webhook-id')}: {err}")
            return 401, {}
        event = payload["attain"]
        if event["tenant"] != self.tenant:
            self.other_tenants.append(event["tenant"])
            return 204, {}  # another test's event on the shared broker
        msg_id = headers["webhook-id"]
        extra: dict[str, str] = {}
        with self.lock:
            first = not self.attempts[msg_id]
            if msg_id != event["id"] or headers.get("content-type") != "application/json":
                status = 400
                self.bad.append(f"{msg_id}: webhook-id or content-type wrong")
            elif msg_id in self.down or (first and msg_id in self.fail_first):
                status = 503
            elif first and msg_id in self.throttle_first:
                status, extra = 429, {"Retry-After": "1"}
            else:
                status = 200
                self.delivered.append(event)
                self.texts[msg_id] = payload["text"]
            self.attempts[msg_id].append((status, time.monotonic()))
        return status, extra

    def delivered_ids(self) -> list[str]:
        with self.lock:
            return [e["id"] for e in self.delivered]


def _serve(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status, extra = receiver.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            for name, value in {**extra, "Content-Length": "0"}.items():
                self.send_header(name, value)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    while True:  # an ephemeral port, but never one another test run may bind
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if server.server_address[1] not in RESERVED_PORTS:
            break
        server.server_close()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _celebration(tenant: str, rep: str, n: int) -> Published:
    now = datetime.now(UTC)
    data = MilestoneReached(celebration_id=str(uuid.uuid4()), scope="rep", scope_id=rep, milestone=f"m{n}",
                            period="2026-Q4", value=Decimal("1.0"), headline=f"{rep} reached milestone {n} 🎉",
                            occurred_at=now)
    event = CloudEvent(id=data.celebration_id, type="recognition.milestone.reached", source="attain.recognition",
                       time=now, tenant=tenant, data=data)
    value, headers = encode(event)
    return Published(event.id, topics.CELEBRATIONS.name, message_key(tenant, rep), value, headers, data.headline)


def _task(tenant: str, rep: str, n: int) -> Published:
    now = datetime.now(UTC)
    data = TaskCreated(task_id=str(uuid.uuid4()), rep_id=rep, manager_id="boss", rule="activity_drop",
                       severity="warning", summary=f"Check in with {rep} (#{n})",
                       evidence=Evidence(metric="calls", actual=Decimal(1), expected=Decimal(5), period="2026-11"),
                       suggested_actions=["call"], training=[], due_at=now)
    event = CloudEvent(id=data.task_id, type="coaching.task.created", source="attain.coaching", time=now,
                       tenant=tenant, data=data)
    value, headers = encode(event)
    return Published(event.id, topics.TASKS.name, message_key(tenant, rep), value, headers, data.summary)


async def _publish(records: list[Published]) -> None:
    """In one Kafka transaction, as Attain's services write these topics."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"test-webhooks-{uuid.uuid4()}",
                                enable_idempotence=True)
    await producer.start()
    try:
        async with producer.transaction():
            for r in records:
                await producer.send(r.topic, r.value, key=r.key, headers=r.headers)
    finally:
        await producer.stop()


async def _start_group_at_the_end(group: str) -> None:
    """The fresh group starts where the topics end now: other tests' old events are not its business."""
    ends = await end_offsets([topics.CELEBRATIONS.name, topics.TASKS.name])
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit(ends)
    finally:
        await consumer.stop()


def _start(url: str, group: str, state: Path, run: int, tenant: str) -> subprocess.Popen[bytes]:
    LOGS.mkdir(parents=True, exist_ok=True)
    log = (LOGS / f"webhook-subscriber-{run}.log").open("wb")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "WEBHOOK_SECRET": SECRET,
           "WEBHOOK_INITIAL_BACKOFF_S": "0.1", "WEBHOOK_MAX_BACKOFF_S": "0.4", "WEBHOOK_TIMEOUT_S": "5"}
    topic_list = f"{topics.CELEBRATIONS.name},{topics.TASKS.name}"
    return subprocess.Popen([sys.executable, "-m", "examples.webhook_subscriber", "--url", url, "--group", group,
                             "--state", str(state), "--topics", topic_list, "--tenants", tenant],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """SIGTERM, then its exit status and how long it took to exit."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20), time.monotonic() - started
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


async def _until(condition: Any, what: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the subscriber exited ({proc.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        await asyncio.sleep(0.05)


def _stopped_counts(run: int) -> dict[str, int]:
    for line in (LOGS / f"webhook-subscriber-{run}.log").read_text().splitlines():
        if line.startswith("{") and json.loads(line).get("msg") == "stopped":
            return dict(json.loads(line)["counts"])
    raise AssertionError(f"no 'stopped' line in webhook-subscriber-{run}.log")


async def test_each_event_is_delivered_once_signed_in_key_order_across_a_restart(stack: None, tmp_path: Path) -> None:
    tenant, neighbour = f"t-{uuid.uuid4().hex[:12]}", f"t-{uuid.uuid4().hex[:12]}"
    reps = ["r0", "r1", "r2"]
    theirs = [make(neighbour, rep, 0) for rep in reps for make in (_celebration, _task)]  # never to this URL
    first = [make(tenant, rep, n) for rep in reps for n in (0, 1) for make in (_celebration, _task)]
    second = [make(tenant, rep, 2) for rep in reps for make in (_celebration, _task)]
    by_id = {p.id: p for p in first + second}
    receiver = Receiver(tenant)
    receiver.down = {first[3].id, first[6].id}  # r0's second task; r1's second celebration
    receiver.fail_first = {first[8].id, first[5].id, second[1].id}
    receiver.throttle_first = {second[4].id}
    server = _serve(receiver)
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/attain"
    group, state = f"attain-test-webhooks-{uuid.uuid4().hex[:8]}", tmp_path / "deliveries.sqlite3"
    try:
        await _start_group_at_the_end(group)
        await _publish([*first, *theirs])

        # Run 1: stopped while it retries the two events whose receiver is down.
        proc = _start(url, group, state, 1, tenant)
        try:
            await _until(lambda: len(receiver.delivered_ids()) >= 3
                         and all(len(receiver.attempts[i]) >= 2 for i in receiver.down), "retries of down events", proc)
        finally:
            code, took = _stop(proc)
        assert code == 0 and took < 10, (code, took)
        run1 = receiver.delivered_ids()
        assert not set(run1) & receiver.down and len(run1) < len(first)

        # Run 2: the receiver is back; new events, and the same records again (one from run 1, one now).
        receiver.down.clear()
        again = by_id[run1[0]]
        await _publish([second[0], second[0], *second[1:], again])
        proc = _start(url, group, state, 2, tenant)
        try:
            await _until(lambda: set(receiver.delivered_ids()) == set(by_id), "every event delivered", proc)
            await asyncio.sleep(2)  # time to deliver anything twice, if it would
        finally:
            code, _ = _stop(proc)
        assert code == 0
    finally:
        server.shutdown()
        server.server_close()

    assert receiver.bad == []
    assert neighbour not in receiver.other_tenants, "another tenant's events reached this tenant's URL"
    assert _stopped_counts(2).get("other_tenant", 0) + _stopped_counts(1).get("other_tenant", 0) >= len(theirs)
    delivered = receiver.delivered_ids()
    assert sorted(delivered) == sorted(by_id), "each event delivered exactly once"
    for msg_id, attempts in receiver.attempts.items():
        assert [s for s, _ in attempts].count(200) == 1, (msg_id, attempts)
    for msg_id in receiver.fail_first | receiver.throttle_first:
        assert [s for s, _ in receiver.attempts[msg_id]][:2] in ([503, 200], [429, 200]), receiver.attempts[msg_id]
    (throttled,) = receiver.throttle_first
    assert receiver.attempts[throttled][1][1] - receiver.attempts[throttled][0][1] >= 0.9, "Retry-After honoured"
    for partition_key in {(p.topic, p.key) for p in by_id.values()}:
        published = [p.id for p in first + second if (p.topic, p.key) == partition_key]
        assert [i for i in delivered if i in published] == published, f"order within {partition_key}"
    for event in receiver.delivered:
        sent = by_id[event["id"]]
        assert event["data"] == json.loads(sent.value) and receiver.texts[event["id"]] == sent.text
        assert event["type"] == dict(sent.headers)["ce_type"].decode()
    assert _stopped_counts(2).get("duplicate", 0) >= 2  # the record from run 1 and the one repeated in run 2
