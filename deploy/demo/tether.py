"""Run a command that stops when the demo does, however the demo ends.

    python -m deploy.demo.tether PARENT_PID -- COMMAND [ARGS...]

The demo starts its four services each in a session of its own (so that a Ctrl-C reaches the demo, which then
stops them in order). A demo killed with SIGKILL (a test's last resort, the OOM killer, a closed terminal's
hang-up escalated) used to leave them running: four services on the demo's ports, consuming every topic with
a consumer group of their own and acting on tenants created later. Through this tether each service asks the
kernel for SIGTERM when its parent dies (Linux's PR_SET_PDEATHSIG, kept across the exec that follows), then
becomes the command. If the parent is already gone when the tether is tied, it exits 1 without running the
command. Elsewhere than Linux the command runs untethered.
"""

from __future__ import annotations

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
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[1] != "--" or not args[0].isdigit():
        sys.stderr.write("usage: python -m deploy.demo.tether PARENT_PID -- COMMAND [ARGS...]\n")
        return 2
    parent, command = int(args[0]), args[2:]
    tie()
    if os.getppid() != parent:  # the parent died before the tether was tied: nobody would stop the command
        sys.stderr.write(f"tether: parent {parent} is gone; not starting {command[0]}\n")
        return 1
    os.execvp(command[0], command)  # noqa: S606 -- becoming the service is the point: no shell, argv as given
    return 127  # not reached: execvp returns only by raising


if __name__ == "__main__":
    raise SystemExit(main())
