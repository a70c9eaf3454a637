"""notify's SQL on a real PostgreSQL (a database of its own, migrated as the service migrates it): deliveries
inserted once per idempotency key, claimed by one worker at a time (SKIP LOCKED), leased, released; the sweep
function finds the tenants with something due. (As the owner: the working role's row-level security is
exercised by test_notify.py, whose replicas run as `attain_notify`.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.notify.app import SPEC
from services.notify.model import Delivery
from services.notify.repository import PgRepository
from shared import db
from tests.integration.conftest import fresh_database

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    url = await fresh_database(f"notify_repo_{uuid.uuid4().hex[:8]}")
    owner = await db.create_pool(url, SPEC.schema, min_size=1, max_size=4)
    try:
        await db.migrate(owner, SPEC.schema, SPEC.migrations)
        yield owner
    finally:
        await owner.close()


def delivery(key: str, recipient: str = "ana", at: datetime = NOW) -> tuple[Delivery, str, dict[str, str]]:
    return Delivery("e-1", recipient, "email", "check_in", at, key), "coaching.task.created", {"task_id": "t"}


async def test_each_key_once_claimed_by_one_worker_at_a_time(pool: asyncpg.Pool) -> None:
    async with db.tenant_tx(pool, "acme") as conn:
        repo = PgRepository(conn)
        assert await repo.add("acme", [delivery("k1"), delivery("k2", "max"), delivery("k1")]) == 2
        assert await repo.add("acme", [delivery("k1"), delivery("k3", at=NOW + timedelta(hours=1))]) == 1
    lease = NOW + timedelta(minutes=2)
    async with pool.acquire() as a, pool.acquire() as b, a.transaction(), b.transaction():
        await db.set_tenant(a, "acme")
        await db.set_tenant(b, "acme")
        first = await PgRepository(a).claim("acme", NOW, lease, 1)
        second = await PgRepository(b).claim("acme", NOW, lease, 10)  # skips the row `a` holds
        assert len(first) == 1 and len(second) == 1
        assert {c.idempotency_key for c in first + second} == {"k1", "k2"}  # k3 is not due yet
    async with db.tenant_tx(pool, "acme") as conn:
        repo = PgRepository(conn)
        assert await repo.claim("acme", NOW, lease, 10) == []  # leased
        await repo.release("acme", ["k1"], NOW)
        (again,) = await repo.claim("acme", NOW, lease, 10)
        assert (again.idempotency_key, again.attempts) == ("k1", 1)
        await repo.mark_sent("acme", "k1", NOW)
        await repo.mark_dead("acme", "k1", "too late")  # a sent delivery stays sent
        await repo.mark_retry("acme", "k2", NOW + timedelta(minutes=5), "451 busy")
        rows = {r["idempotency_key"]: r for r in await repo.deliveries("acme", None, 10)}
        assert rows["k1"]["status"] == "sent" and rows["k2"]["status"] == "failed"
        assert rows["k2"]["last_error"] == "451 busy"
    async with db.sweep_tx(pool) as conn:
        due = await conn.fetch("SELECT tenant FROM sweep_due_deliveries($1)", NOW + timedelta(hours=2))
        assert [r["tenant"] for r in due] == ["acme"]
    async with db.tenant_tx(pool, "other") as conn:
        assert await PgRepository(conn).deliveries("other", None, 10) == []
