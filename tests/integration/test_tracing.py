"""One signed HubSpot webhook is one trace, from its HTTP request to the celebration it causes (issue 20, item 4).

The four services run as processes (each its own `service.name`), on a database and consumer groups of this
test's own, exporting to a Jaeger the test starts (deploy/local/jaeger.py). The celebration's `traceparent`
names the trace; Jaeger must hold, in that one trace, every hop: ingest's request and publish, kpi's
consume and outbox relay, recognition's consume and the relay's send of the celebration, and the database
round trips in between. A hop that loses the context breaks the trace in two, and the test fails.

Like the in-process tests, it needs the cluster to itself: another deployment reading the same topics (the
suite's shared services, which the suite starts after this test, or a demo) applies the test's events too,
and its untraced copies of kpi's figures can reach recognition first. The failure message says so.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local import crm_keys, jaeger, registry_keys
from services.coaching.app import SPEC as COACHING
from services.kpi.app import SPEC as KPI
from services.recognition.app import SPEC as RECOGNITION
from shared import topics
from tests.factories import rep, target, this_quarter
from tests.integration.conftest import ROOT, fresh_database, running
from tests.integration.inprocess import create_tenant, start_group_at_end
from tests.ports import free_ports

# Jaeger: built in the background by `make test`; on a cold machine the first test waits for that build. Not run
# last with the `tools` tests: the suite's shared services, once started, would consume this test's events too.
pytestmark = pytest.mark.timeout(1500)

SECRET = "hubspot-client-secret-trace"
TREE = Path("/tmp/trace-tree.txt")  # the closing note quotes it


@pytest.fixture(scope="module")
def tracing_backend(stack: None) -> Iterator[jaeger.Jaeger]:
    with jaeger.running() as backend:
        yield backend


def _sign(url: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 scheme: base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    return base64.b64encode(hmac.new(SECRET.encode(), b"POST" + url.encode() + body + timestamp.encode(),
                                     hashlib.sha256).digest()).decode()


def _hubspot(prop: str | None, value: str | None, kind: str, at_ms: int, event_id: int) -> dict[str, Any]:
    event: dict[str, Any] = {"eventId": event_id, "subscriptionId": 25, "portalId": 33, "appId": 1160452,
                             "occurredAt": at_ms, "subscriptionType": kind, "attemptNumber": 0,
                             "objectId": 4242, "changeSource": "CRM"}
    if prop is not None:
        event |= {"propertyName": prop, "propertyValue": value}
    return event


def _set_secret(database_url: str, slug: str) -> None:
    subprocess.run([sys.executable, "-m", "services.ingest", "tenants", "set-secret", slug, "hubspot"], cwd=ROOT,
                   check=True, capture_output=True, text=True, input=SECRET,
                   env={**os.environ, **crm_keys.env(), **registry_keys.env(), "DATABASE_URL": database_url})


def _tag(span: dict[str, Any], key: str) -> Any:
    return next((t["value"] for t in span.get("tags", ()) if t["key"] == key), None)


def _parent(span: dict[str, Any]) -> str | None:
    return next((r["spanID"] for r in span.get("references", ()) if r["refType"] == "CHILD_OF"), None)


def tree(found: dict[str, Any]) -> str:
    """The trace as an indented tree: service, span name, duration and offset from the trace's start, in ms."""
    spans = found["spans"]
    services = {pid: p["serviceName"] for pid, p in found["processes"].items()}
    ids = {s["spanID"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = _parent(s)
        children.setdefault(parent if parent in ids else None, []).append(s)
    start = min(s["startTime"] for s in spans)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda s: s["startTime"]):
            lines.append(f"{'  ' * depth}{services[s['processID']]}  {s['operationName']}  "
                         f"{s['duration'] / 1000:.1f} ms  +{(s['startTime'] - start) / 1000:.1f} ms")
            walk(s["spanID"], depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def _missing(found: dict[str, Any] | None, sent_under: str) -> list[str]:
    """What the trace still lacks of what the test expects (empty: complete)."""
    if found is None:
        return ["the whole trace"]
    services = {pid: p["serviceName"] for pid, p in found["processes"].items()}
    by_id = {s["spanID"]: s for s in found["spans"]}

    def what(span: dict[str, Any]) -> tuple[str, str, str]:
        # a consumer's span is `process <topic>`, or `process` for a part that held several topics
        name = span["operationName"]
        return services[span["processID"]], _tag(span, "span.kind"), "process" if name.startswith("process") else name

    seen = {what(s) for s in found["spans"]}
    wanted = [
        ("attain-ingest", "server", "POST /v1/webhooks/{crm}/{tenant}"),
        ("attain-ingest", "producer", f"send {topics.DEALS.name}"),
        ("attain-kpi", "consumer", "process"),
        ("attain-kpi", "producer", f"send {topics.ATTAINMENT.name}"),
        ("attain-recognition", "consumer", "process"),
        ("attain-recognition", "producer", f"send {topics.CELEBRATIONS.name}"),
    ]
    missing = [" ".join(w) for w in wanted if w not in seen]
    for service in ("attain-ingest", "attain-kpi", "attain-recognition"):
        if not any(_tag(s, "db.system.name") or _tag(s, "db.system")
                   for s in found["spans"] if services[s["processID"]] == service):
            missing.append(f"{service} asyncpg spans")
    # the celebration's own line of descent: from the span it was sent under up to the webhook's request
    chain, at = [], by_id.get(sent_under)
    while at is not None:
        chain.append(what(at))
        at = by_id.get(_parent(at) or "")
    if not chain or chain[-1] != wanted[0] or ("attain-kpi", "producer", f"send {topics.ATTAINMENT.name}") not in chain:
        missing.append(f"a line from the celebration through kpi's relay to the request (found {chain[::-1]})")
    return missing


def _crosstalk(seen: list[dict[str, Any]]) -> str:
    """Which records lost the context; or whether another deployment on the same cluster (a shared test run, a
    demo) consumed the test's events too: its untraced copies (the same event ids) can win the race."""
    ids = [m["id"] for m in seen]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    untraced = [(m["topic"], m["type"]) for m in seen if "traceparent" not in m["headers"]]
    if twice:
        return (f"another deployment consumed this test's events (records seen twice: {twice}; without a"
                f" traceparent: {untraced}): run this test with the cluster to itself")
    return f"records without a traceparent: {untraced}: the hop that wrote the first lost it" if untraced else ""


async def test_one_webhook_is_one_trace_from_the_request_to_the_celebration(tracing_backend: jaeger.Jaeger,
                                                                            watch: Any) -> None:
    started = time.monotonic()
    database_url = await fresh_database("attain_tracing")
    prefix = f"attain-trace-{uuid.uuid4().hex[:8]}"
    for spec in (KPI, COACHING, RECOGNITION):  # each group reads from now on: none of the topics' history
        for sub in spec.subscriptions:
            await start_group_at_end(f"{prefix}-{sub.group}", sub.topics)
    ports = dict(zip(("ingest", "kpi", "coaching", "recognition"), free_ports(4), strict=True))
    env = {**tracing_backend.otel_env(), "DATABASE_URL": database_url, "KAFKA_CONSUMER_GROUP_PREFIX": prefix}
    with running(ports, extra_env=env, log_suffix="-tracing") as urls:
        slug, token = await create_tenant(database_url, "trace")
        auth = {"Authorization": f"Bearer {token}"}
        _set_secret(database_url, slug)
        w = await watch(slug, topics.CELEBRATIONS.name, topics.ATTAINMENT.name)
        period, _ = this_quarter(timedelta(minutes=1))
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(100):  # until ingest applied the registry record of the tenant it created
                mapped = await client.put(f"{urls['ingest']}/v1/crm/hubspot/users", json={"101": "ana"}, headers=auth)
                if mapped.status_code != 401:
                    break
                await asyncio.sleep(0.2)
            assert mapped.status_code == 200, mapped.text
            setup = await client.post(f"{urls['ingest']}/v1/events", json=[rep("ana"), target("ana", period, "1000")],
                                      headers=auth)
            assert setup.status_code == 200, setup.text
            # the target's figure first, so that kpi applies the deal in a batch of its own (its trace's)
            await w.wait_for(lambda m: m["type"] == "kpi.attainment.updated" and m["data"]["scope_id"] == "ana")

            url = f"{urls['ingest']}/v1/webhooks/hubspot/{slug}"
            now = int(time.time() * 1000)
            body = json.dumps([
                _hubspot(None, None, "deal.creation", now - 2000, 1),
                _hubspot("amount", "1000", "deal.propertyChange", now - 1000, 2),
                _hubspot("hubspot_owner_id", "101", "deal.propertyChange", now - 1000, 3),
                _hubspot("dealstage", "closedwon", "deal.propertyChange", now - 500, 4),
            ]).encode()
            stamp = str(now)
            delivered = await client.post(url, content=body, headers={
                "content-type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
                "X-HubSpot-Signature-v3": _sign(url, body, stamp)})
            assert delivered.status_code == 200 and delivered.json()["accepted"] == 1, delivered.text

        try:  # (a copy from another deployment on the cluster would carry none: see `_crosstalk`)
            celebration = await w.wait_for(lambda m: m["type"] == "recognition.milestone.reached"
                                           and "quota_100" in m["data"]["milestones"]
                                           and "traceparent" in m["headers"], timeout=20)
        except AssertionError as err:
            raise AssertionError(f"no celebration with a traceparent: {err}\n{_crosstalk(w.seen)}") from None
        traceparent = celebration["headers"]["traceparent"]
        _, trace_id, sent_under, _ = traceparent.decode().split("-")
        for _ in range(50):  # the services export every 200 ms (OTEL_BSP_SCHEDULE_DELAY)
            found = tracing_backend.trace(trace_id)
            if not (missing := _missing(found, sent_under)):
                break
            await asyncio.sleep(0.3)
    assert found is not None, f"Jaeger has no trace {trace_id}"
    drawn = tree(found)
    print(f"\ntrace {trace_id} ({len(found['spans'])} spans):\n{drawn}")
    TREE.write_text(f"trace {trace_id}\n{drawn}\n")  # noqa: ASYNC240 - a few kilobytes, once
    TREE.with_suffix(".json").write_text(json.dumps(found, indent=1))
    assert not missing, f"trace {trace_id} lacks: {missing}\n{drawn}\n{_crosstalk(w.seen)}"
    print(f"wall time {time.monotonic() - started:.1f} s")
