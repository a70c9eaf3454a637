"""Run a command that stops when the demo does, however the demo ends.

    python -m deploy.demo.tether PARENT_PID -- COMMAND [ARGS...]

The demo starts its five services each in a session of its own (so that a Ctrl-C reaches the demo, which then
stops them in order). A demo killed with SIGKILL (a test's last resort, the OOM killer, a closed terminal's
hang-up escalated) used to leave them running: four services on the demo's ports, consuming every topic with
a consumer group of their own and acting on tenants created later. Through this tether each service asks the
kernel for SIGTERM when its parent dies (Linux's PR_SET_PDEATHSIG, kept across the exec that follows), then
becomes the command. If the parent is already gone when the tether is tied, it exits 1 without running the
command. Elsewhere than Linux the command runs untethered.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys

__all__ = ["main", "tie"]

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def tie(sig: int = signal.SIGTERM) -> bool:
    """Ask for `sig` when this process's parent dies; False where the platform has no such request."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.demo.tether",
        description="Run COMMAND so that it gets SIGTERM when PARENT_PID dies (Linux); the demo starts its "
                    "services this way.")
    parser.add_argument("parent", metavar="PARENT_PID", type=int, help="the process whose death stops COMMAND")
    parser.add_argument("command", metavar="-- COMMAND [ARGS...]", nargs=argparse.REMAINDER,
                        help="what to run, after --")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run (give it after --)")
    tie()
    if os.getppid() != args.parent:  # the parent died before the tether was tied: nobody would stop the command
        sys.stderr.write(f"tether: parent {args.parent} is gone; not starting {command[0]}\n")
        return 1
    os.execvp(command[0], command)  # noqa: S606 -- becoming the service is the point: no shell, argv as given
    return 127  # not reached: execvp returns only by raising


if __name__ == "__main__":
    raise SystemExit(main())
