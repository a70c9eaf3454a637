"""The evaluator's bookkeeping on a real database: a rep touched by many batches is owed one evaluation,
the evaluation and the deletion of what was owed commit together, and a rep whose evaluation fails on
its own is dropped instead of blocking the others."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import asyncpg
import pytest

from services.coaching import repository as repo
from services.coaching import timers
from services.coaching.model import Policy
from tests.integration.coaching.conftest import migrated_pool

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.fixture
async def pool(stack: None) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool("owed") as pool:
        yield pool


async def _owe(pool: asyncpg.Pool, reps: Sequence[tuple[str, str]], at: datetime) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await repo.owe_evaluation(conn, reps, at)


async def test_touches_are_coalesced_and_the_oldest_wait_is_kept(pool: asyncpg.Pool) -> None:
    await _owe(pool, [("t", "ann"), ("t", "bob")], NOW)
    await _owe(pool, [("t", "ann")], NOW.replace(hour=10))
    rows = await pool.fetch("SELECT rep_id, since FROM owed_evaluations ORDER BY rep_id")
    assert [(r["rep_id"], r["since"]) for r in rows] == [("ann", NOW), ("bob", NOW)]


async def test_evaluated_reps_are_no_longer_owed(pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, tuple[str, ...]]] = []

    async def evaluate(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], now: datetime,
                       defaults: Policy) -> int:
        seen.append((tenant, tuple(rep_ids)))
        return 0

    monkeypatch.setattr(timers, "evaluate_reps", evaluate)
    await _owe(pool, [("t1", "ann"), ("t2", "bob"), ("t1", "cid")], NOW)
    assert await timers.evaluate_owed(pool, NOW, Policy()) == 3
    assert seen == [("t1", ("ann", "cid")), ("t2", ("bob",))]  # each tenant's reps together, once
    assert await pool.fetchval("SELECT count(*) FROM owed_evaluations") == 0
    assert await timers.evaluate_owed(pool, NOW, Policy()) == 0


async def test_a_rep_that_fails_alone_is_dropped_and_the_others_are_evaluated(
        pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluated: list[str] = []

    async def evaluate(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], now: datetime,
                       defaults: Policy) -> int:
        if "bad" in rep_ids:
            raise ValueError("a rep the rules cannot handle")
        evaluated.extend(rep_ids)
        return 0

    monkeypatch.setattr(timers, "evaluate_reps", evaluate)
    await _owe(pool, [("t", "ann"), ("t", "bad"), ("t", "cid")], NOW)
    assert await timers.evaluate_owed(pool, NOW, Policy()) == 2
    assert sorted(evaluated) == ["ann", "cid"]
    assert await pool.fetchval("SELECT count(*) FROM owed_evaluations") == 0


@pytest.mark.parametrize("error", [asyncpg.CannotConnectNowError("the database is starting up"),
                                   # what asyncpg raises on a pooled connection the server terminated
                                   asyncpg.InternalClientError("cannot switch to state 15; another operation"
                                                               " (2) is in progress")])
async def test_an_evaluation_that_does_not_commit_leaves_the_reps_owed(
        pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """A transient failure (the database went away mid-evaluation) rolls the taking back too, and is
    raised for the timer to retry: the reps are neither evaluated one by one nor dropped."""

    async def evaluate(conn: asyncpg.Connection, tenant: str, rep_ids: Sequence[str], now: datetime,
                       defaults: Policy) -> int:
        raise error

    monkeypatch.setattr(timers, "evaluate_reps", evaluate)
    await _owe(pool, [("t", "ann")], NOW)
    with pytest.raises(type(error)):
        await timers.evaluate_owed(pool, NOW, Policy())
    assert await pool.fetchval("SELECT count(*) FROM owed_evaluations") == 1
