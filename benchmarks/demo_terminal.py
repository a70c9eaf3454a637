"""How much the demo prints to a terminal: runs `python -m deploy.demo` in a pseudo-terminal, feeds what it
writes to a terminal emulator with scrollback (pyte), and counts the lines a person sees: those that scrolled
past plus those on the screen at the end (a screen redrawn in place counts once). Also the raw bytes and line
feeds, and the final screen, written to `--screen FILE`.

    pip install pyte   # a terminal emulator, only for this measurement
    .venv/bin/python -m benchmarks.demo_terminal [--checkout DIR] [--screen FILE] [-- demo options]

`--checkout` runs the demo of another checkout (a `git worktree` of an older commit: the "before").
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import struct
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS, ROWS = 160, 48


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo_terminal")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the checkout whose demo runs (default: this)")
    parser.add_argument("--screen", type=Path, default=None, help="write the final screen (and scrollback) here")
    parser.add_argument("demo", nargs="*", help="options for the demo, after --")
    args = parser.parse_args(argv)
    try:
        import pyte  # type: ignore[import-not-found]  # noqa: PLC0415 -- optional, only for this measurement
    except ImportError:
        sys.stderr.write("this measurement needs pyte: pip install pyte\n")
        return 2
    screen = pyte.HistoryScreen(COLUMNS, ROWS, history=1_000_000, ratio=0.5)
    stream = pyte.ByteStream(screen)
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the demo, on a terminal of COLUMNS x ROWS
        os.chdir(args.checkout)
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
        os.execve(sys.executable, [sys.executable, "-m", "deploy.demo", *args.demo], env)  # noqa: S606 -- no shell
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    raw = bytearray()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        raw += chunk
        stream.feed(chunk)
    _, status = os.waitpid(pid, 0)
    scrolled = ["".join(char.data for char in line.values()).rstrip() for line in screen.history.top]
    shown = [line.rstrip() for line in screen.display]
    while shown and not shown[-1]:
        shown.pop()
    seen = scrolled + shown
    if args.screen is not None:
        args.screen.write_text("\n".join(seen) + "\n", encoding="utf-8")
    feeds = raw.count(b"\n")
    sys.stdout.write(f"checkout {args.checkout}: exit {os.waitstatus_to_exitcode(status)} after "
                     f"{time.monotonic() - started:.0f}s · lines a person sees: {len(seen)} ({len(scrolled)} scrolled "
                     f"past, {len(shown)} on the final screen) · bytes written {len(raw):,} · line feeds {feeds:,}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
