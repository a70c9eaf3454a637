"""CRM webhook secrets and API tokens are encrypted at rest with CRM_SECRET_KEYS, and never travel on a command
line: what the database holds is no secret, legacy plain text is sealed when ingest starts, a key rotation
re-seals everything under the new key, and a secret no key opens refuses the delivery (logged) rather than fail.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from deploy.local import crm_keys, registry_keys
from services.ingest.app import SPEC as INGEST
from services.ingest.settings import IngestSettings
from shared.clock import FixedClock
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, DATABASE_URL, ROOT, Tenant, fresh_database, tenant_cli
from tests.integration.test_webhooks_hubspot import SECRET, _deliver, _event, _sign

API_TOKEN = "pat-na1-secret-api-token-7f3c"
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()
SEALED = "fernet:"  # what a stored value starts with when it is encrypted (then a Fernet token)


def _decrypted(stored: str | None, *keys: str) -> str:
    """A stored value decrypted with `keys` by the library itself (not ingest's code): the format is the contract."""
    assert stored is not None and stored.startswith(SEALED), "not stored encrypted"
    return MultiFernet([Fernet(key) for key in keys]).decrypt(stored.removeprefix(SEALED).encode()).decode()


def _cli(database_url: str, keys: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m services.ingest tenants ...` on `database_url` with CRM_SECRET_KEYS=`keys`, `stdin` piped in."""
    return subprocess.run([sys.executable, "-m", "services.ingest", "tenants", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "DATABASE_URL": database_url, "CRM_SECRET_KEYS": keys})


async def _stored(database_url: str, slug: str) -> list[str]:
    """Every row of the tenant's secrets and API tokens, each as PostgreSQL prints a whole row (every column)."""
    conn = await asyncpg.connect(database_url)
    try:
        return [r["row"] for r in await conn.fetch(
            "SELECT s::text AS row FROM ingest.tenant_secrets s WHERE tenant = $1"
            " UNION ALL SELECT t::text FROM ingest.crm_api_tokens t WHERE tenant = $1", slug)]
    finally:
        await conn.close()


async def _values(database_url: str, slug: str) -> dict[str, str | None]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT s.secret, s.previous_secret, t.token FROM ingest.tenant_secrets s"
                                  " LEFT JOIN ingest.crm_api_tokens t USING (tenant, crm)"
                                  " WHERE s.tenant = $1 AND s.crm = 'hubspot'", slug)
        assert row is not None
        return dict(row)
    finally:
        await conn.close()


# --- through the suite's services: what the CLI stores is sealed, and webhooks still verify ----------------------


async def test_secrets_set_through_the_cli_are_stored_encrypted_and_webhooks_still_verify(
        services: dict[str, str], tenant: Tenant) -> None:
    tenant_cli("set-secret", tenant.slug, "hubspot", input=SECRET + "\n")
    tenant_cli("set-api-token", tenant.slug, "hubspot", "--base-url", "https://api.hubapi.com", input=API_TOKEN)
    rows = await _stored(DATABASE_URL, tenant.slug)
    assert len(rows) == 2
    for row in rows:
        assert SECRET not in row and API_TOKEN not in row, row
        assert SEALED in row
    values = await _values(DATABASE_URL, tenant.slug)
    suite_key = crm_keys.crm_secret_keys()  # what the suite's ingest and CLI run with
    assert (_decrypted(values["secret"], suite_key), _decrypted(values["token"], suite_key)) == (SECRET, API_TOKEN)
    url = f"{services['ingest']}/v1/webhooks/hubspot/{tenant.slug}"
    events = [_event(31337, "deal.propertyChange", int(time.time() * 1000) - 1000, "amount", "10", event_id=1)]
    accepted = await _deliver(url, events)
    assert accepted.status_code == 200, accepted.text
    assert (await _deliver(url, events, secret="not-the-secret")).status_code == 401


def test_a_secret_on_the_cli_command_line_is_refused_and_the_process_never_carries_one(
        services: dict[str, str], tenant: Tenant) -> None:
    positional = subprocess.run(
        [sys.executable, "-m", "services.ingest", "tenants", "set-secret", tenant.slug, "hubspot", SECRET], cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False, input="",
        env={**os.environ, "DATABASE_URL": DATABASE_URL, "CRM_SECRET_KEYS": OLD_KEY})
    assert positional.returncode == 2
    assert "not taken on the command line" in positional.stderr and SECRET not in positional.stderr
    assert asyncio.run(_stored(DATABASE_URL, tenant.slug)) == []  # nothing was stored

    # the accepted form: the running CLI's command line (what `ps` shows) holds no secret while it reads one
    proc = subprocess.Popen([sys.executable, "-m", "services.ingest", "tenants", "set-secret", tenant.slug, "hubspot"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **crm_keys.env(), **registry_keys.env(),
                                            "DATABASE_URL": DATABASE_URL})
    try:
        deadline = time.monotonic() + 30
        while "set-secret" not in (cmdline := Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()):
            assert time.monotonic() < deadline, "the CLI did not start"  # between fork and exec it is empty
            time.sleep(0.01)
        assert SECRET not in cmdline
        out, err = proc.communicate(SECRET + "\n", timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "secret set"


# --- on a database of its own: legacy rows, a key rotation, a key that is gone ------------------------------------


@asynccontextmanager
async def _ingest(database_url: str, keys: str) -> AsyncIterator[inprocess.Replica]:
    """One ingest replica in-process on `database_url` with CRM_SECRET_KEYS=`keys` (its start-up steps run)."""
    settings = IngestSettings(database_url=database_url, kafka_bootstrap_servers=BOOTSTRAP, crm_secret_keys=keys,
                              kafka_consumer_group_prefix=f"sealed-{uuid.uuid4().hex[:8]}", log_format="text",
                              outbox_poll_interval_s=0.2)
    replica = await inprocess.Replica(INGEST, settings, FixedClock(datetime.now(UTC))).start()
    try:
        yield replica
    finally:
        await replica.stop()
        await replica.http.aclose()


async def _hubspot(replica: inprocess.Replica, slug: str, secret: str = SECRET) -> httpx.Response:
    """One HubSpot delivery to `slug`'s webhook, signed with `secret` for the URL the in-process app sees."""
    path = f"/v1/webhooks/hubspot/{slug}"
    raw = json.dumps([_event(4242, "deal.propertyChange", int(time.time() * 1000) - 1000, "amount", "10")]).encode()
    timestamp = str(int(time.time() * 1000))
    return await replica.http.post(path, content=raw, headers={
        "content-type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-v3": _sign(secret, f"http://ingest{path}", raw, timestamp)})


async def _until_sealed(database_url: str, slug: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        values = await _values(database_url, slug)
        if all(v is None or v.startswith(SEALED) for v in values.values()):
            return values
        assert time.monotonic() < deadline, f"not sealed after 30 s: {sorted(values)}"
        await asyncio.sleep(0.2)


@pytest.fixture
async def legacy() -> tuple[str, str]:
    """A fresh database with one tenant whose HubSpot secret, replaced secret and API token were stored in plain
    text, as ingest stored them before it encrypted anything."""
    database_url = await fresh_database(f"sealed_{uuid.uuid4().hex[:10]}")
    slug = f"sealed-{uuid.uuid4().hex[:10]}"
    created = _cli(database_url, OLD_KEY, "create", slug)
    assert created.returncode == 0, created.stderr
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO ingest.tenant_secrets (tenant, crm, secret, previous_secret,"
                           " previous_valid_until) VALUES ($1, 'hubspot', $2, 'the-replaced-secret', now() + '1 hour')",
                           slug, SECRET)
        await conn.execute("INSERT INTO ingest.crm_api_tokens (tenant, crm, token, base_url)"
                           " VALUES ($1, 'hubspot', $2, 'https://api.hubapi.com')", slug, API_TOKEN)
    finally:
        await conn.close()
    return database_url, slug


async def test_legacy_plain_text_is_sealed_when_ingest_starts_and_still_verifies(legacy: tuple[str, str]) -> None:
    database_url, slug = legacy
    async with _ingest(database_url, OLD_KEY) as ingest:
        values = await _until_sealed(database_url, slug)
        assert [_decrypted(v, OLD_KEY) for v in values.values()] == [SECRET, "the-replaced-secret", API_TOKEN]
        assert not any(SECRET in row or API_TOKEN in row for row in await _stored(database_url, slug))
        assert (await _hubspot(ingest, slug)).status_code == 200
        assert (await _hubspot(ingest, slug, "the-replaced-secret")).status_code == 200  # in its grace period
    async with _ingest(database_url, OLD_KEY):  # a second start seals nothing again
        await asyncio.sleep(1)
    assert await _values(database_url, slug) == values


async def test_after_a_new_key_goes_in_front_rotate_secrets_leaves_every_value_readable_with_it_alone(
        legacy: tuple[str, str]) -> None:
    database_url, slug = legacy
    rotated = _cli(database_url, f"{NEW_KEY},{OLD_KEY}", "rotate-secrets")  # legacy rows too: sealed on the way
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout) == {"status": "secrets re-encrypted under the first key", "secrets": 2,
                                          "api_tokens": 1, "expired_secrets_forgotten": 0, "oauth_values": 0}
    values = await _values(database_url, slug)
    assert [_decrypted(v, NEW_KEY) for v in values.values()] == [SECRET, "the-replaced-secret", API_TOKEN]
    for value in values.values():
        with pytest.raises(InvalidToken):
            _decrypted(value, OLD_KEY)
    async with _ingest(database_url, NEW_KEY) as ingest:  # the old key dropped
        assert (await _hubspot(ingest, slug)).status_code == 200
    again = _cli(database_url, NEW_KEY, "rotate-secrets")
    assert again.returncode == 0 and json.loads(again.stdout)["secrets"] == 2


async def test_a_secret_no_key_decrypts_refuses_the_delivery_as_unproven_and_says_which_tenant_and_crm(
        legacy: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    database_url, slug = legacy
    assert _cli(database_url, NEW_KEY, "rotate-secrets").returncode == 0  # everything sealed under NEW_KEY only
    before = await _values(database_url, slug)
    with caplog.at_level(logging.ERROR, logger="services.ingest.tenants"):
        async with _ingest(database_url, OLD_KEY) as ingest:  # the wrong key: NEW_KEY is not listed
            refused = await _hubspot(ingest, slug)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "the request could not be verified for this tenant"}
    logged = [r for r in caplog.records if "cannot be decrypted" in r.getMessage()]
    assert logged and all(getattr(r, "tenant", None) == slug and getattr(r, "crm", None) == "hubspot" for r in logged)
    assert not any(SECRET in r.getMessage() + str(r.__dict__) for r in caplog.records)

    rotation = _cli(database_url, OLD_KEY, "rotate-secrets")  # rotating with the wrong key changes nothing
    assert rotation.returncode == 2
    assert f"tenant {slug!r} crm hubspot (secret)" in rotation.stderr and "(api token)" in rotation.stderr
    assert SECRET not in rotation.stderr and API_TOKEN not in rotation.stderr
    assert await _values(database_url, slug) == before

    reset = _cli(database_url, OLD_KEY, "set-secret", slug, "hubspot", stdin="a-new-secret\n")  # the way out
    assert reset.returncode == 0, reset.stderr
    async with _ingest(database_url, OLD_KEY) as ingest:
        assert (await _hubspot(ingest, slug, "a-new-secret")).status_code == 200
