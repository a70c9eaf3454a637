"""A periodic job never dies: a pass that fails (a dependency's fault or any other) is counted and logged, and
the job runs again. A task that died on one unforeseen error used to stop check-ins for good, silently."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from prometheus_client import REGISTRY

from shared.service import every


def _count(name: str, component: str) -> float:
    return REGISTRY.get_sample_value(name, {"component": component}) or 0.0


@pytest.mark.parametrize("failure", [ValueError("a bug in one pass"), asyncpg.DiskFullError("disk full")])
async def test_a_timer_runs_again_after_a_failed_pass(failure: Exception) -> None:
    passes: list[int] = []
    done = asyncio.Event()

    async def work() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise failure
        if len(passes) == 3:
            done.set()

    component = f"test-{type(failure).__name__}"
    counter = "attain_transient_errors_total" if isinstance(failure, asyncpg.PostgresError) \
        else "attain_timer_failures_total"
    before = _count(counter, component)
    task = asyncio.create_task(every(0.001, work, component))
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert passes[:3] == [0, 1, 2]
    assert _count(counter, component) == before + 1
