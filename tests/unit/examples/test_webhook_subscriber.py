"""The reference webhook subscriber without Kafka: signatures, bodies, retries, the store, the loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from standardwebhooks import Webhook, WebhookVerificationError

from examples.webhook_subscriber.config import parse
from examples.webhook_subscriber.delivery import GaveUp, WebhookSender
from examples.webhook_subscriber.events import Event, InvalidRecord, build_body, decode, text_of
from examples.webhook_subscriber.store import DeliveryStore, Status
from examples.webhook_subscriber.subscriber import ShuttingDown, Subscriber, interruptible_sleep
from shared.cloudevents import CloudEvent, encode
from shared.webhooks import retry_after_seconds, signature_headers

# The Standard Webhooks reference vector (the spec's libraries test `sign` against it).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
MILESTONE = {"celebration_id": "c-1", "scope": "rep", "scope_id": "r1", "milestone": "target_reached",
             "period": "2026-Q4", "value": "1.00", "headline": "Ana hit 100 % of her Q4 target 🎉",
             "occurred_at": "2026-11-05T09:30:00+00:00"}


def _event(id_: str = "c-1", type_: str = "recognition.milestone.reached", **data: Any) -> Event:
    return Event(id=id_, type=type_, source="attain.recognition", time="2026-11-05T09:30:00+00:00",
                 tenant="acme", data=data or dict(MILESTONE))


# --- signing -------------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_vector() -> None:
    headers = signature_headers(Webhook(VECTOR_SECRET), VECTOR_ID, VECTOR_BODY, VECTOR_TIMESTAMP)
    assert headers == {"webhook-id": VECTOR_ID, "webhook-timestamp": "1614265330",
                       "webhook-signature": VECTOR_SIGNATURE}


def test_signature_is_the_spec_formula() -> None:
    """HMAC-SHA256 of `id.timestamp.body` with the secret's base64-decoded bytes, base64, after `v1,`."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    body = build_body(_event())
    expected = base64.b64encode(hmac.new(key, b"m-1.1700000000." + body, hashlib.sha256).digest()).decode()
    assert signature_headers(Webhook(SECRET), "m-1", body, 1_700_000_000)["webhook-signature"] == f"v1,{expected}"


def test_a_receiver_verifies_what_is_sent_and_refuses_a_changed_body() -> None:
    body = build_body(_event())
    headers = signature_headers(Webhook(SECRET), "c-1", body, int(time.time()))
    assert Webhook(SECRET).verify(body, headers)["attain"]["id"] == "c-1"
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"Ana", b"Bob"), headers)


def test_without_a_secret_there_is_no_signature() -> None:
    assert signature_headers(None, "c-1", b"{}", 5) == {"webhook-id": "c-1", "webhook-timestamp": "5"}


# --- events and bodies ---------------------------------------------------------------------------


def test_decodes_what_attain_encodes() -> None:
    sent = CloudEvent(id="c-1", type="recognition.milestone.reached", source="attain.recognition",
                      time=datetime(2026, 11, 5, 9, 30, tzinfo=UTC), tenant="acme", data=MILESTONE)
    value, headers = encode(sent)
    event = decode(headers, value)
    assert (event.id, event.type, event.tenant, event.data) == ("c-1", sent.type, "acme", MILESTONE)
    assert datetime.fromisoformat(event.time) == sent.time


@pytest.mark.parametrize(("headers", "value", "error"), [
    ([("ce_id", b"x")], b"{}", "missing CloudEvents header"),
    (None, b"[1]", "not a JSON object"),
    (None, b"{oops", "not JSON"),
    ([("ce_specversion", b"0.3")], b"{}", "is not 1.0"),
])
def test_refuses_what_is_not_an_attain_cloudevent(headers: Any, value: bytes, error: str) -> None:
    _, good = encode(CloudEvent(id="c-1", type="t", source="s", time=datetime.now(UTC), tenant="acme", data={}))
    if headers and headers[0][0] == "ce_specversion":
        headers = [(k, v) for k, v in good if k != "ce_specversion"] + headers
    with pytest.raises(InvalidRecord, match=error):
        decode(headers if headers is not None else good, value)


def test_body_is_slack_text_plus_the_event() -> None:
    body = json.loads(build_body(_event()))
    assert body == {"text": MILESTONE["headline"], "attain": {
        "id": "c-1", "type": "recognition.milestone.reached", "source": "attain.recognition", "tenant": "acme",
        "time": "2026-11-05T09:30:00+00:00", "data": MILESTONE}}
    assert "🎉".encode() in build_body(_event())  # UTF-8, not \\u escapes: what is signed is what is read


@pytest.mark.parametrize(("type_", "data", "text"), [
    ("coaching.task.created", {"summary": "Check in with Ana: no calls this week"},
     "Check in with Ana: no calls this week"),
    ("coaching.task.escalated", {"summary": "Check in with Ana", "task_id": "t1"}, "Escalated: Check in with Ana"),
    ("coaching.task.closed", {"rep_id": "ana", "reason": "completed", "outcome": "agreed a plan"},
     "Check-in with ana closed (completed): agreed a plan"),
    ("coaching.task.closed", {"rep_id": "ana", "reason": "recovered"}, "Check-in with ana closed (recovered)"),
    ("something.new", {"x": 1}, "something.new e-1"),
])
def test_text_per_event_type(type_: str, data: dict[str, Any], text: str) -> None:
    assert text_of(_event("e-1", type_, **data)) == text


# --- delivery and retries ------------------------------------------------------------------------


@dataclass
class Receiver:
    """An httpx mock transport answering from a script; it verifies every signature it gets."""

    script: list[Any]
    requests: list[httpx.Request]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        Webhook(SECRET).verify(request.content, dict(request.headers))
        answer = self.script.pop(0) if self.script else 200
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, tuple):
            return httpx.Response(answer[0], headers=answer[1])
        return httpx.Response(answer)


async def _deliver(script: list[Any], **kw: Any) -> tuple[Any, list[httpx.Request], list[float]]:
    receiver = Receiver(script, [])
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        sender = WebhookSender(client, "http://receiver/hook", SECRET, initial_backoff_s=1, max_backoff_s=8,
                               sleep=sleep, **kw)
        try:
            outcome: Any = await sender.deliver("c-1", build_body(_event()))
        except GaveUp as err:
            outcome = err
    return outcome, receiver.requests, slept


async def test_transient_failures_are_retried_with_capped_jittered_backoff() -> None:
    connect = httpx.ConnectError("refused")
    outcome, requests, slept = await _deliver([503, 500, 408, connect, httpx.ReadTimeout("slow"), 502, 200])
    assert (outcome.delivered, outcome.http_status, outcome.attempts) == (True, 200, 7)
    assert len(requests) == 7 and {r.headers["webhook-id"] for r in requests} == {"c-1"}
    assert all(0 <= s <= min(8, 2 ** i) for i, s in enumerate(slept))  # full jitter under 1, 2, 4, 8, 8, 8


async def test_retry_after_is_honoured_and_capped() -> None:
    _, _, slept = await _deliver([(429, {"retry-after": "3"}), (503, {"retry-after": "900"}), 200],
                                 retry_after_cap_s=30)
    assert slept[0] >= 3 and slept[1] == 30


async def test_a_refusal_is_final() -> None:
    outcome, requests, slept = await _deliver([404])
    assert (outcome.delivered, outcome.http_status, outcome.attempts, len(requests), slept) == (False, 404, 1, 1, [])


async def test_gives_up_after_max_attempts() -> None:
    outcome, requests, _ = await _deliver([503, 503, 503, 200], max_attempts=3)
    assert isinstance(outcome, GaveUp) and len(requests) == 3


async def test_each_attempt_is_signed_with_its_own_timestamp() -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(503 if len(requests) == 1 else 200)

    async def no_sleep(_: float) -> None:
        return None

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        clock = lambda: 1_700_000_000.0 + 90 * len(requests)  # noqa: E731  90 s later for the retry
        sender = WebhookSender(client, "http://receiver/hook", SECRET, sleep=no_sleep, clock=clock)
        await sender.deliver("c-1", b"{}")
    assert [r.headers["webhook-timestamp"] for r in requests] == ["1700000000", "1700000090"]
    assert requests[0].headers["webhook-signature"] != requests[1].headers["webhook-signature"]


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7", 0) == 7
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470) == 10
    assert retry_after_seconds("soon", 0) is None and retry_after_seconds(None, 0) is None


async def test_shutdown_interrupts_a_retry_wait() -> None:
    stop = asyncio.Event()
    sleep = interruptible_sleep(stop)
    await sleep(0.01)  # an ordinary wait
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = time.monotonic()
    with pytest.raises(ShuttingDown):
        await sleep(30)
    assert time.monotonic() - started < 5


# --- the store -----------------------------------------------------------------------------------


def test_the_store_survives_a_reopen_and_forgets_old_ids(tmp_path: Path) -> None:
    path = tmp_path / "state" / "deliveries.sqlite3"
    store = DeliveryStore(path)
    store.record("a", Status.DELIVERED, http_status=200, attempts=2, topic="t", partition=0, offset=5)
    store.record("b", Status.REJECTED, http_status=410, attempts=1, topic="t", partition=0, offset=6)
    store.record("a", Status.REJECTED, http_status=400, attempts=1, topic="t", partition=0, offset=7)  # ignored
    store.close()
    store = DeliveryStore(path)
    assert (store.status("a"), store.status("b"), store.status("c")) == (Status.DELIVERED, Status.REJECTED, None)
    assert store.counts() == {"delivered": 1, "rejected": 1}
    assert store.prune(keep_days=1) == 0
    store._db.execute("UPDATE deliveries SET recorded_at = '2000-01-01T00:00:00+00:00' WHERE event_id = 'a'")
    assert store.prune(keep_days=1) == 1 and store.status("a") is None
    store.close()


# --- the loop ------------------------------------------------------------------------------------


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    headers: list[tuple[str, bytes]]
    value: bytes | None


class FakeConsumer:
    """Hands out the batches it was given, then sets `stop`; remembers the commits."""

    def __init__(self, batches: list[dict[TopicPartition, list[Record]]], stop: asyncio.Event) -> None:
        self.batches, self.stop = batches, stop
        self.commits: list[dict[TopicPartition, int]] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        if not self.batches:
            self.stop.set()
            return {}
        return self.batches.pop(0)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


def _record(offset: int, event_id: str, *, partition: int = 0, headline: str = "h", tenant: str = "acme") -> Record:
    value, headers = encode(CloudEvent(id=event_id, type="recognition.milestone.reached", source="s",
                                       time=datetime.now(UTC), tenant=tenant, data={"headline": headline}))
    return Record("recognition.celebrations.v1", partition, offset, headers, value)


async def test_the_loop_delivers_in_order_skips_known_ids_and_commits_each_record(tmp_path: Path) -> None:
    stop = asyncio.Event()
    tp0, tp1 = TopicPartition("recognition.celebrations.v1", 0), TopicPartition("recognition.celebrations.v1", 1)
    bad = Record(tp0.topic, 0, 13, [("ce_id", b"x")], b"{}")
    batches = [{tp0: [_record(10, "a"), _record(11, "b"), _record(12, "a")],
                tp1: [_record(4, "c", partition=1), _record(5, "gone", partition=1)]},
               {tp0: [bad, _record(14, "b"), _record(15, "other", tenant="globex")]}]
    consumer = FakeConsumer(batches, stop)
    store = DeliveryStore(tmp_path / "d.sqlite3")
    receiver = Receiver([], [])

    def answer(request: httpx.Request) -> httpx.Response:
        receiver.requests.append(request)
        Webhook(SECRET).verify(request.content, dict(request.headers))
        return httpx.Response(410 if request.headers["webhook-id"] == "gone" else 200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        sender = WebhookSender(client, "http://receiver/hook", SECRET, sleep=interruptible_sleep(stop))
        subscriber = Subscriber(consumer, sender, store, stop, frozenset({"acme"}))
        assert await subscriber.run() == 0
    sent = [r.headers["webhook-id"] for r in receiver.requests]
    assert sorted(sent) == ["a", "b", "c", "gone"] and sent.index("a") < sent.index("b")
    assert (store.status("a"), store.status("gone")) == (Status.DELIVERED, Status.REJECTED)
    assert store.status("other") is None  # another tenant's: neither sent nor remembered, but committed
    assert subscriber.counts == {"delivered": 3, "rejected": 1, "duplicate": 2, "invalid": 1, "other_tenant": 1}
    assert [c[tp0] for c in consumer.commits if tp0 in c] == [11, 12, 13, 14, 15, 16]
    assert [c[tp1] for c in consumer.commits if tp1 in c] == [5, 6]


async def test_only_the_named_tenants_events_reach_the_url(tmp_path: Path) -> None:
    """The topics carry every tenant's events: one tenant's private check-in never goes to another's URL."""
    stop = asyncio.Event()
    tp = TopicPartition("recognition.celebrations.v1", 0)
    consumer = FakeConsumer([{tp: [_record(0, "acme-1"), _record(1, "globex-1", tenant="globex"),
                                   _record(2, "initech-1", tenant="initech"), _record(3, "acme-2")]}], stop)
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["attain"]["tenant"])
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        sender = WebhookSender(client, "http://receiver/hook", SECRET, sleep=interruptible_sleep(stop))
        subscriber = Subscriber(consumer, sender, DeliveryStore(tmp_path / "d.sqlite3"), stop,
                                frozenset({"acme", "initech"}))
        assert await subscriber.run() == 0
    assert seen == ["acme", "initech", "acme"]
    assert subscriber.counts == {"delivered": 3, "other_tenant": 1}
    assert consumer.commits[-1] == {tp: 4}
    with pytest.raises(ValueError, match="given none"):
        Subscriber(consumer, sender, DeliveryStore(tmp_path / "e.sqlite3"), stop, frozenset())


def test_it_refuses_to_start_without_the_tenants_it_delivers_for(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("WEBHOOK_TENANTS", raising=False)
    with pytest.raises(SystemExit) as exited:
        parse(["--url", "http://hook"])
    assert exited.value.code == 2
    assert "WEBHOOK_TENANTS is not set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--url", "http://hook", "--tenants", " , "])
    monkeypatch.setenv("WEBHOOK_TENANTS", "acme, globex")
    assert parse(["--url", "http://hook"]).tenants == {"acme", "globex"}
    assert parse(["--url", "http://hook", "--tenants", "initech"]).tenants == {"initech"}


def test_settings_from_options_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "http://from-env/hook")
    monkeypatch.setenv("WEBHOOK_GROUP", "env-group")
    monkeypatch.setenv("WEBHOOK_TENANTS", "acme")
    settings = parse(["--url", "http://from-cli/hook", "--secret", SECRET, "--topics", "a, b,"])
    assert (settings.webhook_url, settings.webhook_group, settings.topics) == ("http://from-cli/hook", "env-group",
                                                                                ["a", "b"])
    with pytest.raises(SystemExit):
        parse(["--url", "http://x", "--secret", "not-a-whsec"])


def test_kafka_security_comes_from_the_services_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)  # CI points it at its own broker
    monkeypatch.setenv("WEBHOOK_TENANTS", "acme")
    assert parse(["--url", "http://hook"]).kafka_options() == {"bootstrap_servers": "127.0.0.1:9092",
                                                              "security_protocol": "PLAINTEXT"}
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "notifier")
    with pytest.raises(SystemExit):  # no password: a usage error naming it, before any connection
        parse(["--url", "http://hook"])
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    options = parse(["--url", "http://hook"]).kafka_options()
    assert isinstance(options.pop("ssl_context"), ssl.SSLContext)
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "SASL_SSL",
                       "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "notifier",
                       "sasl_plain_password": "pw"}
