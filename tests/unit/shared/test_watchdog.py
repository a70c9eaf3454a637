"""Liveness (shared/watchdog.py): a pool with every connection held and none coming back is a stuck process;
a database that refuses or is slow to connect is not (readiness reports that); a late event loop is."""

from __future__ import annotations

from typing import Any, cast

import asyncpg

from shared.db import PoolExhausted
from shared.watchdog import Watchdog


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Conn:
    async def fetchval(self, query: str, timeout: float | None = None) -> int:  # noqa: ASYNC109 - asyncpg's signature
        return 1


class _Pool:
    """A pool that answers an acquire as told: a connection, or an exception; `size` connections open of 2."""

    def __init__(self) -> None:
        self.failure: BaseException | None = None
        self.size = 2
        self.released = 0

    async def acquire(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109 - asyncpg's signature
        if self.failure is not None:
            raise self.failure
        return _Conn()

    async def release(self, conn: Any) -> None:
        self.released += 1

    def get_size(self) -> int:
        return self.size

    def get_max_size(self) -> int:
        return 2


def _watchdog(pool: _Pool, clock: _Clock) -> Watchdog:
    return Watchdog(cast(asyncpg.Pool, pool), interval_s=1, acquire_timeout_s=1, stall_s=10, max_lag_s=5, clock=clock)


async def test_a_pool_whose_connections_are_all_held_for_longer_than_the_threshold_is_stuck() -> None:
    pool, clock = _Pool(), _Clock()
    watchdog = _watchdog(pool, clock)
    await watchdog.probe()
    assert watchdog.verdict() is None and pool.released == 1
    pool.failure = PoolExhausted("no connection")
    for _ in range(9):
        clock.now += 1
        await watchdog.probe()
        assert watchdog.verdict() is None  # not yet past the threshold
    clock.now += 2
    await watchdog.probe()
    assert "connection" in (watchdog.verdict() or "")
    pool.failure = None
    await watchdog.probe()
    assert watchdog.verdict() is None


async def test_a_database_that_refuses_or_is_slow_to_connect_does_not_fail_liveness() -> None:
    pool, clock = _Pool(), _Clock()
    watchdog = _watchdog(pool, clock)
    for failure, size in ((ConnectionRefusedError(), 2), (asyncpg.CannotConnectNowError(), 2), (TimeoutError(), 0)):
        pool.failure, pool.size = failure, size
        for _ in range(30):
            clock.now += 1
            await watchdog.probe()
        assert watchdog.verdict() is None, failure


async def test_a_watchdog_that_stopped_probing_or_a_late_event_loop_fails_liveness() -> None:
    pool, clock = _Pool(), _Clock()
    watchdog = _watchdog(pool, clock)
    watchdog.lag_s = 6
    assert "late" in (watchdog.verdict() or "")
    watchdog.lag_s = 0
    clock.now += 30  # no probe since: the watchdog itself is stuck
    assert watchdog.verdict() is not None
