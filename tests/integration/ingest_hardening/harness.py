"""ingest in-process on the real broker, with a PostgreSQL database of its own and settings of the test's
choosing; tenants made with the real CLI; HubSpot deliveries signed as HubSpot signs them; a stand-in CRM
API on loopback whose answers each test scripts."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from deploy.local import crm_keys, registry_keys
from services.ingest.app import SPEC as INGEST
from services.ingest.settings import IngestSettings
from shared.clock import FixedClock
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, ROOT, fresh_database
from tests.integration.test_webhooks_hubspot import SECRET, _event, _sign

API_TOKEN = "pat-standin-token"


def cli(database_url: str, *args: str, secret: str = "") -> dict[str, Any]:
    """`python -m services.ingest tenants ...` against `database_url`, `secret` on its standard input."""
    out = subprocess.run([sys.executable, "-m", "services.ingest", "tenants", *args], cwd=ROOT, check=True,
                         capture_output=True, text=True, input=secret,
                         env={**os.environ, **crm_keys.env(), **registry_keys.env(), "DATABASE_URL": database_url})
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


@dataclass
class Ingest:
    replica: inprocess.Replica
    database_url: str
    slug: str  # a tenant with a HubSpot secret and every HubSpot user mapped to the same rep id
    auth: dict[str, str]  # its bearer header

    async def deliver(self, events: list[dict[str, Any]]) -> httpx.Response:
        """One HubSpot webhook delivery for the tenant, signed for the URL the app sees."""
        path = f"/v1/webhooks/hubspot/{self.slug}"
        raw = json.dumps(events).encode()
        timestamp = str(int(time.time() * 1000))
        headers = {"content-type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
                   "X-HubSpot-Signature-v3": _sign(SECRET, f"http://ingest{path}", raw, timestamp)}
        return await self.replica.http.post(path, content=raw, headers=headers)


@asynccontextmanager
async def running_ingest(api_base_url: str | None = None, **overrides: Any) -> Any:
    """One ingest replica on a fresh database, with `overrides` on top of settings fit for tests, and one
    tenant (given `api_base_url`, with an API token for it), made before the replica starts."""
    database_url = await fresh_database(f"h1_{uuid.uuid4().hex[:10]}")
    slug = f"h1-{uuid.uuid4().hex[:10]}"
    token = cli(database_url, "create", slug)["token"]
    cli(database_url, "set-secret", slug, "hubspot", secret=SECRET)
    if api_base_url is not None:
        cli(database_url, "set-api-token", slug, "hubspot", "--base-url", api_base_url, secret=API_TOKEN)
    settings = IngestSettings(**{
        "database_url": database_url, "kafka_bootstrap_servers": BOOTSTRAP,
        "crm_secret_keys": crm_keys.crm_secret_keys(),  # the key the CLI above sealed the secret with
        "registry_signing_key": registry_keys.signing_key(),
        "kafka_consumer_group_prefix": f"h1-{uuid.uuid4().hex[:8]}", "outbox_poll_interval_s": 0.2,
        "log_format": "text", "rate_limit_requests_per_s": 10_000, "rate_limit_request_burst": 10_000,
        **overrides})
    replica = await inprocess.Replica(INGEST, settings, FixedClock(datetime.now(UTC))).start()
    try:
        auth = {"Authorization": f"Bearer {token}"}
        mapped = await replica.http.put("/v1/crm/hubspot/users", json={"*": "="}, headers=auth)
        assert mapped.status_code == 200, mapped.text
        yield Ingest(replica, database_url, slug, auth)
    finally:
        await replica.stop()
        await replica.http.aclose()


def stage_only_win(deal: int, at_ms: int, event_id: int) -> list[dict[str, Any]]:
    """A HubSpot delivery that says only that the deal was won: its amount and owner must come from the API."""
    return [_event(deal, "deal.propertyChange", at_ms, "dealstage", "closedwon", event_id=event_id)]


def complete_deal(deal: int, at_ms: int, event_id: int) -> list[dict[str, Any]]:
    """A HubSpot delivery that carries all a deal needs."""
    return [_event(deal, "deal.creation", at_ms, event_id=event_id),
            _event(deal, "deal.propertyChange", at_ms, "amount", "1200.50", event_id=event_id + 1),
            _event(deal, "deal.propertyChange", at_ms, "dealstage", "appointmentscheduled", event_id=event_id + 2),
            _event(deal, "deal.propertyChange", at_ms, "hubspot_owner_id", "101", event_id=event_id + 3)]


def hubspot_deal_body(deal_id: str) -> bytes:
    """A deal as HubSpot's `GET /crm/v3/objects/deals/{id}` answers it."""
    return json.dumps({"id": deal_id, "properties": {
        "amount": "7777.70", "dealstage": "closedwon", "hubspot_owner_id": "301", "deal_currency_code": "EUR",
        "closedate": "2026-11-20T10:00:00.000Z", "createdate": "2026-10-02T08:00:00.000Z", "dealname": "Initech"},
        "updatedAt": "2026-11-20T10:00:01.000Z", "archived": False}).encode()


@dataclass
class StandIn:
    """What the stand-in CRM API saw and sent."""

    url: str
    paths: list[str] = field(default_factory=list)
    sent_bytes: int = 0


Answer = Callable[[BaseHTTPRequestHandler, StandIn], None]


def answer_deal(handler: BaseHTTPRequestHandler, _: StandIn) -> None:
    deal_id = handler.path.split("?")[0].rsplit("/", 1)[-1]
    body = hubspot_deal_body(deal_id)
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def stand_in_crm(answer: Answer = answer_deal, host: str = "127.0.0.1") -> Iterator[StandIn]:
    """A CRM API on a free loopback port; `url` names it by `host`."""
    seen = StandIn("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.paths.append(self.path)
            with contextlib.suppress(OSError):  # the fetcher hung up: what a bounded read does
                answer(self, seen)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen.url = f"http://{host}:{server.server_address[1]}"
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
