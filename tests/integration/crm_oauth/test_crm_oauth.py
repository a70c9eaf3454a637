"""OAuth 2.0 with a tenant's CRM through ingest's API, against local stand-ins of the CRMs' OAuth servers
(tests/unit/services/ingest/crm/oauth_standin.py) and of Salesforce's Streaming API (cometd_standin.py), on the
real broker and a database of the test's own (migrations 011 and 012 run for real).

- the authorization code flow (client set, authorize, the CRM's redirect to the public callback), the tokens
  sealed at rest; the refresh timer renews the access token before it expires; a refresh token the CRM revoked
  reads as `revoked` with the CRM's reason in `GET /v1/crm/oauth` (issue 21's acceptance item); disconnecting
  revokes the refresh token at the CRM;
- the Salesforce stream supervisor delivers a change event into the CRM pipeline once, storing its replay id in
  the same transaction, and a restarted ingest (SALESFORCE_STREAMING=true) resumes after that replay id.

ingest is in-process here (tests/integration/inprocess.py), never the suite's shared services.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet

from deploy.local import crm_keys, registry_keys
from services.ingest.app import SPEC as INGEST
from services.ingest.context import IngestContext
from services.ingest.crm.salesforce_stream import OPPORTUNITY_CHANGES, StreamConfig
from services.ingest.crm.stream_supervisor import StreamSupervisor
from services.ingest.settings import IngestSettings
from shared.clock import FixedClock
from shared.secret_box import SecretBox
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, ROOT, fresh_database
from tests.unit.services.ingest.crm import oauth_standin
from tests.unit.services.ingest.crm.cometd_standin import CometdStandin
from tests.unit.services.ingest.crm.oauth_standin import OAuthStandIn
from tests.unit.services.ingest.crm.test_salesforce_stream import cdc_payload

CLIENT_ID, CLIENT_SECRET = "attain-app", "s3cr3t-client-secret"
SEALED = "fernet:"


@asynccontextmanager
async def ingest(db: str, prefix: str, clock: FixedClock, **settings: Any) -> AsyncIterator[inprocess.Replica]:
    replica = inprocess.Replica(INGEST, IngestSettings(
        database_url=db, kafka_bootstrap_servers=BOOTSTRAP, kafka_consumer_group_prefix=prefix,
        outbox_poll_interval_s=0.2, log_format="text", crm_secret_keys=crm_keys.crm_secret_keys(),
        registry_signing_key=registry_keys.signing_key(), crm_api_allowed_hosts="127.0.0.1",
        crm_oauth_refresh_interval_s=0.2, **settings), clock)
    await replica.start()
    try:
        yield replica
    finally:
        await replica.stop()
        await replica.http.aclose()


async def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def connect(replica: inprocess.Replica, crm: str, token: str, crm_server: OAuthStandIn) -> httpx.Response:
    """What an admin does: set the client, start the authorization, consent at the CRM; the browser then follows
    the CRM's redirect to ingest's callback (its answer is returned)."""
    auth = {"Authorization": f"Bearer {token}"}
    put = await replica.http.put(f"/v1/crm/{crm}/oauth/client", headers=auth, json={
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "auth_base": crm_server.base})
    assert put.status_code == 200, put.text
    assert "/v1/crm/oauth/callback/" in put.json()["redirect_uri"] and put.json()["redirect_uri"].endswith(crm)
    started = await replica.http.post(f"/v1/crm/{crm}/oauth/authorize", headers=auth)
    assert started.status_code == 200, started.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(started.json()["authorization_url"])
    assert consent.status_code == 302, consent.text
    back = urlsplit(consent.headers["location"])
    return await replica.http.get(f"{back.path}?{back.query}")


async def oauth_status(replica: inprocess.Replica, token: str, crm: str) -> dict[str, Any]:
    answer = await replica.http.get("/v1/crm/oauth", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = next(c for c in answer.json()["connections"] if c["crm"] == crm)
    return found


async def stored(db: str, tenant: str, crm: str) -> asyncpg.Record:
    conn = await asyncpg.connect(db)
    try:
        row: asyncpg.Record = await conn.fetchrow("SELECT * FROM ingest.crm_oauth WHERE tenant = $1 AND crm = $2",
                                                  tenant, crm)
        return row
    finally:
        await conn.close()


@pytest.fixture
async def setup() -> AsyncIterator[tuple[str, str, FixedClock]]:
    db = await fresh_database(f"crm_oauth_{uuid.uuid4().hex[:8]}")
    yield db, f"attain-crm-oauth-{uuid.uuid4().hex[:8]}", FixedClock(datetime.now(UTC).replace(microsecond=0))


async def test_hubspot_connected_refreshed_before_expiry_then_revoked_at_hubspot_shows_revoked_with_the_reason(
        setup: tuple[str, str, FixedClock]) -> None:
    db, prefix, clock = setup
    with OAuthStandIn("hubspot") as hubspot:
        async with ingest(db, prefix, clock) as replica:
            tenant, token = await inprocess.create_tenant(db, prefix)
            assert (await oauth_status(replica, token, "hubspot"))["status"] == "not_configured"

            page = await connect(replica, "hubspot", token, hubspot)
            assert page.status_code == 200, page.text
            assert "Connected to HubSpot" in page.text
            status = await oauth_status(replica, token, "hubspot")
            assert (status["status"], status["last_error"]) == ("connected", None)
            row = await stored(db, tenant, "hubspot")
            (refresh_token,) = hubspot.live_refresh_tokens()
            for column in ("client_secret", "access_token", "refresh_token"):
                assert row[column].startswith(SEALED), f"{column} is not sealed"
            assert refresh_token not in str(dict(row)) and CLIENT_SECRET not in str(dict(row))
            first_expiry = row["expires_at"]
            assert first_expiry == clock.now() + timedelta(seconds=1800)

            # 26 minutes on, the token expires within the 5-minute margin: the timer renews it
            clock.advance(timedelta(minutes=26))

            async def renewed() -> bool:
                return bool((await stored(db, tenant, "hubspot"))["expires_at"] > first_expiry)

            await wait_for(renewed, "the access token renewed")
            grants = [r.form.get("grant_type") for r in hubspot.requests if r.path.endswith("/token")]
            assert grants == ["authorization_code", "refresh_token"]
            assert (await stored(db, tenant, "hubspot"))["expires_at"] == clock.now() + timedelta(seconds=1800)

            # the portal's admin uninstalls the app: the next refresh is refused with invalid_grant
            hubspot.revoke_refresh(refresh_token)
            clock.advance(timedelta(minutes=26))

            async def revoked() -> bool:
                return bool((await stored(db, tenant, "hubspot"))["status"] == "revoked")

            await wait_for(revoked, "the connection marked revoked")
            status = await oauth_status(replica, token, "hubspot")
            assert status["status"] == "revoked"
            assert status["last_error"] == "refresh token is invalid, expired or revoked"
            row = await stored(db, tenant, "hubspot")
            assert row["access_token"] is None and row["refresh_token"] is None
            tries = len(hubspot.requests)
            clock.advance(timedelta(hours=2))
            await asyncio.sleep(1)
            assert len(hubspot.requests) == tries, "a revoked connection is not tried again"


async def test_a_callback_with_an_unknown_state_is_refused_and_changes_nothing(
        setup: tuple[str, str, FixedClock]) -> None:
    db, prefix, clock = setup
    with OAuthStandIn("pipedrive") as pipedrive:
        async with ingest(db, prefix, clock) as replica:
            tenant, token = await inprocess.create_tenant(db, prefix)
            auth = {"Authorization": f"Bearer {token}"}
            await replica.http.put("/v1/crm/pipedrive/oauth/client", headers=auth, json={
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "auth_base": pipedrive.base})
            forged = await replica.http.get(f"/v1/crm/oauth/callback/{tenant}/pipedrive",
                                            params={"state": "forged", "code": "stolen"})
            assert forged.status_code == 400
            assert (await oauth_status(replica, token, "pipedrive"))["status"] == "pending"
            assert not [r for r in pipedrive.requests if r.method == "POST"], "no code was exchanged"
            unauthorized = await replica.http.post("/v1/crm/pipedrive/oauth/authorize")
            assert unauthorized.status_code == 401


async def test_pipedrive_connects_with_basic_client_auth_and_disconnecting_forgets_the_tokens(
        setup: tuple[str, str, FixedClock]) -> None:
    db, prefix, clock = setup
    with OAuthStandIn("pipedrive") as pipedrive:
        async with ingest(db, prefix, clock) as replica:
            tenant, token = await inprocess.create_tenant(db, prefix)
            page = await connect(replica, "pipedrive", token, pipedrive)
            assert page.status_code == 200, page.text
            row = await stored(db, tenant, "pipedrive")
            assert (row["status"], row["api_base_url"]) == ("connected", oauth_standin.API_DOMAIN)
            exchange = next(r for r in pipedrive.requests if r.path == "/oauth/token")
            assert exchange.authorization is not None and exchange.authorization.startswith("Basic ")
            gone = await replica.http.delete("/v1/crm/pipedrive/oauth", headers={"Authorization": f"Bearer {token}"})
            assert gone.status_code == 200, gone.text
            assert gone.json() == {"crm": "pipedrive", "revoked_at_crm": False}  # Pipedrive: uninstall the app
            assert (await oauth_status(replica, token, "pipedrive"))["status"] == "pending"
            assert (await stored(db, tenant, "pipedrive"))["refresh_token"] is None


async def accepted(db: str, tenant: str) -> int:
    conn = await asyncpg.connect(db)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM ingest.accepted_events WHERE tenant = $1", tenant)
        return count
    finally:
        await conn.close()


async def replay_stored(db: str, tenant: str) -> int | None:
    conn = await asyncpg.connect(db)
    try:
        found: int | None = await conn.fetchval(
            "SELECT replay_id FROM ingest.crm_streams WHERE tenant = $1 AND channel = $2", tenant, OPPORTUNITY_CHANGES)
        return found
    finally:
        await conn.close()


async def test_salesforce_change_events_reach_the_pipeline_once_and_a_restart_resumes_after_the_stored_replay_id(
        setup: tuple[str, str, FixedClock], monkeypatch: pytest.MonkeyPatch) -> None:
    db, prefix, clock = setup
    with CometdStandin(poll_s=0.1) as streaming, OAuthStandIn("salesforce") as salesforce:
        monkeypatch.setattr(oauth_standin, "INSTANCE_URL", streaming.url)  # the org's instance URL: the stand-in
        async with ingest(db, prefix, clock) as replica:
            tenant, token = await inprocess.create_tenant(db, prefix)
            auth = {"Authorization": f"Bearer {token}"}
            for path, body in (("users", {"*": "="}), ("stages", {"Prospecting": "open"})):
                answer = await replica.http.put(f"/v1/crm/salesforce/{path}", headers=auth, json=body)
                assert answer.status_code == 200, answer.text
            assert (await connect(replica, "salesforce", token, salesforce)).status_code == 200
            ctx: IngestContext = replica.app.state.context
            streaming.token = ctx.box.unseal((await stored(db, tenant, "salesforce"))["access_token"])
            created = streaming.publish(OPPORTUNITY_CHANGES, cdc_payload("cdc_opportunity_create.json"))

            supervisor = StreamSupervisor(replica.pool, ctx.crm, ctx.box, clock, allowed_hosts=["127.0.0.1"],
                                          config=StreamConfig(instance_url="", poll_margin_s=2.0,
                                                              request_timeout_s=2.0, backoff_s=(0.01, 0.05)))
            try:
                await supervisor.sync()
                assert supervisor.running == {tenant}

                async def first_in() -> bool:
                    return await replay_stored(db, tenant) == created

                await wait_for(first_in, "the first event stored with its replay id")
                assert await accepted(db, tenant) == 1
            finally:
                await supervisor.close()
            assert streaming.subscriptions == [(OPPORTUNITY_CHANGES, -2)]

        won = streaming.publish(OPPORTUNITY_CHANGES, cdc_payload("cdc_opportunity_update.json"))
        async with ingest(db, prefix, clock, salesforce_streaming=True, salesforce_streaming_interval_s=0.2):

            async def second_in() -> bool:
                return await replay_stored(db, tenant) == won

            await wait_for(second_in, "the second event stored with its replay id")
        assert streaming.subscriptions[-1] == (OPPORTUNITY_CHANGES, created), "resumed after the stored replay id"
        assert await accepted(db, tenant) == 2, "the first event was not delivered again"


async def test_a_key_rotation_reseals_the_oauth_client_secret_and_tokens_under_the_new_key(
        setup: tuple[str, str, FixedClock]) -> None:
    db, prefix, clock = setup
    new_key = Fernet.generate_key().decode()
    with OAuthStandIn("salesforce") as salesforce:
        async with ingest(db, prefix, clock) as replica:
            tenant, token = await inprocess.create_tenant(db, prefix)
            assert (await connect(replica, "salesforce", token, salesforce)).status_code == 200
            before = await stored(db, tenant, "salesforce")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.ingest", "tenants", "rotate-secrets", cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **registry_keys.env(), "DATABASE_URL": db,
                 "CRM_SECRET_KEYS": f"{new_key},{crm_keys.crm_secret_keys()}"})
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert json.loads(out)["oauth_values"] == 3
        after = await stored(db, tenant, "salesforce")
        only_new = Fernet(new_key)
        for column in ("client_secret", "access_token", "refresh_token"):
            assert after[column] != before[column]
            opened = only_new.decrypt(after[column].removeprefix(SEALED).encode()).decode()
            assert opened == SecretBox.from_setting(crm_keys.crm_secret_keys()).unseal(before[column])
