"""Acceptance of the coaching issue: a replay of one simulated quarter through the real kpi and coaching
code (deploy/demo/replay.py) gives a task stream, and the same one on a second run."""

from __future__ import annotations

import asyncpg

from deploy.demo.org import Profile
from deploy.demo.replay import Options, run_replays
from tests.integration.conftest import DATABASE_URL, fresh_database

NAMES = {1: "attain_test_replay_1", 2: "attain_test_replay_2"}


async def _make(run: int) -> str:
    return await fresh_database(NAMES[run])


async def test_a_replayed_quarter_gives_the_same_task_stream_twice(stack: None) -> None:
    # the simulator's smallest org, a step a day (the judge still runs on every working day of the quarter): both
    # runs in about half a minute (half-day steps took 73 s on a fresh clone once the demo's org grew, issue 23)
    try:
        outcome = await run_replays(Options(seed=7, reps=20, teams=3, step_hours=24, runs=2), _make)
    finally:
        admin = await asyncpg.connect(DATABASE_URL)
        try:
            for name in NAMES.values():
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    first, second = outcome.replays
    assert first.dead_letters == [] and second.dead_letters == []
    assert first.summary.digest == second.summary.digest
    assert outcome.identical
    assert first.summary.tasks > 0
    assert "behind_pace" in first.summary.rules
    slipping = {r.rep_id for r in outcome.scenario.org.reps if r.profile is Profile.SLIPPING}
    caught = {t.rep_id for t in first.tasks if t.rule == "behind_pace"}
    assert slipping <= caught, f"slipping reps never found behind pace: {sorted(slipping - caught)}"
