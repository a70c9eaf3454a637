"""Users from the CRM (issue 21): a fresh tenant that only connects HubSpot (a webhook secret and an API token, no
user mapping) sees Alice's quarter. Her deal is held back while her owner id is unknown; the sync reads the owners
API (a local stand-in answering as HubSpot documents it), creates the rep `alice` with her name and e-mail, maps her,
and the held-back deal is published: kpi counts it in her quarter. Then a deal of a new owner, Bo, is held back,
asks for a sync itself and is published with no one calling anything.

ingest and kpi run in-process on a database of their own (`tests/integration/inprocess.py`), kpi's group starting at
the topics' end; the timer only looks when woken (CRM_USERS_SYNC_CHECK_S an hour), so the test says when it runs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from deploy.local import crm_keys, registry_keys
from services.ingest.app import SPEC as INGEST
from services.ingest.settings import IngestSettings
from services.kpi.app import SPEC as KPI
from services.kpi.settings import KpiSettings
from shared.clock import FixedClock
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, ROOT, fresh_database
from tests.integration.test_webhooks_hubspot import SECRET, _event, _sign
from tests.unit.services.ingest.crm.reading.standin import StandIn, hubspot_owner

API_TOKEN = "pat-na1-users-standin"


async def _tenants_cli(db: str, *args: str, secret: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ingest", "tenants", *args, cwd=ROOT,
        env={**os.environ, **crm_keys.env(), **registry_keys.env(), "DATABASE_URL": db},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(secret.encode())
    assert proc.returncode == 0, err.decode()


async def _deliver(ingest: inprocess.Replica, slug: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    url = f"http://ingest/v1/webhooks/hubspot/{slug}"
    raw, stamp = json.dumps(events).encode(), str(int(time.time() * 1000))
    answer = await ingest.http.post(url, content=raw, headers={
        "content-type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature-v3": _sign(SECRET, url, raw, stamp)})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _won_deal(deal: int, owner: str, amount: str, at_ms: int, first_id: int) -> list[dict[str, Any]]:
    return [_event(deal, "deal.creation", at_ms, event_id=first_id),
            _event(deal, "deal.propertyChange", at_ms, "amount", amount, event_id=first_id + 1),
            _event(deal, "deal.propertyChange", at_ms, "dealstage", "closedwon", event_id=first_id + 2),
            _event(deal, "deal.propertyChange", at_ms, "hubspot_owner_id", owner, event_id=first_id + 3),
            _event(deal, "deal.propertyChange", at_ms, "closedate", str(at_ms - 86_400_000), event_id=first_id + 4)]


async def _won(kpi: inprocess.Replica, auth: dict[str, str], rep: str, period: str, want: str) -> str | None:
    deadline = time.monotonic() + 60
    actual: str | None = None
    while time.monotonic() < deadline:
        card = await kpi.http.get(f"/v1/scorecards/{rep}?period={period}", headers=auth)
        if card.status_code == 200:
            actual = next((f["actual"] for f in card.json()["figures"] if f["metric"] == "won_revenue"), None)
            if actual == want:
                return want
        await asyncio.sleep(0.3)
    return actual


async def test_a_tenant_that_only_connects_hubspot_sees_its_reps_quarter_without_mapping_anyone(stack: None) -> None:
    db = await fresh_database(f"crmusers_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-crmusers-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now)
    common: dict[str, Any] = {"database_url": db, "kafka_bootstrap_servers": BOOTSTRAP,
                              "kafka_consumer_group_prefix": prefix, "outbox_poll_interval_s": 0.2,
                              "log_format": "text"}
    api = StandIn(hubspot_owners=[hubspot_owner(81422101, "Alice@Example.com", "Alice", "Example"),
                                  hubspot_owner(81422199, "gone@example.com", "Gone", "Person", archived=True)])
    api.start()
    await inprocess.start_group_at_end(f"{prefix}-kpi", inprocess.KPI_CONSUMES)
    ingest = await inprocess.Replica(INGEST, IngestSettings(
        **common, crm_secret_keys=crm_keys.crm_secret_keys(), registry_signing_key=registry_keys.signing_key(),
        crm_api_allowed_hosts="127.0.0.1", crm_users_sync_check_s=3600, crm_users_sync_retry_s=0), clock).start()
    kpi = await inprocess.Replica(KPI, KpiSettings(**common), clock).start()
    try:
        slug, token = await inprocess.create_tenant(db, prefix, "Europe/Berlin")
        ingest.wake()
        auth = {"Authorization": f"Bearer {token}"}
        await _tenants_cli(db, "set-secret", slug, "hubspot", secret=SECRET)
        at_ms = int(now.timestamp() * 1000)
        period = f"{(now - timedelta(days=1)).year}-Q{((now - timedelta(days=1)).month - 1) // 3 + 1}"

        # Alice's deal comes before ingest may read the CRM: held back, her owner id unknown
        held = await _deliver(ingest, slug, _won_deal(4711, "81422101", "7777.70", at_ms, 1))
        assert (held["accepted"], held["dead_lettered"]) == (0, 1)
        letters = (await ingest.http.get("/v1/crm/dead-letters", headers=auth)).json()
        assert [d["reason"] for d in letters] == ["owner: hubspot user '81422101' is not mapped to a rep"]

        # the tenant connects the API; the sync maps what it reads and publishes what was held back
        await _tenants_cli(db, "set-api-token", slug, "hubspot", "--base-url", api.base_url, secret=API_TOKEN)
        proposal = (await ingest.http.get("/v1/crm/hubspot/users/proposal", headers=auth)).json()
        assert (proposal["applied"], proposal["created"], proposal["skipped"]) == (
            False, {"81422101": "alice"}, {"81422199": "inactive in hubspot and no rep has its e-mail"})
        synced = await ingest.http.post("/v1/crm/hubspot/users/sync", headers=auth)
        assert synced.status_code == 200, synced.text
        done = synced.json()
        assert (done["mode"], done["applied"], done["created"], done["mapped"]) == (
            "automatic", True, {"81422101": "alice"}, {})
        assert done["decisions"][0]["new_rep"] == {"rep_id": "alice", "name": "Alice Example",
                                                   "email": "alice@example.com", "timezone": "Europe/Berlin",
                                                   "team_id": "unassigned"}
        assert done["republished"] == {"accepted": 1, "duplicate": 0, "still_dead_lettered": 0}
        assert (await ingest.http.get("/v1/crm/hubspot/users", headers=auth)).json()["users"] == {
            "81422101": "alice"}
        assert await _won(kpi, auth, "alice", period, "7777.70") == "7777.70"  # Alice's quarter, from kpi

        # a new owner seen in a deal: held back, asks for a sync itself, and becomes a rep with no one calling
        api.hubspot_owners.append(hubspot_owner(81422102, "bo@example.com", "Bo", "Berg"))
        clock.advance(timedelta(seconds=5))
        bo = await _deliver(ingest, slug, _won_deal(4712, "81422102", "1200", at_ms + 5000, 11))
        assert bo["dead_lettered"] == 1
        assert await _won(kpi, auth, "bo", period, "1200") == "1200"
        conn = await asyncpg.connect(db)  # the server's superuser: past row-level security
        try:
            rows = await conn.fetch(
                "SELECT e.source, count(*) AS n FROM ingest.accepted_events e WHERE e.tenant = $1"
                " GROUP BY e.source ORDER BY e.source", slug)
            mapping = await conn.fetch("SELECT crm_user_id, rep_id FROM ingest.crm_user_map WHERE tenant = $1"
                                       " ORDER BY crm_user_id", slug)
            people = await conn.fetch("SELECT rep_id, email FROM ingest.people WHERE tenant = $1 ORDER BY rep_id",
                                      slug)
            open_letters = await conn.fetchval("SELECT count(*) FROM ingest.crm_dead_letters WHERE tenant = $1"
                                               " AND resolved_at IS NULL", slug)
        finally:
            await conn.close()
        assert {r["source"]: r["n"] for r in rows} == {"hubspot": 2, "hubspot-user-sync": 2}
        assert [tuple(r) for r in mapping] == [("81422101", "alice"), ("81422102", "bo")]
        assert [tuple(r) for r in people] == [("alice", "alice@example.com"), ("bo", "bo@example.com")]
        assert open_letters == 0
        owners_read = [p for m, p, _ in api.requests if m == "GET" and p == "/crm/v3/owners"]
        assert len(owners_read) == 2 * 3  # active and archived owners: the proposal, the sync, the webhook's sync
    finally:
        for replica in (kpi, ingest):
            await replica.stop()
            await replica.http.aclose()
        api.stop()


async def test_with_manual_mapping_the_sync_proposes_and_changes_nothing(stack: None) -> None:
    db = await fresh_database(f"crmusers_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-crmusers-{uuid.uuid4().hex[:8]}"
    clock = FixedClock(datetime.now(UTC))
    api = StandIn(hubspot_owners=[hubspot_owner(5, "ana@example.com", "Ana", "Berg")])
    api.start()
    ingest = await inprocess.Replica(INGEST, IngestSettings(
        database_url=db, kafka_bootstrap_servers=BOOTSTRAP, kafka_consumer_group_prefix=prefix,
        outbox_poll_interval_s=0.2, log_format="text", crm_secret_keys=crm_keys.crm_secret_keys(),
        registry_signing_key=registry_keys.signing_key(), crm_api_allowed_hosts="127.0.0.1",
        crm_users_sync_check_s=3600), clock).start()
    try:
        slug, token = await inprocess.create_tenant(db, prefix, "Europe/Berlin")
        auth = {"Authorization": f"Bearer {token}"}
        assert (await ingest.http.post("/v1/crm/hubspot/users/sync", headers=auth)).status_code == 409  # no access
        await _tenants_cli(db, "set-api-token", slug, "hubspot", "--base-url", api.base_url, secret=API_TOKEN)
        changed = await ingest.http.put("/v1/crm/hubspot/user-mapping-mode", headers=auth,
                                        json={"mode": "manual", "team_id": "emea"})
        assert changed.json() == {"mode": "manual", "team_id": "emea"}
        done = (await ingest.http.post("/v1/crm/hubspot/users/sync", headers=auth)).json()
        assert (done["mode"], done["applied"], done["created"], done["republished"]) == (
            "manual", False, {"5": "ana"}, None)
        assert done["decisions"][0]["new_rep"]["team_id"] == "emea"
        assert (await ingest.http.get("/v1/crm/hubspot/users", headers=auth)).json()["users"] == {}
        conn = await asyncpg.connect(db)
        try:
            assert await conn.fetchval("SELECT count(*) FROM ingest.people WHERE tenant = $1", slug) == 0
        finally:
            await conn.close()
        mode = await ingest.http.get("/v1/crm/hubspot/user-mapping-mode", headers=auth)
        assert mode.json() == {"mode": "manual", "team_id": "emea"}
    finally:
        await ingest.stop()
        await ingest.http.aclose()
        api.stop()
