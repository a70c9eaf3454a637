"""Export and erasure (issue 16, item 7), end to end on the real broker and PostgreSQL: two tenants with data
through ingest's API and the four services (in-process); a rep's and a tenant's export hold their rows and
nothing of the other tenant; erasing the rep removes their rows from every schema, leaves the others alone,
writes tombstones on the compacted topics, and a `kpi rebuild` from the topics does not bring them back;
erasing the tenant leaves nothing of it and refuses its token."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.local import crm_keys
from services.coaching.app import SPEC as COACHING
from services.coaching.settings import CoachingSettings
from services.ingest.app import SPEC as INGEST
from services.ingest.settings import IngestSettings
from services.kpi.app import SPEC as KPI
from services.kpi.settings import KpiSettings
from services.privacy import repository
from services.recognition.app import SPEC as RECOGNITION
from services.recognition.settings import RecognitionSettings
from shared import topics
from shared.clock import FixedClock
from tests.factories import activity, deal, rep, target, this_quarter
from tests.integration import inprocess
from tests.integration.conftest import BOOTSTRAP, ROOT, end_offsets, fresh_database

COMPACTED = [topics.ROSTER.name, topics.TARGETS.name, topics.ATTAINMENT.name, topics.TENANTS.name]


def _cli(url: str, prefix: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, **crm_keys.env(), "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
           "KAFKA_CONSUMER_GROUP_PREFIX": prefix, "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    return done.returncode, done.stdout + ("" if done.returncode == 0 else done.stderr)


def _privacy(url: str, prefix: str, *args: str) -> dict[str, Any]:
    code, out = _cli(url, prefix, "services.privacy", *args)
    assert code == 0, out
    answer: dict[str, Any] = json.loads(out)
    return answer


# coaching's queue of evaluations it owes: filled by events and emptied by its timer, whatever the test does
QUEUES = frozenset({"coaching.owed_evaluations"})


async def _counts(conn: asyncpg.Connection, tenant: str, rep: str | None) -> dict[str, int]:
    """Rows of `tenant` (or of its `rep`) per schema.table, by the same mapping the tool uses."""
    tables, _ = await repository.catalogue(conn)
    out = {}
    for table in tables:
        predicate = table.tenant_predicate if rep is None else table.rep_predicate()
        if predicate is None:
            continue
        args = [tenant] if rep is None else [tenant, rep]
        await conn.execute("SELECT set_config('search_path', $1, false)", table.schema)
        out[table.qualified] = await conn.fetchval(f"SELECT count(*) FROM {table.qualified} WHERE {predicate}", *args)
    return out


def _steady(counts: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if name not in QUEUES}


def _rows(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{s}.{t}", row) for s, tables in document["schemas"].items() for t, rows in tables.items()
            for row in rows]


async def _tombstoned(since: dict[TopicPartition, int]) -> set[tuple[str, bytes]]:
    """(topic, key) of every tombstone written to the compacted topics since `since`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(since))
        short = [tp for tp in since if ends[tp] > since[tp]]
        consumer.assign(short)
        for tp in short:
            consumer.seek(tp, since[tp])
        found: set[tuple[str, bytes]] = set()
        while [tp for tp in short if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                found |= {(tp.topic, r.key) for r in records if r.value is None and r.offset < ends[tp]}
        return found
    finally:
        await consumer.stop()


@pytest.fixture
async def world(stack: None) -> AsyncIterator[tuple[str, str, dict[str, inprocess.Replica]]]:
    url = await fresh_database(f"privacy_{uuid.uuid4().hex[:8]}")
    prefix = f"attain-priv-{uuid.uuid4().hex[:8]}"
    consumed = [topics.DEALS.name, topics.ACTIVITIES.name, topics.ROSTER.name, topics.TARGETS.name,
                topics.TENANTS.name, topics.ATTAINMENT.name]
    await asyncio.gather(*(inprocess.start_group_at_end(f"{prefix}-{name}", consumed)
                           for name in ("kpi", "coaching", "recognition")))
    common: dict[str, Any] = {"database_url": url, "kafka_bootstrap_servers": BOOTSTRAP,
                              "kafka_consumer_group_prefix": prefix, "outbox_poll_interval_s": 0.2,
                              "log_format": "text"}
    clock = FixedClock(datetime.now(UTC))
    replicas = {
        "ingest": inprocess.Replica(INGEST, IngestSettings(**common, crm_secret_keys=crm_keys.crm_secret_keys()),
                                    clock),
        "kpi": inprocess.Replica(KPI, KpiSettings(**common), clock),
        "coaching": inprocess.Replica(COACHING, CoachingSettings(**common, coaching_evaluation_interval_s=3600),
                                      clock),
        "recognition": inprocess.Replica(RECOGNITION, RecognitionSettings(**common, recognition_interval_s=3600),
                                         clock),
    }
    try:
        await replicas["ingest"].start()  # first: it migrates ingest, which the others do not need
        await asyncio.gather(*(r.start() for name, r in replicas.items() if name != "ingest"))
        yield url, prefix, replicas
    finally:
        for replica in replicas.values():
            await replica.stop()
            await replica.http.aclose()


async def test_a_rep_and_a_tenant_are_exported_then_erased_and_stay_erased(
        world: tuple[str, str, dict[str, inprocess.Replica]], tmp_path: Path) -> None:
    url, prefix, svc = world
    (a, a_token), (b, b_token) = await asyncio.gather(inprocess.create_tenant(url, "pa"),
                                                      inprocess.create_tenant(url, "pb"))
    quarter, at = this_quarter(timedelta(hours=1))
    events = {
        (a, a_token): [rep("ana"), rep("bo"), target("ana", quarter, "1000"), target("bo", quarter, "500"),
                       deal("d-1", "ana", "600.50", updated_at=at), deal("d-2", "bo", "100", updated_at=at),
                       activity("a-1", "ana", "call", at)],
        (b, b_token): [rep("ana"), target("ana", quarter, "900"), deal("d-1", "ana", "300.25", updated_at=at)],
    }
    for (_, token), batch in events.items():
        answer = await svc["ingest"].http.post("/v1/events", json=batch, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text

    async def settled(conn: asyncpg.Connection) -> bool:
        figures = await conn.fetchval("SELECT count(*) FROM kpi.published_figures WHERE scope = 'rep'"
                                      " AND metric = 'won_revenue' AND actual > 0")
        mirrored = [await conn.fetchval(f"SELECT count(*) FROM {schema}.attainment WHERE scope = 'rep'"
                                        " AND metric = 'won_revenue' AND actual > 0")
                    for schema in ("coaching", "recognition")]
        seen.append((figures, *mirrored))
        return figures == 3 and mirrored == [3, 3]

    seen: list[tuple[int, ...]] = []
    try:
        await inprocess.until(url, settled, timeout=60)
    except AssertionError:
        raise AssertionError(f"figures (kpi, coaching, recognition) seen: {sorted(set(seen))}") from None
    conn = await asyncpg.connect(url)
    try:
        # export: the rep's rows, and the tenant's, and nothing of the other tenant
        code, out = _cli(url, prefix, "services.privacy", "export", "--tenant", a, "--rep", "ana",
                         "--out", str(tmp_path / "ana.json"))
        assert code == 0, out
        assert (tmp_path / "ana.json").stat().st_mode & 0o077 == 0
        ana = json.loads((tmp_path / "ana.json").read_text())
        rows = _rows(ana)
        assert {name for name, _ in rows} >= {"kpi.deals", "kpi.reps", "kpi.targets", "kpi.activities",
                                              "kpi.published_figures", "coaching.reps", "coaching.attainment",
                                              "recognition.deals", "recognition.attainment", "ingest.deal_owners"}
        assert all(row.get("tenant", a) == a for _, row in rows)
        assert all(row.get("rep_id", "ana") == "ana" for _, row in rows)
        assert [r["amount"] for n, r in rows if n == "kpi.deals"] == ["600.50"]  # Decimal, exact
        assert all(datetime.fromisoformat(r["updated_at"]).tzinfo for n, r in rows if n == "kpi.deals")
        whole = _privacy(url, prefix, "export", "--tenant", a)
        rows = _rows(whole)
        assert {r.get("rep_id") for _, r in rows} >= {"ana", "bo"}
        assert [r["slug"] for n, r in rows if n == "ingest.tenants"] == [a]
        assert b not in json.dumps(whole)

        before_bo, before_b = await _counts(conn, a, "bo"), await _counts(conn, b, None)
        assert sum(before_bo.values()) > 5 and sum(before_b.values()) > 10
        since = await end_offsets(COMPACTED)

        # erase the rep: first only what it would delete, then for real
        dry = _privacy(url, prefix, "erase", "--tenant", a, "--rep", "ana")
        assert dry["dry_run"] and dry["would_delete"]["kpi.deals"] == 1
        ana_rows = {name: n for name, n in _steady(await _counts(conn, a, "ana")).items() if n}
        assert _steady(dry["would_delete"]) == ana_rows
        report = _privacy(url, prefix, "erase", "--tenant", a, "--rep", "ana", "--yes", "--settle-s", "0.5")
        assert _steady(report["deleted"]) == ana_rows
        assert report["deleted"]["kpi.deals"] == 1 and report["deleted"]["coaching.reps"] == 1
        assert report["tombstones"][topics.ROSTER.name] >= 1 and report["tombstones"][topics.ATTAINMENT.name] >= 1
        left = await _counts(conn, a, "ana")
        assert not {name: n for name, n in left.items() if n}, left
        assert _steady(await _counts(conn, a, "bo")) == _steady(before_bo)
        assert _steady(await _counts(conn, b, None)) == _steady(before_b)
        tombs = await _tombstoned(since)
        assert (topics.ROSTER.name, f"{a}:ana".encode()) in tombs
        assert (topics.TARGETS.name, f"{a}:ana".encode()) in tombs
        assert (topics.ATTAINMENT.name, f"{a}:rep:ana:{quarter}:won_revenue".encode()) in tombs
        assert not any(key.startswith(f"{b}:".encode()) for _, key in tombs)
        again = _privacy(url, prefix, "erase", "--tenant", a, "--rep", "ana", "--yes", "--settle-s", "0")
        assert again["deleted_total"] == 0

        # a rebuild from the topics (which still hold ana's records) does not bring ana back
        code, out = _cli(url, prefix, "services.kpi", "rebuild", "--tenant", a)
        assert code in (0, 1), out
        for table in ("reps", "deals", "activities", "targets", "period_tallies"):
            column = "rep_id" if table in ("reps", "deals", "activities") else "scope_id"
            assert await conn.fetchval(f"SELECT count(*) FROM kpi_rebuild.{table} WHERE tenant = $1"
                                       f" AND {column} = 'ana'", a) == 0, (table, out)
        assert await conn.fetchval("SELECT count(*) FROM kpi_rebuild.deals WHERE tenant = $1 AND rep_id = 'bo'",
                                   a) == 1, out

        # erase the tenant
        report = _privacy(url, prefix, "erase", "--tenant", a, "--yes", "--settle-s", "0.5")
        assert report["revoked_now"] is True and report["deleted"]["ingest.tenants"] == 1
        left = await _counts(conn, a, None)
        assert not {name: n for name, n in left.items() if n}, left
        assert _steady(await _counts(conn, b, None)) == _steady(before_b)
        refused = await svc["ingest"].http.post("/v1/events", json=[rep("cy")],
                                                headers={"Authorization": f"Bearer {a_token}"})
        assert refused.status_code == 401
        read = await svc["kpi"].http.get("/v1/leaderboard", headers={"Authorization": f"Bearer {a_token}"})
        assert read.status_code == 401
        assert (topics.TENANTS.name, a.encode()) in await _tombstoned(since)
    finally:
        await conn.close()
