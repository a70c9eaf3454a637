"""A process whose pool has no connection to give is not alive: /healthz turns 503 (so Kubernetes restarts it),
a request waiting for a connection is answered 503 with Retry-After instead of hanging, and all is well
again once connections come back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from shared.db import PoolExhausted
from tests.integration.ingest_hardening.harness import Ingest, complete_deal, running_ingest


async def _hold_every_connection(pool: asyncpg.Pool, size: int) -> list[Any]:
    """Take connections until the test holds all `size` of them (the outbox relay lets its own go when it
    cannot get a second one, and stands again later)."""
    held: list[Any] = []
    deadline = time.monotonic() + 30
    while len(held) < size:
        assert time.monotonic() < deadline, f"could take only {len(held)} of {size} connections"
        try:
            held.append(await pool.acquire(timeout=0.5))
        except (PoolExhausted, TimeoutError):
            await asyncio.sleep(0.05)
    return held


async def _healthz_until(ingest: Ingest, status: int, within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while True:
        response = await ingest.replica.http.get("/healthz")
        if response.status_code == status:
            answer: dict[str, Any] = response.json()
            return answer
        assert time.monotonic() < deadline, f"/healthz still {response.status_code} after {within_s} s: {response.text}"
        await asyncio.sleep(0.2)


async def test_healthz_fails_while_no_pooled_connection_comes_free_and_requests_get_503_not_a_hang(
        stack: None) -> None:
    async with running_ingest(db_pool_max=2, db_acquire_timeout_s=1.0, liveness_interval_s=0.2,
                              liveness_stall_s=1.5) as ingest:
        await _healthz_until(ingest, 200, within_s=5)
        held = await _hold_every_connection(ingest.replica.pool, 2)
        try:
            stuck = await _healthz_until(ingest, 503, within_s=10)
            assert stuck["status"] == "stuck" and "connection" in stuck["reason"]

            events = await asyncio.wait_for(ingest.replica.http.post(
                "/v1/events", headers=ingest.auth, json={"type": "rep.upserted"}), 10)
            assert events.status_code == 503, events.text
            assert int(events.headers["Retry-After"]) >= 1
            delivery = await asyncio.wait_for(ingest.deliver(complete_deal(1, int(time.time() * 1000), 1)), 10)
            assert delivery.status_code == 503, delivery.text
            assert int(delivery.headers["Retry-After"]) >= 1
        finally:
            for conn in held:
                await ingest.replica.pool.release(conn)
        assert (await _healthz_until(ingest, 200, within_s=10)) == {"status": "ok"}
        again = await ingest.deliver(complete_deal(2, int(time.time() * 1000), 1))
        assert again.status_code == 200 and again.json()["accepted"] == 1, again.text
