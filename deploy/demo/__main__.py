"""`python -m deploy.demo [--seed N] [--duration S] [--reps N] [--teams N] [--quarter YYYY-Qn] [--port-base P]
[--keep-running]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from deploy.demo.app import Options, run_demo
from deploy.demo.args import within
from deploy.demo.org import MAX_REPS, MAX_TEAMS, MIN_REPS, MIN_TEAMS, Quarter
from deploy.demo.runner import PORT_BASE

MIN_DURATION_S, MAX_DURATION_S = 10.0, 120.0


def quarter_label(text: str) -> str:
    """An argparse type: a quarter such as 2026-Q4, refused with the calendar's reason otherwise."""
    try:
        return Quarter.of(text).label
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.demo",
        description="Play one simulated sales quarter through Attain and watch attainment, "
        "check-ins and celebrations live. Starts the local stack and the five services; stops "
        "what it started.",
    )
    parser.add_argument("--seed", type=within(int, 0, 2**31), default=1,
                        help="seed of the simulated org and its quarter (default 1)")
    parser.add_argument("--duration", type=within(float, MIN_DURATION_S, MAX_DURATION_S), default=100.0,
                        help=f"real seconds the quarter takes (default 100, at most {MAX_DURATION_S:g})")
    parser.add_argument("--reps", type=within(int, MIN_REPS, MAX_REPS), default=24,
                        help=f"sales reps ({MIN_REPS}..{MAX_REPS}, default 24)")
    parser.add_argument("--teams", type=within(int, MIN_TEAMS, MAX_TEAMS), default=4,
                        help=f"teams, each with a manager ({MIN_TEAMS}..{MAX_TEAMS}, default 4)")
    parser.add_argument("--quarter", type=quarter_label, default=None,
                        help="the quarter to play, e.g. 2026-Q4 (default: the one running now, in Berlin)")
    parser.add_argument("--port-base", type=within(int, 1024, 65530), default=PORT_BASE,
                        help=f"ingest's port; kpi (the dashboard), coaching, recognition and notify take the next four "
                             f"(default {PORT_BASE})")
    parser.add_argument("--keep-running", action="store_true",
                        help="after the summary, leave the services up at the story's last moment (the dashboard "
                             "and TV links of the summary open) until Ctrl-C")
    args = parser.parse_args(argv)  # fmt: skip
    return Options(
        seed=int(args.seed),
        duration=float(args.duration),
        reps=int(args.reps),
        teams=int(args.teams),
        keep_running=args.keep_running,
        quarter=args.quarter,
        port_base=int(args.port_base),
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        return asyncio.run(run_demo(options))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping: give up waiting
        return 130


if __name__ == "__main__":
    sys.exit(main())
