"""Liveness that means something: is this process still able to make progress?

`/readyz` says whether a replica should get traffic now (database, broker, consumers). `/healthz` says
whether it should be restarted, so it must stay green through an outage of PostgreSQL or Kafka (a
restart would not help, and restarting every pod at once would hurt) but turn red when the process
itself is stuck: every pooled connection held and none coming back (a request waiting for a second
connection while holding one, a leak), or an event loop that no longer gets to run.

The watchdog wakes every `interval_s`: how late it woke is the loop's lag; then it takes a connection
(`acquire_timeout_s` at most) and asks `SELECT 1`. Getting a connection is progress, whatever the
query answers (a database error is readiness's business). An acquire that times out while every
connection of the pool is open and checked out is no progress; one that times out while connections
are still being opened is the database being slow to accept, not this process being stuck.
`verdict` names the reason for a 503 once there was no progress for `stall_s`, the watchdog itself
stopped probing for that long, or the last lag exceeded `max_lag_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg
from prometheus_client import Gauge

log = logging.getLogger(__name__)
STALLED = Gauge("attain_liveness_stalled_seconds", "Seconds since the watchdog last got a pooled connection.")
LAG = Gauge("attain_event_loop_lag_seconds", "How late the watchdog's last periodic wake-up was.")


class Watchdog:
    """Probes a pool and the event loop; `verdict()` is what `/healthz` answers."""

    def __init__(self, pool: asyncpg.Pool, *, interval_s: float, acquire_timeout_s: float, stall_s: float,
                 max_lag_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._pool, self._clock = pool, clock
        self._interval, self._acquire_timeout = interval_s, acquire_timeout_s
        self._stall, self._max_lag = stall_s, max_lag_s
        self.progress_at = self.probed_at = clock()
        self.lag_s = 0.0

    async def run(self) -> None:
        """Probe for ever (a background task of the service)."""
        while True:
            due = self._clock() + self._interval
            await asyncio.sleep(self._interval)
            self.lag_s = max(0.0, self._clock() - due)
            LAG.set(self.lag_s)
            await self.probe()

    async def probe(self) -> None:
        """One probe: take a connection, ask `SELECT 1`, give it back."""
        try:
            conn = await self._pool.acquire(timeout=self._acquire_timeout)
        except TimeoutError:
            if self._pool.get_size() < self._pool.get_max_size():  # still connecting: the database is slow
                self.progress_at = self._clock()
            else:
                log.warning("no pooled connection came free", extra={"waited_s": self._acquire_timeout})
        except Exception as err:  # the database refused or is gone: readiness reports that, liveness does not
            log.info("watchdog could not reach the database", extra={"error": repr(err)})
            self.progress_at = self._clock()
        else:
            self.progress_at = self._clock()
            try:
                await conn.fetchval("SELECT 1", timeout=self._acquire_timeout)
            except Exception as err:  # the database's fault, not a stuck process
                log.info("watchdog query failed", extra={"error": repr(err)})
            finally:
                await self._pool.release(conn)
        self.probed_at = self._clock()
        STALLED.set(self.probed_at - self.progress_at)

    def verdict(self) -> str | None:
        """Why the process should be restarted, or None while it makes progress."""
        now = self._clock()
        if (stalled := now - self.progress_at) > self._stall:
            return f"no pooled database connection came free for {stalled:.0f} s (all held)"
        if (quiet := now - self.probed_at) > self._stall + self._interval + self._acquire_timeout:
            return f"the watchdog has not completed a probe for {quiet:.0f} s"
        if self.lag_s > self._max_lag:
            return f"the event loop woke {self.lag_s:.1f} s late"
        return None
