"""A record no one can read goes to `<topic>.dlq` with the reason, and the partition moves on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from shared import topics
from tests.factories import deal, rep, target, this_quarter
from tests.integration.conftest import BOOTSTRAP, DATABASE_URL, post


async def test_a_poison_deal_is_dead_lettered_and_later_deals_still_count(services, tenant, watch):
    w = await watch(tenant.slug, topics.DEALS.dlq, topics.ATTAINMENT.name)
    key = f"{tenant.slug}:dee".encode()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True)
    await producer.start()
    try:
        poison_headers = [("ce_id", b"poison-1"), ("ce_type", b"deal.upserted"), ("ce_source", b"api"),
                          ("ce_specversion", b"1.0"), ("ce_time", b"2026-11-01T00:00:00Z"),
                          ("ce_tenant", tenant.slug.encode()), ("content-type", b"application/json")]
        await producer.send_and_wait(topics.DEALS.name, b'{"deal_id": "d-p", "amount": "lots"}',
                                     key=key, headers=poison_headers)
        await producer.send_and_wait(topics.DEALS.name, b"\xff\xfe not json", key=key,
                                     headers=[*poison_headers[:1], ("ce_tenant", tenant.slug.encode())])
    finally:
        await producer.stop()

    period, at = this_quarter(timedelta(minutes=1))
    good = deal("d-good", "dee", "700", updated_at=at)
    response = await post(services["ingest"], tenant, [rep("dee"), target("dee", period, "1000"), good])
    assert response.status_code == 200

    update = await w.wait_for(lambda m: m["type"] == "kpi.attainment.updated" and m["data"]["actual"] == "700"
                              and m["data"]["metric"] == "won_revenue" and m["data"]["period"] == period
                              and m["data"]["scope"] == "rep")
    assert update["data"]["attainment"] == "0.7000"
    # kpi, coaching and recognition all read the deals topic: each dead-letters what it cannot read, naming itself
    def dead_in_kpi() -> list[dict[str, Any]]:
        # at least once: a batch that failed for another record is applied again record by record, and its
        # poison dead-lettered again; the original topic, partition and offset say which record it was
        found = [m for m in w.seen if m["topic"] == topics.DEALS.dlq and m["headers"]["attain_service"] == b"kpi"]
        return list({(m["headers"]["attain_original_partition"], m["headers"]["attain_original_offset"]): m
                     for m in found}.values())

    dead = dead_in_kpi()
    while len(dead) < 2:
        await w.poll(0.5)
        dead = dead_in_kpi()
    services_seen = {m["headers"]["attain_service"] for m in w.seen if m["topic"] == topics.DEALS.dlq}
    assert services_seen <= {b"kpi", b"coaching", b"recognition"}
    reasons = sorted(m["headers"]["attain_error"].decode() for m in dead)
    assert reasons[0].startswith("invalid deal.upserted data: rep_id: Field required")
    assert "amount" in reasons[0]
    assert reasons[1].startswith("missing CloudEvents header(s): ce_type, ce_source, ce_specversion")
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        assert await conn.fetchval("SELECT count(*) FROM kpi.deals WHERE tenant = $1", tenant.slug) == 1
    finally:
        await conn.close()


async def test_dead_letters_say_why(services, tenant):
    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    await consumer.start()
    try:
        tp = TopicPartition(topics.ROSTER.dlq, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        start = await consumer.position(tp)
        marker = tenant.slug.encode()
        await producer.send_and_wait(topics.ROSTER.name, b"{}", key=marker,
                                     headers=[("ce_id", b"x"), ("ce_tenant", marker)])
        found: dict[bytes, dict[str, bytes]] = {}  # by service: kpi, coaching, recognition and notify read the roster
        for _ in range(40):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    if r.key == marker:
                        headers = dict(r.headers)
                        found[headers["attain_service"]] = headers
            if len(found) == 4:
                break
        assert set(found) == {b"kpi", b"coaching", b"recognition", b"notify"}, f"dead letters from {set(found)}"
        for headers in found.values():
            assert b"missing CloudEvents header(s): ce_type, ce_source, ce_specversion" in headers["attain_error"]
            assert headers["attain_original_topic"] == topics.ROSTER.name.encode()
            assert int(headers["attain_original_offset"]) >= 0 and start >= 0
    finally:
        await producer.stop()
        await consumer.stop()
