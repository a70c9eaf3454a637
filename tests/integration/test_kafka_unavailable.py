"""When Kafka does not acknowledge, the request fails with 503 and nothing is remembered as accepted,
so the client's retry publishes the events (nothing accepted is lost, nothing answered 2xx early)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from services.ingest.intake import Intake, KafkaUnavailable
from services.ingest.tenants import Tenant
from services.ingest.validation import judge
from tests.factories import deal
from tests.integration.conftest import BOOTSTRAP, DATABASE_URL


class _SilentBroker:
    """A producer whose sends are never acknowledged (the broker is unreachable)."""

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()


async def test_unacknowledged_events_answer_kafka_unavailable_and_a_retry_publishes_them(services, tenant):
    pool = await asyncpg.create_pool(DATABASE_URL, server_settings={"search_path": "ingest"})
    who = Tenant(tenant.slug, "Europe/Berlin", "EUR", 1)
    verdicts = [judge(i, deal(f"d-{i}", "ana", "10", updated_at=datetime.now(UTC))) for i in range(3)]
    try:
        silent = Intake(pool, _SilentBroker(), publish_timeout_s=0.5)  # type: ignore[arg-type]
        with pytest.raises(KafkaUnavailable):
            await silent.accept(who, verdicts)
        ids = [v.event.id for v in verdicts if v.event]
        remembered = await pool.fetchval(
            "SELECT count(*) FROM accepted_events WHERE tenant = $1 AND event_id = ANY($2::text[])", tenant.slug, ids)
        assert remembered == 0

        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True)
        await producer.start()
        try:
            outcomes = await Intake(pool, producer, publish_timeout_s=10).accept(who, verdicts)
        finally:
            await producer.stop()
        assert [o.status for o in outcomes] == ["accepted"] * 3
    finally:
        await pool.close()
