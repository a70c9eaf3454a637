"""`python -m tests.chaos [SCENARIO ...] [--size small|medium|large] [--rate N] [--now INSTANT]`: the fault
suite against the whole stack, one run per scenario, a table at the end (`verdict.py` says what each column
counts); exit 1 when any scenario fails, a skipped fault included (`make chaos`). Each run's scenario is the
quarter so far at the run's clock: the system clock, or `--now` (RFC 3339, e.g. 2026-11-20T12:00:00Z) pinned
for every service too, to replay a date (the first days of a quarter are too short for a scenario)."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from datetime import datetime

from tests.chaos import scenario
from tests.chaos.faults import SCENARIOS
from tests.chaos.fleet import LOGS, ROOT
from tests.chaos.run import Outcome, run, table

SIZES = {
    "small": scenario.Settings(tenants=1, reps_per_tenant=30, teams_per_tenant=3, deals_per_rep=8,
                               activities_per_rep=10),
    "medium": scenario.Settings(tenants=2, reps_per_tenant=100, teams_per_tenant=5, deals_per_rep=15,
                                activities_per_rep=20),
    "large": scenario.Settings(),
}


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. 2026-11-20T12:00:00Z")
    return moment


async def main(names: list[str], size: str, rate: float, now: datetime | None = None) -> list[Outcome]:
    outcomes = []
    for i, name in enumerate(names):
        print(f"chaos: {name} ({size}, {rate:.0f} events/s)...", flush=True)
        outcome = await run(name, SCENARIOS[name], SIZES[size], rate=rate, seed=i + 1, now=now)
        print("  checked: " + ", ".join(f"{n} {k}" for k, n in outcome.compared.items()), flush=True)
        for note in outcome.notes:
            print(f"  {note}", flush=True)
        print(f"  {'PASS' if outcome.ok else 'FAIL'} in {outcome.elapsed_s:.0f}s", flush=True)
        outcomes.append(outcome)
    return outcomes


def cli(argv: list[str] | None = None) -> int:
    """The command line (default `sys.argv[1:]`): parsed before the stack is started, so `--help` starts nothing."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], help="default: all of them")
    parser.add_argument("--size", choices=list(SIZES), default="medium")
    parser.add_argument("--rate", type=float, default=500.0, help="events per second through ingest")
    parser.add_argument("--now", type=_instant, default=None,
                        help="pin the run's clock (every service's too) to this instant; default: the system clock")
    args = parser.parse_args(argv)
    subprocess.run([sys.executable, "-m", "deploy.local.stack", "up"], cwd=ROOT, check=True)
    results = asyncio.run(main(args.scenarios or list(SCENARIOS), args.size, args.rate, args.now))
    print()
    print(table(results))
    print(f"\nservice logs: {LOGS}")
    return 0 if all(o.ok for o in results) else 1


if __name__ == "__main__":
    sys.exit(cli())
