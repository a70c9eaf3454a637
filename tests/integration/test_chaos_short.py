"""The fault suite's short version, in every test run: a small seeded quarter streams through ingest while
every service is SIGKILLed once and kpi is SIGTERMed mid-batch, with malformed records in every input
topic; then every figure, celebration, check-in and dead letter is compared with the independent oracle
(tests/chaos). `make chaos` runs every scenario at a larger size; see tests/chaos/__main__.py."""

from __future__ import annotations

from tests.chaos.__main__ import SIZES
from tests.chaos.faults import short
from tests.chaos.run import run, table


async def test_a_short_chaos_run_matches_the_oracle(stack: None) -> None:
    outcome = await run("short", short, SIZES["small"], rate=300.0, base_port=18300, seed=3)
    print(table([outcome]), outcome.compared, *outcome.notes, sep="\n")
    assert outcome.compared["figures"] > 1000 and outcome.compared["milestones"] > 10, outcome.compared
    assert outcome.compared["dead-lettered"] >= outcome.compared["poison"] > 0
    assert outcome.ok, (table([outcome]), outcome.notes)
