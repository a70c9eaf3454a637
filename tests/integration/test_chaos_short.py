"""The fault suite's short version, in every test run: a small seeded quarter streams through ingest while
every service is SIGKILLed once and kpi is SIGTERMed mid-batch, with malformed records in every input
topic; then every figure, celebration, check-in and dead letter is compared with the independent oracle
(tests/chaos). `make chaos` runs every scenario at a larger size; see tests/chaos/__main__.py.

The run's clock is pinned (every service runs on it, `ATTAIN_CLOCK`), so what is checked does not depend on
today's date: on the system clock, the first days of a quarter leave coaching's pace rule nothing to find."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tests.chaos.__main__ import SIZES
from tests.chaos.faults import short
from tests.chaos.run import run, table

# A Wednesday about two thirds into 2026-Q4: a third of the scenario's reps end below half their target.
NOW = datetime(2026, 11, 18, 10, tzinfo=UTC)
RUN_TIMEOUT_S = 240.0


async def test_a_short_chaos_run_matches_the_oracle(stack: None) -> None:
    # Inside the test's own timeout (pytest's, 300 s), so that a run that overruns is cancelled and its
    # `finally` stops the fleet: a fleet left running by pytest-timeout kept consuming the shared topics and
    # published the next tests' celebrations a second time (CI, December 2026).
    async with asyncio.timeout(RUN_TIMEOUT_S):
        outcome = await run("short", short, SIZES["small"], rate=300.0, seed=3, now=NOW)
    print(table([outcome]), outcome.compared, *outcome.notes, sep="\n")
    assert outcome.compared["figures"] > 1000 and outcome.compared["milestones"] > 10, outcome.compared
    assert outcome.compared["behind pace at the end"] > 0, outcome.compared  # missed check-ins were looked for
    assert outcome.compared["behind-pace check-ins"] > 0, outcome.compared
    assert outcome.compared["dead-lettered"] >= outcome.compared["poison"] > 0
    assert outcome.ok, (table([outcome]), outcome.notes)
