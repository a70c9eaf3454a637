"""Figures in kpi's order, not by a replica's clock (issue 16, item 2): two kpi replicas publish revisions of
one figure, and the one that published the later revision has a clock an hour behind, so its `as_of` is
the earlier. coaching and recognition must keep the later revision. Before, both kept whichever `as_of` was
newest: the older figure stood, and a reopened deal's drop was never seen."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import asyncpg
from aiokafka import AIOKafkaProducer

from shared import topics
from shared.cloudevents import CloudEvent, encode, message_key
from tests.factories import this_quarter
from tests.integration.conftest import BOOTSTRAP, DATABASE_URL, GROUP_PREFIX, Tenant


def _figure(tenant: Tenant, period: str, actual: str, revision: int, as_of: object, bounds: tuple[object, object]
            ) -> CloudEvent:
    return CloudEvent(str(uuid.uuid4()), "kpi.attainment.updated", "attain/kpi", as_of, tenant.slug, {  # type: ignore[arg-type]
        "scope": "rep", "scope_id": "ana", "period": period, "metric": "won_revenue", "actual": actual,
        "target": "10000", "attainment": str(int(actual) / 10000), "as_of": as_of.isoformat(),  # type: ignore[attr-defined]
        "period_start": bounds[0].isoformat(), "period_end": bounds[1].isoformat(),  # type: ignore[attr-defined]
        "name": "Ana", "revision": revision}, {"tenanttimezone": tenant.timezone})


async def test_coaching_and_recognition_keep_the_later_revision_whatever_its_clock_says(
        services: dict[str, str], tenant: Tenant) -> None:
    period, at = this_quarter(timedelta(hours=3))
    start = at - timedelta(days=10)
    bounds = (start, at + timedelta(days=30))
    figures = [_figure(tenant, period, "12000", 7, at, bounds),  # replica A, right clock
               _figure(tenant, period, "5000", 8, at - timedelta(hours=1), bounds)]  # replica B, an hour behind
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        for event in figures:  # one key: one partition, in this order
            value, headers = encode(event)
            sent = await producer.send_and_wait(topics.ATTAINMENT.name, value, headers=headers,
                                                key=message_key(tenant.slug, "rep", "ana", period, "won_revenue"))
    finally:
        await producer.stop()

    conn = await asyncpg.connect(DATABASE_URL)
    try:
        deadline = time.monotonic() + 120
        for schema in ("coaching", "recognition"):  # both figures applied: the group's stored offset is past them
            while (await conn.fetchval(
                    f"SELECT next_offset FROM {schema}.consumer_offsets WHERE group_id = $1 AND topic = $2"
                    " AND partition = $3", f"{GROUP_PREFIX}-{schema}", topics.ATTAINMENT.name,
                    sent.partition) or 0) <= sent.offset:
                assert time.monotonic() < deadline, f"{schema} did not apply both figures"
                await asyncio.sleep(0.2)
        kept = {schema: await conn.fetchval(f"SELECT actual FROM {schema}.attainment WHERE tenant = $1"
                                            " AND scope_id = 'ana' AND period = $2", tenant.slug, period)
                for schema in ("coaching", "recognition")}
    finally:
        await conn.close()
    assert kept == {"coaching": Decimal(5000), "recognition": Decimal(5000)}, \
        "the figure with the newer clock, not the later revision, stood"
