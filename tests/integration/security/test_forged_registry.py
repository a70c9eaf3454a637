"""Kafka is not a credential store (issue 16, item 5): a `tenant.upserted` that ingest did not sign, written
straight to `attain.tenants.v1` by whoever can, installs nothing. kpi, coaching, recognition and notify go on
refusing the attacker's token (401) and dead-letter the forged records with the reason, while a tenant made with
ingest's CLI (signed by its outbox) is accepted by all four.

The five services run in-process on the real broker, with a database of their own and consumer groups that
start at the topics' ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy.local import crm_keys, registry_keys
from services.coaching.app import SPEC as COACHING
from services.coaching.settings import CoachingSettings
from services.ingest.app import SPEC as INGEST
from services.ingest.settings import IngestSettings
from services.ingest.tenants import signed
from services.kpi.app import SPEC as KPI
from services.kpi.settings import KpiSettings
from services.notify.app import SPEC as NOTIFY
from services.notify.settings import NotifySettings
from services.recognition.app import SPEC as RECOGNITION
from services.recognition.settings import RecognitionSettings
from shared import registry_signing as rs
from shared import topics
from shared.clock import FixedClock
from shared.cloudevents import CloudEvent, encode, message_key
from shared.events import TenantUpserted
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, ROOT, end_offsets, fresh_database

CONSUMED = {"kpi": inprocess.KPI_CONSUMES,
            "coaching": [topics.ATTAINMENT.name, topics.ACTIVITIES.name, topics.DEALS.name, topics.ROSTER.name,
                         topics.TENANTS.name],
            "recognition": [topics.ATTAINMENT.name, topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name,
                            topics.TENANTS.name],
            "notify": [t for sub in NOTIFY.subscriptions for t in sub.topics]}
# One authenticated read of each service: 200 with a token it knows, 401 without.
READS = {"kpi": "/v1/leaderboard", "coaching": "/v1/tasks", "recognition": "/v1/celebrations",
         "notify": "/v1/notify/deliveries"}
READERS = tuple(READS)


class Readers:
    def __init__(self, db: str, replicas: dict[str, inprocess.Replica]) -> None:
        self.db, self.replicas = db, replicas

    async def status(self, name: str, token: str) -> int:
        answer = await self.replicas[name].http.get(READS[name], headers={"Authorization": f"Bearer {token}"})
        return answer.status_code

    async def accepted_everywhere(self, token: str, timeout: float = 60) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        for name in READERS:
            while (status := await self.status(name, token)) != 200:
                assert status == 401 and time.monotonic() < deadline, f"{name} answers {status}"
                await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def readers(stack: None) -> AsyncIterator[Readers]:
    db = await fresh_database(f"forged_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-forged-{uuid.uuid4().hex[:8]}"
    for name, consumed in CONSUMED.items():
        await inprocess.start_group_at_end(f"{prefix}-{name}", consumed)
    clock = FixedClock(datetime.now(UTC))
    common: dict[str, Any] = {"database_url": db, "kafka_bootstrap_servers": BOOTSTRAP, "log_format": "text",
                              "kafka_consumer_group_prefix": prefix, "outbox_poll_interval_s": 0.2,
                              "auth_failure_burst": 1000, "registry_verify_keys": registry_keys.verify_keys()}
    replicas = {"ingest": await inprocess.Replica(INGEST, IngestSettings(
        **common, crm_secret_keys=crm_keys.crm_secret_keys(), registry_signing_key=registry_keys.signing_key()),
        clock).start()}
    specs = {"kpi": (KPI, KpiSettings(**common)),
             "coaching": (COACHING, CoachingSettings(**common, coaching_evaluation_interval_s=3600)),
             "recognition": (RECOGNITION, RecognitionSettings(**common, recognition_interval_s=3600)),
             "notify": (NOTIFY, NotifySettings(**common, notify_interval_s=3600, notify_digest_interval_s=3600))}
    try:
        for name, (spec, settings) in specs.items():
            replicas[name] = await inprocess.Replica(spec, settings, clock).start()
        yield Readers(db, replicas)
    finally:
        for replica in reversed(replicas.values()):
            await replica.stop()
            await replica.http.aclose()


async def create_tenant(db: str) -> tuple[str, str]:
    """`python -m services.ingest tenants create` as an operator runs it (ingest's outbox signs the entry)."""
    slug = f"forged-{uuid.uuid4().hex[:10]}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ingest", "tenants", "create", slug, cwd=ROOT,
        env={**os.environ, **crm_keys.env(), **registry_keys.env(), "DATABASE_URL": db},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    created: dict[str, str] = json.loads(out)
    return created["tenant"], created["token"]


def forged_event(tenant: str, token: str) -> CloudEvent:
    """A registry entry of valid shape, as ingest would announce it, with the attacker's token digest."""
    entry = TenantUpserted(tenant=tenant, timezone="UTC", currency="EUR", fiscal_start_month=1,
                           token_sha256=hashlib.sha256(token.encode()).hexdigest(), active=True)
    return CloudEvent(id=str(uuid.uuid4()), type="tenant.upserted", source="attain/ingest",
                      time=datetime.now(UTC), tenant=tenant, data=entry)


async def write_forgeries(tenant: str, token: str) -> dict[int, str]:
    """The attacker writes three forgeries for `tenant` straight to the registry topic: unsigned, signed with a
    key of their own, and with ingest's key id and a made-up signature. Their offsets, with the reason each
    must be refused for."""
    key = message_key(tenant)
    attacker = rs.RegistrySigner(rs.generate_private_key())
    ingests = rs.RegistrySigner(rs.parse_private_key(registry_keys.signing_key()))
    unsigned = encode(forged_event(tenant, token))
    own_key = encode(signed(forged_event(tenant, token), key, attacker))
    value, headers = encode(forged_event(tenant, token))
    made_up = (value, [*headers, (rs.H_SIGNATURE, f"{ingests.key_id}:{'A' * 86}".encode())])
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        written = {}
        for (value, headers), reason in ((unsigned, "unsigned"), (own_key, "unknown_key"),
                                         (made_up, "bad_signature")):
            sent = await producer.send_and_wait(topics.TENANTS.name, value, key=key, headers=headers)
            written[sent.offset] = reason
        return written
    finally:
        await producer.stop()


async def dead_letters(since: dict[Any, int], offsets: set[int], timeout: float = 60) -> dict[tuple[str, int], str]:  # noqa: ASYNC109
    """The registry's dead letters of the records at `offsets`, by (service, original offset): their error."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    found: dict[tuple[str, int], str] = {}
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout
        while len(found) < len(offsets) * len(READERS) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    why = {name: raw.decode() for name, raw in record.headers}
                    if why.get("attain_original_topic") != topics.TENANTS.name:
                        continue
                    offset = int(why["attain_original_offset"])
                    if offset in offsets:
                        found[(why["attain_service"], offset)] = why["attain_error"]
    finally:
        await consumer.stop()
    return found


async def test_a_forged_registry_entry_installs_no_token_and_is_dead_lettered_by_every_reader(readers: Readers) -> None:
    victim, token = await create_tenant(readers.db)
    await readers.accepted_everywhere(token)  # ingest's signed entry: every reader knows the tenant's token

    attackers = f"atn_{uuid.uuid4().hex}"
    newcomer = f"forged-{uuid.uuid4().hex[:10]}"  # a tenant ingest never made
    since = await end_offsets([f"{topics.TENANTS.name}.dlq"])
    written = await write_forgeries(victim, attackers) | await write_forgeries(newcomer, attackers)

    letters = await dead_letters(since, set(written))
    for name in READERS:
        for offset, reason in written.items():
            assert f"registry record refused ({reason})" in letters.get((name, offset), ""), (name, offset, letters)
    for name in READERS:
        assert await readers.status(name, attackers) == 401, name  # the digest the attacker wrote is nowhere
        assert await readers.status(name, token) == 200, name  # and the victim's own token still works

    rejected = (await readers.replicas["kpi"].http.get("/metrics")).text
    assert 'attain_registry_rejected_total{reason="unsigned"}' in rejected
