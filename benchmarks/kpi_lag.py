"""The lag phase: a paced live stream into a caught-up kpi, timed from publish to committed state.

The producer sends the workload's next records at a steady rate (in 10 ms ticks). Some fresh deal
versions are samples: each is timed from the producer's `send()` call (so the producer's linger and
the broker's acknowledgement are included) to the start of the first poll of `kpi.deals` that sees
that deal stored with that version's `updated_at` or a newer one. kpi writes the row in the same
transaction as its offsets, so a row seen is committed state. A poll every 20 ms over the pending
samples bounds the error to one poll interval plus one query (late rather than early).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from benchmarks.kpi_kafka import producer
from benchmarks.kpi_workload import DEAL_SHARE, DUPLICATE_SHARE, LATE_SHARE, Record, Workload
from shared.cloudevents import encode

TICK_S, POLL_S = 0.01, 0.02


@dataclass
class Lag:
    rate: int
    records: int = 0
    seconds: float = 0.0  # first send to last acknowledgement
    samples: int = 0
    lags: list[float] = field(default_factory=list)  # seconds, of the samples seen
    drain_s: float = 0.0  # last acknowledgement until the last sample was seen

    @property
    def missing(self) -> int:
        return self.samples - len(self.lags)


@dataclass(frozen=True, slots=True)
class _Sample:
    deal_id: str
    updated_at: datetime
    sent: float


async def measure(bootstrap: str, url: str, workload: Workload, rate: int, seconds: float, wanted: int,
                  drain_s: float) -> Lag:
    """Stream `rate * seconds` records, about `wanted` of them timed; wait `drain_s` at most for the last."""
    count = int(rate * seconds)
    fresh = count * DEAL_SHARE * (1 - DUPLICATE_SHARE - LATE_SHARE)
    records = workload.events(count, timedelta(seconds=1), sample_every=max(1, int(fresh // max(wanted, 1))))
    lag, pending = Lag(rate), list[_Sample]()
    sending = asyncio.Event()
    sending.set()
    conn = await asyncpg.connect(url)
    try:
        watcher = asyncio.create_task(_watch(conn, workload.tenant, pending, lag, sending))
        await _send(bootstrap, records, rate, pending, lag)
        sending.clear()
        acked = time.perf_counter()
        with contextlib.suppress(TimeoutError):  # samples never seen count as missing
            await asyncio.wait_for(watcher, drain_s)
        lag.drain_s = time.perf_counter() - acked
    finally:
        await conn.close()
    return lag


async def _send(bootstrap: str, records: Iterator[Record], rate: int, pending: list[_Sample], lag: Lag) -> None:
    sender = producer(bootstrap)
    await sender.start()
    try:
        futures, started = [], time.perf_counter()
        for n, record in enumerate(records):
            due = started + n / rate
            now = time.perf_counter()
            if due - now > TICK_S:
                await asyncio.sleep(due - now)
            value, headers = encode(record.event)
            sent = time.perf_counter()
            futures.append(await sender.send(record.topic, value, key=record.key, headers=headers))
            if record.sample:
                pending.append(_sample(record, sent))
                lag.samples += 1
        await asyncio.gather(*futures)
        lag.records, lag.seconds = len(futures), time.perf_counter() - started
    finally:
        await sender.stop()


def _sample(record: Record, sent: float) -> _Sample:
    data = record.event.data
    assert isinstance(data, dict)
    return _Sample(str(data["deal_id"]), datetime.fromisoformat(str(data["updated_at"])), sent)


async def _watch(conn: asyncpg.Connection, tenant: str, pending: list[_Sample], lag: Lag,
                 sending: asyncio.Event) -> None:
    """Poll kpi.deals for the pending samples until none is left and the producer has finished."""
    while pending or sending.is_set():
        if pending:
            polled = time.perf_counter()
            rows = await conn.fetch("SELECT deal_id, updated_at FROM kpi.deals WHERE tenant = $1"
                                    " AND deal_id = ANY($2::text[])", tenant, list({s.deal_id for s in pending}))
            stored = {r["deal_id"]: r["updated_at"] for r in rows}
            still = []
            for s in pending:
                at = stored.get(s.deal_id)
                if at is not None and at >= s.updated_at:
                    lag.lags.append(polled - s.sent)
                else:
                    still.append(s)
            pending[:] = still
        await asyncio.sleep(POLL_S)
