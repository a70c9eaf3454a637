"""`python -m tests.chaos [SCENARIO ...] [--size small|medium|large] [--rate N]`: the fault suite against the
whole stack, one run per scenario, a table at the end; exit 1 when any scenario fails (`make chaos`)."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys

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


async def main(names: list[str], size: str, rate: float) -> list[Outcome]:
    outcomes = []
    for i, name in enumerate(names):
        print(f"chaos: {name} ({size}, {rate:.0f} events/s)...", flush=True)
        outcome = await run(name, SCENARIOS[name], SIZES[size], rate=rate, seed=i + 1)
        print("  checked: " + ", ".join(f"{n} {k}" for k, n in outcome.compared.items()), flush=True)
        for note in outcome.notes:
            print(f"  {note}", flush=True)
        print(f"  {'PASS' if outcome.ok else 'FAIL'} in {outcome.elapsed_s:.0f}s", flush=True)
        outcomes.append(outcome)
    return outcomes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], help="default: all of them")
    parser.add_argument("--size", choices=list(SIZES), default="medium")
    parser.add_argument("--rate", type=float, default=500.0, help="events per second through ingest")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "deploy.local.stack", "up"], cwd=ROOT, check=True)
    results = asyncio.run(main(args.scenarios or list(SCENARIOS), args.size, args.rate))
    print()
    print(table(results))
    print(f"\nservice logs: {LOGS}")
    sys.exit(0 if all(o.ok for o in results) else 1)
