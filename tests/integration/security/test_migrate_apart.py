"""The owner's credentials stay out of the services' pods: with DB_MIGRATE_ON_START=false a service holds
only its working role (DATABASE_APP_URL), never connects as the owner, and refuses a schema that misses a
migration; `python -m shared.migrate`, run as the owner (the Kubernetes Job), brings the schemas up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

from services.recognition.app import SPEC as RECOGNITION
from services.recognition.settings import RecognitionSettings
from shared import db
from shared.clock import FixedClock
from tests.integration import inprocess
from tests.integration.conftest import ROOT, fresh_database

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)
# Where no owner can be reached: a service that tried to connect as the owner would fail its start.
NO_OWNER = "postgresql://attain_owner:wrong@127.0.0.1:1/nowhere"


def _settings(database: str, **overrides: object) -> RecognitionSettings:
    return RecognitionSettings(**{
        "database_url": NO_OWNER, "database_app_url": db.app_dsn(database, db.app_role("recognition")),
        "db_migrate_on_start": False, "kafka_consumer_group_prefix": f"mig-{uuid.uuid4().hex[:6]}",
        "log_format": "text", **overrides})


def _migrate(database: str, *services: str) -> list[dict[str, object]]:
    out = subprocess.run([sys.executable, "-m", "shared.migrate", *services], cwd=ROOT, check=True,
                         capture_output=True, text=True, env={**os.environ, "DATABASE_URL": database})
    return [json.loads(line) for line in out.stdout.splitlines()]


async def test_a_service_without_the_owners_credentials_refuses_a_schema_that_is_behind(stack: None) -> None:
    database = await fresh_database(f"mig_{uuid.uuid4().hex[:8]}")
    _migrate(database, "ingest")  # makes no recognition schema, but a database the working role can reach
    replica = inprocess.Replica(RECOGNITION, _settings(database), FixedClock(AT))
    with pytest.raises(db.SchemaBehind, match=r"schema recognition misses \d+ migration\(s\).*shared\.migrate"):
        await replica.start()
    await replica.http.aclose()


async def test_after_the_migration_job_a_service_works_with_its_working_role_alone(stack: None) -> None:
    database = await fresh_database(f"mig_{uuid.uuid4().hex[:8]}")
    report = _migrate(database)
    assert [line["service"] for line in report] == ["ingest", "kpi", "coaching", "recognition", "notify"]
    assert all(line["applied"] for line in report)
    assert _migrate(database, "recognition")[0]["applied"] == []  # a second run applies nothing
    replica = await inprocess.Replica(RECOGNITION, _settings(database), FixedClock(AT)).start()
    try:
        async with replica.pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_user") == db.app_role("recognition")
    finally:
        await replica.stop()
        await replica.http.aclose()


async def test_not_migrating_without_a_working_role_is_refused_by_name() -> None:
    replica = inprocess.Replica(RECOGNITION, _settings("postgresql://127.0.0.1/unused", database_app_url=None),
                                FixedClock(AT))
    with pytest.raises(RuntimeError, match="DB_MIGRATE_ON_START=false needs DATABASE_APP_URL"):
        await replica.start()
    await replica.http.aclose()


def test_an_unknown_service_is_a_usage_error() -> None:
    out = subprocess.run([sys.executable, "-m", "shared.migrate", "billing"], cwd=ROOT, capture_output=True,
                         check=False, text=True, env={**os.environ, "DATABASE_URL": NO_OWNER})
    assert out.returncode == 2 and "no service billing" in out.stderr
