"""kpi learns a tenant's locale from the tenant registry (`tenant.upserted` on `attain.tenants.v1`) and
gives it to its read side with the tenant's calendar; an entry from before tenants had one reads "en".

kpi runs in-process on the real broker with a database of its own (and, for the CLI's announcements,
ingest's outbox relay beside it), so no shared service's state is read or written here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from deploy.local import crm_keys, registry_keys
from services.ingest.app import SPEC as INGEST
from services.ingest.settings import IngestSettings
from services.kpi import repository as repo
from services.kpi.app import SPEC as KPI
from services.kpi.settings import KpiSettings
from shared import topics
from shared.clock import FixedClock
from shared.db import tenant_tx
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, ROOT, fresh_database

CONSUMED = [topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name, topics.TENANTS.name]
NOW = datetime(2026, 11, 18, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
async def locale_db(stack: None) -> str:
    return await fresh_database(f"kpi_locale_{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def kpi(locale_db: str) -> AsyncIterator[inprocess.Replica]:
    """One kpi replica whose consumer group starts at the topics' ends (not other tests' history)."""
    prefix = f"attain-locale-{uuid.uuid4().hex[:8]}"
    await inprocess.start_group_at_end(f"{prefix}-kpi", CONSUMED)
    settings = KpiSettings(database_url=locale_db, kafka_bootstrap_servers=BOOTSTRAP,
                           kafka_group_instance_id=f"{prefix}-a", kafka_consumer_group_prefix=prefix,
                           outbox_poll_interval_s=0.2, log_format="text")
    replica = await inprocess.Replica(KPI, settings, FixedClock(NOW)).start()
    try:
        yield replica
    finally:
        await replica.stop()
        await replica.http.aclose()


@pytest.fixture
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    started = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


async def stored_locale(kpi: inprocess.Replica, tenant: str, expected: str) -> repo.TenantCalendar:
    """Wait until kpi's tenants table holds `expected` for the tenant; what `calendar()` then says."""
    await inprocess.until(kpi.settings.database_url, lambda c: c.fetchval(
        "SELECT 1 FROM kpi.tenants WHERE tenant = $1 AND locale = $2", tenant, expected))
    async with tenant_tx(kpi.pool, tenant) as conn:  # kpi's working pool: scoped to one tenant
        return await repo.calendar(conn, tenant)


def new_tenant() -> str:
    return f"l-{uuid.uuid4().hex[:10]}"


async def test_kpi_stores_the_locale_a_registry_entry_carries_and_follows_a_change(
        kpi: inprocess.Replica, producer: AIOKafkaProducer) -> None:
    tenant, token = new_tenant(), f"atn_{uuid.uuid4().hex}"
    await inprocess.register_tenant(producer, tenant, token, "Europe/Berlin", NOW, locale="de_DE")
    assert await stored_locale(kpi, tenant, "de_DE") == repo.TenantCalendar("Europe/Berlin", 1, "de_DE")

    await inprocess.register_tenant(producer, tenant, token, "Europe/Berlin", NOW, locale="fr_FR")
    assert (await stored_locale(kpi, tenant, "fr_FR")).locale == "fr_FR"


async def test_a_registry_entry_without_a_locale_reads_as_english(
        kpi: inprocess.Replica, producer: AIOKafkaProducer) -> None:
    tenant = new_tenant()
    await inprocess.register_tenant(producer, tenant, f"atn_{uuid.uuid4().hex}", "America/New_York", NOW)
    assert await stored_locale(kpi, tenant, "en") == repo.TenantCalendar("America/New_York", 1, "en")


async def tenant_cli(db_url: str, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    """`python -m services.ingest tenants ...` on `db_url`: exit status, JSON answer (if any), stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ingest", "tenants", *args, cwd=ROOT,
        env={**os.environ, **crm_keys.env(), **registry_keys.env(), "DATABASE_URL": db_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else None, err.decode()


async def test_the_locale_set_with_ingests_cli_reaches_kpi(locale_db: str, kpi: inprocess.Replica) -> None:
    """`tenants create --locale` and `tenants locale` announce through ingest's outbox, as in production."""
    prefix = f"attain-locale-{uuid.uuid4().hex[:8]}"
    settings = IngestSettings(database_url=locale_db, kafka_bootstrap_servers=BOOTSTRAP,
                              kafka_consumer_group_prefix=prefix, outbox_poll_interval_s=0.2, log_format="text",
                              crm_secret_keys=crm_keys.crm_secret_keys(),
                              registry_signing_key=registry_keys.signing_key())
    ingest = await inprocess.Replica(INGEST, settings, FixedClock(NOW)).start()
    try:
        tenant = new_tenant()
        status, answer, _ = await tenant_cli(locale_db, "create", tenant, "--timezone", "Europe/Berlin",
                                             "--locale", "de-DE")
        assert status == 0 and answer is not None and answer["tenant"] == tenant
        assert (await stored_locale(kpi, tenant, "de_DE")).timezone == "Europe/Berlin"

        status, answer, _ = await tenant_cli(locale_db, "locale", tenant, "fr-FR")
        assert (status, answer) == (0, {"tenant": tenant, "locale": "fr_FR", "status": "locale set"})
        assert (await stored_locale(kpi, tenant, "fr_FR")).locale == "fr_FR"

        status, answer, err = await tenant_cli(locale_db, "locale", new_tenant(), "de_DE")
        assert (status, answer) == (2, None)
        assert "no active tenant" in err
    finally:
        await ingest.stop()
        await ingest.http.aclose()
